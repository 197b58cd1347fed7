"""Row-level read queries over indexed columns (the SLA sweep's plan tests read them).

The pages, the REST API and the workers read through ``orchestrator.engine.read``: typed results, keyset
pages, the signatures a person owes in the 待办 queue (``read.queue``). ``department_queue`` here is the
pool alone, as plain rows, kept for its callers.

Each query is written so the planner can answer it from an index (the tests check the plans on SQLite
and PostgreSQL):

* ``department_queue``: the partial index ``ix_tasks_queue (department, due_at) WHERE state = 'ready'``,
  read in index order, no sort.
* ``open_tasks_due_before``: the partial index ``ix_tasks_open_due (due_at) WHERE state IN ('ready',
  'claimed')``.

Both repeat the index predicate *literally*: SQLite (and PostgreSQL with bound parameters) only uses a
partial index when the query's WHERE visibly implies the index's WHERE.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, RowMapping, Select, select, text

from ..store.models import Case, Task

__all__ = ["department_queue", "open_tasks_due_before"]

_tasks = Task.__table__
_cases = Case.__table__
OPEN_TASKS = text("tasks.state IN ('ready', 'claimed')")  # the predicate of ix_tasks_open_due, verbatim
READY_TASKS = text("tasks.state = 'ready'")  # the predicate of ix_tasks_queue, verbatim

_COLUMNS = (
    _tasks.c.id,
    _tasks.c.case_id,
    _cases.c.number.label("case_number"),
    _cases.c.definition_key,
    _tasks.c.step_id,
    _tasks.c.kind,
    _tasks.c.name,
    _tasks.c.department,
    _tasks.c.state,
    _tasks.c.assignee,
    _tasks.c.ready_at,
    _tasks.c.due_at,
    _tasks.c.warn_at,
    _tasks.c.sla_state,
    _tasks.c.waiting,
)


def _base() -> Select:
    return select(*_COLUMNS).join_from(_tasks, _cases, _cases.c.id == _tasks.c.case_id)


def department_queue_query(department: str, limit: int, *, timed: bool) -> Select:
    """Ready tasks of one department: the timed ones by due time, or the untimed ones by age."""
    query = _base().where(READY_TASKS, _tasks.c.department == department)
    if timed:
        return query.where(_tasks.c.due_at.is_not(None)).order_by(_tasks.c.due_at, _tasks.c.id).limit(limit)
    return query.where(_tasks.c.due_at.is_(None)).order_by(_tasks.c.id).limit(limit)


def department_queue(conn: Connection, department: str, limit: int = 50) -> Sequence[RowMapping]:
    """The department's 待办 queue: ready tasks, earliest due time first, then the untimed ones (即办).

    Two index-ordered reads instead of ``ORDER BY due_at NULLS LAST``, which SQLite cannot read from
    the index (it keeps NULLs first) and would sort every ready task of the department for it.
    """
    rows = list(conn.execute(department_queue_query(department, limit, timed=True)).mappings())
    if len(rows) < limit:
        rows += conn.execute(department_queue_query(department, limit - len(rows), timed=False)).mappings()
    return rows


def open_tasks_due_before_query(moment: datetime, limit: int | None) -> Select:
    query = _base().where(OPEN_TASKS, _tasks.c.due_at < moment).order_by(_tasks.c.due_at, _tasks.c.id)
    return query if limit is None else query.limit(limit)


def open_tasks_due_before(conn: Connection, moment: datetime, limit: int | None = 1000) -> Sequence[RowMapping]:
    """Open (ready or claimed) tasks due before ``moment``, earliest first (paused ones included)."""
    return conn.execute(open_tasks_due_before_query(moment, limit)).mappings().all()
