"""`auto` steps left for workers: picked, decided, retried with backoff, and raised as incidents.

A step is left for a worker when the engine runs with ``auto_inline=False``, when its rule reads
shared data (``lookups``: never fetched inside a person's transition), or when its rule could not be
evaluated inline (``progress.RuleFailed``).

Each task is decided in a transaction of its own. Lock order as everywhere: the case, then its task
(then the task's ``auto_attempts`` row). A worker picks a case that has a waiting automatic task by
locking the *case* row (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers share the queue
without waiting on each other or deciding a task twice; SQLite's ``BEGIN IMMEDIATE`` makes one writer
at a time); it never locks a task before its case, which deadlocked against a person's transition.

A rule without look-ups is decided in the transaction that picked it. A step with look-ups is picked
under a *lease* (``auto_attempts.lease_token``/``lease_until``, committed at once), its sources are
asked outside any transaction (a slow source holds no lock), and a second transaction decides it if
the lease still holds; a worker whose lease lapsed (it died, or the source was slower than the lease)
finds another token there and decides nothing.

A rule that raises, or a look-up that fails, is an *attempt* that failed: ``auto_attempts`` counts it
and the task waits ``RunPolicy.backoff`` before a worker picks it again. The ``max_attempts``-th failure
raises an **incident** (``incidents``, an alert and a notice to the department's supervisor); no worker
picks the task again until the supervisor retries it or hands it to a person (commands/incidents.py).
Nothing is retried forever; nothing is decided twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, bindparam, delete, insert, or_, select, text, update

from ...store import prepared
from ...store.models import AutoAttempt, Case, Incident, Task, Timestamp
from ...store.prepared import Statements
from ..errors import Conflict, NotAllowed
from ..progress import RuleFailed, complete, decide_auto, progress, start_work
from ..refusals import propose_refusal
from ..rules import CASE_RULES, LEADER, OPEN_CASE
from ..tasks import SYSTEM, Row
from ..unit import Tx

if TYPE_CHECKING:
    from ...definition.model import Definition
    from ..lookups import Fetched, Sources
    from ..unit import Core

_cases = Case.__table__
_tasks = Task.__table__
_attempts = AutoAttempt.__table__
_incidents = Incident.__table__
# the predicate of ix_tasks_auto_ready, verbatim (a partial index is used only when the query repeats it)
AUTO_READY = text("tasks.state = 'ready' AND tasks.kind = 'auto'")
CASE_OPEN = text("cases.state IN ('accepted', 'in_progress')")  # rules.OPEN_CASE, literal for the compiled pick
ERROR_KEPT = 2000  # characters of an error kept with the attempt and the incident


@dataclass(frozen=True)
class RunPolicy:
    """How often an automatic step is tried before it becomes an incident, and how long between tries."""

    max_attempts: int = 5
    backoff_s: float = 30.0  # after the first failure; doubled after each further one
    backoff_cap_s: float = 3600.0
    lease_s: float = 120.0  # how long a worker fetching shared data holds the task

    def backoff(self, failures: int) -> timedelta:
        return timedelta(seconds=min(self.backoff_s * 2 ** max(0, failures - 1), self.backoff_cap_s))


@dataclass(frozen=True)
class Lease:
    """A task picked for its look-ups: fetch outside any transaction, then ``finish_lease``."""

    task_id: int
    case_id: int
    token: str
    definition: Definition
    step_id: str
    form: dict[str, Any]


@dataclass
class AutoBatch:
    """What one batch of the runner did."""

    decided: int = 0  # tasks decided (approved, refused, or completed to go on)
    failed: int = 0  # attempts that failed (the task waits for its backoff, or became an incident)
    incidents: int = 0  # of which raised an incident
    lost: int = 0  # another worker got there first: decided or leased the task, took over a lapsed lease

    @property
    def attempts(self) -> int:
        return self.decided + self.failed + self.lost


# ------------------------------------------------------------------------------------------------
# picking


def _attempt_due(now: Any) -> Any:
    """No attempt row, or one waiting whose backoff has passed and that no live lease holds."""
    return or_(
        _attempts.c.task_id.is_(None),
        and_(
            _attempts.c.state == "waiting",
            _attempts.c.next_attempt_at <= now,
            or_(_attempts.c.lease_until.is_(None), _attempts.c.lease_until <= now),
        ),
    )


def _pick(lock: bool) -> Any:
    query = (
        select(_cases.c.id.label("case_id"), _tasks.c.id.label("task_id"), _attempts.c.task_id.label("attempt_of"))
        .select_from(_tasks)
        .join(_cases, _cases.c.id == _tasks.c.case_id)
        .outerjoin(_attempts, _attempts.c.task_id == _tasks.c.id)
        .where(AUTO_READY, CASE_OPEN, _attempt_due(bindparam("now", type_=Timestamp)))
        .order_by(_tasks.c.id)
        .limit(1)
    )  # a suspended case's automatic task waits for its resumption without blocking the queue
    return query.with_for_update(of=_cases, skip_locked=True) if lock else query


# compiled once per dialect and run on the driver cursor, as the transaction core's hot path is
_SQL = Statements({"pick": _pick(lock=False), "pick_locked": _pick(lock=True)})


def next_auto_task(tx: Tx) -> tuple[int, int, bool] | None:
    """Lock an open case with a waiting automatic task due for an attempt that no other worker holds;
    returns (case id, task id, whether the task has an attempt row)."""
    name = "pick_locked" if tx.conn.dialect.name == "postgresql" else "pick"  # SQLite: BEGIN IMMEDIATE
    rows = prepared.fetch(tx.conn, _SQL.get(name, tx.conn.dialect), {"now": tx.now})
    if not rows:
        return None
    row = rows[0]
    return row["case_id"], row["task_id"], row["attempt_of"] is not None


def has_due_task(conn: Connection, now: datetime) -> bool:
    """Whether a waiting automatic task of an open case is due for an attempt (a read, no lock)."""
    query = (
        select(_tasks.c.id)
        .join(_cases, _cases.c.id == _tasks.c.case_id)
        .outerjoin(_attempts, _attempts.c.task_id == _tasks.c.id)
        .where(AUTO_READY, _cases.c.state.in_(sorted(OPEN_CASE)), _attempt_due(now))
        .limit(1)
    )
    return conn.execute(query).first() is not None


def run_next_auto(tx: Tx, policy: RunPolicy) -> str | Lease | None:
    """Pick the oldest waiting automatic task no other worker holds and decide it, or lease it for its
    look-ups. Returns None when there is none, else "decided", "failed", "incident", "lost" (another
    worker got there first) or a Lease."""
    picked = next_auto_task(tx)
    if picked is None:
        return None
    case_id, task_id, has_attempt = picked
    tx.lock_case(case_id)  # already ours (FOR UPDATE / BEGIN IMMEDIATE): this bumps the revision
    task = tx.task(task_id)
    if tx.conn.dialect.name == "postgresql":
        # READ COMMITTED re-checks only the locked case row: the task and its attempt row are as the pick's
        # statement first saw them, and another worker may have decided or leased the task since
        attempt = _attempt(tx, task_id)
        if task["state"] != "ready" or task["kind"] != "auto" or tx.case["state"] not in OPEN_CASE:
            return "lost"
        if attempt is not None and not _due(attempt, tx.now):
            return "lost"
        has_attempt = attempt is not None
    return _start(tx, task, policy, has_attempt)


def _due(attempt: Any, now: datetime) -> bool:
    """The same test as ``_attempt_due``, on a row read under the case lock."""
    leased = attempt.lease_until is not None and attempt.lease_until > now
    return attempt.state == "waiting" and attempt.next_attempt_at <= now and not leased


def _start(tx: Tx, task: Row, policy: RunPolicy, has_attempt: bool) -> str | Lease:
    definition = tx.definition()
    step = definition.steps_by_id[task["step_id"]]
    if step.lookups:
        token = uuid.uuid4().hex
        _put_attempt(tx, task, lease_token=token, lease_until=tx.now + timedelta(seconds=policy.lease_s))
        return Lease(task["id"], task["case_id"], token, definition, step.id, dict(tx.case["form"]))
    return _decide_or_fail(tx, task, policy, has_attempt, None)


def run_auto_task(tx: Tx, task_id: int, policy: RunPolicy) -> str | Lease:
    """Decide one waiting automatic task by its id (its backoff does not apply: someone asked for it)."""
    tx.lock_case_of_task(task_id, SYSTEM)
    task = tx.task(task_id)
    _check_waiting(tx, task)
    attempt = _attempt(tx, task_id)
    if attempt is not None and attempt.state == "incident":
        raise NotAllowed(f"task {task_id} is an open incident: its supervisor retries it or hands it to a person")
    return _start(tx, task, policy, attempt is not None)


def finish_lease(tx: Tx, lease: Lease, fetched: Fetched | None, error: str | None, policy: RunPolicy) -> str:
    """Decide a leased task with what its look-ups found (``fetched``), or count the failed look-up
    (``error``). Returns "decided", "failed", "incident", or "lost" if the lease no longer holds."""
    tx.lock_case(lease.case_id)
    task = tx.task(lease.task_id)
    attempt = _attempt(tx, lease.task_id)
    if attempt is None or attempt.lease_token != lease.token:
        return "lost"  # the lease lapsed and another worker holds the task now (or decided it)
    if task["state"] != "ready" or task["kind"] != "auto" or tx.case["state"] not in OPEN_CASE:
        _release(tx, task)  # the case moved on meanwhile (withdrawn, suspended …)
        return "lost"
    if error is not None:
        return record_failure(tx, task, "lookup", error, policy)
    assert fetched is not None
    return _decide_or_fail(tx, task, policy, True, fetched)


def _decide_or_fail(tx: Tx, task: Row, policy: RunPolicy, has_attempt: bool, fetched: Fetched | None) -> str:
    try:
        decide_waiting_auto(tx, task["id"], fetched)
    except RuleFailed as exc:
        return record_failure(tx, task, "rule", str(exc), policy)
    if has_attempt:
        tx.conn.execute(delete(_attempts).where(_attempts.c.task_id == task["id"]))
    return "decided"


def _check_waiting(tx: Tx, task: Row) -> None:
    if task["state"] != "ready" or task["kind"] != "auto":
        raise Conflict(f"task {task['id']} is no waiting auto task (it is {task['state']})")
    CASE_RULES["work"].check(tx.case["state"], f"case {tx.case['number']}")


def decide_waiting_auto(tx: Tx, task_id: int, fetched: Fetched | None = None) -> None:
    """The rule decides the task, on the form with what the look-ups found; raises RuleFailed having
    written nothing when the rule cannot be evaluated."""
    case = tx.case
    task = tx.task(task_id)
    _check_waiting(tx, task)
    definition = tx.definition()
    step = definition.steps_by_id[task["step_id"]]
    form = {**case["form"], **(fetched.fills if fetched else {})}
    decided = dict(task)
    decide_auto(step, decided, form, tx.now)
    if fetched is not None:
        tx.event("lookups", task=task, actor=SYSTEM, data={"lookups": fetched.audit})
    if form != case["form"]:
        case["form"] = form
        tx.form_changed = True
    start_work(tx, task, SYSTEM)
    if decided["waiting"] == LEADER:  # a refusal: it waits for the leader (不予审批报告制)
        tx.update_task(task, state="claimed", assignee=SYSTEM, claimed_at=tx.now, opinion=decided["opinion"],
                       waiting=LEADER)  # fmt: skip
        tx.event("claimed", task=task, actor=SYSTEM, from_state="ready", to_state="claimed")
        remedy = definition.remedy
        propose_refusal(tx, task, SYSTEM, "rejected", decided["opinion"], remedy, department=task["department"])
        tx.save_form()
        return
    complete(tx, task, SYSTEM, decided["outcome"] or "approve", decided["opinion"])
    if decided["outcome"] is None:
        tx.update_task(task, outcome=None)
    progress(tx, definition, task_id)
    tx.save_form()


# ------------------------------------------------------------------------------------------------
# attempts and incidents


def _attempt(tx: Tx, task_id: int) -> Any:
    return tx.conn.execute(select(_attempts).where(_attempts.c.task_id == task_id)).first()


def _put_attempt(tx: Tx, task: Row, **values: Any) -> None:
    """Insert or update the task's attempt row (under the case lock, so no one else writes it)."""
    changed = tx.conn.execute(update(_attempts).where(_attempts.c.task_id == task["id"]).values(**values)).rowcount
    if not changed:
        row = {"state": "waiting", "attempts": 0, "next_attempt_at": tx.now, "last_error": None}
        row.update(lease_token=None, lease_until=None)
        tx.conn.execute(insert(_attempts).values(task_id=task["id"], case_id=task["case_id"], **{**row, **values}))


