"""The SLA sweep: 黄牌 (yellow card, ``warning``) and 红牌 (red card, ``overdue``), set-based.

``sweep(db, now)`` runs in one transaction and never loops over rows in Python. It moves

* open tasks (``ready``/``claimed``) and open cases (``accepted``/``in_progress``) whose ``warn_at`` has
  passed (and whose ``due_at`` has not) from ``on_track`` to ``warning``;
* those whose ``due_at`` has passed from ``on_track`` or ``warning`` to ``overdue`` (a row may skip the
  yellow card);

and for every such change writes one alert (``alerts``, ``UNIQUE(subject, kind)``, inserted with
``ON CONFLICT DO NOTHING`` so the same card is never raised twice), one notification to the owner (the
assignee of a claimed task, else the department's queue) and, for an overdue task, one escalation
notification to the department's supervisor role (``departments.supervisor_role``). Rows whose
``sla_state`` is ``paused`` (the case is suspended: 特别程序/补正) or NULL (untimed: 即办件, steps
without a limit) are never touched. A second sweep at the same ``now`` finds nothing to change.

How the statements run (the same on SQLite and PostgreSQL except for step 1):

1. *collect*: for each of case-warning, case-overdue, task-warning, task-overdue one statement picks
   the rows that change (through the partial indexes ``ix_{cases,tasks}_open_{warn,due}``: the WHERE
   repeats their predicate ``state IN (...)`` literally) into a temporary table ``sla_changes`` with
   everything the alerts and notifications need (case number, step name, department, supervisor role,
   owner, the Chinese messages).

   - PostgreSQL: ``WITH changed AS (UPDATE … SET sla_state = … WHERE … RETURNING …) INSERT INTO
     sla_changes SELECT … FROM changed …``. The UPDATE re-checks its WHERE on rows a concurrent
     transition changed (READ COMMITTED), so what is collected is exactly what changed.
   - SQLite (no RETURNING inside a statement): ``INSERT INTO sla_changes SELECT … WHERE …``, then one
     ``UPDATE … WHERE id IN (SELECT … FROM sla_changes)`` per target. ``BEGIN IMMEDIATE`` makes the
     sweep the only writer, so nothing changes between the two.

2. *emit*, from ``sla_changes``: one ``INSERT INTO alerts … SELECT … ON CONFLICT (subject, kind) DO
   NOTHING``, one ``INSERT INTO notifications`` for the owners, one for the escalations.

Decisions:

* Cases first, then tasks: the engine's transitions lock a case row and then write its tasks, so the
  sweep takes its locks in the same order (no deadlock with a transition on PostgreSQL). Two sweeps are
  serialized with a transaction-scoped advisory lock on PostgreSQL (SQLite serializes writers anyway).
* The sweep does not bump ``version``: ``sla_state`` belongs to the sweep, and a bump would make a
  user's transition that read the task a moment earlier fail with a spurious conflict.
* A case alert names the case's *acceptance department* (the department of its first task, i.e. the
  entry step, 综合受理 window), which follows the whole case; its notification goes to that
  department's queue. A case red card carries that department's supervisor role as the alert's
  ``recipient_role``; escalation *notifications* are sent for overdue tasks only.
* Alerts are raised once per (subject, kind), ever. A task that turns yellow again after a suspension
  moved its due time notifies its owner again (it is a new state change), but adds no second alert
  row: ``alerts`` counts newly inserted alert rows, ``notifications`` owner notifications,
  ``escalations`` supervisor notifications.
* The sweep writes no ``events`` rows: the alert row (with ``raised_at``, case and task) is the record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, text
from sqlalchemy import Engine as Database

from ..store.models import Timestamp

__all__ = ["SweepResult", "sweep", "sweep_in"]

# Serializes concurrent sweeps on PostgreSQL (pg_advisory_xact_lock key; any constant bigint).
SWEEP_LOCK_KEY = 0x7B_5A_0001
TEMP = "sla_changes"

OPEN_TASK = "t.state IN ('ready', 'claimed')"  # = the predicate of ix_tasks_open_due / ix_tasks_open_warn
OPEN_CASE = "c.state IN ('accepted', 'in_progress')"  # = the predicate of ix_cases_open_due / _warn


@dataclass(frozen=True)
class SweepResult:
    tasks_warning: int = 0
    tasks_overdue: int = 0
    cases_warning: int = 0
    cases_overdue: int = 0
    alerts: int = 0
    notifications: int = 0
    escalations: int = 0

    @property
    def changed(self) -> int:
        """Rows whose SLA state changed."""
        return self.tasks_warning + self.tasks_overdue + self.cases_warning + self.cases_overdue

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def sweep(db: Database, now: datetime) -> SweepResult:
    """Raise the yellow and red cards due at ``now``, in one transaction. See the module docstring."""
    if now.tzinfo is None:
        raise ValueError("sweep needs a timezone-aware now")
    with db.begin() as conn:
        return sweep_in(conn, now)


def sweep_in(conn: Connection, now: datetime) -> SweepResult:
    """The sweep inside a transaction the caller holds (``sweep`` opens and commits one)."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SWEEP_LOCK_KEY})
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {TEMP} ("
        " kind VARCHAR(12) NOT NULL, case_id BIGINT NOT NULL, task_id BIGINT, subject VARCHAR(40) NOT NULL,"
        " department VARCHAR(32), supervisor_role VARCHAR(64), owner_user VARCHAR(64),"
        " message TEXT NOT NULL, escalation TEXT)"
    )
    counts: dict[str, int] = {}
    for target in ("cases", "tasks"):  # the engine's lock order: a case, then its tasks
        for kind in ("warning", "overdue"):
            counts[f"{target}_{kind}"] = _collect(conn, target, kind, now, postgres)
    alerts = _run(conn, _ALERTS, now)
    notifications = _run(conn, _NOTIFY_OWNER, now)
    escalations = _run(conn, _ESCALATE, now)
    # (if anything above fails, the rollback drops the table too: DDL is transactional on both backends)
    conn.exec_driver_sql(f"DROP TABLE {TEMP}")
    return SweepResult(**counts, alerts=alerts, notifications=notifications, escalations=escalations)


