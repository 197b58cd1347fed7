"""Simulated staff drive cases to the end: ``tongban simulate`` and ``bench/engine.py`` use this module.

The pieces, reusable on their own (all randomness comes from the ``random.Random`` you pass in, so a
seed gives the same cases, the same decisions and the same counts):

``SimClock(start)``
    The engine's injected clock. ``clock.advance(calendar, minutes)`` moves it by *working* time
    (09:00–17:00 on working days), so nights, weekends and holidays pass in one step.
``create_staff(engine, definition, departments, prefix="") -> Staff``
    Registers simulated staff (``engine.add_user``) in every department the definition touches:
    handlers ``<dept>-1 … <dept>-N`` (N = 3, or the longest review chain; they also hold every
    ``role:`` a step of their department names), a supervisor ``<dept>-boss`` holding the
    department's ``supervisor_role``, and one user ``<dept>-<role>`` per countersign role
    (``signers:`` of a ``sign: all|any`` step).
``submit_case(engine, definition, rng, number) -> case id``
    A random but valid application: ``samples.sample_form`` data and, now and then, materials
    missing (which leads to 容缺受理 or a 补正 notice before acceptance).
``act(engine, case_id, rng, staff, behaviour) -> bool``
    Exactly one service call, chosen the way staff would: a department's leader confirms (mostly) or
    sends back a proposed refusal (不予审批报告制) before anything else, accept / 一次性告知 / refuse at the window,
    claim a ready task (random claim order), sign the next review-chain level (distinct people),
    sign a survey as a participant department, sign a countersign role, approve (mostly), reject
    (steps with ``on_reject: continue`` more often; elsewhere rarely, which rejects the case),
    return for 补正 (within the definition's ``limits.returns``; the applicant's ``supply_materials``
    follows), 特别程序 with its expected time and resume, issue
    certificates (``issue_certificates``), run a waiting ``auto`` task. Returns False once the
    case is closed (nothing was done).
``drive_case(engine, case_id, rng, staff, *, clock=None, behaviour=..., max_actions=2000) -> int``
    Calls ``act`` until the case is closed, advancing ``clock`` (if given) by ``behaviour.minutes``
    working minutes between actions; returns the number of actions. Raises :class:`SimulationStuck` if a case stops
    moving (an engine bug, never a simulation outcome).
``simulate(definition_path, cases, seed, url=None) -> SimulationReport``
    Everything together: a scratch SQLite database (a temp file) unless ``url`` is given, the
    definition and its departments.yaml published, staff created, ``cases`` cases interleaved
    (``concurrency`` in flight, each action on a random one of them), the SLA sweep every
    ``behaviour.sweep_every`` simulated working minutes, then counts read back with SQL.

A bench keeps the loop and times it::

    db = connect(url); upgrade(db); publish_paths(db, [path], clock())
    engine = Engine(db, calendar, clock)
    staff = create_staff(engine, definition, departments)
    for n in range(cases):
        drive_case(engine, submit_case(engine, definition, rng, n), rng, staff, clock=clock)
    engine.close(); db.dispose()

(``definition``: ``engine.definitions.get(conn, key, version)``; ``departments``:
``definition.validator.load_departments(find_departments_file(path))``.)
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time as wallclock
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, select

from ..calendar import TZ, BusinessCalendar
from ..definition.model import Definition
from ..definition.model import Department as DepartmentSpec
from ..engine import Engine
from ..engine.forms import missing_materials
from ..engine.rules import CASE_FINAL, CASE_STEPS, NEGATIVE_REPORT_STEP, TASK_OPEN, deferral_lapsed
from ..store.db import reading
from ..store.models import Alert, Case, Certificate, Signoff, Supplement, Suspension, Task
from .samples import sample_form, sample_materials

__all__ = [
    "DEFAULT_START",
    "Behaviour",
    "SimClock",
    "SimulationReport",
    "SimulationStuck",
    "Staff",
    "act",
    "create_staff",
    "drive_case",
    "simulate",
    "submit_case",
]

# Monday 2026-09-21 09:00 Shanghai: the runs cross the Mid-Autumn + National Day holidays.
DEFAULT_START = datetime(2026, 9, 21, 9, 0, tzinfo=TZ)
REMEDY = "如不服本决定，可在收到之日起六十日内申请行政复议，或者六个月内提起行政诉讼。"


class SimulationStuck(RuntimeError):
    """A case is open but nobody can act on it: a bug in the engine or the definition checks."""


@dataclass
class SimClock:
    """The engine's clock; moves only when told to, by working time on the business calendar."""

    now: datetime = DEFAULT_START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, calendar: BusinessCalendar, minutes: float) -> datetime:
        self.now = calendar.add_working_time(self.now, timedelta(minutes=minutes)).at
        return self.now


