"""One case: its page (everything about it in one call), its path for the live flowchart, the case search,
and the applicant's progress view (办理进度).

The case page is a dozen reads by the case's key, each through an index on ``case_id`` (``ix_tasks_case``,
``ix_signoffs_task`` via the tasks, ``ix_events_case``, ``ix_supplements_case``, ``ix_suspensions_case``,
``ix_extensions_case``, ``ix_certificates_case``, ``ix_urges_case``, ``ix_alerts_case``, the unique
``evaluations.case_id``), so its cost does not grow with the size of the tables.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, bindparam, select

from ...calendar import BusinessCalendar
from ...render import StepOverlay
from ...store import prepared
from ...store.models import (
    Alert,
    Case,
    Certificate,
    Evaluation,
    Event,
    Extension,
    Signoff,
    Supplement,
    Suspension,
    Task,
    Urge,
)
from ..errors import NotFound
from .common import (
    CASE_STATE_LABELS,
    SLA_LABELS,
    TASK_STATE_LABELS,
    applicant_of,
    aware,
    definition_names,
    describe_minutes,
    remaining_minutes,
)

_cases = Case.__table__
_tasks = Task.__table__
_slots = Signoff.__table__
_events = Event.__table__

R = TypeVar("R")

EVENT_LABELS = {
    "submitted": "提交申请",
    "accept": "受理",
    "refuse": "不予受理",
    "supplement_requested": "一次性告知补正",
    "materials_supplied": "补齐材料",
    "start_work": "部门开始办理",
    "task_ready": "环节待办",
    "task_skipped": "环节跳过",
    "task_completed": "环节办结",
    "task_cancelled": "环节取消",
    "task_claimed": "签收",
    "claimed": "签收",
    "released": "退回待办池",
    "signed": "签署",
    "signer_added": "加签",
    "delegation_returned": "委派办理完毕",
    "sent_back": "退回",
    "taken_back": "撤回",
    "form_edited": "修改表单",
    "suspend": "暂停计时",
    "clock_stopped": "停止计时",
    "clock_resumed": "恢复计时",
    "extended": "延长审批",
    "withdraw": "撤回申请",
    "reject": "不予许可",
    "terminate": "终止办理",
    "complete": "办结",
    "certificates_issued": "出件",
    "evaluated": "好差评",
    "edge": "流转",
}


# ----------------------------------------------------------------------------------------------
# typed rows: each dataclass's fields are the columns read


@dataclass(frozen=True)
class Signature:
    id: int
    task_id: int
    position: int
    kind: str  # level | department | role | user
    party: str
    signed_by: str | None
    signed_at: datetime | None
    outcome: str | None
    opinion: str | None


@dataclass(frozen=True)
class TaskView:
    id: int
    step_id: str
    kind: str
    name: str
    department: str
    state: str
    outcome: str | None
    assignee: str | None
    delegated_by: str | None
    opinion: str | None
    ready_at: datetime
    claimed_at: datetime | None
    completed_at: datetime | None
    completed_by: str | None
    due_at: datetime | None
    warn_at: datetime | None
    sla_state: str | None
    provisional: bool
    waiting: str | None
    superseded: bool
    signoffs_open: int
    work_minutes: int | None
    paused_minutes: int
    signoffs: tuple[Signature, ...] = ()

    @property
    def state_label(self) -> str:
        return TASK_STATE_LABELS.get(self.state, self.state)


@dataclass(frozen=True)
class SupplementView:
    id: int
    task_id: int | None
    missing: list[Any]
    notice: str
    requested_by: str
    requested_at: datetime
    supplied_at: datetime | None


@dataclass(frozen=True)
class SuspensionView:
    id: int
    kind: str
    reason: str
    expected: str | None
    requested_by: str
    started_at: datetime
    ended_at: datetime | None
    result: str | None


@dataclass(frozen=True)
class ExtensionView:
    id: int
    amount: str
    approver: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class CertificateView:
    id: int
    key: str
    name: str
    issuer: str
    number: str
    electronic: bool
    delivery: str
    tracking_number: str | None
    issued_at: datetime


@dataclass(frozen=True)
class UrgeView:
    id: int
    task_id: int | None
    level: str
    by: str
    message: str
    due_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class EvaluationView:
    id: int
    level: int
    channel: str
    comment: str | None
    rater: str
    at: datetime
    rectification_task: int | None


@dataclass(frozen=True)
class AlertView:
    id: int
    kind: str
    task_id: int | None
    department: str | None
    recipient_role: str | None
    message: str
    raised_at: datetime


@dataclass(frozen=True)
class EventView:
    id: int
    at: datetime
    kind: str
    actor: str | None
    task_id: int | None
    step_id: str | None
    from_state: str | None
    to_state: str | None
    edge_from: str | None
    edge_to: str | None
    data: dict[str, Any] | None

    @property
    def label(self) -> str:
        return EVENT_LABELS.get(self.kind, self.kind)


@dataclass(frozen=True)
class CaseSummary:
    id: int
    number: str
    definition_key: str
    definition_version: int
    definition_name: str
    state: str
    outcome: str | None
    applicant_id: str | None
    applicant_name: str | None
    submitted_at: datetime
    accepted_at: datetime | None
    closed_at: datetime | None
    due_at: datetime | None
    warn_at: datetime | None
    sla_state: str | None
    remaining_minutes: int | None
    channel: str = "window"  # where it came in: a service centre's window or online
    centre: str | None = None  # the window's service centre (service_centres.code)

    @property
    def state_label(self) -> str:
        return CASE_STATE_LABELS.get(self.state, self.state)

    @property
    def sla_label(self) -> str:
        return SLA_LABELS.get(self.sla_state or "", "不限时")

    @property
    def remaining_label(self) -> str:
        return describe_minutes(self.remaining_minutes)


@dataclass(frozen=True)
class CaseDetail:
    """Everything about one case, as of one consistent read."""

    case: CaseSummary
    applicant: dict[str, Any]
    form: dict[str, Any]
    materials: list[Any]
    deferred: list[Any]  # 容缺: materials still owed
    deferred_due_at: datetime | None
    provisional: bool
    reason: str | None
    remedy: str | None
    tasks: tuple[TaskView, ...]  # every task, superseded ones too, oldest first, each with its sign-offs
    supplements: tuple[SupplementView, ...]
    suspensions: tuple[SuspensionView, ...]
    extensions: tuple[ExtensionView, ...]
    certificates: tuple[CertificateView, ...]
    urges: tuple[UrgeView, ...]
    evaluation: EvaluationView | None
    alerts: tuple[AlertView, ...]
    timeline: tuple[EventView, ...]  # the case's events, oldest first


def _select(table: Table, cls: type[Any]) -> Any:
    names = [f.name for f in dataclasses.fields(cls) if f.name in table.c]
    return select(*(table.c[n] for n in names))


def _read(conn: Connection, cls: type[R], query: Any) -> tuple[R, ...]:
    return tuple(cls(**row._mapping) for row in conn.execute(query))


_CASE_COLUMNS = [c for c in _cases.columns if c.name not in ("idempotency_key", "version", "revision")]


def _of_case(table: Table, cls: type[Any]) -> Any:
    return _select(table, cls).where(table.c.case_id == bindparam("case_id")).order_by(table.c.id)


# The case page's statements, compiled once per dialect and run on the driver cursor (store/prepared.py):
# a dozen small reads by key, where SQLAlchemy's per-statement work would cost more than the reads.
_SQL = prepared.Statements(
    {
        "case_by_id": select(*_CASE_COLUMNS).where(_cases.c.id == bindparam("case_id")),
        "case_by_number": select(*_CASE_COLUMNS).where(_cases.c.number == bindparam("number")),
        "tasks": _of_case(_tasks, TaskView),
        "signoffs": _select(_slots, Signature)
        .join(_tasks, _tasks.c.id == _slots.c.task_id)
        .where(_tasks.c.case_id == bindparam("case_id"))
        .order_by(_slots.c.task_id, _slots.c.position),
        "supplements": _of_case(Supplement.__table__, SupplementView),
        "suspensions": _of_case(Suspension.__table__, SuspensionView),
        "extensions": _of_case(Extension.__table__, ExtensionView),
        "certificates": _of_case(Certificate.__table__, CertificateView),
        "urges": _of_case(Urge.__table__, UrgeView),
        "evaluations": _of_case(Evaluation.__table__, EvaluationView),
        "alerts": _of_case(Alert.__table__, AlertView),
        "events": _of_case(_events, EventView),
        "open_suspension": select(Suspension.__table__.c.started_at).where(
            Suspension.__table__.c.case_id == bindparam("case_id"), Suspension.__table__.c.ended_at.is_(None)
        ),
    }
)


def _fetch(conn: Connection, name: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    return prepared.fetch(conn, _SQL.get(name, conn.dialect), values)


def _case_row(conn: Connection, case_id: int | None, number: str | None) -> Any:
    if case_id is not None:
        rows = _fetch(conn, "case_by_id", {"case_id": case_id})
    elif number is not None:
        rows = _fetch(conn, "case_by_number", {"number": number})
    else:
        raise ValueError("give a case id or a case number")
    if not rows:
        raise NotFound(f"case {number if case_id is None else case_id} does not exist")
    return SimpleNamespace(**rows[0])


def _summary(
    conn: Connection, row: Any, now: datetime, calendar: BusinessCalendar, name: str | None = None
) -> CaseSummary:
    applicant_id, applicant_name = applicant_of(row.applicant)
    if name is None:
        name = definition_names(conn, [(row.definition_key, row.definition_version)]).get(
            (row.definition_key, row.definition_version), row.definition_key
        )
    paused_since = None
    if row.state == "suspended" and row.due_at is not None:
        found = _fetch(conn, "open_suspension", {"case_id": row.id})
        paused_since = found[0]["started_at"] if found else None
    live = row.state in ("accepted", "in_progress", "suspended")
    return CaseSummary(
        id=row.id,
        number=row.number,
        definition_key=row.definition_key,
        definition_version=row.definition_version,
        definition_name=name,
        state=row.state,
        outcome=row.outcome,
        applicant_id=applicant_id,
        applicant_name=applicant_name,
        submitted_at=row.submitted_at,
        accepted_at=row.accepted_at,
        closed_at=row.closed_at,
        due_at=row.due_at,
        warn_at=row.warn_at,
        sla_state=row.sla_state,
        remaining_minutes=remaining_minutes(calendar, row.due_at, now, paused_since) if live else None,
        channel=row.channel,
        centre=row.centre,
    )


def case_detail(
    conn: Connection,
    case_id: int | None = None,
    *,
    number: str | None = None,
    now: datetime,
    calendar: BusinessCalendar,
) -> CaseDetail:
    """The case page: form, materials, 容缺, every task with its sign-offs, 补正, suspensions, extensions,
    certificates, urges, evaluation, alerts and the timeline. ``NotFound`` for an unknown case."""
    aware(now)
    row = _case_row(conn, case_id, number)
    key = {"case_id": row.id}

    def of_case(name: str, cls: type[R]) -> tuple[R, ...]:
        return tuple(cls(**values) for values in _fetch(conn, name, key))

    signatures: dict[int, list[Signature]] = {}
    for slot in of_case("signoffs", Signature):
        signatures.setdefault(slot.task_id, []).append(slot)
    tasks = tuple(
        TaskView(**values, signoffs=tuple(signatures.get(values["id"], ()))) for values in _fetch(conn, "tasks", key)
    )
    evaluations = of_case("evaluations", EvaluationView)
    return CaseDetail(
        case=_summary(conn, row, now, calendar),
        applicant=row.applicant,
        form=row.form,
        materials=row.materials,
        deferred=row.deferred,
        deferred_due_at=row.deferred_due_at,
        provisional=bool(row.provisional),
        reason=row.reason,
        remedy=row.remedy,
        tasks=tasks,
        supplements=of_case("supplements", SupplementView),
        suspensions=of_case("suspensions", SuspensionView),
        extensions=of_case("extensions", ExtensionView),
        certificates=of_case("certificates", CertificateView),
        urges=of_case("urges", UrgeView),
        evaluation=evaluations[0] if evaluations else None,
        alerts=of_case("alerts", AlertView),
        timeline=of_case("events", EventView),
    )


# ----------------------------------------------------------------------------------------------
# the path for the live flowchart

STEP_STATE_LABELS = {
    "done": "已办",
    "running": "办理中",
    "warning": "预警（黄牌）",
    "overdue": "逾期（红牌）",
    "skipped": "跳过",
    "waiting": "等待补正",
    "not_reached": "未到达",
    "rejected": "不予许可",
    "returned": "已退回（待重办）",
    "cancelled": "已取消",
}


@dataclass(frozen=True)
class StepOnPath:
    step_id: str
    state: str  # a key of STEP_STATE_LABELS
    task_id: int | None
    remaining_minutes: int | None  # of a running step
    note: str | None

    @property
    def label(self) -> str:
        return STEP_STATE_LABELS[self.state]


@dataclass(frozen=True)
class CasePath:
    """What ``render.flowchart(definition, departments, path.overlay, path.taken)`` draws."""

    case_id: int
    definition_key: str
    definition_version: int
    steps: Mapping[str, StepOnPath]
    taken: frozenset[tuple[str, str]]  # edges the case went along (skipped ones left out)

    @property
    def overlay(self) -> dict[str, StepOverlay]:
        return {s.step_id: StepOverlay(state=s.state, note=s.note) for s in self.steps.values()}


def case_path(
    conn: Connection, case_id: int, *, now: datetime, calendar: BusinessCalendar, step_ids: list[str] | None = None
) -> CasePath:
    """Each step's state from its newest task (``not_reached`` without one, ``returned`` when 退回/撤回
    superseded it and it is still to redo) and the edges taken (``events`` of kind ``edge``, by
    ``ix_events_case``). ``step_ids``: the definition's steps, so unreached ones are listed too."""
    aware(now)
    row = _case_row(conn, case_id, None)
    tasks = conn.execute(
        select(
            _tasks.c.id,
            _tasks.c.step_id,
            _tasks.c.state,
            _tasks.c.outcome,
            _tasks.c.superseded,
            _tasks.c.waiting,
            _tasks.c.sla_state,
            _tasks.c.due_at,
        )
        .where(_tasks.c.case_id == case_id)
        .order_by(_tasks.c.id)
    ).all()
    newest: dict[str, Any] = {}
    for task in tasks:
        newest[task.step_id] = task
    paused_since = None
    if row.state == "suspended":
        found = _fetch(conn, "open_suspension", {"case_id": case_id})
        paused_since = found[0]["started_at"] if found else None
    steps: dict[str, StepOnPath] = {}
    for step_id in step_ids or []:
        steps[step_id] = StepOnPath(step_id, "not_reached", None, None, None)
    for step_id, task in newest.items():
        if step_id.startswith("__"):  # 差评整改 is no step of the definition
            continue
        state, remaining, note = _step_state(task), None, None
        if state in ("running", "warning", "overdue", "waiting"):
            remaining = remaining_minutes(calendar, task.due_at, now, paused_since)
            note = describe_minutes(remaining) if task.due_at is not None else None
            if task.sla_state == "paused":
                note = f"暂停计时 · {note}" if note else "暂停计时"
        steps[step_id] = StepOnPath(step_id, state, task.id, remaining, note)
    edges = conn.execute(
        select(_events.c.edge_from, _events.c.edge_to, _events.c.data)
        .where(_events.c.case_id == case_id, _events.c.kind == "edge")
        .order_by(_events.c.id)
    ).all()
    skipped = {s for s, v in steps.items() if v.state == "skipped"}
    taken = frozenset(
        (e.edge_from, e.edge_to) for e in edges if not (e.data or {}).get("skipped") and e.edge_from not in skipped
    )
    return CasePath(row.id, row.definition_key, row.definition_version, steps, taken)


def _step_state(task: Any) -> str:
    if task.superseded:
        return "returned"
    if task.state == "completed":
        return "rejected" if task.outcome == "reject" else "done"
    if task.state in ("skipped", "cancelled"):
        return task.state
    if task.waiting == "applicant":
        return "waiting"
    if task.sla_state in ("warning", "overdue"):
        return task.sla_state
    return "running"


__all__ = [
    "CaseDetail",
    "CasePath",
    "CaseSummary",
    "StepOnPath",
    "case_detail",
    "case_path",
]
