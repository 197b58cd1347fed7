"""The staff's task pages: 部门待办 (``/tasks``), 我的在办 (``/tasks/mine``), 已办 (``/tasks/done``), the task
page (``/tasks/{id}``) and its actions (``POST /tasks/{id}/<action>``).

The lists are the engine's queues (orchestrator.engine.read: queue, claimed, done), a page at a time
behind a keyset cursor, refreshed by htmx every 10 s. The task page shows exactly the actions
``engine.available_actions`` allows; each action is a small form that makes one engine call and comes
back to the page with a flash, or, refused, shows the engine's reason in ``#messages``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from orchestrator.definition.model import Definition, FormField
from orchestrator.engine import read
from orchestrator.engine.commands.clock import SUSPENSION_KINDS
from orchestrator.engine.forms import text_problem
from orchestrator.engine.read.common import SLA_LABELS, department_names, latest_definition_names, remaining_minutes
from orchestrator.engine.read.queues import TaskFilter
from orchestrator.engine.rules import CASE_STEPS, RECTIFICATION_STEP, TASK_OPEN
from orchestrator.store.db import reading
from orchestrator.store.models import Case, Membership, NegativeReport, User

from ..accounts import Viewer, record_view
from ..deps import Services, WebError, client_ip, page_viewer, require, services, visible_task
from .cases import CaseView, case_labels, done_response, load_case

router = APIRouter()

PAGE_SIZE = 25
TABS = (("queue", "/tasks", "部门待办"), ("mine", "/tasks/mine", "我的在办"), ("done", "/tasks/done", "已办"))
REPORT_KIND = "report"
FLASH = {
    "claim": "已签收，任务在「我的在办」中",
    "release": "已放回部门待办",
    "approve": "已提交：通过",
    "reject": "不予许可已报部门负责人确认（不予审批报告制），确认前申请人不会收到告知",
    "return": "已退回申请人补正，办件暂停计时",
    "issue": "已出件（证照发放），环节办结",
    "send_back": "已退回，被退回的环节重新办理",
    "take_back": "已撤回，任务重新打开",
    "transfer": "已转办",
    "delegate": "已委派，对方办理后回到你这里审核",
    "reassign": "已改派",
    "add_signer": "已加签",
    "urge": "已发出催办/督办",
    "confirm_refusal": "已确认不予决定，申请人将收到书面告知",
    "send_back_refusal": "已退回经办人重新决定",
    "retry_incident": "已重试自动步骤",
    "hand_over": "已转人工办理，任务进入部门待办",
    "suspend": "已进入特别程序，办件暂停计时",
    "resume": "已恢复计时",
    "extend": "已延长审批期限",
}
WINDOW_ACTIONS = {"accept", "refuse", "request_supplement"}  # the acceptance step is worked at /window

staff = require("staff", "supervisor")


# ---------------------------------------------------------------------------------------------------
# the lists


@dataclass(frozen=True)
class ListQuery:
    """A list's filters and where its page starts, as the query string carries them."""

    definition: str = ""
    step: str = ""
    sla: str = ""
    number: str = ""
    cursor: str = ""

    def filters(self) -> TaskFilter | None:
        given = {
            "definition_key": self.definition or None,
            "step_id": self.step or None,
            "sla_state": self.sla or None,
            "case_number": self.number or None,
        }
        return TaskFilter(**given) if any(given.values()) else None

    def url(self, base: str, **changes: str) -> str:
        values = {k: v for k, v in {**self.__dict__, **changes}.items() if v}
        return base + ("?" + urlencode(values) if values else "")

    @property
    def filtered(self) -> bool:
        return bool(self.definition or self.step or self.sla or self.number)


def list_query(
    definition: str = Query("", max_length=64),
    step: str = Query("", max_length=64),
    sla: str = Query("", max_length=16),
    number: str = Query("", max_length=64),
    cursor: str = Query("", max_length=200),
) -> ListQuery:
    if sla and sla not in SLA_LABELS:
        raise WebError(422, "invalid_data", f"时效状态 {sla!r} 无效：可选 " + "、".join(SLA_LABELS))
    for what, value in (("事项", definition), ("环节", step), ("办件编号", number), ("翻页位置", cursor)):
        if text_problem(value, 200):  # NUL or a lone surrogate: the database would refuse it
            raise WebError(422, "invalid_data", f"{what}含有无效字符")
    return ListQuery(definition.strip(), step.strip(), sla, number.strip(), cursor)