@dataclass(frozen=True)
class Behaviour:
    """How simulated people decide. Shares are probabilities per decision."""

    incomplete_materials: float = 0.10  # an application arrives without a deferrable material
    defer_instead_of_notice: float = 0.5  # …and the window accepts it 容缺 rather than sending a 补正 notice
    refuse: float = 0.01  # 不予受理 at the window
    reject_continue: float = 0.10  # refusal on a step with on_reject: continue (the rest goes on)
    reject_stop: float = 0.01  # refusal elsewhere: the whole case is rejected
    give_back: float = 0.04  # 补正 during the work (return; the clock stops until materials arrive)
    overrule: float = 0.2  # a leader sends a proposed refusal back to the handler instead of confirming it
    suspend: float = 0.02  # 特别程序 (expert review) on steps of a day or more
    withdraw: float = 0.001  # the applicant withdraws, per action
    supply_deferred: float = 0.3  # the applicant brings a 容缺 material, per action
    minutes: tuple[float, float] = (0.2, 1.0)  # working minutes between two actions (anyone, anywhere)
    sweep_every: float = 30.0  # the SLA sweep runs every so many simulated working minutes (0: never)
    online: float = 0.0  # an application comes in online rather than at a window
    centres: tuple[str, ...] = ()  # the service centres whose windows take the others (any, 全市通办)


DEFAULT_BEHAVIOUR = Behaviour()
# Everyone approves, nobody withdraws, no 补正 or 特别程序: the happy path, every step worked (benchmarks).
EVERYONE_APPROVES = Behaviour(
    incomplete_materials=0,
    refuse=0,
    reject_continue=0,
    reject_stop=0,
    give_back=0,
    overrule=0,
    suspend=0,
    withdraw=0,
    supply_deferred=0,
    sweep_every=0,
)


@dataclass
class Staff:
    """Simulated users by department: who handles, who supervises, who holds a countersign role."""

    handlers: dict[str, list[str]] = field(default_factory=dict)
    supervisors: dict[str, str] = field(default_factory=dict)
    role_holders: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    @property
    def users(self) -> int:
        names = {u for us in self.handlers.values() for u in us} | set(self.supervisors.values())
        return len(names | {u for us in self.role_holders.values() for u in us})


def create_staff(
    engine: Engine, definition: Definition, departments: Mapping[str, DepartmentSpec], prefix: str = ""
) -> Staff:
    """Register handlers, a supervisor and countersign role holders in every department of the definition."""
    staff = Staff()
    chain = max((len(getattr(s, "review_chain", ())) for s in definition.steps), default=0)
    per_department = max(3, chain)
    step_roles: dict[str, set[str]] = {}
    sign_roles: dict[str, set[str]] = {}
    for step in definition.steps:
        if step.role:
            step_roles.setdefault(step.department, set()).add(step.role)
        for role in getattr(step, "signers", ()):
            sign_roles.setdefault(step.department, set()).add(role)
    for code in definition.departments:
        spec = departments.get(code)
        label = spec.name if spec else code
        roles = [(code, "handler"), *((code, r) for r in sorted(step_roles.get(code, ())))]
        users = []
        for n in range(1, per_department + 1):
            user = f"{prefix}{code}-{n}"
            engine.add_user(user, f"{label}办理人{n}", roles)
            users.append(user)
        staff.handlers[code] = users
        if spec is not None:
            boss = f"{prefix}{code}-boss"
            engine.add_user(boss, f"{label}负责人", [(code, "handler"), (code, spec.supervisor_role)])
            staff.supervisors[code] = boss
        for role in sorted(sign_roles.get(code, ())):
            user = f"{prefix}{code}-{role}"
            engine.add_user(user, f"{label}会签人（{role}）", [(code, role)])
            staff.role_holders[(code, role)] = [user]
    return staff


