"""Pydantic models shared by the API modules: the error body every 4xx/5xx answers with, the bounded
input types, pages, and the case and task as the API shows them (built from the read side's results)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.engine.read import DueKey, TimeKey

from ..deps import MAX_ID, WebError
from ..masking import mask_id, masked_applicant


class ErrorBody(BaseModel):
    error: str = Field(description="a stable code: not_found, not_allowed, conflict, invalid_data, busy, …")
    message: str = Field(description="what was refused and what to do instead")
    details: Any = Field(None, description="every problem found, for invalid_data")


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        400: "the body could not be read (not UTF-8 JSON)",
        401: "no or unknown token",
        403: "not allowed for this role",
        404: "unknown, or not within your departments",
        409: "not allowed in the current state, or changed meanwhile",
        413: "request body too large",
        422: "bad input",
        429: "too many attempts",
        503: "database busy or down: try again after Retry-After seconds",
    }.items()
}

SVG = {200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}}, "description": "the flowchart, SVG"}}

# ---------------------------------------------------------------------------------------------------
# bounded input: every text has a length, every id fits 64 bits, so nothing odd reaches the database

NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"  # one line of text: no NUL, no control characters
Note = Annotated[str, Field(max_length=5000, description="free text, at most 5,000 characters")]
Person = Annotated[str, Field(min_length=1, max_length=64, pattern=NO_CONTROL, description="a user id")]
Key = Annotated[str, Field(min_length=1, max_length=64, pattern=NO_CONTROL)]
LimitText = Annotated[
    str,
    Field(
        max_length=10,
        pattern=r"^\d{1,3}(\.\d{1,2})?[dhn]$",
        description="d = working days, h = working hours, n = natural days (at most 999)",
        examples=["5d", "0.5d", "4h"],
    ),
]
TaskId = Annotated[int, Path(ge=1, le=MAX_ID, description="the task's id")]
CaseNumber = Annotated[
    str,
    Path(
        min_length=1,
        max_length=40,
        pattern=r"^[A-Za-z0-9-]+$",
        description="办件编号 (e.g. TB20260302-1A2B3C4D5E) or the case's id",
    ),
]
Limit = Annotated[int, Query(ge=1, le=500, description="items a page")]
CursorText = Annotated[
    str | None, Query(max_length=200, description="`next` of the previous page; leave out for the first page")
]


def due_cursor(cursor: str | None) -> str | None:
    """A queue cursor (``DueKey``) as the read gave it out, or 422."""
    if cursor:
        try:
            key = DueKey.decode(cursor)
        except ValueError as exc:
            raise WebError(422, "invalid_data", str(exc)) from None
        _check_key(cursor, key.due_at, key.id, timed=not key.untimed)
    return cursor or None


def time_cursor(cursor: str | None) -> str | None:
    """A newest-first cursor (``TimeKey``) as the read gave it out, or 422."""
    if cursor:
        try:
            key = TimeKey.decode(cursor)
        except ValueError as exc:
            raise WebError(422, "invalid_data", str(exc)) from None
        _check_key(cursor, key.at, key.id, timed=True)
    return cursor or None


def _check_key(cursor: str, at: datetime, key: int, *, timed: bool) -> None:
    """Reject what decodes but cannot be compared with the columns: naive or out-of-range times,
    ids outside 64 bits."""
    bad = not -MAX_ID <= key <= MAX_ID
    if timed and not bad:
        try:
            bad = at.tzinfo is None or at.utcoffset() is None or not 1900 <= at.astimezone(UTC).year <= 9000
        except (OverflowError, ValueError):
            bad = True
    if bad:
        raise WebError(422, "invalid_data", f"cursor {cursor[:80]!r} is not one this API gave out; start again")


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None = Field(description="the cursor of the next page (send as ?cursor=); null on the last page")


# ---------------------------------------------------------------------------------------------------
# cases and tasks as the API shows them


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class CaseSummaryOut(_Out):
    id: int
    number: str = Field(description="办件编号")
    definition_key: str
    definition_version: int
    definition_name: str
    state: str = Field(description="submitted, accepted, in_progress, suspended, completed, not_accepted, …")
    state_label: str
    outcome: str | None
    applicant_id: str | None = Field(description="masked (110101********1234) in lists and for managers")
    applicant_name: str | None
    submitted_at: datetime
    accepted_at: datetime | None
    closed_at: datetime | None
    due_at: datetime | None = Field(description="承诺办结时间")
    warn_at: datetime | None
    sla_state: str | None = Field(description="on_track, warning (黄牌), overdue (红牌), paused")
    sla_label: str
    remaining_minutes: int | None = Field(description="working minutes left; negative when overdue")
    remaining_label: str
    channel: str = Field(description="where it came in: window (综合窗口) or online")
    centre: str | None = Field(description="the window's service centre")


def case_summary(summary: Any, unmasked: bool) -> CaseSummaryOut:
    shown = CaseSummaryOut.model_validate(summary)
    if not unmasked:
        shown.applicant_id = mask_id(shown.applicant_id) if shown.applicant_id else shown.applicant_id
    return shown


class SignatureOut(_Out):
    id: int
    position: int
    kind: str = Field(description="level (审核链), department (踏勘), role (会签/或签), user (加签)")
    party: str
    signed_by: str | None
    signed_at: datetime | None
    outcome: str | None
    opinion: str | None


class TaskOut(_Out):
    id: int
    step_id: str
    kind: str
    name: str
    department: str
    state: str = Field(description="ready, claimed, completed, skipped, cancelled")
    state_label: str
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
    waiting: str | None = Field(description="applicant: waiting for 补正 materials")
    superseded: bool = Field(description="redone after 退回/撤回")
    signoffs_open: int
    work_minutes: int | None
    paused_minutes: int
    signoffs: list[SignatureOut]


class ActionOut(BaseModel):
    name: str = Field(description="the action, e.g. claim, approve, accept; POST it (see docs/api.md)")
    label: str
    subject: str = Field(description="task or case")


def actions_of(available: Any) -> list[ActionOut]:
    return [ActionOut(name=a.name, label=a.label, subject=a.subject) for a in available.actions]


class SupplementOut(_Out):
    id: int
    task_id: int | None
    missing: list[Any]
    notice: str
    requested_by: str
    requested_at: datetime
    supplied_at: datetime | None


class SuspensionOut(_Out):
    id: int
    kind: str
    reason: str
    expected: str | None
    requested_by: str
    started_at: datetime
    ended_at: datetime | None
    result: str | None


class ExtensionOut(_Out):
    id: int
    amount: str
    approver: str
    reason: str
    at: datetime


class CertificateOut(_Out):
    id: int
    key: str
    name: str
    issuer: str
    number: str
    electronic: bool
    delivery: str
    tracking_number: str | None
    issued_at: datetime


class UrgeOut(_Out):
    id: int
    task_id: int | None
    level: str
    by: str
    message: str
    due_at: datetime | None
    created_at: datetime


class EvaluationOut(_Out):
    id: int
    level: int = Field(description="1 非常满意 … 5 非常不满意")
    channel: str
    comment: str | None
    rater: str
    at: datetime
    rectification_task: int | None


class CaseAlertOut(_Out):
    id: int
    kind: str
    task_id: int | None
    department: str | None
    recipient_role: str | None
    message: str
    raised_at: datetime


class EventOut(_Out):
    id: int
    at: datetime
    kind: str
    label: str
    actor: str | None
    task_id: int | None
    step_id: str | None
    from_state: str | None
    to_state: str | None
    edge_from: str | None
    edge_to: str | None
    data: dict[str, Any] | None


class CaseDetailOut(BaseModel):
    case: CaseSummaryOut
    applicant: dict[str, Any] = Field(description="masked unless you work cases (staff, supervisors, windows)")
    form: dict[str, Any] = Field(description="the one form (一表式), as checked and stored")
    materials: list[Any]
    deferred: list[Any] = Field(description="容缺: materials still owed")
    deferred_due_at: datetime | None
    provisional: bool
    reason: str | None
    remedy: str | None
    tasks: list[TaskOut]
    supplements: list[SupplementOut]
    suspensions: list[SuspensionOut]
    extensions: list[ExtensionOut]
    certificates: list[CertificateOut]
    urges: list[UrgeOut]
    evaluation: EvaluationOut | None
    alerts: list[CaseAlertOut]
    timeline: list[EventOut]
    actions: list[ActionOut] = Field(description="what you may do to the case now")


def case_detail_out(detail: Any, unmasked: bool, actions: list[ActionOut]) -> CaseDetailOut:
    """The read side's ``CaseDetail``, the applicant's identity masked unless ``unmasked`` (also where
    the applicant is the actor: the timeline and the evaluation)."""
    applicant_id = (detail.applicant or {}).get("id")

    def who(person: str | None) -> str | None:
        return mask_id(person) if person and not unmasked and person == applicant_id else person

    timeline = [EventOut.model_validate(e) for e in detail.timeline]
    for event in timeline:
        event.actor = who(event.actor)
    evaluation = EvaluationOut.model_validate(detail.evaluation) if detail.evaluation else None
    if evaluation is not None:
        evaluation.rater = who(evaluation.rater) or evaluation.rater
    return CaseDetailOut(
        case=case_summary(detail.case, unmasked),
        applicant=masked_applicant(detail.applicant or {}, unmasked),
        form=detail.form or {},
        materials=list(detail.materials or []),
        deferred=list(detail.deferred or []),
        deferred_due_at=detail.deferred_due_at,
        provisional=detail.provisional,
        reason=detail.reason,
        remedy=detail.remedy,
        tasks=[TaskOut.model_validate(t) for t in detail.tasks],
        supplements=[SupplementOut.model_validate(s) for s in detail.supplements],
        suspensions=[SuspensionOut.model_validate(s) for s in detail.suspensions],
        extensions=[ExtensionOut.model_validate(s) for s in detail.extensions],
        certificates=[CertificateOut.model_validate(c) for c in detail.certificates],
        urges=[UrgeOut.model_validate(u) for u in detail.urges],
        evaluation=evaluation,
        alerts=[CaseAlertOut.model_validate(a) for a in detail.alerts],
        timeline=timeline,
        actions=actions,
    )


class ActionResult(BaseModel):
    """What a POST to a case or a task answers: the case (and the task) as they are now."""

    case: CaseSummaryOut
    task: TaskOut | None = Field(None, description="the task acted on, as it is now")
    created_id: int | None = Field(
        None,
        description="the record the action made: the 补正 notice, the suspension, the evaluation, the urge, "
        "or the task opened again (send-back, take-back)",
    )
    certificates: list[str] = Field(default_factory=list, description="the numbers issued (issue)")