@router.get("/tasks")
def queue_page(
    request: Request,
    query: ListQuery = Depends(list_query),
    viewer: Viewer = Depends(staff),
    svc: Services = Depends(services),
) -> Response:
    return _list(request, svc, viewer, "queue", query)


@router.get("/tasks/mine")
def mine_page(
    request: Request,
    query: ListQuery = Depends(list_query),
    viewer: Viewer = Depends(staff),
    svc: Services = Depends(services),
) -> Response:
    return _list(request, svc, viewer, "mine", query)


@router.get("/tasks/done")
def done_page(
    request: Request,
    cursor: str = Query("", max_length=200),
    viewer: Viewer = Depends(staff),
    svc: Services = Depends(services),
) -> Response:
    return _list(request, svc, viewer, "done", ListQuery(cursor=cursor))


def _list(request: Request, svc: Services, viewer: Viewer, tab: str, query: ListQuery) -> Response:
    engine = svc.engine
    now = engine.clock()
    fragment = request.headers.get("HX-Request") == "true"
    cursor = query.cursor or None
    with reading(engine.db) as conn:
        try:
            if tab == "queue":
                page: Any = read.queue(
                    conn,
                    now=now,
                    calendar=engine.calendar,
                    user=viewer.user_id,
                    filters=query.filters(),
                    cursor=cursor,
                    limit=PAGE_SIZE,
                )
            elif tab == "mine":
                page = read.claimed(
                    conn,
                    viewer.user_id,
                    now=now,
                    calendar=engine.calendar,
                    filters=query.filters(),
                    cursor=cursor,
                    limit=PAGE_SIZE,
                )
            else:
                page = read.done(conn, viewer.user_id, cursor=cursor, limit=PAGE_SIZE)
        except ValueError:
            raise WebError(422, "invalid_data", "翻页位置无效，请从第一页开始") from None
        departments = department_names(conn)
        choices = {} if fragment or tab == "done" else _filter_choices(conn, svc, viewer, query)
    base = next(path for name, path, _ in TABS if name == tab)
    context = {
        "nav": "done" if tab == "done" else "tasks",
        "tab": tab,
        "tabs": TABS,
        "base": base,
        "query": query,
        "page": page,
        "now": now,
        "departments": departments,
        "me": viewer.user_id,
        "sla_labels": SLA_LABELS,
        "list_url": query.url(base),
        "next_url": query.url(base, cursor=page.next) if page.next else None,
        "first_url": query.url(base, cursor="") if query.cursor else None,
        **choices,
        **case_labels(),
    }
    template = "tasks/_list.html" if fragment else "tasks/queue.html"
    return svc.templates.TemplateResponse(request, template, context)


def _filter_choices(conn: Any, svc: Services, viewer: Viewer, query: ListQuery) -> dict[str, Any]:
    """The 事项 the viewer's departments take part in and their steps there (every one for a person of
    no department); once a 事项 is chosen, only its steps."""
    names = latest_definition_names(conn)
    mine = viewer.departments
    definitions, steps = [], []
    for key in sorted(names, key=lambda k: names[k]):
        _, definition = svc.engine.definitions.latest(conn, key)
        if mine and not mine & set(definition.departments):
            continue
        definitions.append((key, definition.name))
        if query.definition and key != query.definition:
            continue
        ours = [
            (s.id, s.name)
            for s in definition.steps
            if not mine or s.department in mine or mine & set(getattr(s, "participants", ()))
        ]
        if ours:
            steps.append((definition.name, ours))
    return {"definitions": definitions, "step_groups": steps}