def submit_case(
    engine: Engine,
    definition: Definition,
    rng: random.Random,
    number: int,
    behaviour: Behaviour = DEFAULT_BEHAVIOUR,
) -> int:
    """Submit one random but valid application; the applicant is ``sim-applicant-<number>``."""
    form = sample_form(definition, rng)
    complete = rng.random() >= behaviour.incomplete_materials
    materials = sample_materials(definition, complete=complete)
    applicant = {"id": f"sim-applicant-{number:06d}", "name": f"模拟申请人{number}"}
    channel, centre = "window", None
    if behaviour.online and rng.random() < behaviour.online:
        channel = "online"
    elif behaviour.centres:
        centre = rng.choice(behaviour.centres)
    return engine.submit_case(definition.key, applicant, form, materials, channel=channel, centre=centre)


# ------------------------------------------------------------------------------------------------
# one action


@dataclass
class _Snapshot:
    case: Any
    tasks: list[Any]
    slots: dict[int, list[Any]]
    notice: Any | None  # the open 补正 notice, if any


_CASE = select(Case.__table__).where(Case.id == bindparam("case_id"))
_OPEN_TASKS = (
    select(Task.__table__).where(Task.case_id == bindparam("case_id"), Task.state.in_(TASK_OPEN)).order_by(Task.id)
)
_SLOTS = (
    select(Signoff.__table__)
    .join(Task, Task.id == Signoff.task_id)
    .where(Task.case_id == bindparam("case_id"), Task.state.in_(TASK_OPEN))
    .order_by(Signoff.task_id, Signoff.position)
)
_NOTICE = select(Supplement.__table__).where(
    Supplement.case_id == bindparam("case_id"), Supplement.supplied_at.is_(None)
)
_RETURNS = select(func.count()).where(Suspension.case_id == bindparam("case_id"), Suspension.kind == "supplement")


def _snapshot(engine: Engine, case_id: int) -> tuple[_Snapshot, Definition]:
    """What the people looking at this case see: read-only (never takes SQLite's write lock)."""
    key = {"case_id": case_id}
    with reading(engine.db) as conn:
        case = conn.execute(_CASE, key).first()
        if case is None:
            raise SimulationStuck(f"case {case_id} does not exist")
        definition = engine.definitions.get(conn, case.definition_key, case.definition_version)
        if case.state in CASE_FINAL:
            return _Snapshot(case, [], {}, None), definition
        tasks = list(conn.execute(_OPEN_TASKS, key))
        slots: dict[int, list[Any]] = {}
        for row in conn.execute(_SLOTS, key) if any(t.signoffs_open for t in tasks) else ():
            slots.setdefault(row.task_id, []).append(row)
        notice = conn.execute(_NOTICE, key).first() if case.state in ("submitted", "suspended") else None
    return _Snapshot(case, tasks, slots, notice), definition