def _release(tx: Tx, task: Row) -> None:
    tx.conn.execute(
        update(_attempts).where(_attempts.c.task_id == task["id"]).values(lease_token=None, lease_until=None)
    )


def record_failure(tx: Tx, task: Row, kind: str, error: str, policy: RunPolicy) -> str:
    """One failed attempt of an automatic task: it waits for its backoff, or after ``max_attempts``
    failures becomes an incident for the department's supervisor. Returns "failed" or "incident"."""
    error = error[:ERROR_KEPT]
    attempt = _attempt(tx, task["id"])
    failures = (attempt.attempts if attempt is not None else 0) + 1
    number, department = tx.case["number"], task["department"]
    lease = {"lease_token": None, "lease_until": None}
    if failures < policy.max_attempts:
        retry_at = tx.now + policy.backoff(failures)
        _put_attempt(tx, task, state="waiting", attempts=failures, next_attempt_at=retry_at, last_error=error, **lease)
        tx.event(
            "auto_attempt_failed",
            task=task,
            actor=SYSTEM,
            data={"kind": kind, "error": error, "attempt": failures, "retry_at": retry_at.isoformat()},
        )
        return "failed"
    _put_attempt(tx, task, state="incident", attempts=failures, next_attempt_at=tx.now, last_error=error, **lease)
    tx.conn.execute(
        insert(_incidents).values(
            task_id=task["id"],
            case_id=task["case_id"],
            step_id=task["step_id"],
            department=department,
            kind=kind,
            error=error,
            attempts=failures,
            state="open",
            raised_at=tx.now,
            closed_at=None,
            closed_by=None,
            note=None,
        )
    )
    tx.event("incident_raised", task=task, actor=SYSTEM, data={"kind": kind, "error": error, "attempts": failures})
    what = "规则无法判定" if kind == "rule" else "共享数据查询失败"
    message = f"{number} {task['name']}：自动步骤{what}，已尝试 {failures} 次，请重试或转人工办理（{error}）"
    role = tx.supervisor_role(department)
    tx.alert("incident", message, task=task, department=department, role=role)
    tx.notify("incident", f"异常待处理：{message}", task=task, department=department, role=role)
    return "incident"