def _row_item(svc: Services, viewer: Viewer, task_id: int, number: str) -> Any:
    """The task's line as the lists show it now: in my claimed tasks, else in the department's queue."""
    engine = svc.engine
    now = engine.clock()
    filters = TaskFilter(case_number=number)
    with reading(engine.db) as conn:
        for page in (
            read.claimed(conn, viewer.user_id, now=now, calendar=engine.calendar, filters=filters, limit=500),
            read.queue(conn, now=now, calendar=engine.calendar, user=viewer.user_id, filters=filters, limit=500),
        ):
            found = next((item for item in page if item.task_id == task_id), None)
            if found is not None:
                return found, department_names(conn)
        return None, department_names(conn)


def _claim_or_release(request: Request, svc: Services, viewer: Viewer, task_id: int, action: str, row: Any) -> Response:
    """From a list row (htmx, target ``#task-<id>``): the row as it is now, and the flash; else the page."""
    if request.headers.get("HX-Target") != f"task-{task_id}":
        return done_response(request, f"/tasks/{task_id}?flash={action}")
    with reading(svc.engine.db) as conn:
        number = conn.execute(select(Case.number).where(Case.id == row.case_id)).scalar_one()
    item, departments = _row_item(svc, viewer, task_id, number)
    return svc.templates.TemplateResponse(
        request,
        "tasks/_row_swap.html",
        {
            "item": item,
            "task_id": task_id,
            "departments": departments,
            "me": viewer.user_id,
            "flash": FLASH[action],
        },
    )


# ---------------------------------------------------------------------------------------------------
# the task page


@dataclass(frozen=True)
class Colleague:
    user_id: str
    name: str


def _task_page_context(svc: Services, viewer: Viewer, task_id: int, case_id: int) -> dict[str, Any]:
    engine = svc.engine
    view = load_case(svc, viewer, case_id)
    task = next(t for t in view.detail.tasks if t.id == task_id)
    definition = view.definition
    step = definition.steps_by_id.get(task.step_id)
    actions = engine.available_actions(viewer.user_id, task_id=task_id)
    names = set(actions.names)
    signature, report, colleagues = None, None, []
    with reading(engine.db) as conn:
        if task.state in TASK_OPEN and task.signoffs_open > 0 and names & {"approve", "reject"}:
            signature = _my_signature(svc, conn, viewer, task_id, view.detail.case.number)
        if task.kind == REPORT_KIND:
            report = conn.execute(
                select(NegativeReport.__table__).where(NegativeReport.report_task_id == task_id)
            ).first()
        if names & {"transfer", "delegate", "reassign", "add_signer"}:
            colleagues = _colleagues(conn, task.department, viewer.user_id)
    editable = set(step.editable) if step is not None and "approve" in names else set()
    on_path = view.path.steps.get(task.step_id)
    if on_path is not None and on_path.task_id == task.id:
        remaining = on_path.remaining_minutes
    elif task.state in TASK_OPEN:  # a refusal report or 差评整改: no step of the flowchart
        remaining = remaining_minutes(engine.calendar, task.due_at, engine.clock())
    else:
        remaining = None
    return {
        "remaining": remaining,
        "nav": "tasks",
        "view": view,
        "case": view.detail.case,
        "task": task,
        "step": step,
        "actions": actions,
        "names": names,
        "labels": {a.name: a.label for a in actions.actions},
        "window_only": bool(names & WINDOW_ACTIONS) or task.kind == "acceptance",
        "editable": editable,
        "approve_label": "提交整改结果" if task.step_id == RECTIFICATION_STEP else _approve_label(task, signature),
        "rectification": task.step_id == RECTIFICATION_STEP,
        "signature": signature,
        "report": report,
        "report_people": view.person(report.proposed_by) if report is not None else None,
        "report_step": next((t.step_id for t in view.detail.tasks if report and t.id == report.task_id), None),
        "colleagues": colleagues,
        "send_back_targets": _send_back_targets(view, task, definition) if "send_back" in names else [],
        "suspension_kinds": {k: v for k, v in SUSPENSION_KINDS.items() if k != "supplement"},
        "may_supervise": viewer.has("supervisor", "manager", "admin"),
        "materials_to_ask": [m for m in definition.materials],
        **case_labels(),
    }