def act(
    engine: Engine,
    case_id: int,
    rng: random.Random,
    staff: Staff,
    behaviour: Behaviour = DEFAULT_BEHAVIOUR,
) -> bool:
    """Make exactly one service call on the case as a plausible person would; False if it is closed."""
    snap, definition = _snapshot(engine, case_id)
    case = snap.case
    if case.state in CASE_FINAL:
        return False
    applicant = case.applicant["id"]
    reports = [t for t in snap.tasks if t.step_id == NEGATIVE_REPORT_STEP]
    if reports and case.state != "suspended":  # 不予审批报告制: the leader decides before anything else
        _decide_refusal(engine, reports[0], rng, staff, behaviour)
        return True
    if case.state == "submitted":
        _at_the_window(engine, definition, snap, rng, staff, behaviour)
        return True
    if case.state == "suspended":
        if snap.notice is not None:
            engine.supply_materials(case_id, applicant, list(snap.notice.missing))
        else:
            worker = _member(staff, rng, {t.department for t in snap.tasks})
            engine.resume_case(case_id, worker, "专家评审结束，恢复计时")
        return True
    if rng.random() < behaviour.withdraw:
        engine.withdraw_case(case_id, applicant, "申请人主动撤回（模拟）")
        return True
    in_time = not deferral_lapsed(case.deferred, case.deferred_due_at, engine.clock())  # else the timer ends it
    if case.deferred and in_time and rng.random() < behaviour.supply_deferred:
        engine.supply_materials(case_id, applicant, list(case.deferred))
        return True
    # certificates go out only once 容缺 materials are in
    workable = [
        t
        for t in snap.tasks
        if t.waiting is None and t.step_id not in CASE_STEPS and not (case.deferred and t.kind == "issue")
    ]
    if not workable and case.deferred:
        if in_time:
            engine.supply_materials(case_id, applicant, list(case.deferred))
        else:
            engine.terminate_lapsed_deferrals()  # the timer's next run
        return True
    if not workable:
        raise SimulationStuck(f"case {case.number} is {case.state} with no task anyone can work")
    task = rng.choice(workable)  # claim order: whichever ready task someone picks up first
    _work(engine, definition, snap, task, rng, staff, behaviour)
    return True


def _decide_refusal(engine: Engine, report: Any, rng: random.Random, staff: Staff, behaviour: Behaviour) -> None:
    leader = staff.supervisors.get(report.department)
    if leader is None:
        raise SimulationStuck(f"no simulated leader in {report.department} to decide on task {report.id}")
    if rng.random() < behaviour.overrule:
        engine.send_back_refusal(report.id, leader, "理由不充分，请重新审查（模拟）")
    else:
        engine.confirm_refusal(report.id, leader, "同意（模拟）")


def _at_the_window(
    engine: Engine, definition: Definition, snap: _Snapshot, rng: random.Random, staff: Staff, behaviour: Behaviour
) -> None:
    case = snap.case
    entry = next((t for t in snap.tasks if t.kind == "acceptance"), None)
    if entry is None:  # a 补正 notice is out: the applicant comes back with everything it listed
        if snap.notice is None:
            raise SimulationStuck(f"case {case.number} is submitted with neither an acceptance task nor a notice")
        engine.supply_materials(case.id, case.applicant["id"], list(snap.notice.missing))
        return
    clerk = rng.choice(staff.handlers[entry.department])
    if rng.random() < behaviour.refuse:
        engine.refuse_case(case.id, clerk, "申请事项不属于本机关职权范围（模拟）", REMEDY)
        return
    missing = missing_materials(definition, case.materials)
    if not missing:
        engine.accept_case(case.id, clerk)
        return
    by_key = {m.key: m for m in definition.materials}
    if all(by_key[m].deferrable for m in missing) and rng.random() < behaviour.defer_instead_of_notice:
        engine.accept_case(case.id, clerk, deferred=missing, deferred_limit=_defer_limit(definition))
        return
    labels = "、".join(by_key[m].label for m in missing)
    engine.request_supplement(case.id, clerk, missing, f"请补齐：{labels}")


def _defer_limit(definition: Definition) -> str:
    promised = definition.limits.promised
    if promised is None or promised.working_hours >= 5 * 8:
        return "5d"
    return str(promised)


