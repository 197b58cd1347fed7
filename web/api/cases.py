"""``/api/cases``: submit an application (idempotent), list and read cases, the live flowchart, and
what the window, the departments and the applicant do to a case (accept, refuse, 补正, 特别程序, 延长,
撤回, 好差评 …). Each POST is one engine call; the answer is the case as it is afterwards."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select

from orchestrator.definition.model import DEFINITION_KEY_PATTERN, IDENT_PATTERN
from orchestrator.engine.commands.clock import SUSPENSION_KINDS
from orchestrator.engine.commands.closing import EVALUATION_CHANNELS
from orchestrator.engine.errors import InvalidData
from orchestrator.engine.forms import check_form
from orchestrator.engine.read import CaseFilter, case_detail, case_path, search_cases, step_names
from orchestrator.engine.read.common import department_names
from orchestrator.engine.read.search import MAX_VISITS, Channel
from orchestrator.engine.unit import find_case_by_idempotency_key
from orchestrator.render import render
from orchestrator.store.db import reading
from orchestrator.store.models import Case

from ..accounts import Viewer, audit
from ..deps import Services, WebError, client_ip, services, visible_case_id
from .access import (
    WORKERS,
    applicant_agent,
    applicants_case,
    case_reader,
    case_worker,
    now,
    result,
    viewed,
)
from .definitions import departments_of
from .models import (
    ERRORS,
    NO_CONTROL,
    SVG,
    ActionResult,
    CaseDetailOut,
    CaseNumber,
    CaseSummaryOut,
    CursorText,
    Key,
    Limit,
    LimitText,
    Note,
    Page,
    Person,
    actions_of,
    case_detail_out,
    case_summary,
    time_cursor,
)

router = APIRouter(tags=["cases"])

CASE_STATES = (
    "submitted",
    "accepted",
    "in_progress",
    "suspended",
    "completed",
    "not_accepted",
    "rejected",
    "withdrawn",
    "terminated",
)
SLA_STATES = ("on_track", "warning", "overdue", "paused")
SuspensionKind = Literal[tuple(k for k in SUSPENSION_KINDS if k != "supplement")]  # type: ignore[valid-type]
EvaluationChannel = Literal[EVALUATION_CHANNELS]  # type: ignore[valid-type]
IDEMPOTENCY_KEY = r"^[\x21-\x7e]{1,64}$"  # printable ASCII, no spaces: a UUID fits


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------------
# submitting


class Applicant(_Body):
    id: str = Field(min_length=1, max_length=64, pattern=NO_CONTROL, description="身份证号 or 统一社会信用代码")
    name: str = Field(min_length=1, max_length=200, pattern=NO_CONTROL, description="a person's or a company's name")
    phone: str | None = Field(None, max_length=32, pattern=NO_CONTROL)


class Submission(_Body):
    definition: str = Field(max_length=64, pattern=DEFINITION_KEY_PATTERN, description="the 一件事's key")
    applicant: Applicant
    form: dict[str, Any] = Field(
        default_factory=dict, description="field key → value, as GET /api/definitions/{key} lists the fields"
    )
    materials: list[Key] = Field(default_factory=list, max_length=1000, description="material keys supplied")
    channel: Literal["window", "online"] | None = Field(
        None,
        description="window (综合窗口: at your service centre) or online (a portal account); default: yours",
    )


def _scoped(user_id: str, key: str) -> str:
    """The stored key: the client's key within its own account (another client's same key is another)."""
    return "api:" + hashlib.sha256(f"{user_id}\n{key}".encode()).hexdigest()[:40]


def _same_application(svc: Services, case_id: int, body: Submission, channel: str) -> bool:
    """Whether the case is what this request would make: the definition, applicant, materials and the
    form as checked (defaults filled in), read back from the case itself."""
    with reading(svc.engine.db) as conn:
        row = conn.execute(
            select(
                Case.definition_key, Case.definition_version, Case.applicant, Case.form, Case.materials, Case.channel
            ).where(Case.id == case_id)
        ).one()
        definition = svc.engine.definitions.get(conn, row.definition_key, row.definition_version)
    given = (body.definition, channel, body.applicant.model_dump(exclude_none=True), sorted(set(body.materials)))
    if (row.definition_key, row.channel, row.applicant, sorted(row.materials)) != given:
        return False
    try:
        return check_form(definition, body.form) == row.form
    except InvalidData:
        return False


def _earlier(svc: Services, stored: str) -> int | None:
    with reading(svc.engine.db) as conn:
        return find_case_by_idempotency_key(conn, stored)


REUSED_KEY = "this Idempotency-Key was used for a different application: use a new key for a new one"


@router.post(
    "/cases",
    status_code=201,
    response_model=CaseSummaryOut,
    responses={
        **ERRORS,
        200: {"model": CaseSummaryOut, "description": "a replay: this Idempotency-Key made this case before"},
        201: {"description": "the new case; Location names it"},
    },
)
def submit_case(
    body: Submission,
    request: Request,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=IDEMPOTENCY_KEY,
            description="1–64 printable ASCII characters (a UUID): a retry with the same key and body returns "
            "the same case (200); the same key with another body is refused (409)",
        ),
    ] = None,
    viewer: Viewer = Depends(applicant_agent),
    svc: Services = Depends(services),
) -> CaseSummaryOut:
    """An application arrives: at a window (channel window, the window's service centre) or from the
    online portal (channel online). The case waits for acceptance (综合受理)."""
    window = viewer.has("window")
    channel = "window" if window else "online"
    if body.channel is not None and body.channel != channel:
        why = "a window submits at its service centre (window)" if window else "a portal account submits online"
        raise WebError(422, "invalid_data", f"channel {body.channel}: {why}")
    stored = _scoped(viewer.user_id, idempotency_key) if idempotency_key is not None else None
    earlier = _earlier(svc, stored) if stored else None
    if earlier is not None:
        if not _same_application(svc, earlier, body, channel):
            raise WebError(409, "conflict", REUSED_KEY)
        response.status_code = 200
        shown = result(svc, viewer, earlier).case
        response.headers["Location"] = f"/api/cases/{shown.number}"
        return shown
    case_id = svc.engine.submit_case(
        body.definition,
        body.applicant.model_dump(exclude_none=True),
        body.form,
        body.materials,
        stored,
        channel=channel,
        centre=viewer.centre if window else None,
    )
    if stored and not _same_application(svc, case_id, body, channel):  # a concurrent request with the key won
        raise WebError(409, "conflict", REUSED_KEY)
    shown = result(svc, viewer, case_id).case
    audit(svc.engine.db, viewer.user_id, "case_submitted", shown.number, client_ip(request), channel=channel)
    response.headers["Location"] = f"/api/cases/{shown.number}"
    return shown


# ---------------------------------------------------------------------------------------------------
# reading


def _moment(value: datetime | None, name: str) -> datetime | None:
    try:
        return value.astimezone(UTC) if value is not None else None
    except (OverflowError, ValueError):
        raise WebError(422, "invalid_data", f"{name}: a time between the years 1900 and 9000, please") from None


STEP_PATTERN = r"^(__)?[a-z][a-z0-9_]*$"  # a definition's step, or a case's own (__rectification__ …)


@router.get("/cases", response_model=Page[CaseSummaryOut], responses=ERRORS)
def list_cases(
    definition: Annotated[str | None, Query(max_length=64, pattern=DEFINITION_KEY_PATTERN)] = None,
    state: Annotated[Literal[CASE_STATES] | None, Query()] = None,  # type: ignore[valid-type]
    sla_state: Annotated[Literal[SLA_STATES] | None, Query()] = None,  # type: ignore[valid-type]
    applicant: Annotated[
        str | None, Query(min_length=1, max_length=200, pattern=NO_CONTROL, description="id or name, exact")
    ] = None,
    number: Annotated[
        str | None, Query(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9-]+$", description="a number prefix")
    ] = None,
    submitted_from: Annotated[AwareDatetime | None, Query(description="at or after")] = None,
    submitted_to: Annotated[AwareDatetime | None, Query(description="before")] = None,
    live: Annotated[bool | None, Query(description="accepted, in progress or suspended (or not)")] = None,
    channel: Annotated[Channel | None, Query(description="where the application came in")] = None,
    at_centre: Annotated[bool | None, Query(description="recorded at a service centre's window (or not)")] = None,
    closed_from: Annotated[AwareDatetime | None, Query(description="closed (any outcome) at or after")] = None,
    closed_to: Annotated[AwareDatetime | None, Query(description="closed before")] = None,
    department: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=32,
            pattern=IDENT_PATTERN,
            description="a task of this department completed; with step, done_from, done_to: one task meets all",
        ),
    ] = None,
    step: Annotated[
        str | None,
        Query(min_length=1, max_length=64, pattern=STEP_PATTERN, description="a task of this step completed"),
    ] = None,
    done_from: Annotated[AwareDatetime | None, Query(description="a task completed at or after")] = None,
    done_to: Annotated[AwareDatetime | None, Query(description="a task completed before")] = None,
    rated_from: Annotated[AwareDatetime | None, Query(description="rated (好差评) at or after")] = None,
    rated_to: Annotated[AwareDatetime | None, Query(description="rated before")] = None,
    rated_department: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=32,
            pattern=IDENT_PATTERN,
            description="rated, and the rating counts for this department: it completed a task of the case "
            "(差评整改 and 否定报备 aside)",
        ),
    ] = None,
    visits: Annotated[int | None, Query(ge=0, le=MAX_VISITS, description="跑动次数, exactly")] = None,
    max_visits: Annotated[int | None, Query(ge=0, le=MAX_VISITS, description="跑动次数, at most")] = None,
    cursor: CursorText = None,
    limit: Limit = 50,
    viewer: Viewer = Depends(case_reader),
    svc: Services = Depends(services),
) -> Page[CaseSummaryOut]:
    """Cases newest first, a page at a time (keyset: pass `next` as `cursor`). Staff and supervisors
    see the cases their departments work on; windows, managers and admins every case. Applicant ids
    are masked in lists. The filters after `submitted_to` are the managers' dashboard's: each keeps
    exactly the cases its figure counts (docs/api.md)."""
    visibility: dict[str, Any] = {}
    if not (viewer.reads_everything or viewer.has("window")):  # as web.deps.visible_case_id
        visibility = {"departments": tuple(sorted(viewer.departments)), "worker": viewer.user_id}
    filters = CaseFilter(
        definition_key=definition,
        state=state,
        sla_state=sla_state,
        applicant=applicant,
        number_prefix=number,
        submitted_from=_moment(submitted_from, "submitted_from"),
        submitted_to=_moment(submitted_to, "submitted_to"),
        live=live,
        channel=channel,
        at_centre=at_centre,
        closed_from=_moment(closed_from, "closed_from"),
        closed_to=_moment(closed_to, "closed_to"),
        done_department=department,
        done_step=step,
        done_from=_moment(done_from, "done_from"),
        done_to=_moment(done_to, "done_to"),
        rated_from=_moment(rated_from, "rated_from"),
        rated_to=_moment(rated_to, "rated_to"),
        rated_department=rated_department,
        visits=visits,
        max_visits=max_visits,
        **visibility,
    )
    with reading(svc.engine.db) as conn:
        _known(conn, definition, step, department, rated_department)
        page = search_cases(
            conn, filters, now=now(svc), calendar=svc.engine.calendar, cursor=time_cursor(cursor), limit=limit
        )
    return Page[CaseSummaryOut](items=[case_summary(c, False) for c in page.items], next=page.next)


def _known(conn: Connection, definition: str | None, step: str | None, *departments: str | None) -> None:
    """A department or step nobody has is a mistake, not a filter that finds nothing."""
    if any(departments):
        known = department_names(conn)
        for code in filter(None, departments):
            if code not in known:
                raise WebError(422, "invalid_data", f"no department {code}")
    if step and step not in step_names(conn, definition):
        raise WebError(422, "invalid_data", f"no step {step}" + (f" in {definition}" if definition else ""))


@router.get("/cases/{number}", response_model=CaseDetailOut, responses=ERRORS)
def get_case(
    number: CaseNumber, request: Request, viewer: Viewer = Depends(case_reader), svc: Services = Depends(services)
) -> CaseDetailOut:
    """Everything about one case: state, deadlines, every task with its signatures, 补正, suspensions,
    extensions, certificates, the evaluation, alerts, the timeline, and what you may do now."""
    case_id = visible_case_id(svc.engine, viewer, number)
    with reading(svc.engine.db) as conn:
        detail = case_detail(conn, case_id, now=now(svc), calendar=svc.engine.calendar)
    actions = svc.engine.available_actions(viewer.user_id, case_id=case_id) if viewer.has(*WORKERS) else None
    viewed(svc, viewer, case_id, "api:case", request)
    return case_detail_out(detail, viewer.sees_identities, actions_of(actions) if actions else [])


@router.get("/cases/{number}/flowchart.svg", response_class=Response, responses={**ERRORS, **SVG})
def case_flowchart(
    number: CaseNumber, request: Request, viewer: Viewer = Depends(case_reader), svc: Services = Depends(services)
) -> Response:
    """The case's live flowchart: each step coloured by its state (done, running, 黄牌, 红牌, skipped …),
    the path taken drawn bold."""
    case_id = visible_case_id(svc.engine, viewer, number)
    with reading(svc.engine.db) as conn:
        key, version = conn.execute(
            select(Case.definition_key, Case.definition_version).where(Case.id == case_id)
        ).one()
        definition = svc.engine.definitions.get(conn, key, version)
        path = case_path(
            conn, case_id, now=now(svc), calendar=svc.engine.calendar, step_ids=[s.id for s in definition.steps]
        )
        departments = departments_of(conn, definition.departments)
    svg = render(definition, departments, "svg", path.overlay, path.taken)
    viewed(svc, viewer, case_id, "api:flowchart", request)
    return Response(svg, media_type="image/svg+xml")


# ---------------------------------------------------------------------------------------------------
# the window: 受理, 不予受理, 一次性告知


class Acceptance(_Body):
    deferred: list[Key] = Field(
        default_factory=list, max_length=1000, description="容缺受理: deferrable materials still to come"
    )
    deferred_limit: LimitText | None = Field(None, description="when the deferred materials are due (e.g. 5d)")
    opinion: Note | None = None


class Refusal(_Body):
    reason: Note = Field(min_length=1, description="the written reason the applicant is told")
    remedy: Note | None = Field(None, description="行政复议 / 行政诉讼; default: the definition's")


class SupplementNotice(_Body):
    missing: list[Key] = Field(min_length=1, max_length=1000, description="every material missing (一次性告知)")
    notice: Note = Field(min_length=1, description="what the applicant is told")


def _case(svc: Services, viewer: Viewer, number: str) -> int:
    return visible_case_id(svc.engine, viewer, number)


@router.post("/cases/{number}/accept", response_model=ActionResult, responses=ERRORS)
def accept_case(
    number: CaseNumber,
    body: Acceptance | None = None,
    viewer: Viewer = Depends(case_worker),
    svc: Services = Depends(services),
) -> ActionResult:
    """受理 (the window); deferrable materials may follow (容缺受理) by `deferred_limit`."""
    body = body or Acceptance()
    case_id = _case(svc, viewer, number)
    svc.engine.accept_case(
        case_id, viewer.user_id, deferred=body.deferred, deferred_limit=body.deferred_limit, opinion=body.opinion
    )
    return result(svc, viewer, case_id)


@router.post("/cases/{number}/refuse", response_model=ActionResult, responses=ERRORS)
def refuse_case(
    number: CaseNumber, body: Refusal, viewer: Viewer = Depends(case_worker), svc: Services = Depends(services)
) -> ActionResult:
    """不予受理, with the reason and the remedy. It takes effect when the window's leader confirms it
    (POST /api/tasks/{report task}/confirm-refusal)."""
    case_id = _case(svc, viewer, number)
    svc.engine.refuse_case(case_id, viewer.user_id, body.reason, body.remedy)
    return result(svc, viewer, case_id)


@router.post("/cases/{number}/supplement", response_model=ActionResult, responses=ERRORS)
def request_supplement(
    number: CaseNumber,
    body: SupplementNotice,
    viewer: Viewer = Depends(case_worker),
    svc: Services = Depends(services),
) -> ActionResult:
    """一次性告知补正: one notice listing every missing material (within 5 working days of receipt)."""
    case_id = _case(svc, viewer, number)
    notice = svc.engine.request_supplement(case_id, viewer.user_id, body.missing, body.notice)
    return result(svc, viewer, case_id, created_id=notice)


# ---------------------------------------------------------------------------------------------------
# the clock: 特别程序, 延长审批; 催办


class Suspension(_Body):
    kind: SuspensionKind = Field(description="expert_review (专家评审), hearing (听证), inspection (检验) …")
    reason: Note = Field(min_length=1)
    expected: LimitText = Field(description="how long it is expected to take; the applicant is told (Art. 45)")


class Resumption(_Body):
    result: Note = ""


class Extension(_Body):
    amount: LimitText = Field(description="how much longer (Art. 42: once per case, within the legal allowance)")
    approver: Person = Field(description="the 负责人 who approved it")
    reason: Note = Field(min_length=1, description="the applicant is told")


class Urge(_Body):
    message: Note = Field(min_length=1)
    level: Literal["urge", "supervise"] = Field("urge", description="urge (催办) or supervise (督办)")
    within: LimitText | None = Field(None, description="by when it should be done")


@router.post("/cases/{number}/suspend", response_model=ActionResult, responses=ERRORS)
def suspend_case(
    number: CaseNumber, body: Suspension, viewer: Viewer = Depends(case_worker), svc: Services = Depends(services)
) -> ActionResult:
    """特别程序: the clock stops until resume."""
    case_id = _case(svc, viewer, number)
    suspension = svc.engine.suspend_case(case_id, viewer.user_id, body.kind, body.reason, body.expected)
    return result(svc, viewer, case_id, created_id=suspension)


@router.post("/cases/{number}/resume", response_model=ActionResult, responses=ERRORS)
def resume_case(
    number: CaseNumber,
    body: Resumption | None = None,
    viewer: Viewer = Depends(case_worker),
    svc: Services = Depends(services),
) -> ActionResult:
    """特别程序结束: the clock runs again; due times move out by the time it stood still."""
    case_id = _case(svc, viewer, number)
    svc.engine.resume_case(case_id, viewer.user_id, (body or Resumption()).result)
    return result(svc, viewer, case_id)


@router.post("/cases/{number}/extend", response_model=ActionResult, responses=ERRORS)
def extend_case(
    number: CaseNumber, body: Extension, viewer: Viewer = Depends(case_worker), svc: Services = Depends(services)
) -> ActionResult:
    """延长审批: the case limit grows, once per case."""
    case_id = _case(svc, viewer, number)
    svc.engine.extend_case(case_id, viewer.user_id, body.amount, body.approver, body.reason)
    return result(svc, viewer, case_id)


@router.post("/cases/{number}/urge", response_model=ActionResult, responses=ERRORS)
def urge_case(
    number: CaseNumber, body: Urge, viewer: Viewer = Depends(case_worker), svc: Services = Depends(services)
) -> ActionResult:
    """催办 / 督办 the case: whoever holds its open work is told."""
    case_id = _case(svc, viewer, number)
    urge = svc.engine.urge(viewer.user_id, body.message, case_id=case_id, level=body.level, within=body.within)
    return result(svc, viewer, case_id, created_id=urge)


# ---------------------------------------------------------------------------------------------------
# the applicant (through a window or the portal): 补正, 撤回, 好差评


class _ForApplicant(_Body):
    applicant_id: str = Field(
        min_length=1, max_length=64, pattern=NO_CONTROL, description="the applicant's id: it must be the case's"
    )


class Supply(_ForApplicant):
    materials: list[Key] = Field(min_length=1, max_length=1000, description="the material keys now supplied")


class Withdrawal(_ForApplicant):
    reason: Note = ""


class Evaluation(_ForApplicant):
    level: int = Field(ge=1, le=5, description="1 非常满意, 2 满意, 3 基本满意, 4 不满意, 5 非常不满意")
    channel: EvaluationChannel = Field("pc", description="where the applicant rated: pc, mobile, hall …")
    comment: Note = ""


@router.post("/cases/{number}/supply", response_model=ActionResult, responses=ERRORS)
def supply_materials(
    number: CaseNumber,
    body: Supply,
    request: Request,
    viewer: Viewer = Depends(applicant_agent),
    svc: Services = Depends(services),
) -> ActionResult:
    """The applicant supplies what a 补正 notice asked for, or the 容缺 materials owed."""
    case_id = applicants_case(svc, number, body.applicant_id)
    svc.engine.supply_materials(case_id, body.applicant_id, body.materials)
    audit(svc.engine.db, viewer.user_id, "materials_supplied", number, client_ip(request))
    return result(svc, viewer, case_id)


@router.post("/cases/{number}/withdraw", response_model=ActionResult, responses=ERRORS)
def withdraw_case(
    number: CaseNumber,
    body: Withdrawal,
    request: Request,
    viewer: Viewer = Depends(applicant_agent),
    svc: Services = Depends(services),
) -> ActionResult:
    """撤回申请 (the applicant's): open tasks are cancelled."""
    case_id = applicants_case(svc, number, body.applicant_id)
    svc.engine.withdraw_case(case_id, body.applicant_id, body.reason)
    audit(svc.engine.db, viewer.user_id, "case_withdrawn", number, client_ip(request))
    return result(svc, viewer, case_id)


@router.post("/cases/{number}/evaluate", response_model=ActionResult, responses=ERRORS)
def evaluate_case(
    number: CaseNumber,
    body: Evaluation,
    request: Request,
    viewer: Viewer = Depends(applicant_agent),
    svc: Services = Depends(services),
) -> ActionResult:
    """好差评, once the case has ended (whatever the outcome), once per case; 4 or 5 opens a
    rectification task."""
    case_id = applicants_case(svc, number, body.applicant_id)
    evaluation = svc.engine.evaluate_case(case_id, body.applicant_id, body.level, body.channel, body.comment)
    audit(svc.engine.db, viewer.user_id, "case_evaluated", number, client_ip(request))
    return result(svc, viewer, case_id, created_id=evaluation)