# ------------------------------------------------------------------------------------------------
# the loop a worker runs


def run_batch(core: Core, limit: int, sources: Sources, policy: RunPolicy) -> AutoBatch:
    """Up to ``limit`` attempts, each decided (or counted as failed) in a transaction of its own;
    look-ups run between the two transactions of a leased task."""
    batch = AutoBatch()
    while batch.attempts < limit:
        outcome = core.run(run_next_auto, policy)
        if outcome is None:
            break
        if isinstance(outcome, Lease):
            outcome = finish_with_lookups(core, outcome, sources, policy)
        _count(batch, outcome)
    return batch


def run_one(core: Core, task_id: int, sources: Sources, policy: RunPolicy) -> str:
    outcome = core.run(run_auto_task, task_id, policy)
    if isinstance(outcome, Lease):
        return finish_with_lookups(core, outcome, sources, policy)
    return outcome


def finish_with_lookups(core: Core, lease: Lease, sources: Sources, policy: RunPolicy) -> str:
    from ..lookups import LookupFailed, run_lookups

    step = lease.definition.steps_by_id[lease.step_id]
    try:
        fetched, error = run_lookups(sources, lease.definition, step, lease.form), None  # type: ignore[arg-type]
    except LookupFailed as exc:
        fetched, error = None, str(exc)
    return core.run(finish_lease, lease, fetched, error, policy)


def _count(batch: AutoBatch, outcome: str) -> None:
    if outcome == "decided":
        batch.decided += 1
    elif outcome == "lost":
        batch.lost += 1
    else:
        batch.failed += 1
        batch.incidents += outcome == "incident"