def _work(
    engine: Engine,
    definition: Definition,
    snap: _Snapshot,
    task: Any,
    rng: random.Random,
    staff: Staff,
    behaviour: Behaviour,
) -> None:
    if task.step_id not in definition.steps_by_id:
        raise SimulationStuck(f"task {task.id} ({task.name}) is no step of {definition.key}")
    step = definition.steps_by_id[task.step_id]
    if task.kind == "auto":  # left for a worker (Engine(auto_inline=False))
        engine.run_auto_task(task.id)
        return
    open_slots = [s for s in snap.slots.get(task.id, []) if s.signed_at is None]
    if task.kind == "survey":  # each participant department signs, in any order; no claim needed
        slot = rng.choice([s for s in open_slots if s.kind == "department"])
        signer = rng.choice(staff.handlers[slot.party])
        outcome, opinion = _decide(step.on_reject, rng, behaviour)
        engine.complete_task(task.id, signer, outcome, opinion or f"{slot.party} 踏勘意见：同意")
        return
    if task.state == "ready":
        engine.claim_task(task.id, rng.choice(staff.handlers[task.department]))
        return
    if open_slots and open_slots[0].kind == "level":
        signed = {s.signed_by for s in snap.slots[task.id] if s.kind == "level" and s.signed_by}
        # 承办 is the person who claimed the task; each higher level is someone who has not signed yet
        others = [u for u in staff.handlers[task.department] if u not in signed]
        signer = task.assignee if not signed else rng.choice(others)
        outcome, opinion = _decide(step.on_reject, rng, behaviour)
        engine.complete_task(task.id, signer, outcome, opinion or f"{open_slots[0].party}：同意")
        return
    if open_slots and open_slots[0].kind == "role":
        slot = rng.choice([s for s in open_slots if s.kind == "role"])
        signer = rng.choice(staff.role_holders[(task.department, slot.party)])
        outcome, opinion = _decide(step.on_reject, rng, behaviour)
        engine.complete_task(task.id, signer, outcome, opinion or f"{slot.party} 会签：同意")
        return
    if task.kind == "issue":
        delivery = rng.choice(list(step.delivery))
        tracking = f"SF{rng.randrange(10**11, 10**12)}" if delivery == "mail" else None
        engine.issue_certificates(task.id, task.assignee, delivery, tracking_number=tracking)
        return
    worker = task.assignee
    limit = step.limit
    if limit is not None and limit.working_hours >= 8 and rng.random() < behaviour.suspend:
        engine.suspend_case(task.case_id, worker, "expert_review", f"{step.name}需组织专家评审（模拟）", "3d")
        return
    if definition.materials and rng.random() < behaviour.give_back and _may_return(engine, task.case_id, definition):
        material = rng.choice(definition.materials)
        engine.complete_task(task.id, worker, "return", f"请补正：{material.label}", missing=[material.key])
        return
    outcome, opinion = _decide(step.on_reject, rng, behaviour)
    engine.complete_task(task.id, worker, outcome, opinion or "同意")


def _may_return(engine: Engine, case_id: int, definition: Definition) -> bool:
    """补正 after acceptance is allowed ``limits.returns`` times per case."""
    with reading(engine.db) as conn:
        return conn.execute(_RETURNS, {"case_id": case_id}).scalar_one() < definition.limits.returns


def _decide(on_reject: str, rng: random.Random, behaviour: Behaviour) -> tuple[str, str]:
    share = behaviour.reject_continue if on_reject == "continue" else behaviour.reject_stop
    if rng.random() < share:
        return "reject", "不符合法定条件，不予许可（模拟）"
    return "approve", ""


def _member(staff: Staff, rng: random.Random, departments: Iterable[str]) -> str:
    candidates = sorted(d for d in departments if d in staff.handlers)
    if not candidates:
        raise SimulationStuck("no simulated staff in the departments of the open tasks")
    return rng.choice(staff.handlers[rng.choice(candidates)])


def drive_case(
    engine: Engine,
    case_id: int,
    rng: random.Random,
    staff: Staff,
    *,
    clock: SimClock | None = None,
    behaviour: Behaviour = DEFAULT_BEHAVIOUR,
    max_actions: int = 2000,
) -> int:
    """Act on one case until it is closed; returns how many service calls that took."""
    actions = 0
    while act(engine, case_id, rng, staff, behaviour):
        actions += 1
        if actions >= max_actions:
            raise SimulationStuck(f"case {case_id} still open after {max_actions} actions")
        if clock is not None:
            clock.advance(engine.calendar, rng.uniform(*behaviour.minutes))
    return actions


