"""``/api/tasks``: my queue (待办, 在办, 已办, a department's pool), one task with what I may do to it, and
the work itself: 签收, 放回, 办理 (approve / reject / return), 签署, 转办, 委派, 改派, 加签, 退回, 撤回, 出件,
the leader's decision on a refusal (不予审批报告制), 催办, and a supervisor's incidents."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.definition.model import DEFINITION_KEY_PATTERN, IDENT_PATTERN
from orchestrator.engine.read import TaskFilter, case_detail, claimed, done, queue
from orchestrator.store.db import reading

from ..accounts import Viewer
from ..deps import Services, WebError, services, visible_task
from ..masking import mask_id, masked_applicant
from .access import WORKERS, case_reader, case_worker, now, result, viewed
from .models import (
    ERRORS,
    NO_CONTROL,
    ActionOut,
    ActionResult,
    CaseSummaryOut,
    CursorText,
    Key,
    Limit,
    LimitText,
    Note,
    Page,
    Person,
    TaskId,
    TaskOut,
    actions_of,
    case_summary,
    due_cursor,
    time_cursor,
)

router = APIRouter(tags=["tasks"])


class TaskItem(BaseModel):
    """One line of a queue (mine, department, claimed) or of 已办 (done)."""

    task_id: int
    case_id: int
    case_number: str
    definition_key: str
    definition_name: str
    step_id: str
    step_name: str
    department: str
    state: str = Field(description="the task's state now")
    kind: str | None = None
    assignee: str | None = None
    ready_at: datetime | None = None
    due_at: datetime | None = None
    sla_state: str | None = Field(None, description="on_track, warning (黄牌), overdue (红牌), paused")
    remaining_minutes: int | None = Field(None, description="working minutes left; negative when overdue")
    remaining_label: str | None = None
    applicant_id: str | None = Field(None, description="masked")
    applicant_name: str | None = None
    waiting: bool | None = Field(None, description="waiting for the applicant's 补正 materials")
    can_sign: bool | None = Field(None, description="you have a signature to give on it now (POST …/sign)")
    signature: str | None = Field(None, description="which: department:xf, role:fire_reviewer, level:审核, user:x")
    source: str | None = Field(None, description="pool, participant, countersign, added_signer or claimed")
    what: str | None = Field(None, description="done: completed or signed")
    at: datetime | None = Field(None, description="done: when")
    outcome: str | None = None
    opinion: str | None = None
    superseded: bool | None = Field(None, description="done: redone after 退回/撤回")


def _queued(item: Any) -> TaskItem:
    return TaskItem(
        task_id=item.task_id,
        case_id=item.case_id,
        case_number=item.case_number,
        definition_key=item.definition_key,
        definition_name=item.definition_name,
        step_id=item.step_id,
        step_name=item.step_name,
        department=item.department,
        state=item.state,
        kind=item.kind,
        assignee=item.assignee,
        ready_at=item.ready_at,
        due_at=item.due_at,
        sla_state=item.sla_state,
        remaining_minutes=item.remaining_minutes,
        remaining_label=item.remaining_label,
        applicant_id=mask_id(item.applicant_id) if item.applicant_id else None,
        applicant_name=item.applicant_name,
        waiting=item.waiting,
        can_sign=item.can_sign,
        signature=item.signature,
        source=item.source,
    )


def _done(item: Any) -> TaskItem:
    return TaskItem(
        task_id=item.task_id,
        case_id=item.case_id,
        case_number=item.case_number,
        definition_key=item.definition_key,
        definition_name=item.definition_name,
        step_id=item.step_id,
        step_name=item.step_name,
        department=item.department,
        state=item.task_state,
        what=item.what,
        at=item.at,
        outcome=item.outcome,
        opinion=item.opinion,
        superseded=item.superseded,
        signature=item.signature,
    )


@router.get("/tasks", response_model=Page[TaskItem], responses=ERRORS)
def list_tasks(
    scope: Annotated[
        Literal["mine", "department", "claimed", "done"],
        Query(
            description="mine: 待办 of all my departments and the signatures I owe; department: one department's "
            "pool; claimed: 在办 (claimed by me); done: 已办 (newest first)"
        ),
    ] = "mine",
    department: Annotated[
        str | None, Query(min_length=1, max_length=32, pattern=IDENT_PATTERN, description="scope=department")
    ] = None,
    definition: Annotated[str | None, Query(max_length=64, pattern=DEFINITION_KEY_PATTERN)] = None,
    step: Annotated[str | None, Query(max_length=64, pattern=IDENT_PATTERN)] = None,
    sla_state: Annotated[Literal["on_track", "warning", "overdue", "paused"] | None, Query()] = None,
    number: Annotated[
        str | None, Query(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9-]+$", description="a number prefix")
    ] = None,
    applicant: Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_CONTROL)] = None,
    cursor: CursorText = None,
    limit: Limit = 50,
    viewer: Viewer = Depends(case_reader),
    svc: Services = Depends(services),
) -> Page[TaskItem]:
    """A queue, a page at a time (keyset: pass `next` as `cursor`); open tasks earliest due first,
    untimed (即办) last. Filters apply to the open queues, not to done."""
    given = {"definition_key": definition, "step_id": step, "sla_state": sla_state}
    given.update(case_number=number, applicant=applicant)
    filters = TaskFilter(**given) if any(given.values()) else None
    moment, calendar = now(svc), svc.engine.calendar
    with reading(svc.engine.db) as conn:
        if scope == "done":
            if filters is not None:
                raise WebError(422, "invalid_data", "已办 (scope=done) takes no filters: leave them out")
            page = done(conn, viewer.user_id, cursor=time_cursor(cursor), limit=limit)
            return Page[TaskItem](items=[_done(i) for i in page.items], next=page.next)
        after = due_cursor(cursor)
        if scope == "claimed":
            page = claimed(
                conn, viewer.user_id, now=moment, calendar=calendar, filters=filters, cursor=after, limit=limit
            )
        elif scope == "department":
            code = _department(viewer, department)
            page = queue(
                conn, now=moment, calendar=calendar, department=code, filters=filters, cursor=after, limit=limit
            )
        else:
            page = queue(
                conn, now=moment, calendar=calendar, user=viewer.user_id, filters=filters, cursor=after, limit=limit
            )
    return Page[TaskItem](items=[_queued(i) for i in page.items], next=page.next)


def _department(viewer: Viewer, department: str | None) -> str:
    if department is None:
        if len(viewer.departments) == 1:
            return next(iter(viewer.departments))
        raise WebError(422, "invalid_data", "scope=department needs ?department=<code>: which department's pool")
    if department not in viewer.departments and not viewer.reads_everything:
        raise WebError(403, "forbidden", f"你不是部门 {department} 的成员，不能查看其待办")
    return department


class TaskDetailOut(BaseModel):
    task: TaskOut
    case: CaseSummaryOut
    applicant: dict[str, Any] = Field(description="masked unless you work cases")
    form: dict[str, Any]
    materials: list[Any]
    deferred: list[Any]
    actions: list[ActionOut] = Field(description="what you may do to the task (and its case) now")


@router.get("/tasks/{task_id}", response_model=TaskDetailOut, responses=ERRORS)
def get_task(
    task_id: TaskId, request: Request, viewer: Viewer = Depends(case_reader), svc: Services = Depends(services)
) -> TaskDetailOut:
    """One task with its case's summary and form, and the actions you may take (the buttons to show)."""
    row = visible_task(svc.engine, viewer, task_id)
    with reading(svc.engine.db) as conn:
        detail = case_detail(conn, row.case_id, now=now(svc), calendar=svc.engine.calendar)
    task = next(t for t in detail.tasks if t.id == task_id)
    actions = svc.engine.available_actions(viewer.user_id, task_id=task_id) if viewer.has(*WORKERS) else None
    viewed(svc, viewer, row.case_id, f"api:task:{task_id}", request)
    return TaskDetailOut(
        task=TaskOut.model_validate(task),
        case=case_summary(detail.case, viewer.sees_identities),
        applicant=masked_applicant(detail.applicant or {}, viewer.sees_identities),
        form=detail.form or {},
        materials=list(detail.materials or []),
        deferred=list(detail.deferred or []),
        actions=actions_of(actions) if actions else [],
    )