def _my_signature(svc: Services, conn: Any, viewer: Viewer, task_id: int, number: str) -> str | None:
    """The signature the viewer gives on the task now ('level:审核', 'department:xf' …), by the queue's rule."""
    page = read.queue(
        conn,
        now=svc.engine.clock(),
        calendar=svc.engine.calendar,
        user=viewer.user_id,
        filters=TaskFilter(case_number=number),
        limit=500,
    )
    item = next((i for i in page if i.task_id == task_id), None)
    return item.signature if item is not None else None


def _approve_label(task: Any, signature: str | None) -> str:
    """The approve button says what the signature does: sign a survey, a 会签, a review level and pass on."""
    if signature is None:
        return "通过"
    kind, _, party = signature.partition(":")
    if kind == "level":
        levels = [s.party for s in task.signoffs if s.kind == "level" and s.signed_at is None]
        later = levels[levels.index(party) + 1 :] if party in levels else []
        return f"{party}同意，送下一级（{later[0]}）" if later else f"{party}同意（最后一级）"
    return {"department": "踏勘签署：同意", "role": "会签：同意", "user": "加签：同意"}.get(kind, "同意")


def _colleagues(conn: Any, department: str, me: str) -> list[Colleague]:
    rows = conn.execute(
        select(User.id, User.name)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.department == department, User.id != me)
        .distinct()
        .order_by(User.id)
    )
    return [Colleague(r.id, r.name) for r in rows]


def _send_back_targets(view: CaseView, task: Any, definition: Definition) -> list[tuple[str, str]]:
    """Earlier steps people completed in this case (the engine decides which may be sent back to)."""
    entry = definition.entry.id
    done: dict[str, str] = {}
    for t in view.detail.tasks:
        step = definition.steps_by_id.get(t.step_id)
        if (
            step is not None
            and t.step_id not in (entry, task.step_id)
            and t.step_id not in CASE_STEPS
            and step.kind not in ("auto", "notify")
            and t.state == "completed"
            and not t.superseded
        ):
            done[t.step_id] = step.name
    return list(done.items())


@router.get("/tasks/{task_id:int}")
def task_page(
    request: Request,
    task_id: int,
    flash: str = Query("", max_length=32),
    viewer: Viewer = Depends(page_viewer),
    svc: Services = Depends(services),
) -> Response:
    row = visible_task(svc.engine, viewer, task_id)
    context = _task_page_context(svc, viewer, task_id, row.case_id)
    record_view(svc.engine.db, viewer.user_id, row.case_id, f"/tasks/{task_id}", client_ip(request))
    return svc.templates.TemplateResponse(request, "tasks/task.html", {**context, "flash": FLASH.get(flash)})


# ---------------------------------------------------------------------------------------------------
# actions: each parses its form, makes one engine call and goes back to the task page


def _back(request: Request, task_id: int, action: str) -> Response:
    return done_response(request, f"/tasks/{task_id}?flash={action}")


@router.post("/tasks/{task_id:int}/claim")
def claim(
    request: Request, task_id: int, viewer: Viewer = Depends(page_viewer), svc: Services = Depends(services)
) -> Response:
    row = visible_task(svc.engine, viewer, task_id)
    svc.engine.claim_task(task_id, viewer.user_id)
    return _claim_or_release(request, svc, viewer, task_id, "claim", row)


@router.post("/tasks/{task_id:int}/release")
def release(
    request: Request, task_id: int, viewer: Viewer = Depends(page_viewer), svc: Services = Depends(services)
) -> Response:
    row = visible_task(svc.engine, viewer, task_id)
    svc.engine.release_task(task_id, viewer.user_id)
    return _claim_or_release(request, svc, viewer, task_id, "release", row)


def _form_updates(definition: Definition, step_id: str, form: Any) -> dict[str, Any]:
    """The editable fields posted as ``field.<key>``, typed by the definition (the engine checks them)."""
    step = definition.steps_by_id.get(step_id)
    if step is None:
        return {}
    fields = definition.fields_by_key
    updates: dict[str, Any] = {}
    problems = []
    for key in step.editable:
        raw = form.get(f"field.{key}")
        if not isinstance(raw, str) or raw.strip() == "" or key not in fields:
            continue
        try:
            updates[key] = _typed(fields[key], raw.strip())
        except ValueError as exc:
            problems.append({"field": fields[key].label, "problem": str(exc)})
    if problems:
        raise WebError(422, "invalid_data", "表单填写有误", problems)
    return updates