# ------------------------------------------------------------------------------------------------
# a whole run


@dataclass(frozen=True)
class StepFigures:
    """What one step did across the run's cases."""

    step_id: str
    name: str
    kind: str
    ran: int  # tasks completed (a step redone after 退回 counts each time)
    skipped: int  # tasks skipped (`when` false, or every predecessor skipped)
    refused: int  # completed with outcome reject (不予许可, or an auto rule that did not hold)
    cancelled: int  # open tasks closed because the case ended elsewhere (a parallel step refused it, 撤件)
    not_reached: int  # cases that ended before the step had a task
    median_working_minutes: float | None  # from ready to completed, working time, of the tasks that ran


@dataclass
class SimulationReport:
    definition: str
    version: int
    database: str
    cases: int
    actions: int  # service calls made by simulated people
    tasks_completed: int  # task rows completed (auto and notify steps complete themselves)
    wall_seconds: float
    by_state: dict[str, int]  # completed / rejected / not_accepted / withdrawn / terminated …
    by_outcome: dict[str, int]  # approved / partly_approved / rejected …
    on_time: int  # closed cases that closed by their due time
    overdue: int  # closed cases that closed after it
    warnings: int  # yellow cards (SLA alerts of kind warning) raised by the periodic sweep
    overdue_alerts: int  # red cards (kind overdue)
    provisional: int  # cases whose deadline reached a year without official holiday data
    started: datetime
    ended: datetime
    users: int
    steps: list[StepFigures] = field(default_factory=list)  # in the definition's order
    certificates: dict[str, int] = field(default_factory=dict)  # certificate name (key) → issued

    @property
    def completions_per_second(self) -> float:
        return self.tasks_completed / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def actions_per_second(self) -> float:
        return self.actions / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def lines(self, labels: Mapping[str, str] | None = None) -> list[str]:
        """The report as printed by ``tongban simulate``; ``labels`` adds a name to each state/outcome."""
        labels = labels or {}

        def counts(items: Mapping[str, int]) -> str:
            return "  ".join(f"{k}{f'（{labels[k]}）' if k in labels else ''} {v}" for k, v in items.items())

        return [
            f"simulated {self.definition} v{self.version} in {self.database} with {self.users} simulated staff",
            f"cases            {self.cases}",
            f"task completions {self.tasks_completed}  ({self.actions} staff actions)",
            f"wall seconds     {self.wall_seconds:.2f}",
            f"completions/s    {self.completions_per_second:.1f}  ({self.actions_per_second:.1f} staff actions/s)",
            f"states           {counts(self.by_state)}",
            f"outcomes         {counts(self.by_outcome)}",
            f"deadlines        on time {self.on_time}  overdue {self.overdue}  provisional {self.provisional}",
            f"SLA cards        warning（黄牌） {self.warnings}  overdue（红牌） {self.overdue_alerts}",
            f"simulated time   {self.started:%Y-%m-%d %H:%M} → {self.ended:%Y-%m-%d %H:%M} Asia/Shanghai",
            *self.step_lines(),
            "certificates     "
            + ("  ".join(f"{name} {count}" for name, count in self.certificates.items()) or "none issued"),
        ]

    def step_lines(self) -> list[str]:
        """One line per step: how often it ran, was skipped, refused or cancelled, and its median working time."""
        if not self.steps:
            return []
        width = max(4, *(len(f.step_id) for f in self.steps))
        columns = f"{'ran':>5} {'skipped':>7} {'refused':>7} {'cancelled':>9} {'not reached':>11}  median"
        lines = ["steps            median: working time from ready to done (h of 8-hour working days)"]
        lines.append(f"  {'step':<{width}}  {columns}")
        for f in self.steps:
            median = "—" if f.median_working_minutes is None else _working(f.median_working_minutes)
            counts = f"{f.ran:5} {f.skipped:7} {f.refused:7} {f.cancelled:9} {f.not_reached:11}"
            lines.append(f"  {f.step_id:<{width}}  {counts}  {median:>6}  {f.name}")
        return lines


