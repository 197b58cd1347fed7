"""The engine's public API: every function is one transaction that moves a case or a task.

A transition locks its case row (``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE``
serializes writers), reads the case's tasks, checks the rule in ``rules.py``, and writes the tasks,
the case, the history rows, alerts and notifications together, or nothing at all.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import JSON, Connection, bindparam, exists, insert, select, update
from sqlalchemy import Engine as Database
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from ..calendar import TZ, BusinessCalendar
from ..definition.limits import Limit, LimitSyntaxError
from ..definition.model import Definition, Step
from ..store import prepared
from ..store.models import (
    Alert,
    Case,
    Certificate,
    Department,
    Evaluation,
    Event,
    Extension,
    Membership,
    Notification,
    Signoff,
    Supplement,
    Suspension,
    Task,
    Urge,
    User,
)
from ..store.prepared import Statements
from . import dag
from .errors import Conflict, InvalidData, NotAllowed, NotFound
from .forms import check_arguments, check_form, check_materials, missing_materials
from .publish import DefinitionCache
from .rules import CASE_FINAL, CASE_RULES, TASK_OPEN, TASK_RULES, deferral_lapsed

if TYPE_CHECKING:
    from .sla import SweepResult

SYSTEM = "system"
SNAPSHOTS_KEPT = 10_000  # cases whose rows a process keeps between transitions
RECTIFICATION_STEP = "__rectification__"
SUSPENSION_KINDS = {
    "expert_review": "专家评审",
    "hearing": "听证",
    "inspection": "检验",
    "testing": "检测",
    "quarantine": "检疫",
    "appraisal": "鉴定",
    "tender": "招标",
    "auction": "拍卖",
    "site_check": "现场核查",
    "supplement": "补正",
    "other": "其他特别程序",
}
EVALUATION_LEVELS = {1: "非常满意", 2: "满意", 3: "基本满意", 4: "不满意", 5: "非常不满意"}
EVALUATION_CHANNELS = ("pc", "mobile", "qrcode", "hall", "phone", "sms", "other")

_cases = Case.__table__
_tasks = Task.__table__
_events = Event.__table__


def _insert_all(table: Any) -> Any:
    """INSERT of every column but the generated id, with a bind parameter named after each column."""
    return insert(table).values({c.name: bindparam(c.name, type_=c.type) for c in table.columns if c.name != "id"})


# What the engine reads of a case and its tasks: everything but sla_state, which belongs to the SLA
# sweep (it changes it without a transition, so the engine's in-memory copy may hold an old value).
_CASE_COLUMNS = [c for c in _cases.columns if c.name != "sla_state"]
_TASK_COLUMNS = [c for c in _tasks.columns if c.name != "sla_state"]
_ALERT_COLUMNS = [c.name for c in Alert.__table__.columns if c.name != "id"]
_JSON_CASE_COLUMNS = {c.name for c in _cases.columns if isinstance(c.type, JSON)}
_task_department = select(_tasks.c.department).where(_tasks.c.id == bindparam("task_id")).scalar_subquery()

# The hot path's statements, compiled once per dialect and run on the driver cursor (prepared.py).
_SQL = Statements(
    {
        # a transition's lock is an UPDATE of its case row: it bumps the revision in the same statement
        "lock_case": update(_cases)
        .where(_cases.c.id == bindparam("case_id"))
        .values(revision=_cases.c.revision + 1)
        .returning(_cases.c.id, _cases.c.revision),
        "lock_case_of_task": update(_cases)
        .where(_cases.c.id == select(_tasks.c.case_id).where(_tasks.c.id == bindparam("task_id")).scalar_subquery())
        .values(revision=_cases.c.revision + 1)
        .returning(
            _cases.c.id,
            _cases.c.revision,
            exists()
            .where(Membership.user_id == bindparam("actor"), Membership.department == _task_department)
            .label("actor_is_member"),
        ),
        "case": select(*_CASE_COLUMNS).where(_cases.c.id == bindparam("case_id")),
        "case_tasks": select(*_TASK_COLUMNS).where(_tasks.c.case_id == bindparam("case_id")).order_by(_tasks.c.id),
        "insert_events": _insert_all(_events),
        "insert_notifications": _insert_all(Notification.__table__),
        "insert_signoffs": _insert_all(Signoff.__table__),
        "insert_certificates": _insert_all(Certificate.__table__),
        "slots": select(Signoff.__table__).where(Signoff.task_id == bindparam("task_id")).order_by(Signoff.position),
        "sign_slot": update(Signoff.__table__)
        .where(Signoff.id == bindparam("id"))
        .values(
            {
                c: bindparam(c, type_=Signoff.__table__.c[c].type)
                for c in ("signed_by", "signed_at", "outcome", "opinion")
            }
        ),
        "memberships": select(Membership.department, Membership.role).where(Membership.user_id == bindparam("actor")),
        "supervisor_role": select(Department.supervisor_role).where(Department.code == bindparam("department")),
    }
)


def _insert_tasks_statement(count: int) -> str:
    """Name of the prepared multi-row INSERT of ``count`` tasks, RETURNING id and step id."""
    name = f"insert_tasks:{count}"
    if name not in _INSERT_TASKS_NAMES:
        # explicit types: only the first row of a multi-row VALUES takes the column types by itself
        rows = [{c: bindparam(f"{c}_{i}", type_=_tasks.c[c].type) for c in _TASK_INSERT_COLUMNS} for i in range(count)]
        _SQL.add(name, insert(_tasks).values(rows).returning(_tasks.c.id, _tasks.c.step_id))
        _INSERT_TASKS_NAMES.add(name)
    return name


_TASK_INSERT_COLUMNS = [c.name for c in _tasks.columns if c.name != "id"]
_INSERT_TASKS_NAMES: set[str] = set()


def _update_statement(table: Any, columns: Iterable[str], *, versioned: bool) -> str:
    """Name of the prepared UPDATE table SET <columns>, version WHERE id = :_id [AND version = :_version].
    Each column is bound by its own name, the new version as ``version``."""
    key = (table.name, tuple(columns), versioned)
    name = _UPDATE_NAMES.get(key)
    if name is None:
        ordered = sorted(key[1])
        name = f"update:{table.name}:{','.join(ordered)}:{versioned}"
        condition = table.c.id == bindparam("_id")
        if versioned:
            condition = condition & (table.c.version == bindparam("_version"))
        values = {c: bindparam(c, type_=table.c[c].type) for c in (*ordered, "version")}
        _SQL.add(name, update(table).where(condition).values(values))
        _UPDATE_NAMES[key] = name
    return name


_UPDATE_NAMES: dict[tuple[str, tuple[str, ...], bool], str] = {}


@dataclass
class _Work:
    """One completion being decided: the task, its case and step, who acts and what they decided."""

    case: dict[str, Any]
    definition: Definition
    step: Step
    tasks: list[dict[str, Any]]
    task: dict[str, Any]
    actor: str
    outcome: str
    opinion: str


@dataclass
class _Snapshot:
    """A case row and its task rows (None until read) as of one revision of the case."""

    revision: int
    case: dict[str, Any]
    tasks: list[dict[str, Any]] | None = None
    slots: dict[int, list[Any]] = field(default_factory=dict)  # sign-off slots of a task, once read


@dataclass
class _Tx:
    """One transition in progress: the connection, the time, the locked case, and the rows to append
    at the end."""

    conn: Connection
    now: datetime
    snapshot: _Snapshot | None = None
    inserted: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    memberships: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    def event(
        self,
        case_id: int,
        kind: str,
        *,
        task: dict[str, Any] | None = None,
        actor: str | None = None,
        from_state: str | None = None,
        to_state: str | None = None,
        edge: tuple[str, str] | None = None,
        data: dict[str, Any] | None = None,
        step_id: str | None = None,
    ) -> None:
        self.events.append(
            {
                "case_id": case_id,
                "task": task,
                "step_id": step_id or (task["step_id"] if task else None),
                "kind": kind,
                "actor": actor,
                "at": self.now,
                "from_state": from_state,
                "to_state": to_state,
                "edge_from": edge[0] if edge else None,
                "edge_to": edge[1] if edge else None,
                "data": data,
            }
        )

    def tell_applicant(self, case: dict[str, Any], kind: str, message: str) -> None:
        self.notify(kind, message, case_id=case["id"], user=case["applicant"].get("id"))

    def notify(
        self,
        kind: str,
        message: str,
        *,
        case_id: int | None,
        task: dict[str, Any] | None = None,
        user: str | None = None,
        department: str | None = None,
        role: str | None = None,
    ) -> None:
        self.notifications.append(
            {
                "case_id": case_id,
                "task": task,
                "recipient_user": user,
                "recipient_department": department,
                "recipient_role": role,
                "kind": kind,
                "message": message,
                "created_at": self.now,
                "delivered_at": None,
            }
        )

    def alert(
        self,
        kind: str,
        message: str,
        *,
        case_id: int,
        task: dict[str, Any] | None,
        department: str | None,
        role: str | None,
    ) -> None:
        self.alerts.append(
            {
                "kind": kind,
                "message": message,
                "case_id": case_id,
                "task": task,
                "department": department,
                "recipient_role": role,
                "raised_at": self.now,
            }
        )

    def flush(self) -> None:
        """Append history, notifications and alerts: one statement each. A row names its task by the
        task's dict, as a new task has no id until it is inserted."""
        for rows in (self.events, self.notifications, self.alerts):
            for row in rows:
                row["task_id"] = _id(row["task"])
        if self.events:
            prepared.execute_many(self.conn, _SQL.get("insert_events", self.conn.dialect), self.events)
        if self.notifications:
            prepared.execute_many(self.conn, _SQL.get("insert_notifications", self.conn.dialect), self.notifications)
        if self.alerts:
            rows = [
                {**a, "subject": f"task:{a['task_id']}" if a["task_id"] else f"case:{a['case_id']}"}
                for a in self.alerts
            ]
            dialect_insert = pg_insert if self.conn.dialect.name == "postgresql" else sqlite_insert
            rows = [{c: r[c] for c in _ALERT_COLUMNS} for r in rows]
            self.conn.execute(dialect_insert(Alert.__table__).on_conflict_do_nothing(), rows)


def _written(row: dict[str, Any], values: dict[str, Any]) -> None:
    """A row as its UPDATE left it, but sla_state, which the engine never reads (see _CASE_COLUMNS)."""
    row.update(values, version=row["version"] + 1)
    row.pop("sla_state", None)


def _id(row: dict[str, Any] | None) -> int | None:
    return None if row is None else row.get("id")