def _typed(field: FormField, raw: str) -> Any:
    if len(raw) > 10_000:
        raise ValueError("内容过长")
    if field.type == "bool":
        if raw not in ("true", "false"):
            raise ValueError("请选择“是”或“否”")
        return raw == "true"
    if field.type == "int":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"“{raw}”不是整数") from None
    if field.type == "number":
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"“{raw}”不是数字") from None
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    return raw


def _task_definition(svc: Services, case_id: int) -> Definition:
    with reading(svc.engine.db) as conn:
        key, version = conn.execute(
            select(Case.definition_key, Case.definition_version).where(Case.id == case_id)
        ).one()
        return svc.engine.definitions.get(conn, key, version)


@router.post("/tasks/{task_id:int}/approve")
async def approve(
    request: Request, task_id: int, viewer: Viewer = Depends(page_viewer), svc: Services = Depends(services)
) -> Response:
    """通过 — or the signature the person gives (踏勘, 会签, a review level), with the step's form edits."""
    row = visible_task(svc.engine, viewer, task_id)
    form = await request.form()
    opinion = _text(form.get("opinion"), "办理意见")
    updates = _form_updates(_task_definition(svc, row.case_id), row.step_id, form)
    svc.engine.complete_task(task_id, viewer.user_id, "approve", opinion, form_updates=updates or None)
    return _back(request, task_id, "approve")


def _text(value: Any, what: str, limit: int = 5000) -> str:
    text = value if isinstance(value, str) else ""
    if len(text) > limit:
        raise WebError(422, "invalid_data", f"{what}过长：最多 {limit} 字")
    return text.strip()


def _required(value: str, what: str) -> str:
    if not value.strip():
        raise WebError(422, "invalid_data", f"请填写{what}")
    return value.strip()


@router.post("/tasks/{task_id:int}/reject")
def reject(
    request: Request,
    task_id: int,
    opinion: str = Form("", max_length=5000),
    remedy: str = Form("", max_length=5000),
    viewer: Viewer = Depends(page_viewer),
    svc: Services = Depends(services),
) -> Response:
    """不予许可: the reason and the remedy; it goes to the department's leader first (不予审批报告制)."""
    visible_task(svc.engine, viewer, task_id)
    reason = _required(opinion, "不予许可的理由")
    svc.engine.complete_task(task_id, viewer.user_id, "reject", reason, remedy=remedy.strip() or None)
    return _back(request, task_id, "reject")


@router.post("/tasks/{task_id:int}/return")
def return_for_supplement(
    request: Request,
    task_id: int,
    opinion: str = Form("", max_length=5000),
    missing: list[str] = Form([]),
    viewer: Viewer = Depends(page_viewer),
    svc: Services = Depends(services),
) -> Response:
    """退回补正: one notice of everything missing; the case's clock stops until the applicant supplies it."""
    visible_task(svc.engine, viewer, task_id)
    notice = _required(opinion, "补正告知（需补正的内容和要求）")
    svc.engine.complete_task(task_id, viewer.user_id, "return", notice, missing=[m[:64] for m in missing[:200]])
    return _back(request, task_id, "return")


@router.post("/tasks/{task_id:int}/issue")
async def issue(
    request: Request, task_id: int, viewer: Viewer = Depends(page_viewer), svc: Services = Depends(services)
) -> Response:
    """出件: the certificates (numbers left empty are numbered by the system) and how they go out."""
    row = visible_task(svc.engine, viewer, task_id)
    form = await request.form()
    step = _task_definition(svc, row.case_id).steps_by_id.get(row.step_id)
    numbers = {}
    for certificate in getattr(step, "certificates", ()):
        given = _text(form.get(f"number.{certificate.key}"), certificate.name, 80)
        if given:
            numbers[certificate.key] = given
    svc.engine.issue_certificates(
        task_id,
        viewer.user_id,
        _text(form.get("delivery"), "送达方式", 16) or "window",
        numbers=numbers or None,
        tracking_number=_text(form.get("tracking_number"), "邮寄单号", 64) or None,
        electronic=form.get("electronic") == "on",
    )
    return _back(request, task_id, "issue")


