"""Incidents: automatic steps whose attempts ran out (commands/auto.py). The task waits in its case;
the supervisor of its department sees the incident (an alert, a notice, ``open_incidents``) and either
retries it (the attempts start again; the next worker run picks it up) or hands it to a person (the step
becomes a manual approval task in the department's queue, worked like any other).

Both are task actions declared in ``rules.ACTIONS`` (``retry_incident``, ``hand_over``), so a page
showing ``available_actions`` offers them to exactly the people they are allowed for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, select, update

from ...store.models import AutoAttempt, Case, Incident, Task
from ..rules import require
from ..unit import Tx

_attempts = AutoAttempt.__table__
_incidents = Incident.__table__
_tasks = Task.__table__
_cases = Case.__table__


@dataclass(frozen=True)
class IncidentView:
    """An incident as a supervisor's list shows it."""

    id: int
    task_id: int
    case_id: int
    case_number: str
    step_id: str
    task_name: str
    department: str
    kind: str  # rule | lookup
    error: str
    attempts: int
    state: str  # open | retried | handed_over | closed
    raised_at: datetime
    closed_at: datetime | None
    closed_by: str | None
    note: str | None


def _close(tx: Tx, incident: Any, state: str, actor: str, note: str) -> None:
    tx.conn.execute(
        update(_incidents)
        .where(_incidents.c.id == incident.id)
        .values(state=state, closed_at=tx.now, closed_by=actor, note=note or None)
    )


def retry_incident(tx: Tx, task_id: int, actor: str, note: str) -> None:
    """The supervisor asks for the step to be tried again: its attempts start from nothing."""
    _, member = tx.lock_case_of_task(task_id, actor)
    task = tx.task(task_id)
    require("retry_incident", tx.situation(actor, task, member))
    incident = tx.open_incident(task_id)
    _close(tx, incident, "retried", actor, note)
    tx.conn.execute(
        update(_attempts)
        .where(_attempts.c.task_id == task_id)
        .values(state="waiting", attempts=0, next_attempt_at=tx.now, lease_token=None, lease_until=None)
    )
    tx.event("incident_retried", task=task, actor=actor, data={"incident": incident.id, "note": note or None})


def hand_over(tx: Tx, task_id: int, actor: str, note: str) -> None:
    """The supervisor hands the step to a person: the task becomes a manual approval task, ready in the
    department's queue, and no worker runs it again. (A ``result_field`` the rule would have written
    keeps its value; the person's outcome decides the step.)"""
    _, member = tx.lock_case_of_task(task_id, actor)
    task = tx.task(task_id)
    require("hand_over", tx.situation(actor, task, member))
    incident = tx.open_incident(task_id)
    _close(tx, incident, "handed_over", actor, note)
    tx.conn.execute(delete(_attempts).where(_attempts.c.task_id == task_id))
    tx.update_task(task, kind="approval", opinion=note or None)
    tx.event("handed_over", task=task, actor=actor, data={"incident": incident.id, "note": note or None})
    tx.notify(
        "task_ready",
        f"转人工办理：{tx.case['number']} {task['name']}（自动步骤未能完成：{incident.error}）",
        task=task,
        department=task["department"],
    )


def close_stale(conn: Connection, now: datetime) -> int:
    """Incidents and attempt rows of tasks that are no longer waiting (the case was withdrawn, rejected,
    terminated meanwhile) are closed. Touches neither cases nor tasks, so it takes no case lock."""
    waiting = exists().where(_tasks.c.id == _incidents.c.task_id, _tasks.c.state == "ready", _tasks.c.kind == "auto")
    closed = conn.execute(
        update(_incidents)
        .where(_incidents.c.state == "open", ~waiting)
        .values(state="closed", closed_at=now, closed_by="system", note="the task is no longer waiting")
    ).rowcount
    still = exists().where(_tasks.c.id == _attempts.c.task_id, _tasks.c.state == "ready", _tasks.c.kind == "auto")
    conn.execute(delete(_attempts).where(~still))
    return closed


def open_incidents(conn: Connection, department: str | None = None, limit: int = 200) -> list[IncidentView]:
    """Open incidents, oldest first (of one department if given)."""
    return _list(conn, and_(_incidents.c.state == "open", *_of(department)), limit, newest_first=False)


def incidents_of_task(conn: Connection, task_id: int) -> list[IncidentView]:
    """Every incident a task had, oldest first."""
    return _list(conn, _incidents.c.task_id == task_id, 1000, newest_first=False)


def _of(department: str | None) -> list[Any]:
    return [] if department is None else [_incidents.c.department == department]


def _list(conn: Connection, condition: Any, limit: int, *, newest_first: bool) -> list[IncidentView]:
    order = _incidents.c.id.desc() if newest_first else _incidents.c.id
    query = (
        select(_incidents, _cases.c.number.label("case_number"), _tasks.c.name.label("task_name"))
        .join(_cases, _cases.c.id == _incidents.c.case_id)
        .join(_tasks, _tasks.c.id == _incidents.c.task_id)
        .where(condition)
        .order_by(order)
        .limit(limit)
    )
    return [IncidentView(**row._mapping) for row in conn.execute(query)]