# ----------------------------------------------------------------------------------------------
# the statements


def _predicate(target: str, kind: str, postgres: bool) -> str:
    """The rows of ``target`` that move to ``kind`` at :now (repeats the partial index predicate)."""
    a, open_rows = ("t", OPEN_TASK) if target == "tasks" else ("c", OPEN_CASE)
    if kind == "overdue":
        return f"{open_rows} AND {a}.due_at <= :now AND {a}.sla_state IN ('on_track', 'warning')"
    # "due_at > now" holds for most open rows: on SQLite the unary + makes sure the planner never reads
    # them through the due_at index (it has no statistics to know better); the warn_at index finds the
    # few rows. PostgreSQL chooses by its statistics.
    due = f"{a}.due_at" if postgres else f"+{a}.due_at"
    return f"{open_rows} AND {a}.warn_at <= :now AND {due} > :now AND {a}.sla_state = 'on_track'"


def _local(column: str, postgres: bool) -> str:
    """A timestamp column as Beijing time text, 2026-03-02 14:00 (China keeps UTC+8, no DST)."""
    if postgres:
        return f"to_char({column} AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI')"
    return f"strftime('%Y-%m-%d %H:%M', {column}, '+8 hours')"


def _task_rows(kind: str, source: str, where: str, postgres: bool) -> str:
    due = _local("t.due_at", postgres)
    step = "'办件 ' || c.number || '「' || t.name || '」'"
    if kind == "warning":
        message = f"'黄牌预警：' || {step} || '将于 ' || {due} || ' 到期，请抓紧办理'"
        escalation = "NULL"
    else:
        message = f"'红牌：' || {step} || '已超期（办理期限 ' || {due} || '）'"
        escalation = (
            f"'督办：' || {step} || '已超期（办理期限 ' || {due} || '），承办部门 '"
            " || COALESCE(d.name, t.department) || '，请督促办理'"
        )
    return (
        f"SELECT '{kind}', t.case_id, t.id, 'task:' || CAST(t.id AS TEXT), t.department, d.supervisor_role,"
        f" CASE WHEN t.state = 'claimed' THEN t.assignee END, {message}, {escalation}"
        f" FROM {source} t JOIN cases c ON c.id = t.case_id LEFT JOIN departments d ON d.code = t.department"
        f" WHERE {where}"
    )