@router.post("/tasks/{task_id:int}/send_back")
def send_back(
    request: Request,
    task_id: int,
    reason: str = Form("", max_length=5000),
    to_step: str = Form("", max_length=64),
    viewer: Viewer = Depends(page_viewer),
    svc: Services = Depends(services),
) -> Response:
    """退回: to the previous step (or an earlier one), which is redone."""
    visible_task(svc.engine, viewer, task_id)
    svc.engine.send_back(task_id, viewer.user_id, _required(reason, "退回理由"), to_step or None)
    return _back(request, task_id, "send_back")


@router.post("/tasks/{task_id:int}/take_back")
def take_back(
    request: Request, task_id: int, viewer: Viewer = Depends(page_viewer), svc: Services = Depends(services)
) -> Response:
    """撤回: my completion undone while the next steps are untouched."""
    visible_task(svc.engine, viewer, task_id)
    reopened = svc.engine.take_back(task_id, viewer.user_id)
    return _back(request, reopened, "take_back")


def _give(
    request: Request, svc: Services, viewer: Viewer, task_id: int, action: str, to_user: str, note: str
) -> Response:
    visible_task(svc.engine, viewer, task_id)
    person = _required(to_user, "接收人")
    give = {"transfer": svc.engine.transfer_task, "delegate": svc.engine.delegate_task}.get(
        action, svc.engine.reassign_task
    )
    give(task_id, viewer.user_id, person, note.strip())
    return _back(request, task_id, action)


@router.post("/tasks/{task_id:int}/transfer")
def transfer(
    request: Request,
    task_id: int,
    to_user: str = Form("", max_length=64),
    note: str = Form("", max_length=5000),
    viewer: Viewer = Depends(page_viewer),
    svc: Services = Depends(services),
) -> Response:
    """转办: my task becomes a colleague's."""
    return _give(request, svc, viewer, task_id, "transfer", to_user, note)


@router.post("/tasks/{task_id:int}/delegate")
def delegate(
    request: Request,
    task_id: int,
    to_user: str = Form("", max_length=64),
    note: str = Form("", max_length=5000),
    viewer: Viewer = Depends(page_viewer),
    svc: Services = Depends(services),
) -> Response:
    """委派: someone works my task for me; it comes back to me to decide."""
    return _give(request, svc, viewer, task_id, "delegate", to_user, note)


@router.post("/tasks/{task_id:int}/reassign")
def reassign(
    request: Request,
    task_id: int,
    to_user: str = Form("", max_length=64),
    note: str = Form("", max_length=5000),
    viewer: Viewer = Depends(page_viewer),
    svc: Services = Depends(services),
) -> Response:
    """改派: the department's supervisor gives the task to a member."""
    return _give(request, svc, viewer, task_id, "reassign", to_user, note)


@router.post("/tasks/{task_id:int}/add_signer")
def add_signer(
    request: Request,
    task_id: int,
    signer: str = Form("", max_length=64),
    note: str = Form("", max_length=5000),
    viewer: Viewer = Depends(page_viewer),
    svc: Services = Depends(services),
) -> Response:
    """加签: one more person must sign before the task can be completed."""
    visible_task(svc.engine, viewer, task_id)
    svc.engine.add_signer(task_id, viewer.user_id, _required(signer, "加签人"), note.strip())
    return _back(request, task_id, "add_signer")


@router.post("/tasks/{task_id:int}/urge")
def urge(
    request: Request,
    task_id: int,
    message: str = Form("", max_length=5000),
    level: str = Form("urge", pattern="^(urge|supervise)$"),
    within: str = Form("", max_length=16),
    viewer: Viewer = Depends(page_viewer),
    svc: Services = Depends(services),
) -> Response:
    """催办/督办 the task: its holder (or its department's queue) is told."""
    visible_task(svc.engine, viewer, task_id)
    svc.engine.urge(
        viewer.user_id, _required(message, "催办内容"), task_id=task_id, level=level, within=within.strip() or None
    )
    return _back(request, task_id, "urge")