def simulate(
    definition_path: str | Path,
    cases: int,
    seed: int = 0,
    url: str | None = None,
    *,
    calendar: BusinessCalendar | None = None,
    concurrency: int = 8,
    behaviour: Behaviour = DEFAULT_BEHAVIOUR,
    start: datetime = DEFAULT_START,
) -> SimulationReport:
    """Publish the definition into a scratch (or the given) database and run ``cases`` cases to the end.

    Raises ``ValueError`` when the definition is invalid (its messages are in ``problems``).
    """
    if cases < 1:
        raise ValueError("simulate at least one case")
    if url is None:
        with tempfile.TemporaryDirectory(prefix="tongban-simulate-") as folder:
            scratch = Path(folder) / "simulate.sqlite"
            shown = "a scratch SQLite file"
            scratch_url = f"sqlite:///{scratch}"
            return _run(definition_path, cases, seed, scratch_url, shown, calendar, concurrency, behaviour, start)
    return _run(definition_path, cases, seed, url, _safe_url(url), calendar, concurrency, behaviour, start)


class DefinitionRefused(ValueError):
    def __init__(self, problems: Sequence[Any]) -> None:
        self.problems = [str(p) for p in problems]
        super().__init__("; ".join(self.problems))


def _run(
    definition_path: str | Path,
    cases: int,
    seed: int,
    url: str,
    shown: str,
    calendar: BusinessCalendar | None,
    concurrency: int,
    behaviour: Behaviour,
    start: datetime,
) -> SimulationReport:
    from ..definition.validator import find_departments_file, load_departments
    from ..engine.publish import publish_paths
    from ..store import connect, upgrade

    path = Path(definition_path)
    db = connect(url)
    engine: Engine | None = None
    try:
        upgrade(db)
        clock = SimClock(start)
        published = publish_paths(db, [path], clock())
        problems = [p for r in published for p in r.problems]
        if problems or not published:
            raise DefinitionRefused(problems or [f"{path}: no definition file"])
        result = published[0]
        engine = Engine(db, calendar or BusinessCalendar(), clock)
        with db.connect() as conn:
            definition = engine.definitions.get(conn, result.key, result.version)  # type: ignore[arg-type]
        departments_file = find_departments_file(path)
        departments = load_departments(departments_file) if departments_file else {}
        rng = random.Random(seed)
        staff = create_staff(engine, definition, departments, prefix="sim-")
        made: list[int] = []
        active: list[int] = []
        actions = 0
        swept = clock.now
        began = wallclock.perf_counter()
        while len(made) < cases or active:
            if len(made) < cases and (len(active) < concurrency and (not active or rng.random() < 0.5)):
                case_id = submit_case(engine, definition, rng, len(made) + 1, behaviour)
                made.append(case_id)
                active.append(case_id)
            else:
                case_id = rng.choice(active)
                if act(engine, case_id, rng, staff, behaviour):
                    actions += 1
                else:
                    active.remove(case_id)
                    continue  # nothing happened: no time passes
            clock.advance(engine.calendar, rng.uniform(*behaviour.minutes))
            if behaviour.sweep_every and engine.calendar.working_time_between(swept, clock.now) >= timedelta(
                minutes=behaviour.sweep_every
            ):
                engine.run_timers()
                swept = clock.now
        if behaviour.sweep_every:
            engine.run_timers()
        wall = wallclock.perf_counter() - began
        report = _count(engine, made, definition, result.version, shown, actions, wall, start, clock.now)  # type: ignore[arg-type]
        report.users = staff.users
        return report
    finally:
        if engine is not None:
            engine.close()
        db.dispose()