# ---------------------------------------------------------------------------------------------------
# the work


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Completion(_Body):
    outcome: Literal["approve", "reject", "return"] = Field(
        description="approve (通过); reject (不予许可: goes to the department's leader first); return (补正: back "
        "to the applicant, the clock stops)"
    )
    opinion: Note = Field("", description="required for reject and return: the applicant is told why")
    form: dict[str, Any] | None = Field(None, description="changes to the form fields this step may edit")
    missing: list[Key] = Field(default_factory=list, max_length=1000, description="return: the materials asked for")
    remedy: Note | None = Field(None, description="reject: 行政复议 / 行政诉讼; default: the definition's")


class Signature(_Body):
    outcome: Literal["approve", "reject"] = "approve"
    opinion: Note = ""


class Handover(_Body):
    to_user: Person
    reason: Note = ""


class Delegation(_Body):
    to_user: Person
    note: Note = ""


class AddedSigner(_Body):
    signer: Person
    note: Note = ""


class SendBack(_Body):
    reason: Note = Field(min_length=1)
    to_step: Key | None = Field(None, description="an earlier completed step; default: the previous one")


class Issue(_Body):
    delivery: Literal["window", "mail", "online"] = Field("window", description="窗口领取, 免费邮寄 or online")
    numbers: dict[Key, Annotated[str, Field(min_length=1, max_length=80)]] | None = Field(
        None, description="certificate key → number; default: generated"
    )
    tracking_number: Key | None = Field(None, description="mail: the parcel's tracking number")
    electronic: bool = Field(True, description="an e-certificate (电子证照) as well")