class Engine:
    """Tongban's service functions. ``clock`` is injected so tests move time instead of sleeping."""

    def __init__(
        self,
        db: Database,
        calendar: BusinessCalendar | None = None,
        clock: Callable[[], datetime] | None = None,
        *,
        auto_inline: bool = True,
        rectification_limit: str = "5d",
    ) -> None:
        self.db = db
        self.calendar = calendar or BusinessCalendar()
        self.clock = clock or (lambda: datetime.now(TZ))
        self.auto_inline = auto_inline  # False: `auto` steps wait for a worker (run_auto_tasks / Prefect)
        self.rectification_limit = Limit.parse(rectification_limit)
        self.definitions = DefinitionCache()
        self._postgres = db.dialect.name == "postgresql"
        self._local = threading.local()
        self._deadlines: dict[tuple[datetime, Limit, float], tuple[Any, Any, bool]] = {}
        # case id -> the case and its tasks as the last committed transition here left them. A transition
        # takes its case's entry out while it works and puts it back only after its commit; the revision
        # its lock returns tells whether another process (or engine) moved the case in between.
        self._snapshots: dict[int, _Snapshot] = {}

    # ------------------------------------------------------------------------------------------
    # plumbing

    @contextmanager
    def _transition(self) -> Iterator[_Tx]:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the engine clock must return timezone-aware datetimes")
        conn = self._connection()
        try:
            with conn.begin():
                tx = _Tx(conn, now)
                yield tx
                tx.flush()
        except BaseException:
            if conn.invalidated or conn.closed:
                self._local.__dict__.pop("connection", None)
            raise
        if tx.snapshot is not None:
            self._keep(tx)

    def _keep(self, tx: _Tx) -> None:
        """Put the committed case and tasks back for the next transition on the case."""
        snapshot = tx.snapshot
        assert snapshot is not None
        snapshot.case.pop("_form_changed", None)
        for row in tx.inserted:  # the working keys of new rows, and sla_state (see _CASE_COLUMNS)
            for key in [k for k in row if k[0] == "_" or k == "sla_state"]:
                del row[key]
        if len(self._snapshots) >= SNAPSHOTS_KEPT:  # drop the least recently used (another thread may too)
            self._snapshots.pop(next(iter(self._snapshots), None), None)
        self._snapshots[snapshot.case["id"]] = snapshot

    def _connection(self) -> Connection:
        """This thread's connection, kept open: checking one out of the pool per transition costs more
        than the transition's own statements on SQLite."""
        conn = getattr(self._local, "connection", None)
        if conn is None or conn.closed:
            conn = self._local.connection = self.db.connect()
        return conn

    def close(self) -> None:
        """Return this thread's connection to the pool."""
        conn = self._local.__dict__.pop("connection", None)
        if conn is not None:
            conn.close()

    def dispose(self) -> None:
        """Close this thread's connection and every pooled one (the process is done with the database)."""
        self.close()
        self.db.dispose()

    def _sql(self, name: str) -> prepared.Prepared:
        return _SQL.get(name, self.db.dialect)

    def _lock_case(self, tx: _Tx, case_id: int) -> dict[str, Any]:
        rows = prepared.fetch(tx.conn, self._sql("lock_case"), {"case_id": case_id})
        if not rows:
            raise NotFound(f"case {case_id} does not exist")
        return self._take_snapshot(tx, rows[0])

    def _take_snapshot(self, tx: _Tx, locked: dict[str, Any]) -> dict[str, Any]:
        """The locked case: the copy kept here if it is the latest revision, else read afresh."""
        self._locked_now(tx)
        case_id, revision = locked["id"], locked["revision"]
        if tx.snapshot is not None:
            raise RuntimeError("a transition locks one case")
        snapshot = self._snapshots.pop(case_id, None)
        if snapshot is None or snapshot.revision != revision - 1:
            snapshot = _Snapshot(revision, prepared.fetch(tx.conn, self._sql("case"), {"case_id": case_id})[0])
        else:
            snapshot.revision = snapshot.case["revision"] = revision
        tx.snapshot = snapshot
        return snapshot.case

    def _locked_now(self, tx: _Tx) -> None:
        """A transition happens when it holds its case's lock: read the clock again once it has it, so
        a transition that waited is not stamped before the one it waited for (a join's ready_at before
        its last predecessor's completed_at)."""
        now = self.clock()
        if now > tx.now:
            tx.now = now

    def _lock_case_of_task(self, tx: _Tx, task_id: int, actor: str) -> tuple[dict[str, Any], bool]:
        """The task's case (locked) and whether the actor belongs to the task's department."""
        rows = prepared.fetch(tx.conn, self._sql("lock_case_of_task"), {"task_id": task_id, "actor": actor})
        if not rows:
            raise NotFound(f"task {task_id} does not exist")
        return self._take_snapshot(tx, rows[0]), bool(rows[0]["actor_is_member"])

    def _case_tasks(self, tx: _Tx, case_id: int) -> list[dict[str, Any]]:
        """The locked case's tasks in creation order (the list new tasks are appended to)."""
        snapshot = tx.snapshot
        assert snapshot is not None and snapshot.case["id"] == case_id, "lock the case first"
        if snapshot.tasks is None:
            snapshot.tasks = prepared.fetch(tx.conn, self._sql("case_tasks"), {"case_id": case_id})
        return snapshot.tasks

    def _definition(self, tx: _Tx, case: dict[str, Any]) -> Definition:
        return self.definitions.get(tx.conn, case["definition_key"], case["definition_version"])

    def _is_member(self, tx: _Tx, actor: str, department: str, role: str | None = None) -> bool:
        """Membership from one read of the actor's roles per transition (a survey checks several)."""
        roles = tx.memberships.get(actor)
        if roles is None:
            rows = prepared.fetch(tx.conn, self._sql("memberships"), {"actor": actor})
            roles = tx.memberships[actor] = {(r["department"], r["role"]) for r in rows}
        if role is None:
            return any(d == department for d, _ in roles)
        return (department, role) in roles

    def _require_member(self, tx: _Tx, actor: str, department: str, what: str) -> None:
        if not self._is_member(tx, actor, department):
            raise NotAllowed(f"{actor} is not a member of department {department}, so may not {what}")

    def _supervisor_role(self, tx: _Tx, department: str) -> str | None:
        rows = prepared.fetch(tx.conn, self._sql("supervisor_role"), {"department": department})
        return rows[0]["supervisor_role"] if rows else None

    def _deadline(self, start: datetime, limit: Limit | None, warning: float) -> tuple[Any, Any, bool]:
        """(due_at, warn_at, provisional) for a limit counted from start on the business calendar."""
        if limit is None:
            return None, None, False
        key = (start, limit, warning)
        found = self._deadlines.get(key)
        if found is None:  # parallel branches made in one transition usually share start and limit
            due = self.calendar.add(start, limit.amount, limit.unit)
            total = self.calendar.working_time_between(start, due.at)
            warn = self.calendar.add_working_time(start, total * (1 - warning))
            if len(self._deadlines) > 4096:
                self._deadlines.clear()
            found = self._deadlines[key] = (due.at, warn.at, due.provisional or warn.provisional)
        return found

    def _update_task(self, tx: _Tx, task: dict[str, Any], **values: Any) -> None:
        """Write a task with an optimistic version check (the case lock makes a miss a real conflict)."""
        params = {**values, "_id": task["id"], "_version": task["version"], "version": task["version"] + 1}
        statement = self._sql(_update_statement(_tasks, values, versioned=True))
        if prepared.execute(tx.conn, statement, params) != 1:
            raise Conflict(f"task {task['id']} was changed by someone else; reload it and try again")
        _written(task, values)

    def _update_tasks(self, tx: _Tx, changes: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Several task writes as one executemany statement, grouped by the columns they set."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for task, values in changes:
            params = {**values, "_id": task["id"], "version": task["version"] + 1}
            groups.setdefault(tuple(sorted(values)), []).append(params)
            _written(task, values)
        for columns, rows in groups.items():
            prepared.execute_many(tx.conn, self._sql(_update_statement(_tasks, columns, versioned=False)), rows)

    def _update_case(self, tx: _Tx, case: dict[str, Any], **values: Any) -> None:
        params = {**values, "_id": case["id"], "version": case["version"] + 1}
        prepared.execute(tx.conn, self._sql(_update_statement(_cases, values, versioned=False)), params)
        _written(case, values)

    def _set_case_state(self, tx: _Tx, case: dict[str, Any], rule_name: str, actor: str | None, **values: Any) -> None:
        rule = CASE_RULES[rule_name]
        rule.check(case["state"], f"case {case['number']}")
        before = case["state"]
        target = rule.to_state or before
        self._update_case(tx, case, state=target, **values)
        tx.event(case["id"], rule.name, actor=actor, from_state=before, to_state=target)

    # ------------------------------------------------------------------------------------------
    # tasks: creation and DAG progress

    def _new_task(
        self,
        case: dict[str, Any],
        definition: Definition,
        step: Step,
        state: str,
        now: datetime,
        created_by: int | None,
    ) -> dict[str, Any]:
        due_at = warn_at = None
        provisional = False
        if state == "ready":
            due_at, warn_at, provisional = self._deadline(now, step.limit, definition.limits.warning)
        slots = _slots(step) if state == "ready" else []
        return {
            "case_id": case["id"],
            "step_id": step.id,
            "kind": step.kind,
            "name": step.name,
            "department": step.department,
            "state": state,
            "outcome": None,
            "assignee": None,
            "delegated_by": None,
            "opinion": None,
            "ready_at": now,
            "claimed_at": None,
            "completed_at": now if state == "skipped" else None,
            "completed_by": None,
            "due_at": due_at,
            "warn_at": warn_at,
            "sla_state": "on_track" if due_at else None,
            "provisional": provisional,
            "waiting": None,
            "created_by_task": created_by,
            "superseded": False,
            "signoffs_open": _open_count(step, slots),
            "version": 1,
            "_slots": slots,
        }

    def _insert_tasks(self, tx: _Tx, rows: list[dict[str, Any]]) -> None:
        """One INSERT … RETURNING for all new tasks (ids land in the dicts), one for their sign-off slots."""
        if not rows:
            return
        params = {f"{c}_{i}": row[c] for i, row in enumerate(rows) for c in _TASK_INSERT_COLUMNS}
        returned = prepared.fetch(tx.conn, self._sql(_insert_tasks_statement(len(rows))), params)
        # one step appears once per insert; match by step id (RETURNING order is not promised)
        ids = {r["step_id"]: r["id"] for r in returned}
        for row in rows:
            row["id"] = ids[row["step_id"]]
        tx.inserted.extend(rows)
        if tx.snapshot is not None and tx.snapshot.tasks is not None:
            tx.snapshot.tasks.extend(rows)
        slots = [
            {
                "task_id": r["id"],
                "position": i,
                "kind": kind,
                "party": party,
                "signed_by": None,
                "signed_at": None,
                "outcome": None,
                "opinion": None,
            }
            for r in rows
            for i, (kind, party) in enumerate(r.get("_slots", []))
        ]
        if slots:
            prepared.execute_many(tx.conn, self._sql("insert_signoffs"), slots)

    def _progress(
        self, tx: _Tx, case: dict[str, Any], definition: Definition, tasks: list[dict[str, Any]], created_by: int | None
    ) -> None:
        """Create the tasks that became ready or skipped; run `auto` steps inline; close a finished case."""
        new_rows: list[dict[str, Any]] = []
        form = dict(case["form"])
        states = _step_states(tasks)
        while True:
            moves = dag.advance(definition, states, form)
            for move in moves:
                step = definition.steps_by_id[move.step_id]
                row = self._new_task(case, definition, step, move.state, tx.now, created_by)
                row["_reason"] = move.reason
                if move.state == "ready" and step.kind == "auto" and self.auto_inline:
                    self._decide_auto(case, definition, step, row, form, tx.now)
                elif move.state == "ready" and step.kind == "notify":
                    self._send_notice(tx, case, step, row)
                new_rows.append(row)
                states[row["step_id"]] = _step_state(row)
            if any(_stops_case(definition, r) for r in new_rows):
                break  # an auto refusal ends the case: release nothing after it
            if not any(r["state"] == "completed" for r in new_rows[len(new_rows) - len(moves) :]):
                break  # only a step that completed at once (auto, notify) can make more steps ready
        if form != case["form"]:
            case["form"] = form
            case["_form_changed"] = True
        self._insert_tasks(tx, new_rows)
        for row in new_rows:
            step = definition.steps_by_id[row["step_id"]]
            for before in step.after:
                tx.event(
                    case["id"],
                    "edge",
                    task=row,
                    edge=(before, step.id),
                    data={"skipped": True} if row["state"] == "skipped" else None,
                )
            tx.event(
                case["id"],
                f"task_{row['state']}",
                task=row,
                to_state=row["state"],
                actor=SYSTEM if row["kind"] == "auto" and row["state"] == "completed" else None,
                data=_moved_data(row),
            )
            if row["state"] == "ready":
                tx.notify(
                    "task_ready",
                    f"新待办：{case['number']} {row['name']}",
                    case_id=case["id"],
                    task=row,
                    department=row["department"],
                )
        rejected_auto = [r for r in new_rows if r["kind"] == "auto" and r["outcome"] == "reject"]
        for row in rejected_auto:
            step = definition.steps_by_id[row["step_id"]]
            self._negative_decision(tx, case, row, f"自动审批规则不满足：{step.name}")
            if step.on_reject == "stop":
                self._reject_case(tx, case, tasks, SYSTEM, row["opinion"] or "")
                return
        if dag.is_finished(definition, states):
            partly = any(t["outcome"] == "reject" and not t["superseded"] for t in tasks)
            self._finish(tx, case, "partly_approved" if partly else "approved")

    def _decide_auto(
        self,
        case: dict[str, Any],
        definition: Definition,
        step: Any,
        row: dict[str, Any],
        form: dict[str, Any],
        now: datetime,
    ) -> None:
        """秒批: the rule decides; the result may be written into a form field for later `when`s."""
        try:
            passed = bool(step.rule.evaluate(form))
            note = None
        except Exception as exc:
            passed, note = False, str(exc)
        if step.result_field:
            form[step.result_field] = passed
        if passed:
            outcome, opinion = "approve", "规则满足，自动通过（秒批）"
        elif step.on_false == "continue":
            outcome, opinion = None, "规则不满足，转人工办理"
        else:
            outcome, opinion = "reject", "规则不满足，不予通过" + (f"（{note}）" if note else "")
        row.update(
            state="completed",
            outcome=outcome,
            opinion=opinion,
            completed_at=now,
            completed_by=SYSTEM,
            assignee=SYSTEM,
            sla_state=None,
        )

    def _send_notice(self, tx: _Tx, case: dict[str, Any], step: Any, row: dict[str, Any]) -> None:
        """A notify step needs no human: its message goes out and the step completes."""
        message = step.message or step.name
        for channel in step.channels:
            tx.notify(
                f"notice_{channel}",
                f"{case['number']} {message}",
                case_id=case["id"],
                user=case["applicant"].get("id"),
                department=step.department,
            )
        row.update(
            state="completed",
            outcome="approve",
            opinion=message,
            completed_at=tx.now,
            completed_by=SYSTEM,
            assignee=SYSTEM,
            sla_state=None,
        )

    @staticmethod
    def _closing(case: dict[str, Any], **values: Any) -> dict[str, Any]:
        """The columns a closing transition writes, with the form if this transition edited it (the
        edits are part of the record)."""
        if case.pop("_form_changed", False):
            values["form"] = case["form"]
        return values

    def _finish(self, tx: _Tx, case: dict[str, Any], outcome: str) -> None:
        values = self._closing(case, outcome=outcome, closed_at=tx.now)
        if case["state"] == "accepted":  # an all-automatic case never had a department start work
            self._set_case_state(tx, case, "start_work", SYSTEM)  # recorded, so the history replays
        self._set_case_state(tx, case, "complete", SYSTEM, **values)
        tx.tell_applicant(case, "case_completed", f"您的办件 {case['number']} 已办结")

    def _save_case_form(self, tx: _Tx, case: dict[str, Any]) -> None:
        if case.pop("_form_changed", False) and case["state"] not in CASE_FINAL:
            self._update_case(tx, case, form=case["form"])

    def _reject_case(self, tx: _Tx, case: dict[str, Any], tasks: list[dict[str, Any]], actor: str, reason: str) -> None:
        self._cancel_open(tx, case, tasks, actor, "case_rejected")
        values = self._closing(case, outcome="rejected", reason=reason, closed_at=tx.now)
        self._set_case_state(tx, case, "reject", actor, **values)
        tx.tell_applicant(case, "case_rejected", f"您的办件 {case['number']} 不予许可：{reason}")

    def _cancel_open(self, tx: _Tx, case: dict[str, Any], tasks: list[dict[str, Any]], actor: str, why: str) -> None:
        values = {"state": "cancelled", "completed_at": tx.now}
        changes = [self._cancelled(tx, case, t, actor, why, values) for t in tasks if t["state"] in TASK_OPEN]
        self._update_tasks(tx, changes)

    @staticmethod
    def _cancelled(
        tx: _Tx, case: dict[str, Any], task: dict[str, Any], actor: str, why: str, values: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A task change that takes the task out of the work (退回, 撤回, a closed case), with its history row."""
        tx.event(
            case["id"],
            "task_cancelled",
            task=task,
            actor=actor,
            from_state=task["state"],
            to_state=values.get("state", task["state"]),
            data={"why": why},
        )
        return task, values

    def _negative_decision(self, tx: _Tx, case: dict[str, Any], task: dict[str, Any] | None, message: str) -> None:
        """否定报备: every refusal is reported to the supervisor of the deciding department."""
        department = task["department"] if task else None
        role = self._supervisor_role(tx, department) if department else None
        tx.alert(
            "negative_decision",
            f"{case['number']} {message}",
            case_id=case["id"],
            task=task,
            department=department,
            role=role,
        )
        tx.notify(
            "negative_decision",
            f"否定报备：{case['number']} {message}",
            case_id=case["id"],
            task=task,
            department=department,
            role=role,
        )

    # ------------------------------------------------------------------------------------------
    # people

    def add_user(self, user_id: str, name: str, memberships: Sequence[tuple[str, str]] = ()) -> None:
        """Register a member of staff with (department, role) pairs; re-adding updates the roles."""
        check_arguments(user_id=user_id, name=name, memberships=memberships)
        with self._transition() as tx:
            known = {code for code in tx.conn.execute(select(Department.code)).scalars()}
            unknown = [d for d, _ in memberships if d not in known]
            if unknown:
                raise InvalidData("unknown departments", [f"{d!r} is not a published department" for d in unknown])
            dialect_insert = pg_insert if self._postgres else sqlite_insert
            tx.conn.execute(
                dialect_insert(User.__table__)
                .values(id=user_id, name=name)
                .on_conflict_do_update(index_elements=["id"], set_={"name": name})
            )
            if memberships:
                tx.conn.execute(
                    dialect_insert(Membership.__table__).on_conflict_do_nothing(),
                    [{"user_id": user_id, "department": d, "role": r} for d, r in memberships],
                )

    # ------------------------------------------------------------------------------------------
    # application and acceptance (综合受理)

    def submit_case(
        self,
        definition_key: str,
        applicant: dict[str, Any],
        form: dict[str, Any],
        materials: Sequence[str] = (),
        idempotency_key: str | None = None,
    ) -> int:
        """An application arrives; a repeated idempotency key returns the case it made before."""
        check_arguments(
            definition_key=definition_key,
            applicant=applicant,
            form=form,
            materials=materials,
            idempotency_key=idempotency_key,
        )
        if not isinstance(applicant, dict) or not applicant.get("id") or not applicant.get("name"):
            raise InvalidData("the applicant needs an id (身份证号/统一社会信用代码) and a name")
        try:
            with self._transition() as tx:
                if idempotency_key is not None:
                    found = tx.conn.execute(
                        select(_cases.c.id).where(_cases.c.idempotency_key == idempotency_key)
                    ).scalar()
                    if found is not None:
                        return found
                version, definition = self.definitions.latest(tx.conn, definition_key)
                values = check_form(definition, form)
                supplied = check_materials(definition, list(materials))
                case = {
                    "number": f"TB{tx.now.astimezone(TZ):%Y%m%d}-{uuid.uuid4().hex[:10].upper()}",
                    "definition_key": definition.key,
                    "definition_version": version,
                    "state": "submitted",
                    "outcome": None,
                    "applicant": applicant,
                    "form": values,
                    "materials": supplied,
                    "deferred": [],
                    "deferred_due_at": None,
                    "idempotency_key": idempotency_key,
                    "submitted_at": tx.now,
                    "accepted_at": None,
                    "closed_at": None,
                    "due_at": None,
                    "warn_at": None,
                    "sla_state": None,
                    "provisional": False,
                    "reason": None,
                    "remedy": None,
                    "version": 1,
                    "revision": 1,
                }
                case["id"] = tx.conn.execute(insert(_cases).returning(_cases.c.id), case).scalar_one()
                # kept for the acceptance, as a read would return it (JSON values as stored, no sla_state)
                kept = {
                    k: orjson.loads(orjson.dumps(v)) if k in _JSON_CASE_COLUMNS else v
                    for k, v in case.items()
                    if k != "sla_state"
                }
                tx.snapshot = _Snapshot(1, kept, [])
                tx.event(
                    case["id"],
                    "submitted",
                    actor=applicant["id"],
                    to_state="submitted",
                    data={"definition_version": version},
                )
                self._open_acceptance(tx, case, definition, f"新申请待受理：{case['number']}")
                return case["id"]
        except IntegrityError:
            if idempotency_key is None:
                raise
            with self.db.connect() as conn:  # a concurrent submit with the same key won
                found = conn.execute(select(_cases.c.id).where(_cases.c.idempotency_key == idempotency_key)).scalar()
            if found is None:
                raise
            return found

    def _open_acceptance(self, tx: _Tx, case: dict[str, Any], definition: Definition, notice: str) -> None:
        """A window task for the application (on arrival, and again when 补正 materials arrive)."""
        row = self._new_task(case, definition, definition.entry, "ready", tx.now, None)
        self._insert_tasks(tx, [row])
        tx.event(case["id"], "task_ready", task=row, to_state="ready")
        tx.notify("task_ready", notice, case_id=case["id"], task=row, department=row["department"])

    def _acceptance(self, tx: _Tx, case_id: int, actor: str, what: str) -> tuple[dict, Definition, list, dict]:
        case = self._lock_case(tx, case_id)
        definition = self._definition(tx, case)
        tasks = self._case_tasks(tx, case_id)
        entry = next(
            (t for t in reversed(tasks) if t["step_id"] == definition.entry.id and t["state"] in TASK_OPEN), None
        )
        self._require_member(tx, actor, definition.entry.department, what)
        return case, definition, tasks, entry  # type: ignore[return-value]

    def accept_case(
        self,
        case_id: int,
        actor: str,
        *,
        deferred: Sequence[str] = (),
        deferred_limit: str | None = None,
        opinion: str | None = None,
    ) -> None:
        """受理. Missing deferrable materials may be accepted with a supply deadline (容缺受理)."""
        check_arguments(case_id=case_id, actor=actor, deferred=deferred, deferred_limit=deferred_limit, opinion=opinion)
        with self._transition() as tx:
            case, definition, tasks, entry = self._acceptance(tx, case_id, actor, "accept applications")
            CASE_RULES["accept"].check(case["state"], f"case {case['number']}")
            if entry is None:
                raise NotAllowed(f"case {case['number']} is waiting for the applicant's 补正 materials")
            deferred = sorted(set(deferred))
            missing = missing_materials(definition, case["materials"])
            materials = {m.key: m for m in definition.materials}
            problems = [
                f"{m!r} ({materials[m].label}) is missing and may not be deferred"
                for m in missing
                if m not in deferred or not materials[m].deferrable
            ]
            problems += [f"{m!r} is no missing material of this case" for m in deferred if m not in missing]
            if problems:
                raise InvalidData("cannot accept: request 补正 for these materials or refuse", problems)
            deferred_due = None
            if deferred:
                if deferred_limit is None:
                    raise InvalidData("容缺受理 needs deferred_limit, the time the applicant has to supply them")
                limit = _parse_limit(deferred_limit, "deferred_limit")
                promised = definition.limits.promised
                if promised is not None and limit.working_hours > promised.working_hours:
                    raise InvalidData(f"the supply deadline {limit} may not exceed the promised limit {promised}")
                deferred_due = self.calendar.add(tx.now, limit.amount, limit.unit).at
            due_at, warn_at, provisional = self._deadline(tx.now, definition.limits.promised, definition.limits.warning)
            self._complete(tx, case, entry, actor, "approve", opinion or "受理")
            self._set_case_state(
                tx,
                case,
                "accept",
                actor,
                accepted_at=tx.now,
                due_at=due_at,
                warn_at=warn_at,
                sla_state="on_track" if due_at else None,
                provisional=provisional,
                deferred=deferred,
                deferred_due_at=deferred_due,
            )
            if provisional:
                tx.alert(
                    "provisional_deadline",
                    f"{case['number']} 的期限跨入尚无官方节假日数据的年份，按周末推算",
                    case_id=case["id"],
                    task=None,
                    department=definition.entry.department,
                    role=None,
                )
            tx.tell_applicant(case, "case_accepted", f"您的办件 {case['number']} 已受理")
            self._progress(tx, case, definition, tasks, entry["id"])
            self._save_case_form(tx, case)

    def refuse_case(self, case_id: int, actor: str, reason: str, remedy: str) -> None:
        """不予受理, with the written reason and the remedy (行政复议 / 行政诉讼) the applicant has."""
        check_arguments(case_id=case_id, actor=actor, reason=reason, remedy=remedy)
        if not (reason or "").strip() or not (remedy or "").strip():
            raise InvalidData("不予受理 needs a written reason and the remedy (行政复议或者行政诉讼) the applicant has")
        with self._transition() as tx:
            case, _definition, _tasks_of_case, entry = self._acceptance(tx, case_id, actor, "refuse applications")
            CASE_RULES["refuse"].check(case["state"], f"case {case['number']}")
            if entry is not None:
                self._complete(tx, case, entry, actor, "reject", reason)
            self._set_case_state(
                tx, case, "refuse", actor, outcome="not_accepted", reason=reason, remedy=remedy, closed_at=tx.now
            )
            self._negative_decision(tx, case, entry, f"不予受理：{reason}")
            tx.tell_applicant(case, "case_not_accepted", f"您的办件 {case['number']} 不予受理：{reason}。{remedy}")

    def request_supplement(self, case_id: int, actor: str, missing: Sequence[str], notice: str) -> int:
        """一次性告知: one notice listing every missing material; the clock has not started yet."""
        check_arguments(case_id=case_id, actor=actor, missing=missing, notice=notice)
        with self._transition() as tx:
            case, definition, _tasks_of_case, entry = self._acceptance(tx, case_id, actor, "request 补正")
            CASE_RULES["request_supplement"].check(case["state"], f"case {case['number']}")
            if entry is None:
                raise NotAllowed(f"case {case['number']} already has a 补正 notice out; wait for the materials")
            return self._open_supplement(tx, case, definition, entry, actor, missing, notice, before_acceptance=True)

    def _open_supplement(
        self,
        tx: _Tx,
        case: dict,
        definition: Definition,
        task: dict,
        actor: str,
        missing: Sequence[str],
        notice: str,
        *,
        before_acceptance: bool,
    ) -> int:
        missing = sorted(set(missing))
        if not missing or not (notice or "").strip():
            raise InvalidData("a 补正 notice lists the missing materials and says what to supply")
        known = {m.key for m in definition.materials}
        problems = [f"{m!r} is no material of {definition.key}" for m in missing if m not in known]
        if before_acceptance:
            unlisted = [m for m in missing_materials(definition, case["materials"]) if m not in missing]
            problems += [f"{m!r} is missing too: 一次性告知 means one notice lists everything" for m in unlisted]
        if problems:
            raise InvalidData("the 补正 notice is incomplete", problems)
        supplement_id = tx.conn.execute(
            insert(Supplement.__table__).returning(Supplement.id),
            {
                "case_id": case["id"],
                "task_id": task["id"],
                "missing": missing,
                "notice": notice,
                "requested_by": actor,
                "requested_at": tx.now,
                "supplied_at": None,
            },
        ).scalar_one()
        if before_acceptance:
            self._complete(tx, case, task, actor, "return", notice)
        else:
            self._update_task(tx, task, waiting="applicant", opinion=notice)
        tx.event(case["id"], "supplement_requested", task=task, actor=actor, data={"missing": missing})
        tx.tell_applicant(case, "supplement_requested", f"办件 {case['number']} 需补正：{notice}")
        return supplement_id

    def supply_materials(self, case_id: int, applicant_id: str, materials: Sequence[str]) -> None:
        """The applicant supplies what a 补正 notice asked for (before acceptance, or while suspended)."""
        check_arguments(case_id=case_id, applicant_id=applicant_id, materials=materials)
        with self._transition() as tx:
            case = self._lock_case(tx, case_id)
            if case["applicant"].get("id") != applicant_id:
                raise NotAllowed("only the applicant may supply materials for this case")
            if case["state"] in CASE_FINAL:
                raise NotAllowed(f"case {case['number']} is {case['state']}; it takes no more materials")
            definition = self._definition(tx, case)
            supplied = check_materials(definition, list(materials))
            open_notice = tx.conn.execute(
                select(Supplement.__table__).where(Supplement.case_id == case_id, Supplement.supplied_at.is_(None))
            ).first()
            if open_notice is None and not case["deferred"]:
                raise NotAllowed(f"case {case['number']} is not waiting for materials")
            if open_notice is None and deferral_lapsed(case["deferred"], case["deferred_due_at"], tx.now):
                deadline = case["deferred_due_at"].astimezone(TZ)
                raise NotAllowed(
                    f"the 容缺 supply deadline {deadline:%Y-%m-%d %H:%M} has passed: case {case['number']} is to "
                    "be terminated (终止办理) and takes no more materials"
                )
            owed = set(open_notice.missing if open_notice else case["deferred"])
            still = sorted(owed - set(supplied))
            if open_notice is not None and still:
                raise InvalidData("the 补正 notice asked for more", [f"{m!r} is still missing" for m in still])
            all_materials = sorted(set(case["materials"]) | set(supplied))
            tasks = self._case_tasks(tx, case_id)
            if open_notice is not None:
                tx.conn.execute(
                    update(Supplement.__table__).where(Supplement.id == open_notice.id).values(supplied_at=tx.now)
                )
            tx.event(case["id"], "materials_supplied", actor=applicant_id, data={"materials": supplied})
            if case["state"] == "submitted":
                CASE_RULES["supply_before_acceptance"].check(case["state"], f"case {case['number']}")
                self._update_case(tx, case, materials=all_materials)
                self._open_acceptance(tx, case, definition, f"补正材料已到，待受理：{case['number']}")
            elif case["state"] == "suspended" and open_notice is not None:
                self._update_case(tx, case, materials=all_materials)
                waiting = [t for t in tasks if t["waiting"] == "applicant" and t["state"] in TASK_OPEN]
                self._update_tasks(tx, [(t, {"waiting": None}) for t in waiting])
                self._resume(tx, case, tasks, applicant_id, "补正材料已补齐")
            else:
                deferred_left = sorted(set(case["deferred"]) - set(supplied))
                self._update_case(
                    tx,
                    case,
                    materials=all_materials,
                    deferred=deferred_left,
                    deferred_due_at=case["deferred_due_at"] if deferred_left else None,
                )

    # ------------------------------------------------------------------------------------------
    # the task queue

    def claim_task(self, task_id: int, actor: str) -> None:
        """签收: take a ready task of my department."""
        check_arguments(task_id=task_id, actor=actor)
        with self._transition() as tx:
            case, member = self._lock_case_of_task(tx, task_id, actor)
            task = self._task(tx, task_id)
            if not member:
                raise NotAllowed(f"{actor} is not a member of department {task['department']}, so may not claim it")
            TASK_RULES["claim"].check(task["state"], f"task {task_id}")
            if task["kind"] == "auto":
                raise NotAllowed(f"task {task_id} is an automatic step: its rule decides it (run_auto_tasks)")
            if task["step_id"] != RECTIFICATION_STEP and task["kind"] != "acceptance":
                CASE_RULES["work"].check(case["state"], f"case {case['number']}")
            self._update_task(tx, task, state="claimed", assignee=actor, claimed_at=tx.now)
            tx.event(case["id"], "claimed", task=task, actor=actor, from_state="ready", to_state="claimed")
            self._start_work(tx, case, task, actor)

    def release_task(self, task_id: int, actor: str) -> None:
        """Put a claimed task back into the department's queue."""
        check_arguments(task_id=task_id, actor=actor)
        with self._transition() as tx:
            case, task = self._task_for(tx, task_id, actor, "release")
            _refuse_if_delegated(task, "put it back in the queue")
            self._require_assignee(task, actor, "release it")
            self._update_task(tx, task, state="ready", assignee=None, claimed_at=None, delegated_by=None)
            tx.event(case["id"], "released", task=task, actor=actor, from_state="claimed", to_state="ready")

    def reassign_task(self, task_id: int, actor: str, to_user: str, reason: str = "") -> None:
        """改派: the department's supervisor gives the task to another member."""
        check_arguments(task_id=task_id, actor=actor, to_user=to_user, reason=reason)
        with self._transition() as tx:
            case, task = self._task_for(tx, task_id, actor, "reassign")
            role = self._supervisor_role(tx, task["department"])
            if role is None or not self._is_member(tx, actor, task["department"], role):
                raise NotAllowed(f"only the supervisor ({role}) of {task['department']} may reassign its tasks")
            self._require_member(tx, to_user, task["department"], "receive its tasks")
            self._hand_over(
                tx,
                case,
                task,
                actor,
                to_user,
                "reassigned",
                "改派",
                {"reason": reason},
                state="claimed",
                delegated_by=None,
            )

    def transfer_task(self, task_id: int, actor: str, to_user: str, reason: str = "") -> None:
        """转办: hand my task to another member of the department; it is theirs from now on."""
        check_arguments(task_id=task_id, actor=actor, to_user=to_user, reason=reason)
        with self._transition() as tx:
            case, task = self._task_for(tx, task_id, actor, "transfer")
            _refuse_if_delegated(task, "transfer it")
            self._require_assignee(task, actor, "transfer it")
            self._require_member(tx, to_user, task["department"], "receive its tasks")
            self._hand_over(
                tx, case, task, actor, to_user, "transferred", "转办", {"reason": reason}, delegated_by=None
            )

    def delegate_task(self, task_id: int, actor: str, to_user: str, note: str = "") -> None:
        """委派: someone works my task for me; their completion comes back to me for approval."""
        check_arguments(task_id=task_id, actor=actor, to_user=to_user, note=note)
        with self._transition() as tx:
            case, task = self._task_for(tx, task_id, actor, "delegate")
            self._require_assignee(task, actor, "delegate it")
            if task["delegated_by"] is not None:
                raise NotAllowed(f"task {task_id} is already delegated by {task['delegated_by']}")
            self._require_user(tx, to_user)
            self._hand_over(tx, case, task, actor, to_user, "delegated", "委派", {"note": note}, delegated_by=actor)

    def _task_for(self, tx: _Tx, task_id: int, actor: str, rule: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The task (its case locked), once the rule allows the operation in the task's state."""
        case, _ = self._lock_case_of_task(tx, task_id, actor)
        task = self._task(tx, task_id)
        TASK_RULES[rule].check(task["state"], f"task {task_id}")
        return case, task

    def _hand_over(
        self,
        tx: _Tx,
        case: dict,
        task: dict,
        actor: str,
        to_user: str,
        kind: str,
        label: str,
        data: dict[str, Any],
        **values: Any,
    ) -> None:
        """Give a task to someone else (改派, 转办, 委派): the write, its history row and their notice."""
        before = task["state"]
        claimed_at = tx.now if values.get("state") == "claimed" or kind != "delegated" else task["claimed_at"]
        self._update_task(tx, task, assignee=to_user, claimed_at=claimed_at, **values)
        tx.event(
            case["id"],
            kind,
            task=task,
            actor=actor,
            from_state=before,
            to_state=task["state"],
            data={"to": to_user, **data},
        )
        notice = "task_delegated" if kind == "delegated" else "task_assigned"
        tx.notify(notice, f"{label}给您：{case['number']} {task['name']}", case_id=case["id"], task=task, user=to_user)

    def _require_user(self, tx: _Tx, user: str) -> None:
        if not tx.conn.execute(select(User.id).where(User.id == user)).first():
            raise NotFound(f"user {user} does not exist")

    def add_signer(self, task_id: int, actor: str, signer: str, note: str = "") -> None:
        """加签: one more person must sign this task before it can be completed."""
        check_arguments(task_id=task_id, actor=actor, signer=signer, note=note)
        with self._transition() as tx:
            case, task = self._task_for(tx, task_id, actor, "add_signer")
            self._require_assignee(task, actor, "add a signer")
            self._require_user(tx, signer)
            slots = self._slots(tx, task_id)
            if any(s.kind == "user" and s.party == signer and s.signed_at is None for s in slots):
                raise Conflict(f"{signer} already has a pending signature on task {task_id}")
            tx.conn.execute(
                insert(Signoff.__table__),
                {
                    "task_id": task_id,
                    "position": len(slots),
                    "kind": "user",
                    "party": signer,
                    "signed_by": None,
                    "signed_at": None,
                    "outcome": None,
                    "opinion": None,
                },
            )
            del tx.snapshot.slots[task_id]  # read again, with the new slot's id, when next needed
            self._update_task(tx, task, signoffs_open=task["signoffs_open"] + 1)
            tx.event(case["id"], "signer_added", task=task, actor=actor, data={"signer": signer, "note": note})
            tx.notify(
                "signature_requested",
                f"请会签：{case['number']} {task['name']}",
                case_id=case["id"],
                task=task,
                user=signer,
            )

    def _task(self, tx: _Tx, task_id: int) -> dict[str, Any]:
        """A task of the locked case."""
        assert tx.snapshot is not None
        return next(t for t in self._case_tasks(tx, tx.snapshot.case["id"]) if t["id"] == task_id)

    def _slots(self, tx: _Tx, task_id: int) -> list[Any]:
        """The sign-off slots of a task of the locked case, in order."""
        assert tx.snapshot is not None
        slots = tx.snapshot.slots.get(task_id)
        if slots is None:
            rows = prepared.fetch(tx.conn, self._sql("slots"), {"task_id": task_id})
            slots = tx.snapshot.slots[task_id] = [SimpleNamespace(**row) for row in rows]
        return slots

    @staticmethod
    def _require_assignee(task: dict[str, Any], actor: str, what: str) -> None:
        if task["assignee"] != actor:
            holder = task["assignee"] or "nobody"
            raise NotAllowed(f"task {task['id']} is claimed by {holder}; only they may {what}")

    def _start_work(self, tx: _Tx, case: dict[str, Any], task: dict[str, Any], actor: str) -> None:
        """The first department action after acceptance moves the case to in_progress (部门开始办理)."""
        if case["state"] == "accepted" and task["kind"] != "acceptance":
            self._set_case_state(tx, case, "start_work", actor)

    # ------------------------------------------------------------------------------------------
    # completing work

    def complete_task(
        self,
        task_id: int,
        actor: str,
        outcome: str = "approve",
        opinion: str = "",
        *,
        form_updates: dict[str, Any] | None = None,
        missing: Sequence[str] = (),
    ) -> None:
        """办理: approve, reject (with a written reason) or return (补正: the clock stops).

        A survey needs every participant department's sign-off, a review chain each level in order,
        a countersign every (会签) or any (或签) signer; each call signs once.
        """
        check_arguments(
            task_id=task_id, actor=actor, outcome=outcome, opinion=opinion, form_updates=form_updates, missing=missing
        )
        if outcome not in ("approve", "reject", "return"):
            raise InvalidData(f"outcome {outcome!r}: use approve, reject or return")
        if outcome in ("reject", "return") and not (opinion or "").strip():
            raise InvalidData(f"{'不予许可' if outcome == 'reject' else '补正'} needs a written opinion that says why")
        with self._transition() as tx:
            case, member = self._lock_case_of_task(tx, task_id, actor)
            tasks = self._case_tasks(tx, case["id"])
            task = next(t for t in tasks if t["id"] == task_id)
            if task["state"] == "completed":
                raise Conflict(f"task {task_id} ({task['name']}) is already completed by {task['completed_by']}")
            TASK_RULES["complete"].check(task["state"], f"task {task_id}")
            if task["step_id"] == RECTIFICATION_STEP:
                self._complete_rectification(tx, case, task, actor, member, opinion)
                return
            if task["kind"] == "auto":
                raise NotAllowed(f"task {task_id} is an automatic step: its rule decides it (run_auto_tasks)")
            if task["kind"] == "acceptance":
                raise NotAllowed("the acceptance step is worked with accept_case, refuse_case or request_supplement")
            CASE_RULES["work"].check(case["state"], f"case {case['number']}")
            definition = self._definition(tx, case)
            step = definition.steps_by_id[task["step_id"]]
            if task["waiting"] == "applicant":
                raise NotAllowed(f"task {task_id} waits for the applicant's 补正 materials")
            if form_updates:
                self._edit_form(tx, case, definition, step, form_updates)
            work = _Work(case, definition, step, tasks, task, actor, outcome, opinion)
            verdict = "none"
            if task["signoffs_open"] > 0 and outcome != "return":  # 补正 is the assignee's, not a signature
                verdict = self._sign(tx, case, task, step, actor, outcome, opinion, member)
            if verdict == "decided":
                self._finish_task(tx, work)
            elif verdict == "none":
                self._complete_by_assignee(tx, work, member, missing)
            self._save_case_form(tx, case)  # the edits stand whatever the call was: a signature, 补正, 委派 …

    def _complete_by_assignee(self, tx: _Tx, work: _Work, member: bool, missing: Sequence[str]) -> None:
        case, task, actor = work.case, work.task, work.actor
        if task["delegated_by"] is not None and task["assignee"] == actor:
            # 委派: the delegate's work returns to the one who delegated it, who then decides
            owner = task["delegated_by"]
            self._update_task(tx, task, assignee=owner, delegated_by=None, opinion=work.opinion)
            tx.event(
                case["id"],
                "delegation_returned",
                task=task,
                actor=actor,
                data={"outcome": work.outcome, "opinion": work.opinion},
            )
            tx.notify(
                "task_returned",
                f"委派已办理，请审核：{case['number']} {task['name']}",
                case_id=case["id"],
                task=task,
                user=owner,
            )
            return
        if task["state"] == "claimed" and task["assignee"] != actor and task["signoffs_open"] == 0:
            raise NotAllowed(f"task {task['id']} is claimed by {task['assignee']}; only they may complete it")
        if task["state"] == "ready" and not member:
            raise NotAllowed(f"{actor} is not a member of department {task['department']}, so may not complete it")
        if work.outcome == "return":
            self._start_work(tx, case, task, actor)
            if task["state"] == "ready":
                self._update_task(tx, task, state="claimed", assignee=actor, claimed_at=tx.now)
                tx.event(case["id"], "claimed", task=task, actor=actor, from_state="ready", to_state="claimed")
            self._open_supplement(
                tx, case, work.definition, task, actor, missing, work.opinion, before_acceptance=False
            )
            self._suspend(tx, case, work.tasks, actor, "supplement", work.opinion, None)
            return
        self._finish_task(tx, work)

    def _finish_task(self, tx: _Tx, work: _Work) -> None:
        """Complete the task, then reject the case or move the DAG on."""
        case, task, step = work.case, work.task, work.step
        self._start_work(tx, case, task, work.actor)
        self._complete(tx, case, task, work.actor, work.outcome, work.opinion)
        if work.outcome == "reject":
            self._negative_decision(tx, case, task, f"{step.name} 不予许可：{work.opinion}")
            if step.on_reject == "stop":
                self._reject_case(tx, case, work.tasks, work.actor, work.opinion)
                return
        self._progress(tx, case, work.definition, work.tasks, task["id"])

    def _complete(
        self, tx: _Tx, case: dict[str, Any], task: dict[str, Any], actor: str, outcome: str, opinion: str
    ) -> None:
        before = task["state"]
        self._update_task(
            tx,
            task,
            state="completed",
            outcome=outcome,
            opinion=opinion,
            completed_at=tx.now,
            completed_by=actor,
            assignee=task["assignee"] or actor,
            claimed_at=task["claimed_at"] or tx.now,
            **task.pop("_also", {}),
        )
        tx.event(
            case["id"],
            "task_completed",
            task=task,
            actor=actor,
            from_state=before,
            to_state="completed",
            data={"outcome": outcome, "opinion": opinion} if opinion else {"outcome": outcome},
        )

    def _sign(
        self, tx: _Tx, case: dict, task: dict, step: Step, actor: str, outcome: str, opinion: str, member: bool
    ) -> str:
        """Record one signature: "more" (others must still sign), "decided" (this signature completes the
        task) or "none" (the actor has no signature to give; they act on the task as its assignee)."""
        slots = self._slots(tx, task["id"])
        open_slots = [s for s in slots if s.signed_at is None]
        slot = self._slot_for(tx, task, step, open_slots, slots, actor, member)
        if slot is None:
            return "none"
        if outcome == "return":
            raise NotAllowed("a signature approves or rejects; to ask for 补正 the task's assignee returns it")
        values = {"id": slot.id, "signed_by": actor, "signed_at": tx.now, "outcome": outcome, "opinion": opinion}
        prepared.execute(tx.conn, self._sql("sign_slot"), values)
        vars(slot).update(values)
        left = task["signoffs_open"] - 1  # 或签 counts its role slots as one (see _open_count)
        tx.event(
            case["id"],
            "signed",
            task=task,
            actor=actor,
            data={"slot": slot.kind, "party": slot.party, "outcome": outcome, "opinion": opinion},
        )
        self._start_work(tx, case, task, actor)
        base_kinds = {s.kind for s in slots} - {"user"}
        if outcome == "reject" or (left == 0 and base_kinds):
            task["_also"] = {"signoffs_open": left}  # written with the completion, in the same UPDATE
            return "decided"  # a refusal by any signer, or the last signature, decides the task
        self._update_task(tx, task, signoffs_open=left)
        return "more"

    def _slot_for(
        self, tx: _Tx, task: dict, step: Step, open_slots: list, slots: list, actor: str, member: bool
    ) -> Any:
        for slot in open_slots:
            if slot.kind == "user" and slot.party == actor:
                return slot
        levels = [s for s in open_slots if s.kind == "level"]
        if levels:
            if any(s.signed_by == actor for s in slots if s.kind == "level"):
                raise NotAllowed(
                    f"{actor} already signed a level of this review chain; the next level "
                    f"({levels[0].party}) must be signed by someone else"
                )
            if not member:
                raise NotAllowed(f"{actor} is not a member of department {task['department']}")
            return levels[0]
        departments = [s for s in open_slots if s.kind == "department"]
        if departments:
            for slot in departments:
                if self._is_member(tx, actor, slot.party):
                    return slot
            signed = [s.party for s in slots if s.kind == "department" and s.signed_at is not None]
            raise NotAllowed(
                f"{actor} is in none of the survey departments still to sign "
                f"({', '.join(s.party for s in departments)}); signed: {', '.join(signed) or 'none'}"
            )
        roles = [s for s in open_slots if s.kind == "role"]
        if getattr(step, "sign", None) == "any" and any(s.kind == "role" and s.signed_at for s in slots):
            roles = []  # 或签: one countersignature was enough
        if roles:
            for slot in roles:
                if self._is_member(tx, actor, task["department"], slot.party):
                    return slot
            raise NotAllowed(
                f"{actor} holds none of the countersign roles still to sign ({', '.join(s.party for s in roles)})"
            )
        added = [s for s in open_slots if s.kind == "user"]
        if added:  # only added signers (加签) left, and the actor is not one of them
            if task["assignee"] == actor:
                waiting_for = ", ".join(s.party for s in added)
                raise NotAllowed(f"task {task['id']} waits for 加签 signatures from {waiting_for}")
            raise NotAllowed(f"{actor} has no signature to give on task {task['id']}")
        return None

    def _edit_form(self, tx: _Tx, case: dict, definition: Definition, step: Step, updates: dict[str, Any]) -> None:
        not_editable = [k for k in updates if k not in step.editable]
        if not_editable:
            raise NotAllowed(
                f"step {step.id} may not change {', '.join(not_editable)}; it may edit: "
                f"{', '.join(step.editable) or 'nothing'}"
            )
        values = check_form(definition, updates, partial=True)
        changed = {k: v for k, v in values.items() if case["form"].get(k) != v}
        if changed:
            case["form"] = {**case["form"], **changed}
            case["_form_changed"] = True
            tx.event(case["id"], "form_edited", step_id=step.id, data={"changes": changed})

    # ------------------------------------------------------------------------------------------
    # 退回 and 撤回

    def send_back(self, task_id: int, actor: str, reason: str, to_step: str | None = None) -> int:
        """退回: back to the previous (or any earlier completed) step, which gets a new task; the steps
        in between are redone. Returns the new task's id."""
        check_arguments(task_id=task_id, actor=actor, reason=reason, to_step=to_step)
        if not (reason or "").strip():
            raise InvalidData("退回 needs a reason")
        with self._transition() as tx:
            case, member = self._lock_case_of_task(tx, task_id, actor)
            CASE_RULES["work"].check(case["state"], f"case {case['number']}")
            tasks = self._case_tasks(tx, case["id"])
            task = next(t for t in tasks if t["id"] == task_id)
            TASK_RULES["send_back"].check(task["state"], f"task {task_id}")
            if task["state"] == "claimed":
                self._require_assignee(task, actor, "send it back")
            elif not member:
                raise NotAllowed(f"{actor} is not a member of department {task['department']}")
            definition = self._definition(tx, case)
            latest = _latest(tasks)
            target = to_step or self._previous_step(definition, latest, task["step_id"])
            ancestors = set(dag.between(definition, definition.entry.id, task["step_id"])) | {definition.entry.id}
            if target not in definition.steps_by_id or target not in ancestors or target == definition.entry.id:
                raise InvalidData(
                    f"cannot send back to {target!r}: choose an earlier department step of this case "
                    f"({', '.join(sorted(ancestors - {definition.entry.id}))})"
                )
            if definition.steps_by_id[target].kind in ("auto", "notify"):
                raise InvalidData(
                    f"cannot send back to {target!r}: it is an automatic step; send back to a step people work"
                )
            target_task = latest.get(target)
            if target_task is None or target_task["state"] != "completed" or target_task["superseded"]:
                raise NotAllowed(f"step {target} has not been completed in this case; nothing to send back to")
            redoing = [
                b
                for b in definition.steps_by_id[target].after
                if b not in latest or latest[b]["superseded"] or latest[b]["state"] not in ("completed", "skipped")
            ]
            if redoing:  # an earlier 退回 reopened them: the target would run ahead of its predecessors
                raise NotAllowed(f"cannot send back to {target} while {', '.join(redoing)} are redone")
            redo = set(dag.between(definition, target, task["step_id"])) | {task["step_id"], target}
            changes = []
            for step_id in redo:
                current = latest.get(step_id)
                if current is None:
                    continue
                if current["state"] in TASK_OPEN:
                    values = {"superseded": True, "state": "cancelled", "completed_at": tx.now}
                    changes.append(self._cancelled(tx, case, current, actor, "send_back", values))
                else:
                    changes.append((current, {"superseded": True}))
            self._update_tasks(tx, changes)
            step = definition.steps_by_id[target]
            row = self._new_task(case, definition, step, "ready", tx.now, None)
            previous = target_task["completed_by"]
            if previous and previous != SYSTEM:
                row.update(state="claimed", assignee=previous, claimed_at=tx.now)
            self._insert_tasks(tx, [row])
            tx.event(
                case["id"],
                "sent_back",
                task=task,
                actor=actor,
                edge=(task["step_id"], target),
                data={"reason": reason, "new_task": row["id"], "redo": sorted(redo)},
            )
            tx.event(case["id"], f"task_{row['state']}", task=row, to_state=row["state"])
            tx.notify(
                "task_sent_back",
                f"退回重办：{case['number']} {row['name']}：{reason}",
                case_id=case["id"],
                task=row,
                user=row["assignee"],
                department=row["department"],
            )
            return row["id"]

    @staticmethod
    def _previous_step(definition: Definition, latest: dict[str, dict], step_id: str) -> str:
        """The predecessor completed last (skips do not count)."""
        done = [
            latest[b]
            for b in definition.steps_by_id[step_id].after
            if b in latest and latest[b]["state"] == "completed"
        ]
        if not done:
            raise NotAllowed(f"step {step_id} has no completed predecessor to send back to")
        return max(done, key=lambda t: (t["completed_at"], t["id"]))["step_id"]

    def take_back(self, task_id: int, actor: str) -> int:
        """撤回: undo my own completion while the tasks it created are still untouched. Returns the
        id of my task, open again."""
        check_arguments(task_id=task_id, actor=actor)
        with self._transition() as tx:
            case, _ = self._lock_case_of_task(tx, task_id, actor)
            if case["state"] in CASE_FINAL:
                raise NotAllowed(f"case {case['number']} is {case['state']}; a closed case cannot be taken back")
            CASE_RULES["work"].check(case["state"], f"case {case['number']}")  # not while the clock is stopped
            tasks = self._case_tasks(tx, case["id"])
            task = next(t for t in tasks if t["id"] == task_id)
            TASK_RULES["take_back"].check(task["state"], f"task {task_id}")
            if task["completed_by"] != actor:
                raise NotAllowed(f"only {task['completed_by']}, who completed task {task_id}, may take it back")
            if task["superseded"] or task["kind"] == "acceptance":
                raise NotAllowed(f"task {task_id} can no longer be taken back")
            definition = self._definition(tx, case)
            newest = _latest(tasks)
            redoing = [
                b
                for b in definition.steps_by_id[task["step_id"]].after
                if b not in newest or newest[b]["superseded"] or newest[b]["state"] not in ("completed", "skipped")
            ]
            if redoing:  # after a 退回, reopening this step now would run it ahead of its predecessors
                raise NotAllowed(f"task {task_id} cannot be taken back while {', '.join(redoing)} are redone")
            # the live tasks of every later step: a join made ready by another branch counts too
            later = dag._descendants(definition, task["step_id"])
            made = [
                t for t in tasks if not t["superseded"] and (t["created_by_task"] == task_id or t["step_id"] in later)
            ]
            touched = [t for t in made if t["state"] not in ("ready", "skipped") or t["assignee"] is not None]
            if touched:
                names = ", ".join(f"{t['name']} ({t['state']})" for t in touched)
                raise NotAllowed(f"too late to take back: the next steps have started: {names}")
            waiting = [t["id"] for t in made if t["state"] == "ready"]
            signed = select(Signoff.id).where(Signoff.task_id.in_(waiting), Signoff.signed_at.is_not(None))
            if waiting and tx.conn.execute(signed.limit(1)).first():
                raise NotAllowed("too late to take back: a next step already has signatures")
            changes = [
                self._cancelled(
                    tx,
                    case,
                    t,
                    actor,
                    "take_back",
                    {"state": "cancelled" if t["state"] == "ready" else t["state"], "superseded": True},
                )
                for t in made
            ]
            changes.append((task, {"superseded": True}))
            self._update_tasks(tx, changes)
            step = definition.steps_by_id[task["step_id"]]
            row = self._new_task(case, definition, step, "ready", tx.now, None)
            row.update(state="claimed", assignee=actor, claimed_at=tx.now)
            self._insert_tasks(tx, [row])
            tx.event(case["id"], "taken_back", task=task, actor=actor, data={"new_task": row["id"]})
            tx.event(case["id"], "task_claimed", task=row, actor=actor, to_state="claimed")
            return row["id"]

    # ------------------------------------------------------------------------------------------
    # the clock: 特别程序, 延长审批

    def suspend_case(self, case_id: int, actor: str, kind: str, reason: str, expected: str | None = None) -> int:
        """特别程序 (专家评审, 听证, 检验 …): the clock stops until resume_case."""
        check_arguments(case_id=case_id, actor=actor, kind=kind, reason=reason, expected=expected)
        if kind not in SUSPENSION_KINDS or kind == "supplement":
            choices = ", ".join(k for k in SUSPENSION_KINDS if k != "supplement")
            raise InvalidData(f"unknown suspension kind {kind!r}: use one of {choices} (补正 is a task's return)")
        if not (reason or "").strip():
            raise InvalidData("特别程序 needs a reason (the applicant is told in writing)")
        if expected is not None:
            _parse_limit(expected, "expected")
        with self._transition() as tx:
            case = self._lock_case(tx, case_id)
            tasks = self._case_tasks(tx, case_id)
            self._require_case_worker(tx, case, tasks, actor, "suspend the case")
            return self._suspend(tx, case, tasks, actor, kind, reason, expected)

    def _suspend(
        self, tx: _Tx, case: dict, tasks: list, actor: str, kind: str, reason: str, expected: str | None
    ) -> int:
        self._set_case_state(tx, case, "suspend", actor, sla_state="paused" if case["due_at"] else None)
        suspension_id = tx.conn.execute(
            insert(Suspension.__table__).returning(Suspension.id),
            {
                "case_id": case["id"],
                "kind": kind,
                "reason": reason,
                "expected": expected,
                "requested_by": actor,
                "started_at": tx.now,
                "ended_at": None,
                "result": None,
            },
        ).scalar_one()
        self._update_tasks(tx, [(t, {"sla_state": "paused"}) for t in tasks if t["state"] in TASK_OPEN and t["due_at"]])
        tx.event(case["id"], "clock_stopped", actor=actor, data={"kind": kind, "reason": reason, "expected": expected})
        tx.tell_applicant(
            case, "case_suspended", f"您的办件 {case['number']} 进入{SUSPENSION_KINDS[kind]}，期间不计时：{reason}"
        )
        return suspension_id

    def resume_case(self, case_id: int, actor: str, result: str = "") -> None:
        """特别程序结束: the clock runs again; due times move out by the working time it stood still."""
        check_arguments(case_id=case_id, actor=actor, result=result)
        with self._transition() as tx:
            case = self._lock_case(tx, case_id)
            tasks = self._case_tasks(tx, case_id)
            CASE_RULES["resume"].check(case["state"], f"case {case['number']}")
            self._require_case_worker(tx, case, tasks, actor, "resume the case")
            if any(t["waiting"] == "applicant" and t["state"] in TASK_OPEN for t in tasks):
                raise NotAllowed("the case waits for the applicant's 补正 materials; it resumes when they arrive")
            self._resume(tx, case, tasks, actor, result)

    def _resume(self, tx: _Tx, case: dict, tasks: list, actor: str, result: str) -> None:
        CASE_RULES["resume"].check(case["state"], f"case {case['number']}")
        suspension = tx.conn.execute(
            select(Suspension.__table__).where(Suspension.case_id == case["id"], Suspension.ended_at.is_(None))
        ).one()
        tx.conn.execute(
            update(Suspension.__table__).where(Suspension.id == suspension.id).values(ended_at=tx.now, result=result)
        )
        stopped = self.calendar.working_time_between(suspension.started_at, tx.now)
        accepted = case["accepted_at"] is not None
        values: dict[str, Any] = {}
        if case["due_at"] is not None:
            values.update(
                due_at=self._push(case["due_at"], stopped),
                warn_at=self._push(case["warn_at"], stopped),
                sla_state="on_track",
            )
        self._update_case(tx, case, state="in_progress" if accepted else case["state"], **values)
        changes = [
            (
                t,
                {
                    "due_at": self._push(t["due_at"], stopped),
                    "warn_at": self._push(t["warn_at"], stopped),
                    "sla_state": "on_track",
                },
            )
            for t in tasks
            if t["state"] in TASK_OPEN and t["due_at"]
        ]
        self._update_tasks(tx, changes)
        tx.event(
            case["id"],
            "clock_resumed",
            actor=actor,
            from_state="suspended",
            to_state=case["state"],
            data={"kind": suspension.kind, "stopped_minutes": int(stopped.total_seconds() // 60), "result": result},
        )

    def _push(self, when: datetime | None, amount: timedelta) -> datetime | None:
        if when is None or amount <= timedelta(0):
            return when
        return self.calendar.add_working_time(when, amount).at

    def extend_case(self, case_id: int, actor: str, amount: str, approver: str, reason: str) -> None:
        """延长审批 (Art. 42): the case limit grows, within the statutory cap plus its legal extension."""
        check_arguments(case_id=case_id, actor=actor, amount=amount, approver=approver, reason=reason)
        limit = _parse_limit(amount, "amount")
        if not (reason or "").strip() or not (approver or "").strip():
            raise InvalidData("延长审批 needs the approver (负责人) and a reason the applicant is told")
        with self._transition() as tx:
            case = self._lock_case(tx, case_id)
            CASE_RULES["extend"].check(case["state"], f"case {case['number']}")
            tasks = self._case_tasks(tx, case_id)
            self._require_case_worker(tx, case, tasks, actor, "extend the case")
            definition = self._definition(tx, case)
            statutory, promised = definition.limits.statutory, definition.limits.promised
            if statutory is None or promised is None or case["due_at"] is None:
                raise NotAllowed(f"{definition.key} has no statutory limit, so there is no legal extension to grant")
            allowance = definition.limits.extension or Limit(15 if len(definition.departments) > 1 else 10, "d")
            granted = [
                Limit.parse(a)
                for a in tx.conn.execute(select(Extension.amount).where(Extension.case_id == case_id)).scalars()
            ]
            total = promised.working_hours + sum(g.working_hours for g in granted) + limit.working_hours
            cap = statutory.working_hours + allowance.working_hours
            if total > cap + 1e-9:
                raise InvalidData(
                    f"extension {limit} exceeds the statutory cap: {statutory} + {allowance} "
                    f"(行政许可法 Art. 42); already granted: {', '.join(map(str, granted)) or 'none'}"
                )
            due = self.calendar.add(case["due_at"], limit.amount, limit.unit)
            moved = self.calendar.working_time_between(case["due_at"], due.at)  # the warning keeps its lead
            tx.conn.execute(
                insert(Extension.__table__),
                {"case_id": case_id, "amount": str(limit), "approver": approver, "reason": reason, "at": tx.now},
            )
            sla = "paused" if case["state"] == "suspended" else "on_track"  # a suspended case's clock stands
            self._update_case(
                tx,
                case,
                due_at=due.at,
                warn_at=self._push(case["warn_at"], moved),
                sla_state=sla,
                provisional=case["provisional"] or due.provisional,
            )
            tx.event(
                case["id"], "extended", actor=actor, data={"amount": str(limit), "approver": approver, "reason": reason}
            )
            tx.tell_applicant(case, "case_extended", f"您的办件 {case['number']} 经批准延长 {limit.label}：{reason}")

    def _require_case_worker(self, tx: _Tx, case: dict, tasks: list, actor: str, what: str) -> None:
        departments = {t["department"] for t in tasks if t["state"] in TASK_OPEN or t["waiting"]}
        if not any(self._is_member(tx, actor, d) for d in departments):
            raise NotAllowed(f"{actor} works no open task of case {case['number']}, so may not {what}")

    # ------------------------------------------------------------------------------------------
    # closing: withdrawal, certificates, evaluation

    def withdraw_case(self, case_id: int, applicant_id: str, reason: str = "") -> None:
        """撤回申请: the applicant stops the case; open tasks are cancelled."""
        check_arguments(case_id=case_id, applicant_id=applicant_id, reason=reason)
        with self._transition() as tx:
            case = self._lock_case(tx, case_id)
            if case["applicant"].get("id") != applicant_id:
                raise NotAllowed("only the applicant may withdraw the application")
            CASE_RULES["withdraw"].check(case["state"], f"case {case['number']}")
            tasks = self._case_tasks(tx, case_id)
            self._cancel_open(tx, case, tasks, applicant_id, "withdrawn")
            self._end_suspension(tx, case, "撤回申请")
            self._set_case_state(
                tx, case, "withdraw", applicant_id, outcome="withdrawn", reason=reason or None, closed_at=tx.now
            )

    def _end_suspension(self, tx: _Tx, case: dict[str, Any], result: str) -> None:
        """A suspended case that closes ends its open 特别程序 with it."""
        if case["state"] == "suspended":
            tx.conn.execute(
                update(Suspension.__table__)
                .where(Suspension.case_id == case["id"], Suspension.ended_at.is_(None))
                .values(ended_at=tx.now, result=result)
            )

    def terminate_lapsed_deferrals(self) -> list[int]:
        """容缺受理's timer: every open case whose 容缺 materials are still owed after their supply
        deadline is terminated (终止办理), each in a transaction of its own. Returns their ids.

        Run it on the schedule of the SLA sweep. The deadline is the applicant's pledge, so a
        suspension does not stop it; a case supplied or closed in the meantime is left alone.
        """
        now = self.clock()
        lapsable = CASE_RULES["terminate"].from_states
        with self.db.connect() as conn:
            lapsed = (
                conn.execute(
                    select(_cases.c.id)
                    .where(_cases.c.deferred_due_at < now, _cases.c.state.in_(sorted(lapsable)))
                    .order_by(_cases.c.id)
                )
                .scalars()
                .all()
            )
        terminated = []
        for case_id in lapsed:
            with self._transition() as tx:
                case = self._lock_case(tx, case_id)
                lapsed_now = deferral_lapsed(case["deferred"], case["deferred_due_at"], tx.now)
                if lapsed_now and case["state"] in lapsable:  # not supplied or closed meanwhile
                    self._terminate(tx, case)
                    terminated.append(case_id)
        return terminated

    def _terminate(self, tx: _Tx, case: dict[str, Any]) -> None:
        definition = self._definition(tx, case)
        labels = {m.key: m.label for m in definition.materials}
        owed = "、".join(labels.get(m, m) for m in case["deferred"])
        deadline = case["deferred_due_at"].astimezone(TZ)
        reason = f"容缺受理的材料逾期未补齐：{owed}（补齐期限 {deadline:%Y-%m-%d %H:%M}）"
        tasks = self._case_tasks(tx, case["id"])
        self._cancel_open(tx, case, tasks, SYSTEM, "deferral_lapsed")
        self._end_suspension(tx, case, "终止办理")
        self._set_case_state(tx, case, "terminate", SYSTEM, outcome="terminated", reason=reason, closed_at=tx.now)
        window = next((t for t in tasks if t["kind"] == "acceptance"), None)  # it accepted under the pledge
        self._negative_decision(tx, case, window, f"终止办理：{reason}")
        tx.tell_applicant(case, "case_terminated", f"您的办件 {case['number']} 已终止办理：{reason}")

    def issue_certificates(
        self,
        task_id: int,
        actor: str,
        delivery: str = "window",
        *,
        numbers: dict[str, str] | None = None,
        tracking_number: str | None = None,
        electronic: bool = True,
    ) -> list[str]:
        """证照发放 / 出件: record the certificates of the issue step and complete it. Returns the numbers.

        A certificate is issued only if its issuing department approved its own step in this case.
        """
        check_arguments(
            task_id=task_id, actor=actor, delivery=delivery, numbers=numbers, tracking_number=tracking_number
        )
        with self._transition() as tx:
            case, member = self._lock_case_of_task(tx, task_id, actor)
            CASE_RULES["work"].check(case["state"], f"case {case['number']}")
            tasks = self._case_tasks(tx, case["id"])
            task = next(t for t in tasks if t["id"] == task_id)
            TASK_RULES["complete"].check(task["state"], f"task {task_id}")
            if task["kind"] != "issue":
                raise NotAllowed(f"task {task_id} ({task['name']}) is no issue (出件) step")
            if not member:
                raise NotAllowed(f"{actor} is not a member of department {task['department']}")
            if task["state"] == "claimed":
                self._require_assignee(task, actor, "issue its certificates")
            if case["deferred"]:
                owed = ", ".join(case["deferred"])
                raise NotAllowed(f"容缺 materials are still owed ({owed}); certificates go out once they are supplied")
            definition = self._definition(tx, case)
            step = definition.steps_by_id[task["step_id"]]
            if delivery not in step.delivery:
                raise InvalidData(f"delivery {delivery!r}: this step delivers by {', '.join(step.delivery)}")
            if delivery == "mail" and not tracking_number:
                raise InvalidData("mail delivery (免费邮寄) needs the tracking number")
            approved = {
                t["department"]
                for t in tasks
                if t["state"] == "completed"
                and t["outcome"] == "approve"
                and not t["superseded"]
                and t["kind"] != "acceptance"
            }
            numbers = numbers or {}
            unknown = [k for k in numbers if k not in {c.key for c in step.certificates}]
            if unknown:
                raise InvalidData("unknown certificates", [f"{k!r} is not issued by step {step.id}" for k in unknown])
            rows = [
                {
                    "case_id": case["id"],
                    "key": c.key,
                    "name": c.name,
                    "issuer": c.issuer,
                    "number": numbers.get(c.key) or f"{case['number']}-{c.key}".upper(),
                    "electronic": electronic,
                    "delivery": delivery,
                    "tracking_number": tracking_number,
                    "issued_at": tx.now,
                }
                for c in step.certificates
                if c.issuer in approved
            ]
            try:  # no savepoint: the refusal rolls the whole transition back anyway
                prepared.execute_many(tx.conn, self._sql("insert_certificates"), rows)
            except tx.conn.dialect.loaded_dbapi.IntegrityError:
                raise Conflict("a certificate number is already in use; give unique numbers") from None
            tx.event(
                case["id"],
                "certificates_issued",
                task=task,
                actor=actor,
                data={"numbers": [r["number"] for r in rows], "delivery": delivery},
            )
            self._start_work(tx, case, task, actor)
            self._complete(tx, case, task, actor, "approve", f"出件：{len(rows)} 件，{delivery}")
            self._progress(tx, case, definition, tasks, task["id"])
            self._save_case_form(tx, case)
            return [r["number"] for r in rows]

    def evaluate_case(self, case_id: int, rater: str, level: int, channel: str = "pc", comment: str = "") -> int:
        """好差评: one per case; 不满意 or worse opens a rectification task with its own deadline."""
        check_arguments(case_id=case_id, rater=rater, level=level, channel=channel, comment=comment)
        if level not in EVALUATION_LEVELS:
            raise InvalidData("level is 1 非常满意, 2 满意, 3 基本满意, 4 不满意 or 5 非常不满意")
        if channel not in EVALUATION_CHANNELS:
            raise InvalidData(f"channel {channel!r}: use one of {', '.join(EVALUATION_CHANNELS)}")
        with self._transition() as tx:
            case = self._lock_case(tx, case_id)
            if case["applicant"].get("id") != rater:
                raise NotAllowed("only the applicant rates the service of their own case")
            CASE_RULES["evaluate"].check(case["state"], f"case {case['number']}")
            if tx.conn.execute(select(Evaluation.id).where(Evaluation.case_id == case_id)).first():
                raise Conflict(f"case {case['number']} has been rated already (一事一评)")
            definition = self._definition(tx, case)
            rectification = None
            if level >= 4:
                department = definition.entry.department
                due_at, warn_at, provisional = self._deadline(
                    tx.now, self.rectification_limit, definition.limits.warning
                )
                row = {
                    "case_id": case_id,
                    "step_id": RECTIFICATION_STEP,
                    "kind": "rectification",
                    "name": f"差评整改：{EVALUATION_LEVELS[level]}",
                    "department": department,
                    "state": "ready",
                    "outcome": None,
                    "assignee": None,
                    "delegated_by": None,
                    "opinion": comment or None,
                    "ready_at": tx.now,
                    "claimed_at": None,
                    "completed_at": None,
                    "completed_by": None,
                    "due_at": due_at,
                    "warn_at": warn_at,
                    "sla_state": "on_track",
                    "provisional": provisional,
                    "waiting": None,
                    "created_by_task": None,
                    "superseded": False,
                    "signoffs_open": 0,
                    "version": 1,
                }
                self._insert_tasks(tx, [row])
                rectification = row["id"]
                tx.event(case_id, "task_ready", task=row, to_state="ready", data={"level": level})
                role = self._supervisor_role(tx, department)
                tx.notify(
                    "rectification",
                    f"差评整改：{case['number']}（{EVALUATION_LEVELS[level]}）{comment}",
                    case_id=case_id,
                    task=row,
                    department=department,
                    role=role,
                )
            evaluation_id = tx.conn.execute(
                insert(Evaluation.__table__).returning(Evaluation.id),
                {
                    "case_id": case_id,
                    "level": level,
                    "channel": channel,
                    "comment": comment or None,
                    "rater": rater,
                    "at": tx.now,
                    "rectification_task": rectification,
                },
            ).scalar_one()
            tx.event(case_id, "evaluated", actor=rater, data={"level": level, "channel": channel})
            return evaluation_id

    def _complete_rectification(self, tx: _Tx, case: dict, task: dict, actor: str, member: bool, opinion: str) -> None:
        if not member:
            raise NotAllowed(f"{actor} is not a member of department {task['department']}")
        if not (opinion or "").strip():
            raise InvalidData("差评整改 needs the rectification result (整改结果) as the opinion")
        self._complete(tx, case, task, actor, "approve", opinion)

    # ------------------------------------------------------------------------------------------
    # 催办 / 督办 and auto steps

    def urge(
        self,
        actor: str,
        message: str,
        *,
        task_id: int | None = None,
        case_id: int | None = None,
        level: str = "urge",
        within: str | None = None,
    ) -> int:
        """催办 (urge) or 督办 (supervise): recorded with its own due time; the assignee is notified."""
        check_arguments(
            actor=actor, message=message, optional_task_id=task_id, optional_case_id=case_id, level=level, within=within
        )
        if level not in ("urge", "supervise"):
            raise InvalidData("level is urge (催办) or supervise (督办)")
        if (task_id is None) == (case_id is None):
            raise InvalidData("urge a task or a case: give exactly one of task_id and case_id")
        if not (message or "").strip():
            raise InvalidData("an urge needs a message")
        limit = _parse_limit(within, "within") if within else None
        with self._transition() as tx:
            if not tx.conn.execute(select(User.id).where(User.id == actor)).first():
                raise NotAllowed(f"{actor} is no registered user")
            if task_id is not None:
                case, _ = self._lock_case_of_task(tx, task_id, actor)
                task = self._task(tx, task_id)
                TASK_RULES["urge"].check(task["state"], f"task {task_id}")
            else:
                case, task = self._lock_case(tx, case_id), None  # type: ignore[arg-type]
                CASE_RULES["urge"].check(case["state"], f"case {case['number']}")
            due = self.calendar.add(tx.now, limit.amount, limit.unit).at if limit else None
            urge_id = tx.conn.execute(
                insert(Urge.__table__).returning(Urge.id),
                {
                    "case_id": case["id"],
                    "task_id": task_id,
                    "level": level,
                    "by": actor,
                    "message": message,
                    "due_at": due,
                    "created_at": tx.now,
                },
            ).scalar_one()
            label = "督办" if level == "supervise" else "催办"
            tx.event(case["id"], level, task=task, actor=actor, data={"message": message, "due_at": str(due)})
            if task is not None:
                tx.notify(
                    level,
                    f"{label}：{case['number']} {task['name']}：{message}",
                    case_id=case["id"],
                    task=task,
                    user=task["assignee"],
                    department=None if task["assignee"] else task["department"],
                )
            else:  # a case: whoever holds its open work is told (the assignee, else the department queue)
                holders = [t for t in self._case_tasks(tx, case["id"]) if t["state"] in TASK_OPEN]
                for held in holders:
                    tx.notify(
                        level,
                        f"{label}：{case['number']} {held['name']}：{message}",
                        case_id=case["id"],
                        task=held,
                        user=held["assignee"],
                        department=None if held["assignee"] else held["department"],
                    )
                if not holders:
                    tx.notify(level, f"{label}：{case['number']}：{message}", case_id=case["id"])
            return urge_id

    def sweep(self, now: datetime | None = None) -> SweepResult:
        """The SLA sweep (黄牌/红牌 alerts, owner notifications, escalation) at ``now`` (default: the clock).

        One set-based transaction; returns ``sla.SweepResult``. See ``orchestrator/engine/sla.py``.
        """
        from .sla import sweep

        return sweep(self.db, now or self.clock())

    def run_timers(self) -> tuple[list[int], SweepResult]:
        """The scheduled work, in its order: the 容缺 timer (a terminated case raises no SLA card), then
        the SLA sweep. Returns the terminated case ids and the sweep's result."""
        terminated = self.terminate_lapsed_deferrals()
        return terminated, self.sweep()

    def run_auto_tasks(self, limit: int = 100) -> int:
        """The in-process runner for `auto` steps left for workers (auto_inline=False). Returns how many ran.

        Each task is picked and decided in one transaction; on PostgreSQL ``FOR UPDATE SKIP LOCKED``
        lets several workers share the queue without two deciding the same task.
        """
        done = 0
        while done < limit and self._run_next_auto():
            done += 1
        return done

    def _run_next_auto(self) -> bool:
        with self._transition() as tx:
            open_cases = select(_cases.c.id).where(_cases.c.state.in_(("accepted", "in_progress")))
            query = select(_tasks.c.id).where(
                _tasks.c.kind == "auto", _tasks.c.state == "ready", _tasks.c.case_id.in_(open_cases)
            )  # a suspended case's auto task waits for its resumption without blocking the queue
            task_id = tx.conn.execute(query.order_by(_tasks.c.id).limit(1).with_for_update(skip_locked=True)).scalar()
            if task_id is None:
                return False
            self._decide_waiting_auto(tx, task_id)
            return True

    def run_auto_task(self, task_id: int) -> None:
        """Decide one waiting `auto` task (what a Prefect worker calls)."""
        check_arguments(task_id=task_id)
        with self._transition() as tx:
            self._decide_waiting_auto(tx, task_id)

    def _decide_waiting_auto(self, tx: _Tx, task_id: int) -> None:
        case, _ = self._lock_case_of_task(tx, task_id, SYSTEM)
        tasks = self._case_tasks(tx, case["id"])
        task = next(t for t in tasks if t["id"] == task_id)
        if task["state"] != "ready" or task["kind"] != "auto":
            raise Conflict(f"task {task_id} is no waiting auto task (it is {task['state']})")
        CASE_RULES["work"].check(case["state"], f"case {case['number']}")
        definition = self._definition(tx, case)
        step = definition.steps_by_id[task["step_id"]]
        form = dict(case["form"])
        decided = dict(task)
        self._decide_auto(case, definition, step, decided, form, tx.now)
        if form != case["form"]:
            case["form"], case["_form_changed"] = form, True
        self._complete(tx, case, task, SYSTEM, decided["outcome"] or "approve", decided["opinion"])
        if decided["outcome"] is None:
            self._update_task(tx, task, outcome=None)
        if decided["outcome"] == "reject":
            self._negative_decision(tx, case, task, f"自动审批规则不满足：{step.name}")
            if step.on_reject == "stop":
                self._reject_case(tx, case, tasks, SYSTEM, decided["opinion"])
                return
        self._start_work(tx, case, task, SYSTEM)
        self._progress(tx, case, definition, tasks, task_id)
        self._save_case_form(tx, case)


# ----------------------------------------------------------------------------------------------


def _refuse_if_delegated(task: dict[str, Any], what: str) -> None:
    if task["delegated_by"] is not None:
        raise NotAllowed(
            f"task {task['id']} is delegated by {task['delegated_by']} (委派): the delegate works it "
            f"and it returns to them; a delegate may not {what}"
        )


def _moved_data(row: dict[str, Any]) -> dict[str, Any] | None:
    """History data of a task made by the DAG: why it was skipped, or what an automatic step decided."""
    if row["state"] == "skipped":
        return {"reason": row.get("_reason")}
    return {"outcome": row["outcome"]} if row["outcome"] else None


def _parse_limit(text: str, what: str) -> Limit:
    try:
        return Limit.parse(text)
    except LimitSyntaxError as exc:
        raise InvalidData(f"{what}: {exc}") from None


def _stops_case(definition: Definition, row: dict[str, Any]) -> bool:
    """An inline auto step refused and its refusal stops the case (on_reject: stop)."""
    return (
        row["kind"] == "auto"
        and row["outcome"] == "reject"
        and definition.steps_by_id[row["step_id"]].on_reject == "stop"
    )


def _slots(step: Step) -> list[tuple[str, str]]:
    """The signatures a new task of this step needs."""
    if step.kind == "survey":
        return [("department", d) for d in step.participants]
    if step.kind == "approval" and step.sign:
        return [("role", r) for r in step.signers]
    if step.kind == "approval" and step.review_chain:
        return [("level", level) for level in step.review_chain]
    return []


def _open_count(step: Step, slots: list[tuple[str, str]]) -> int:
    if not slots:
        return 0
    return 1 if (step.kind == "approval" and step.sign == "any") else len(slots)


def _latest(tasks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest task of each step (a row not inserted yet, without an id, is the newest)."""
    latest: dict[str, dict[str, Any]] = {}
    for task in tasks:
        current = latest.get(task["step_id"])
        if current is None or "id" not in task or ("id" in current and task["id"] > current["id"]):
            latest[task["step_id"]] = task
    return latest


def _step_states(tasks: list[dict[str, Any]]) -> dict[str, str]:
    """Each step's state from its newest task; a superseded task leaves its step pending (to redo)."""
    return {step_id: _step_state(task) for step_id, task in _latest(tasks).items() if step_id != RECTIFICATION_STEP}


def _step_state(task: dict[str, Any]) -> str:
    """What the newest task of a step says of the step (for dag.advance)."""
    if task["superseded"]:
        return dag.PENDING
    state = task["state"]
    return state if state in ("completed", "skipped", "cancelled") else "open"