def _count(
    engine: Engine,
    case_ids: list[int],
    definition: Definition,
    version: int,
    shown: str,
    actions: int,
    wall: float,
    started: datetime,
    ended: datetime,
) -> SimulationReport:
    key = definition.key
    if len(case_ids) <= 20_000:
        mine = Case.id.in_(case_ids)
    else:  # beyond what one IN list should carry; ids of one run are contiguous unless others write too
        mine = (Case.id >= min(case_ids)) & (Case.id <= max(case_ids)) & (Case.definition_key == key)
    with engine.db.connect() as conn:
        states = Counter(dict(conn.execute(select(Case.state, func.count()).where(mine).group_by(Case.state)).all()))
        outcomes = Counter(
            dict(conn.execute(select(Case.outcome, func.count()).where(mine).group_by(Case.outcome)).all())
        )
        closed = conn.execute(select(Case.closed_at, Case.due_at, Case.provisional).where(mine)).all()
        cards = Counter(
            dict(
                conn.execute(
                    select(Alert.kind, func.count())
                    .join(Case, Case.id == Alert.case_id)
                    .where(mine, Alert.kind.in_(("warning", "overdue")))
                    .group_by(Alert.kind)
                ).all()
            )
        )
        completed = conn.execute(
            select(func.count())
            .select_from(Task)
            .join(Case, Case.id == Task.case_id)
            .where(mine, Task.state == "completed")
        ).scalar_one()
        tasks = conn.execute(
            select(
                Task.case_id, Task.step_id, Task.state, Task.outcome, Task.ready_at, Task.completed_at, Task.superseded
            )
            .join(Case, Case.id == Task.case_id)
            .where(mine)
        ).all()
        issued = conn.execute(
            select(Certificate.name, Certificate.key, func.count())
            .join(Case, Case.id == Certificate.case_id)
            .where(mine)
            .group_by(Certificate.name, Certificate.key)
        ).all()
    timed = [(c, d) for c, d, _ in closed if c is not None and d is not None]
    return SimulationReport(
        definition=key,
        version=version,
        database=shown,
        cases=len(case_ids),
        actions=actions,
        tasks_completed=completed,
        wall_seconds=wall,
        by_state=dict(sorted(states.items(), key=lambda kv: (-kv[1], kv[0]))),
        by_outcome=dict(sorted((((k or "none"), v) for k, v in outcomes.items()), key=lambda kv: (-kv[1], kv[0]))),
        on_time=sum(1 for c, d in timed if c <= d),
        overdue=sum(1 for c, d in timed if c > d),
        warnings=cards["warning"],
        overdue_alerts=cards["overdue"],
        provisional=sum(1 for *_, p in closed if p),
        started=started.astimezone(TZ),
        ended=ended.astimezone(TZ),
        users=0,
        steps=_step_figures(engine.calendar, definition, tasks, len(case_ids)),
        certificates={f"{name}（{key}）": count for name, key, count in sorted(issued, key=lambda r: (-r[2], r[1]))},
    )


def _step_figures(
    calendar: BusinessCalendar, definition: Definition, tasks: Sequence[Any], cases: int
) -> list[StepFigures]:
    by_step: dict[str, list[Any]] = {}
    for task in tasks:
        by_step.setdefault(task.step_id, []).append(task)
    figures = []
    for step in definition.steps:
        rows = by_step.get(step.id, [])
        done = [t for t in rows if t.state == "completed"]
        minutes = [
            calendar.working_time_between(t.ready_at, t.completed_at).total_seconds() / 60
            for t in done
            if t.ready_at is not None and t.completed_at is not None
        ]
        figures.append(
            StepFigures(
                step_id=step.id,
                name=step.name,
                kind=step.kind,
                ran=len(done),
                skipped=sum(t.state == "skipped" for t in rows),
                refused=sum(t.outcome == "reject" for t in done),
                cancelled=sum(t.state == "cancelled" and not t.superseded for t in rows),
                not_reached=cases - len({t.case_id for t in rows}),
                median_working_minutes=statistics.median(minutes) if minutes else None,
            )
        )
    return figures


def _working(minutes: float) -> str:
    """Working time as 2h05 (hours of the 8-hour working day, not of the clock)."""
    whole = round(minutes)
    return f"{whole // 60}h{whole % 60:02d}"


def _safe_url(url: str) -> str:
    """The URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the given database"