class LeaderDecision(_Body):
    opinion: Note = ""
    remedy: Note | None = Field(None, description="confirm: replaces the remedy proposed")


class SendBackRefusal(_Body):
    opinion: Note = Field(min_length=1, description="why the refusal is not upheld")


class TaskUrge(_Body):
    message: Note = Field(min_length=1)
    level: Literal["urge", "supervise"] = "urge"
    within: LimitText | None = None


class IncidentNote(_Body):
    note: Note = ""


def _task(svc: Services, viewer: Viewer, task_id: int) -> Any:
    return visible_task(svc.engine, viewer, task_id)


@router.post("/tasks/{task_id}/claim", response_model=ActionResult, responses=ERRORS)
def claim_task(
    task_id: TaskId, viewer: Viewer = Depends(case_worker), svc: Services = Depends(services)
) -> ActionResult:
    """签收: the task is yours."""
    row = _task(svc, viewer, task_id)
    svc.engine.claim_task(task_id, viewer.user_id)
    return result(svc, viewer, row.case_id, task_id)


@router.post("/tasks/{task_id}/release", response_model=ActionResult, responses=ERRORS)
def release_task(
    task_id: TaskId, viewer: Viewer = Depends(case_worker), svc: Services = Depends(services)
) -> ActionResult:
    """Put a claimed task back into the department's pool."""
    row = _task(svc, viewer, task_id)
    svc.engine.release_task(task_id, viewer.user_id)
    return result(svc, viewer, row.case_id, task_id)


@router.post("/tasks/{task_id}/complete", response_model=ActionResult, responses=ERRORS)
def complete_task(
    task_id: TaskId, body: Completion, viewer: Viewer = Depends(case_worker), svc: Services = Depends(services)
) -> ActionResult:
    """办理: approve, reject or return. On a task with signatures owed (踏勘, 会签, 审核链, 加签) your call
    gives your signature, as …/sign does."""
    row = _task(svc, viewer, task_id)
    svc.engine.complete_task(
        task_id,
        viewer.user_id,
        body.outcome,
        body.opinion,
        form_updates=body.form,
        missing=body.missing,
        remedy=body.remedy,
    )
    return result(svc, viewer, row.case_id, task_id)


