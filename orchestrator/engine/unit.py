"""The transaction core: the only code that writes ``cases``, ``tasks`` and ``signoffs``.

A transition runs as one database transaction (``Core.run``): it locks its case row first (an
``UPDATE … RETURNING`` that bumps ``cases.revision``; SQLite's ``BEGIN IMMEDIATE`` serializes writers),
reads the case's tasks, lets a command check its rule and decide, and writes the tasks, the case,
the history rows, alerts and notifications together, or nothing at all.

Lock order, everywhere: the case row, then its tasks (and sign-offs). The SLA sweep and the
automatic-step runner take their locks in the same order, so no two transactions wait on each other
in a circle.

The kept copy: after a commit the case and its task rows stay in this process, keyed by the revision
the lock returned; the next transition on the case that finds the revision it expects reads nothing
again. Every write to a case, task or sign-off goes through ``Tx`` below and updates the copy with
it; that is why no other module may write those tables (a test checks it on the database itself).

Database failures never reach a caller raw: a deadlock, serialization failure, lock or pool timeout
or a lost server becomes ``Busy`` (retried once here first: nothing of the failed attempt was
written), bad data ``InvalidData``, a constraint ``Conflict``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import orjson
from sqlalchemy import JSON, Connection, bindparam, exists, func, insert, select, update
from sqlalchemy import Engine as Database
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..store import prepared
from ..store.models import (
    Alert,
    Case,
    Certificate,
    Department,
    Evaluation,
    Event,
    Extension,
    Incident,
    Membership,
    NegativeReport,
    Notification,
    Signoff,
    Supplement,
    Suspension,
    Task,
    User,
)
from ..store.prepared import Statements
from .errors import Busy, Conflict, InvalidData, NotFound, StoreFailure, TongbanError
from .rules import CASE_FINAL, CASE_RULES, Situation

if TYPE_CHECKING:
    from ..definition.limits import Limit
    from ..definition.model import Definition
    from .tasks import Env, NewTask

SNAPSHOTS_KEPT = 10_000  # cases whose rows a process keeps between transitions
RETRY_PAUSE_S = 0.05  # before the one retry of a transition the database could not do

_cases = Case.__table__
_tasks = Task.__table__
_signoffs = Signoff.__table__
_events = Event.__table__

Row = dict[str, Any]


def _insert_all(table: Any) -> Any:
    """INSERT of every column but the generated id, with a bind parameter named after each column."""
    return insert(table).values({c.name: bindparam(c.name, type_=c.type) for c in table.columns if c.name != "id"})


# What the engine reads of a case and its tasks: everything but sla_state, which belongs to the SLA
# sweep (it changes it without a transition, so the kept copy may hold an old value).
_CASE_COLUMNS = [c for c in _cases.columns if c.name != "sla_state"]
_TASK_COLUMNS = [c for c in _tasks.columns if c.name != "sla_state"]
_ALERT_COLUMNS = [c.name for c in Alert.__table__.columns if c.name != "id"]
_JSON_CASE_COLUMNS = {c.name for c in _cases.columns if isinstance(c.type, JSON)}
_TASK_INSERT_COLUMNS = [c.name for c in _tasks.columns if c.name != "id"]
_task_department = select(_tasks.c.department).where(_tasks.c.id == bindparam("task_id")).scalar_subquery()
# PostgreSQL accepts at most 65,535 bind parameters in one statement: new tasks go in chunks below it
TASKS_PER_INSERT = 65_535 // len(_TASK_INSERT_COLUMNS)

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
        "insert_signoffs": _insert_all(_signoffs),
        "insert_certificates": _insert_all(Certificate.__table__),
        "signoffs_of_task": select(_signoffs)
        .where(_signoffs.c.task_id == bindparam("task_id"))
        .order_by(_signoffs.c.position),
        "sign_slot": update(_signoffs)
        .where(_signoffs.c.id == bindparam("id"))
        .values(
            {
                c: bindparam(c, type_=_signoffs.c[c].type)
                for c in ("signed_by", "signed_at", "outcome", "opinion", "version")
            }
        ),
        "memberships": select(Membership.department, Membership.role).where(Membership.user_id == bindparam("actor")),
        "supervisor_role": select(Department.supervisor_role).where(Department.code == bindparam("department")),
        "user_exists": select(User.id).where(User.id == bindparam("user")),
    }
)
_INSERT_TASKS_NAMES: set[str] = set()
_UPDATE_NAMES: dict[tuple[str, tuple[str, ...], bool], str] = {}


def _insert_tasks_statement(count: int) -> str:
    """Name of the prepared multi-row INSERT of ``count`` tasks, RETURNING id and step id."""
    name = f"insert_tasks:{count}"
    if name not in _INSERT_TASKS_NAMES:
        # explicit types: only the first row of a multi-row VALUES takes the column types by itself
        rows = [{c: bindparam(f"{c}_{i}", type_=_tasks.c[c].type) for c in _TASK_INSERT_COLUMNS} for i in range(count)]
        _SQL.add(name, insert(_tasks).values(rows).returning(_tasks.c.id, _tasks.c.step_id))
        _INSERT_TASKS_NAMES.add(name)
    return name


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


@dataclass
class Snapshot:
    """A case row and its task rows (None until read) as of one revision of the case."""

    revision: int
    case: Row
    tasks: list[Row] | None = None
    signoffs: dict[int, list[Any]] = field(default_factory=dict)  # a task's sign-off slots, once read


@dataclass
class KeptCopyStats:
    """How often a transition found its case kept here (a hit) or read it afresh (a miss)."""

    hits: int = 0
    misses: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class Tx:
    """One transition in progress: the connection, the time, the locked case, and the rows to append
    at the end. Every write to cases, tasks and sign-offs is a method here."""

    def __init__(self, core: Core, conn: Connection, now: datetime) -> None:
        self.core = core
        self.env: Env = core.env
        self.conn = conn
        self.now = now
        self.snapshot: Snapshot | None = None
        self.inserted: list[Row] = []
        self.events: list[Row] = []
        self.notifications: list[Row] = []
        self.alerts: list[Row] = []
        self.memberships_of: dict[str, set[tuple[str, str]]] = {}
        self.form_changed = False  # the case's form was edited in this transition (saved with it)
        self._dialect = conn.dialect

    # -- reading under the lock ------------------------------------------------------------------

    def sql(self, name: str) -> prepared.Prepared:
        return _SQL.get(name, self._dialect)

    def lock_case(self, case_id: int) -> Row:
        rows = prepared.fetch(self.conn, self.sql("lock_case"), {"case_id": case_id})
        if not rows:
            raise NotFound(f"case {case_id} does not exist")
        return self._take_snapshot(rows[0])

    def lock_case_of_task(self, task_id: int, actor: str) -> tuple[Row, bool]:
        """The task's case (locked) and whether the actor belongs to the task's department."""
        rows = prepared.fetch(self.conn, self.sql("lock_case_of_task"), {"task_id": task_id, "actor": actor})
        if not rows:
            raise NotFound(f"task {task_id} does not exist")
        return self._take_snapshot(rows[0]), bool(rows[0]["actor_is_member"])

    def _take_snapshot(self, locked: Row) -> Row:
        """The locked case: the copy kept here if it is the latest revision, else read afresh."""
        now = self.core.clock()  # a transition that waited for the lock happens after the one it waited for
        if now > self.now:
            self.now = now
        case_id, revision = locked["id"], locked["revision"]
        if self.snapshot is not None:
            raise RuntimeError("a transition locks one case")
        snapshot = self.core.snapshots.pop(case_id, None)
        if snapshot is None or snapshot.revision != revision - 1:
            self.core.stats.misses += 1
            snapshot = Snapshot(revision, prepared.fetch(self.conn, self.sql("case"), {"case_id": case_id})[0])
        else:
            self.core.stats.hits += 1
            snapshot.revision = snapshot.case["revision"] = revision
        self.snapshot = snapshot
        return snapshot.case

    @property
    def case(self) -> Row:
        assert self.snapshot is not None, "lock the case first"
        return self.snapshot.case

    def tasks(self) -> list[Row]:
        """The locked case's tasks in creation order (the list new tasks are appended to)."""
        snapshot = self.snapshot
        assert snapshot is not None, "lock the case first"
        if snapshot.tasks is None:
            snapshot.tasks = prepared.fetch(self.conn, self.sql("case_tasks"), {"case_id": snapshot.case["id"]})
        return snapshot.tasks

    def task(self, task_id: int) -> Row:
        """A task of the locked case."""
        return next(t for t in self.tasks() if t["id"] == task_id)

    def signoffs(self, task_id: int) -> list[Any]:
        """The sign-off slots of a task of the locked case, in order."""
        assert self.snapshot is not None
        slots = self.snapshot.signoffs.get(task_id)
        if slots is None:
            rows = prepared.fetch(self.conn, self.sql("signoffs_of_task"), {"task_id": task_id})
            slots = self.snapshot.signoffs[task_id] = [SimpleNamespace(**row) for row in rows]
        return slots

    def definition(self) -> Definition:
        case = self.case
        return self.env.definitions.get(self.conn, case["definition_key"], case["definition_version"])

    def memberships(self, actor: str) -> set[tuple[str, str]]:
        """The actor's (department, role) pairs, read once per transition."""
        roles = self.memberships_of.get(actor)
        if roles is None:
            rows = prepared.fetch(self.conn, self.sql("memberships"), {"actor": actor})
            roles = self.memberships_of[actor] = {(r["department"], r["role"]) for r in rows}
        return roles

    def supervisor_role(self, department: str) -> str | None:
        rows = prepared.fetch(self.conn, self.sql("supervisor_role"), {"department": department})
        return rows[0]["supervisor_role"] if rows else None

    def user_exists(self, user: str) -> bool:
        return bool(prepared.fetch(self.conn, self.sql("user_exists"), {"user": user}))

    def open_supplement(self) -> Any:
        """The locked case's 补正 notice still waiting for the applicant, if any."""
        supplements = Supplement.__table__
        return self.conn.execute(
            select(supplements).where(supplements.c.case_id == self.case["id"], supplements.c.supplied_at.is_(None))
        ).first()

    def evaluated(self) -> bool:
        evaluations = Evaluation.__table__
        return (
            self.conn.execute(select(evaluations.c.id).where(evaluations.c.case_id == self.case["id"])).first()
            is not None
        )

    def signed_any(self, task_ids: list[int]) -> bool:
        """Whether any of these tasks has a signature already."""
        signed = select(_signoffs.c.id).where(_signoffs.c.task_id.in_(task_ids), _signoffs.c.signed_at.is_not(None))
        return self.conn.execute(signed.limit(1)).first() is not None

    def negative_report(self, report_task_id: int) -> Any:
        """The proposed refusal a report task of the locked case is about (不予审批报告制)."""
        reports = NegativeReport.__table__
        return self.conn.execute(select(reports).where(reports.c.report_task_id == report_task_id)).one()

    def returns_made(self) -> int:
        """How often the locked case was returned to the applicant for 补正 after acceptance."""
        suspensions = Suspension.__table__
        query = select(func.count()).where(suspensions.c.case_id == self.case["id"], suspensions.c.kind == "supplement")
        return self.conn.execute(query).scalar_one()

    def extensions(self) -> list[Any]:
        """The extensions (延长审批) granted to the locked case, oldest first."""
        extensions = Extension.__table__
        query = select(extensions).where(extensions.c.case_id == self.case["id"]).order_by(extensions.c.id)
        return list(self.conn.execute(query))

    def due(self, start: datetime, limit: Limit) -> datetime:
        """The end of a limit counted from ``start`` on the business calendar."""
        return self.env.deadlines.of(start, limit, 0.25)[0]  # type: ignore[return-value]

    def open_incident(self, task_id: int) -> Any:
        """The open incident of a task of the locked case (an automatic step whose attempts ran out), if any."""
        incidents = Incident.__table__
        query = select(incidents).where(incidents.c.task_id == task_id, incidents.c.state == "open")
        return self.conn.execute(query).first()

    def situation(self, actor: str, task: Row | None = None, member: bool | None = None) -> Situation:
        """The locked case as a permission check sees it (rules.Situation)."""
        return Situation(self, self.case, self.tasks(), self.definition(), actor, task, member)

    # -- writing cases, tasks and sign-offs --------------------------------------------------------

    def insert_case(self, case: Row) -> int:
        """A new case row; it becomes this transition's locked case (kept as a read would return it)."""
        case_id = self.conn.execute(insert(_cases).returning(_cases.c.id), case).scalar_one()
        case["id"] = case_id
        kept = {
            k: orjson.loads(orjson.dumps(v)) if k in _JSON_CASE_COLUMNS else v
            for k, v in case.items()
            if k != "sla_state"
        }
        self.snapshot = Snapshot(case["revision"], kept, [])
        return case_id

    def update_task(self, task: Row, **values: Any) -> None:
        """Write a task with an optimistic version check (the case lock makes a miss a real conflict)."""
        params = {**values, "_id": task["id"], "_version": task["version"], "version": task["version"] + 1}
        statement = self.sql(_update_statement(_tasks, values, versioned=True))
        if prepared.execute(self.conn, statement, params) != 1:
            raise Conflict(f"task {task['id']} was changed by someone else; reload it and try again")
        _written(task, values)

    def update_tasks(self, changes: Sequence[tuple[Row, dict[str, Any]]]) -> None:
        """Several task writes as one executemany statement, grouped by the columns they set."""
        groups: dict[tuple[str, ...], list[Row]] = {}
        for task, values in changes:
            params = {**values, "_id": task["id"], "version": task["version"] + 1}
            groups.setdefault(tuple(sorted(values)), []).append(params)
            _written(task, values)
        for columns, rows in groups.items():
            prepared.execute_many(self.conn, self.sql(_update_statement(_tasks, columns, versioned=False)), rows)

    def update_case(self, **values: Any) -> None:
        case = self.case
        params = {**values, "_id": case["id"], "version": case["version"] + 1}
        prepared.execute(self.conn, self.sql(_update_statement(_cases, values, versioned=False)), params)
        _written(case, values)

    def set_case_state(self, rule_name: str, actor: str | None, **values: Any) -> None:
        """Move the case by a rule of rules.CASE_RULES (refused from any other state), with its history row."""
        case = self.case
        rule = CASE_RULES[rule_name]
        rule.check(case["state"], f"case {case['number']}")
        before = case["state"]
        target = rule.to_state or before
        self.update_case(state=target, **values)
        self.event(rule.name, actor=actor, from_state=before, to_state=target)

    def save_form(self) -> None:
        """The form edits of this transition, if the case is still open (a closing write carries them)."""
        if self.form_changed:
            self.form_changed = False
            if self.case["state"] not in CASE_FINAL:
                self.update_case(form=self.case["form"])

    def closing(self, **values: Any) -> dict[str, Any]:
        """The columns a closing transition writes, with the form if this transition edited it."""
        if self.form_changed:
            self.form_changed = False
            values["form"] = self.case["form"]
        return values

    def insert_tasks(self, new: Sequence[NewTask]) -> None:
        """New tasks (ids land in their rows) and their sign-off slots: one INSERT … RETURNING each, in
        chunks under PostgreSQL's bind-parameter limit."""
        if not new:
            return
        for start in range(0, len(new), TASKS_PER_INSERT):
            chunk = [n.row for n in new[start : start + TASKS_PER_INSERT]]
            params = {f"{c}_{i}": row[c] for i, row in enumerate(chunk) for c in _TASK_INSERT_COLUMNS}
            returned = prepared.fetch(self.conn, self.sql(_insert_tasks_statement(len(chunk))), params)
            ids = {r["step_id"]: r["id"] for r in returned}  # one step once per insert; RETURNING has no order
            for row in chunk:
                row["id"] = ids[row["step_id"]]
        rows = [n.row for n in new]
        self.inserted.extend(rows)
        if self.snapshot is not None and self.snapshot.tasks is not None:
            self.snapshot.tasks.extend(rows)
        slots = [
            _slot_row(n.row["id"], position, kind, party)
            for n in new
            for position, (kind, party) in enumerate(n.signatures)
        ]
        if slots:
            prepared.execute_many(self.conn, self.sql("insert_signoffs"), slots)

    def add_signoff(self, task_id: int, kind: str, party: str) -> None:
        """One more sign-off slot on a task of the locked case (加签)."""
        position = len(self.signoffs(task_id))
        self.conn.execute(insert(_signoffs), _slot_row(task_id, position, kind, party))
        assert self.snapshot is not None
        del self.snapshot.signoffs[task_id]  # read again, with the new slot's id, when next needed

    def sign(self, slot: Any, actor: str, outcome: str, opinion: str) -> None:
        values = {
            "id": slot.id,
            "signed_by": actor,
            "signed_at": self.now,
            "outcome": outcome,
            "opinion": opinion,
            "version": slot.version + 1,
        }
        prepared.execute(self.conn, self.sql("sign_slot"), values)
        vars(slot).update(values)

    # -- what the transition appends ---------------------------------------------------------------

    def event(
        self,
        kind: str,
        *,
        task: Row | None = None,
        actor: str | None = None,
        from_state: str | None = None,
        to_state: str | None = None,
        edge: tuple[str, str] | None = None,
        data: dict[str, Any] | None = None,
        step_id: str | None = None,
        case_id: int | None = None,
    ) -> None:
        self.events.append(
            {
                "case_id": case_id or self.case["id"],
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

    def tell_applicant(self, kind: str, message: str) -> None:
        self.notify(kind, message, user=self.case["applicant"].get("id"))

    def notify(
        self,
        kind: str,
        message: str,
        *,
        task: Row | None = None,
        user: str | None = None,
        department: str | None = None,
        role: str | None = None,
    ) -> None:
        self.notifications.append(
            {
                "case_id": self.case["id"],
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

    def alert(self, kind: str, message: str, *, task: Row | None, department: str | None, role: str | None) -> None:
        self.alerts.append(
            {
                "kind": kind,
                "message": message,
                "case_id": self.case["id"],
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
                task = row["task"]
                row["task_id"] = None if task is None else task.get("id")
        if self.events:
            prepared.execute_many(self.conn, self.sql("insert_events"), self.events)
        if self.notifications:
            prepared.execute_many(self.conn, self.sql("insert_notifications"), self.notifications)
        if self.alerts:
            rows = [
                {**a, "subject": f"task:{a['task_id']}" if a["task_id"] else f"case:{a['case_id']}"}
                for a in self.alerts
            ]
            dialect_insert = pg_insert if self._dialect.name == "postgresql" else sqlite_insert
            rows = [{c: r[c] for c in _ALERT_COLUMNS} for r in rows]
            self.conn.execute(dialect_insert(Alert.__table__).on_conflict_do_nothing(), rows)


def find_case_by_idempotency_key(conn: Connection, key: str) -> int | None:
    return conn.execute(select(_cases.c.id).where(_cases.c.idempotency_key == key)).scalar()


def _slot_row(task_id: int, position: int, kind: str, party: str) -> Row:
    return {
        "task_id": task_id,
        "position": position,
        "kind": kind,
        "party": party,
        "signed_by": None,
        "signed_at": None,
        "outcome": None,
        "opinion": None,
        "version": 1,
    }


def _written(row: Row, values: dict[str, Any]) -> None:
    """A row as its UPDATE left it, but sla_state, which the engine never reads (see _CASE_COLUMNS)."""
    row.update(values, version=row["version"] + 1)
    row.pop("sla_state", None)


P = ParamSpec("P")
T = TypeVar("T")


class WarmConnections:
    """The connections transitions run on: taken for one transition and given back, never held by a
    thread between calls, at most the pool's size plus overflow at once (the 41st caller of a pool of
    40 waits for one to come back, and after the pool's timeout is told Busy, never hangs).

    SQLAlchemy's own checkout builds a Connection per call, with its events and a pre-ping on PostgreSQL,
    which cost more than a completion's own statements on SQLite; here up to ``pool_size`` connections
    stay open between transitions and are handed out again as they are.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        pool = db.pool
        size = pool.size() if hasattr(pool, "size") else 5
        self.keep = size
        self.limit = size + max(0, getattr(pool, "_max_overflow", 10))  # QueuePool's overflow (pinned by a test)
        self.timeout = float(getattr(pool, "_timeout", 30.0))
        self._idle: list[Connection] = []
        self._open = 0
        self._cond = threading.Condition()

    def take(self) -> Connection:
        deadline = None
        with self._cond:
            while True:
                if self._idle:
                    return self._idle.pop()
                if self._open < self.limit:
                    self._open += 1
                    break
                deadline = deadline or time.monotonic() + self.timeout
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise sa_exc.TimeoutError(f"no free connection within {self.timeout:g} s ({self.limit} in use)")
                self._cond.wait(remaining)
        try:
            return self.db.connect()
        except BaseException:
            self._forget(1)
            raise

    def give(self, conn: Connection) -> None:
        if not conn.closed and not conn.invalidated and not conn.in_transaction():
            with self._cond:
                if len(self._idle) < self.keep:
                    self._idle.append(conn)
                    self._cond.notify()
                    return
        _close_quietly(conn)
        self._forget(1)

    def drop_idle(self) -> None:
        """Close the idle connections (after one was found dead, the others likely are too)."""
        with self._cond:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close_quietly(conn)
        self._forget(len(idle))

    def _forget(self, count: int) -> None:
        with self._cond:
            self._open -= count
            self._cond.notify(count)


def _close_quietly(conn: Connection) -> None:
    with contextlib.suppress(Exception):  # a dead connection: the pool discards it
        conn.close()


class Core:
    """Connections, the kept copies and the transaction of every transition of one Engine."""

    def __init__(self, db: Database, clock: Callable[[], datetime], env: Env) -> None:
        self.db = db
        self.clock = clock
        self.env = env
        self.connections = WarmConnections(db)
        # case id -> the case and its tasks as the last committed transition here left them. A transition
        # takes its case's entry out while it works and puts it back only after its commit; the revision
        # its lock returns tells whether another process (or engine) moved the case in between.
        self.snapshots: dict[int, Snapshot] = {}
        self.stats = KeptCopyStats()
        self._lock = threading.Lock()

    def run(self, command: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``command(tx, *args, **kwargs)`` as one transaction, tried a second time if the database could
        not do it the first (nothing of the first attempt was written)."""
        try:
            return self._run_once(command, args, kwargs)
        except Busy:
            time.sleep(RETRY_PAUSE_S)
            return self._run_once(command, args, kwargs)

    def _run_once(self, command: Callable[..., T], args: tuple, kwargs: dict) -> T:
        with self.transition() as tx:
            return command(tx, *args, **kwargs)

    @contextmanager
    def transition(self) -> Iterator[Tx]:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the engine clock must return timezone-aware datetimes")
        conn = None
        try:
            conn = self.connections.take()
            with conn.begin():
                tx = Tx(self, conn, now)
                yield tx
                tx.flush()
        except TongbanError:
            raise
        except Exception as exc:
            if conn is not None and conn.invalidated:
                self.connections.drop_idle()
            typed = database_error(exc)
            if typed is None:
                raise
            raise typed from exc
        finally:
            if conn is not None:
                self.connections.give(conn)
        if tx.snapshot is not None:
            self._keep(tx)

    def _keep(self, tx: Tx) -> None:
        """Put the committed case and tasks back for the next transition on the case."""
        snapshot = tx.snapshot
        assert snapshot is not None
        for row in tx.inserted:  # sla_state is not kept (see _CASE_COLUMNS)
            row.pop("sla_state", None)
        with self._lock:
            if len(self.snapshots) >= SNAPSHOTS_KEPT:  # drop the least recently used
                self.snapshots.pop(next(iter(self.snapshots), None), None)
            self.snapshots[snapshot.case["id"]] = snapshot

    def reading(self) -> Any:
        from ..store.db import reading

        return reading(self.db)


# SQLSTATEs worth another try: deadlock, serialization failure, lock not available, query cancelled by
# lock_timeout/statement_timeout, the server shutting down or refusing connections (class 08, 57P0x)
_RETRYABLE_SQLSTATES = {"40P01", "40001", "55P03", "57014", "57P01", "57P02", "57P03", "53300"}


def database_error(exc: BaseException) -> TongbanError | None:
    """The typed error for a database failure, whether SQLAlchemy wrapped it or the driver raised it
    (the prepared hot path runs on the driver cursor); None for anything that is not a database error."""
    if isinstance(exc, OverflowError | UnicodeEncodeError):  # the driver cannot bind the value
        return InvalidData(f"a value cannot be stored: {exc}")
    if isinstance(exc, sa_exc.TimeoutError):  # no free connection in the pool
        return Busy("the database is busy (no free connection); try again in a moment", retry_after=1.0)
    original = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return Busy("the connection to the database was lost; try again in a moment", retry_after=2.0)
    if isinstance(original, sqlite3.Error):
        return _sqlite_error(original)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return None
    if isinstance(original, psycopg.Error):
        return _postgres_error(original)
    return None


def _sqlite_error(error: sqlite3.Error) -> TongbanError:
    text = str(error)
    if isinstance(error, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return Busy(f"the database is busy ({text}); try again in a moment", retry_after=1.0)
    if isinstance(error, sqlite3.IntegrityError):
        return Conflict(f"the change conflicts with data already stored: {text}")
    if isinstance(error, sqlite3.DataError | sqlite3.InterfaceError | OverflowError):
        return InvalidData(f"a value cannot be stored: {text}")
    if isinstance(error, sqlite3.OperationalError):
        return Busy(f"the database could not do it now ({text}); try again in a moment", retry_after=2.0)
    return StoreFailure(f"database error: {text}")


def _postgres_error(error: Any) -> TongbanError:
    import psycopg

    state = getattr(error, "sqlstate", None) or ""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if state in _RETRYABLE_SQLSTATES or state.startswith("08") or isinstance(error, psycopg.OperationalError):
        return Busy(f"the database is busy ({text}); try again in a moment", retry_after=1.0)
    if state.startswith("23"):
        return Conflict(f"the change conflicts with data already stored: {text}")
    if state.startswith("22") or isinstance(error, psycopg.DataError):
        return InvalidData(f"a value cannot be stored: {text}")
    return StoreFailure(f"database error: {text}")