@router.post("/tasks/{task_id:int}/confirm_refusal")
def confirm_refusal(
    request: Request,
    task_id: int,
    opinion: str = Form("", max_length=5000),
    remedy: str = Form("", max_length=5000),
    viewer: Viewer = Depends(page_viewer),
    svc: Services = Depends(services),
) -> Response:
    """The leader confirms a proposed refusal (不予审批报告制): it takes effect, the applicant is told."""
    visible_task(svc.engine, viewer, task_id)
    svc.engine.confirm_refusal(task_id, viewer.user_id, opinion.strip(), remedy=remedy.strip() or None)
    return _back(request, task_id, "confirm_refusal")


@router.post("/tasks/{task_id:int}/send_back_refusal")
def send_back_refusal(
    request: Request,
    task_id: int,
    opinion: str = Form("", max_length=5000),
    viewer: Viewer = Depends(page_viewer),
    svc: Services = Depends(services),
) -> Response:
    """The leader sends a proposed refusal back to the handler, who decides again."""
    visible_task(svc.engine, viewer, task_id)
    svc.engine.send_back_refusal(task_id, viewer.user_id, _required(opinion, "退回意见（为何不同意不予决定）"))
    return _back(request, task_id, "send_back_refusal")


@router.post("/tasks/{task_id:int}/retry_incident")
def retry_incident(
    request: Request,
    task_id: int,
    note: str = Form("", max_length=5000),
    viewer: Viewer = Depends(page_viewer),
    svc: Services = Depends(services),
) -> Response:
    visible_task(svc.engine, viewer, task_id)
    svc.engine.retry_incident(task_id, viewer.user_id, note.strip())
    return _back(request, task_id, "retry_incident")


@router.post("/tasks/{task_id:int}/hand_over")
def hand_over(
    request: Request,
    task_id: int,
    note: str = Form("", max_length=5000),
    viewer: Viewer = Depends(page_viewer),
    svc: Services = Depends(services),
) -> Response:
    visible_task(svc.engine, viewer, task_id)
    svc.engine.hand_over(task_id, viewer.user_id, note.strip())
    return _back(request, task_id, "hand_over")


@router.post("/tasks/{task_id:int}/suspend")
def suspend(
    request: Request,
    task_id: int,
    kind: str = Form("", max_length=32),
    reason: str = Form("", max_length=5000),
    expected: str = Form("", max_length=16),
    viewer: Viewer = Depends(page_viewer),
    svc: Services = Depends(services),
) -> Response:
    """特别程序 (专家评审, 听证, 检验 …): the case's clock stops; the applicant is told the expected time."""
    row = visible_task(svc.engine, viewer, task_id)
    svc.engine.suspend_case(
        row.case_id, viewer.user_id, kind, _required(reason, "特别程序的理由"), _required(expected, "预计所需时间")
    )
    return _back(request, task_id, "suspend")


@router.post("/tasks/{task_id:int}/resume")
def resume(
    request: Request,
    task_id: int,
    result: str = Form("", max_length=5000),
    viewer: Viewer = Depends(page_viewer),
    svc: Services = Depends(services),
) -> Response:
    """特别程序结束: the clock runs again; due times move out by the time it stood still."""
    row = visible_task(svc.engine, viewer, task_id)
    svc.engine.resume_case(row.case_id, viewer.user_id, result.strip())
    return _back(request, task_id, "resume")


@router.post("/tasks/{task_id:int}/extend")
def extend(
    request: Request,
    task_id: int,
    amount: str = Form("", max_length=16),
    approver: str = Form("", max_length=64),
    reason: str = Form("", max_length=5000),
    viewer: Viewer = Depends(page_viewer),
    svc: Services = Depends(services),
) -> Response:
    """延长审批 (行政许可法 Art. 42): once per case, approved by the agency's head, the applicant told why."""
    row = visible_task(svc.engine, viewer, task_id)
    svc.engine.extend_case(
        row.case_id,
        viewer.user_id,
        _required(amount, "延长时间（如 10d）"),
        _required(approver, "批准的负责人"),
        _required(reason, "延长理由"),
    )
    return _back(request, task_id, "extend")