@router.post("/tasks/{task_id}/sign", response_model=ActionResult, responses=ERRORS)
def sign_task(
    task_id: TaskId,
    body: Signature | None = None,
    viewer: Viewer = Depends(case_worker),
    svc: Services = Depends(services),
) -> ActionResult:
    """签署: your signature on a joint survey (踏勘), a countersign (会签/或签), a review chain's level or as an
    added signer (加签). The last signature completes the task. 409 when it owes none."""
    body = body or Signature()
    row = _task(svc, viewer, task_id)
    with reading(svc.engine.db) as conn:
        detail = case_detail(conn, row.case_id, now=now(svc), calendar=svc.engine.calendar)
    task = next(t for t in detail.tasks if t.id == task_id)
    if task.signoffs_open == 0:
        raise WebError(409, "not_allowed", f"任务 {task_id} 没有待签署的会签/踏勘签字：请用 /complete 办理")
    svc.engine.complete_task(task_id, viewer.user_id, body.outcome, body.opinion)
    return result(svc, viewer, row.case_id, task_id)


@router.post("/tasks/{task_id}/transfer", response_model=ActionResult, responses=ERRORS)
def transfer_task(
    task_id: TaskId, body: Handover, viewer: Viewer = Depends(case_worker), svc: Services = Depends(services)
) -> ActionResult:
    """转办: your claimed task becomes another member's."""
    row = _task(svc, viewer, task_id)
    svc.engine.transfer_task(task_id, viewer.user_id, body.to_user, body.reason)
    return result(svc, viewer, row.case_id, task_id)


@router.post("/tasks/{task_id}/reassign", response_model=ActionResult, responses=ERRORS)
def reassign_task(
    task_id: TaskId, body: Handover, viewer: Viewer = Depends(case_worker), svc: Services = Depends(services)
) -> ActionResult:
    """改派: the department's supervisor gives the task to another member."""
    row = _task(svc, viewer, task_id)
    svc.engine.reassign_task(task_id, viewer.user_id, body.to_user, body.reason)
    return result(svc, viewer, row.case_id, task_id)


@router.post("/tasks/{task_id}/delegate", response_model=ActionResult, responses=ERRORS)
def delegate_task(
    task_id: TaskId, body: Delegation, viewer: Viewer = Depends(case_worker), svc: Services = Depends(services)
) -> ActionResult:
    """委派: someone works your task; their completion comes back to you."""
    row = _task(svc, viewer, task_id)
    svc.engine.delegate_task(task_id, viewer.user_id, body.to_user, body.note)
    return result(svc, viewer, row.case_id, task_id)


@router.post("/tasks/{task_id}/add-signer", response_model=ActionResult, responses=ERRORS)
def add_signer(
    task_id: TaskId, body: AddedSigner, viewer: Viewer = Depends(case_worker), svc: Services = Depends(services)
) -> ActionResult:
    """加签: one more person must sign before the task can be completed."""
    row = _task(svc, viewer, task_id)
    svc.engine.add_signer(task_id, viewer.user_id, body.signer, body.note)
    return result(svc, viewer, row.case_id, task_id)


@router.post("/tasks/{task_id}/send-back", response_model=ActionResult, responses=ERRORS)
def send_back(
    task_id: TaskId, body: SendBack, viewer: Viewer = Depends(case_worker), svc: Services = Depends(services)
) -> ActionResult:
    """退回: back to the previous (or a named earlier) step, which gets a new task (`created_id`)."""
    row = _task(svc, viewer, task_id)
    redone = svc.engine.send_back(task_id, viewer.user_id, body.reason, body.to_step)
    return result(svc, viewer, row.case_id, task_id, created_id=redone)