def _case_rows(kind: str, source: str, where: str, postgres: bool) -> str:
    due = _local("x.due_at", postgres)
    if kind == "warning":
        message = f"'黄牌预警：办件 ' || x.number || ' 的承诺时限将于 ' || {due} || ' 到期'"
    else:
        message = f"'红牌：办件 ' || x.number || ' 已超过承诺时限（' || {due} || '）'"
    # the acceptance department: the department of the case's first task (its entry step)
    first_department = "(SELECT f.department FROM tasks f WHERE f.case_id = c.id ORDER BY f.id LIMIT 1)"
    return (
        f"SELECT '{kind}', x.id, NULL, 'case:' || CAST(x.id AS TEXT), x.department, d.supervisor_role,"
        f" NULL, {message}, NULL"
        f" FROM (SELECT c.id, c.number, c.due_at, {first_department} AS department"
        f" FROM {source} c WHERE {where}) x"
        " LEFT JOIN departments d ON d.code = x.department"
    )


_COLUMNS = "(kind, case_id, task_id, subject, department, supervisor_role, owner_user, message, escalation)"


def _collect(conn: Connection, target: str, kind: str, now: datetime, postgres: bool) -> int:
    """Put the rows of ``target`` that turn ``kind`` into sla_changes and change their sla_state."""
    rows = _task_rows if target == "tasks" else _case_rows
    alias = "t" if target == "tasks" else "c"
    predicate = _predicate(target, kind, postgres)
    if postgres:
        statement = (
            f"WITH changed AS (UPDATE {target} AS {alias} SET sla_state = '{kind}' WHERE {predicate}"
            f" RETURNING {alias}.*)"
            f" INSERT INTO {TEMP} {_COLUMNS} {rows(kind, 'changed', 'TRUE', postgres)}"
        )
        return _run(conn, statement, now)
    collected = _run(conn, f"INSERT INTO {TEMP} {_COLUMNS} {rows(kind, target, predicate, postgres)}", now)
    if collected:
        key = "task_id" if target == "tasks" else "case_id"
        only = "task_id IS NOT NULL" if target == "tasks" else "task_id IS NULL"
        changed = _run(
            conn,
            f"UPDATE {target} SET sla_state = '{kind}'"
            f" WHERE id IN (SELECT {key} FROM {TEMP} WHERE kind = '{kind}' AND {only})",
            now,
        )
        if changed != collected:  # cannot happen under BEGIN IMMEDIATE (one writer); refuse to half-alert
            raise RuntimeError(f"SLA sweep: {target} {kind}: collected {collected} rows but changed {changed}")
    return collected


_ALERTS = (
    "INSERT INTO alerts (subject, kind, case_id, task_id, department, recipient_role, message, raised_at)"
    " SELECT subject, kind, case_id, task_id, department,"
    " CASE WHEN kind = 'overdue' THEN supervisor_role END, message, :now"
    f" FROM {TEMP} WHERE TRUE"
    " ON CONFLICT (subject, kind) DO NOTHING"
)
_NOTIFICATION_COLUMNS = (
    "(case_id, task_id, recipient_user, recipient_department, recipient_role, kind, message, created_at, delivered_at)"
)
_NOTIFY_OWNER = (
    f"INSERT INTO notifications {_NOTIFICATION_COLUMNS}"
    " SELECT case_id, task_id, owner_user, CASE WHEN owner_user IS NULL THEN department END, NULL,"
    " 'sla_' || kind, message, :now, NULL"
    f" FROM {TEMP} WHERE owner_user IS NOT NULL OR department IS NOT NULL"
)
_ESCALATE = (
    f"INSERT INTO notifications {_NOTIFICATION_COLUMNS}"
    " SELECT case_id, task_id, NULL, department, supervisor_role, 'sla_escalation', escalation, :now, NULL"
    f" FROM {TEMP} WHERE kind = 'overdue' AND task_id IS NOT NULL AND supervisor_role IS NOT NULL"
)


def _run(conn: Connection, sql: str, now: datetime) -> int:
    statement = text(sql)
    if ":now" in sql:
        statement = statement.bindparams(bindparam("now", type_=Timestamp))
        return conn.execute(statement, {"now": now}).rowcount
    return conn.execute(statement).rowcount