@router.post("/tasks/{task_id}/take-back", response_model=ActionResult, responses=ERRORS)
def take_back(
    task_id: TaskId, viewer: Viewer = Depends(case_worker), svc: Services = Depends(services)
) -> ActionResult:
    """撤回: undo your completion while the next steps are untouched; your task is open again (`created_id`)."""
    row = _task(svc, viewer, task_id)
    reopened = svc.engine.take_back(task_id, viewer.user_id)
    return result(svc, viewer, row.case_id, reopened, created_id=reopened)


@router.post("/tasks/{task_id}/issue", response_model=ActionResult, responses=ERRORS)
def issue_certificates(
    task_id: TaskId,
    body: Issue | None = None,
    viewer: Viewer = Depends(case_worker),
    svc: Services = Depends(services),
) -> ActionResult:
    """出件: the certificates of the issue step (those whose issuer approved), which completes it."""
    body = body or Issue()
    row = _task(svc, viewer, task_id)
    numbers = svc.engine.issue_certificates(
        task_id,
        viewer.user_id,
        body.delivery,
        numbers=body.numbers,
        tracking_number=body.tracking_number,
        electronic=body.electronic,
    )
    return result(svc, viewer, row.case_id, task_id, certificates=numbers)


@router.post("/tasks/{task_id}/confirm-refusal", response_model=ActionResult, responses=ERRORS)
def confirm_refusal(
    task_id: TaskId,
    body: LeaderDecision | None = None,
    viewer: Viewer = Depends(case_worker),
    svc: Services = Depends(services),
) -> ActionResult:
    """不予审批报告制: the deciding department's leader confirms a proposed refusal (report task); it takes
    effect and the applicant is told, with the remedy."""
    body = body or LeaderDecision()
    row = _task(svc, viewer, task_id)
    svc.engine.confirm_refusal(task_id, viewer.user_id, body.opinion, remedy=body.remedy)
    return result(svc, viewer, row.case_id, task_id)


@router.post("/tasks/{task_id}/send-back-refusal", response_model=ActionResult, responses=ERRORS)
def send_back_refusal(
    task_id: TaskId, body: SendBackRefusal, viewer: Viewer = Depends(case_worker), svc: Services = Depends(services)
) -> ActionResult:
    """The leader does not uphold the refusal: the handler decides again."""
    row = _task(svc, viewer, task_id)
    svc.engine.send_back_refusal(task_id, viewer.user_id, body.opinion)
    return result(svc, viewer, row.case_id, task_id)


@router.post("/tasks/{task_id}/urge", response_model=ActionResult, responses=ERRORS)
def urge_task(
    task_id: TaskId, body: TaskUrge, viewer: Viewer = Depends(case_worker), svc: Services = Depends(services)
) -> ActionResult:
    """催办 / 督办 a task: its assignee (or its department's pool) is told."""
    row = _task(svc, viewer, task_id)
    urge = svc.engine.urge(viewer.user_id, body.message, task_id=task_id, level=body.level, within=body.within)
    return result(svc, viewer, row.case_id, task_id, created_id=urge)


@router.post("/tasks/{task_id}/retry-incident", response_model=ActionResult, responses=ERRORS)
def retry_incident(
    task_id: TaskId,
    body: IncidentNote | None = None,
    viewer: Viewer = Depends(case_worker),
    svc: Services = Depends(services),
) -> ActionResult:
    """The supervisor has an automatic step whose attempts ran out tried again."""
    row = _task(svc, viewer, task_id)
    svc.engine.retry_incident(task_id, viewer.user_id, (body or IncidentNote()).note)
    return result(svc, viewer, row.case_id, task_id)


@router.post("/tasks/{task_id}/hand-over", response_model=ActionResult, responses=ERRORS)
def hand_over(
    task_id: TaskId,
    body: IncidentNote | None = None,
    viewer: Viewer = Depends(case_worker),
    svc: Services = Depends(services),
) -> ActionResult:
    """The supervisor hands such an automatic step to a person: a manual task in the department's pool."""
    row = _task(svc, viewer, task_id)
    svc.engine.hand_over(task_id, viewer.user_id, (body or IncidentNote()).note)
    return result(svc, viewer, row.case_id, task_id)
