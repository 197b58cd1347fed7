"""The case page (``/cases/{number}``): one 办件 as its staff see it — the live flowchart and the path taken,
deadlines and working time left, the timeline, suspensions, 补正, extensions, certificates, 好差评, every
task — and 催办/督办 for supervisors and managers. Every view is logged (访问记录).

The views built here (``load_case``) serve the task page too (web/pages/tasks.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy import Connection, select

from orchestrator.definition.model import Definition
from orchestrator.definition.model import Department as DepartmentSpec
from orchestrator.engine import read
from orchestrator.engine.commands.clock import SUSPENSION_KINDS
from orchestrator.engine.commands.closing import EVALUATION_LEVELS
from orchestrator.engine.forms import text_problem
from orchestrator.engine.read.cases import CaseDetail, CasePath, EventView
from orchestrator.engine.read.common import KIND_LABELS
from orchestrator.engine.rules import DEEMED_CONSENT
from orchestrator.engine.tasks import SYSTEM
from orchestrator.render import inline_svg, render
from orchestrator.store.db import reading
from orchestrator.store.models import Department, User

from ..accounts import Viewer, record_view
from ..deps import Services, WebError, client_ip, page_viewer, services, visible_case_id
from ..masking import mask_id, mask_phone, masked_applicant

router = APIRouter()

TASK_OUTCOME_LABELS = {
    "approve": "通过",
    "reject": "不予许可",
    "return": "退回补正",
    "confirmed": "确认不予决定",
    "sent_back": "退回重新决定",
}
SLOT_KIND_LABELS = {"level": "审批层级", "department": "踏勘部门", "role": "会签角色", "user": "加签"}
MATERIAL_SOURCES = {"applicant": "申请人提供", "government": "部门核发", "third_party": "第三方出具"}
DELIVERY_LABELS = {"window": "窗口领取", "mail": "免费邮寄", "online": "网上下载"}
URGE_LABELS = {"urge": "催办", "supervise": "督办"}
CHANNEL_LABELS = {"pc": "电脑端", "mobile": "移动端", "qrcode": "二维码", "hall": "大厅评价器", "phone": "电话"}
APPLICANT_LABELS = {"id": "证件号码", "name": "申请人", "phone": "联系电话", "mobile": "手机", "address": "地址"}
# events the engine's EVENT_LABELS does not name
MORE_EVENT_LABELS = {
    "refusal_proposed": "拟不予决定（报负责人）",
    "refusal_sent_back": "负责人退回重新决定",
    "refusal_confirmed": "负责人确认不予决定",
    "reassigned": "改派",
    "transferred": "转办",
    "delegated": "委派",
    "urge": "催办",
    "supervise": "督办",
    "handed_over": "转人工办理",
    "incident_raised": "自动步骤异常",
    "incident_retried": "重试自动步骤",
    "lookups": "数据共享查询",
    "resume": "恢复计时",
    "task_claimed": "签收",
}
HIDDEN_EVENTS = {"edge"}  # the flowchart draws the path; listing every edge would drown the history


# ---------------------------------------------------------------------------------------------------
# what the case and task pages show


@dataclass(frozen=True)
class FormRow:
    key: str
    label: str
    type: str
    shown: str  # the value as text (masked for who does not see identities)
    value: Any  # the raw value, for an input
    required: bool
    options: list[str] | None
    min: float | None
    max: float | None
    max_length: int | None
    help: str | None


@dataclass(frozen=True)
class MaterialRow:
    key: str
    label: str
    required: bool
    deferrable: bool
    source: str
    status: str  # supplied | deferred (容缺, owed) | requested (补正 asked) | missing


@dataclass(frozen=True)
class TimelineEntry:
    at: Any
    label: str
    kind: str
    actor: str
    step: str
    detail: str


@dataclass(frozen=True)
class CaseView:
    detail: CaseDetail
    definition: Definition
    path: CasePath
    svg: Markup
    applicant: list[tuple[str, str]]
    form: list[FormRow]
    materials: list[MaterialRow]
    timeline: list[TimelineEntry]
    people: dict[str, str]  # user id -> name
    departments: dict[str, str]  # code -> name
    steps: dict[str, str]  # step id -> name
    material_labels: dict[str, str]  # material key -> label

    def person(self, user_id: str | None) -> str:
        return person_label(user_id, self.people, self.detail.applicant)

    def department(self, code: str | None) -> str:
        return self.departments.get(code or "", code or "—")


def load_case(svc: Services, viewer: Viewer, case_id: int) -> CaseView:
    """Everything the case page shows, from one consistent read (the flowchart drawn from it)."""
    engine = svc.engine
    now = engine.clock()
    with reading(engine.db) as conn:
        detail = read.case_detail(conn, case_id, now=now, calendar=engine.calendar)
        summary = detail.case
        definition = engine.definitions.get(conn, summary.definition_key, summary.definition_version)
        path = read.case_path(
            conn, case_id, now=now, calendar=engine.calendar, step_ids=[s.id for s in definition.steps]
        )
        specs = department_specs(conn)
        people = user_names(conn, _people_of(detail))
    unmasked = viewer.sees_identities
    departments = {code: spec.name for code, spec in specs.items()}
    steps = {s.id: s.name for s in definition.steps}
    steps.update({t.step_id: t.name for t in detail.tasks if t.step_id not in steps})
    return CaseView(
        detail=detail,
        definition=definition,
        path=path,
        svg=flowchart_svg(definition, specs, path),
        applicant=[
            (APPLICANT_LABELS.get(k, k), str(v)) for k, v in masked_applicant(detail.applicant, unmasked).items()
        ],
        form=form_rows(definition, detail.form, unmasked),
        materials=material_rows(definition, detail),
        timeline=timeline(detail, Names(people, steps, departments, definition), unmasked),
        people=people,
        departments=departments,
        steps=steps,
        material_labels={m.key: m.label for m in definition.materials},
    )


def department_specs(conn: Connection) -> dict[str, DepartmentSpec]:
    rows = conn.execute(select(Department.code, Department.name, Department.parent, Department.supervisor_role))
    return {
        r.code: DepartmentSpec(code=r.code, name=r.name, parent=r.parent, supervisor_role=r.supervisor_role)
        for r in rows
    }


def user_names(conn: Connection, ids: set[str]) -> dict[str, str]:
    wanted = sorted(i for i in ids if i)
    if not wanted:
        return {}
    return dict(conn.execute(select(User.id, User.name).where(User.id.in_(wanted))).all())


def person_label(user_id: str | None, people: dict[str, str], applicant: dict[str, Any]) -> str:
    if not user_id:
        return "—"
    if user_id == SYSTEM:
        return "系统"
    if user_id == DEEMED_CONSENT:
        return "规则（逾期视为同意）"
    if user_id == applicant.get("id"):
        return "申请人"
    return people.get(user_id, user_id)


def _people_of(detail: CaseDetail) -> set[str]:
    found = {e.actor for e in detail.timeline if e.actor}
    for task in detail.tasks:
        found.update(x for x in (task.assignee, task.completed_by, task.delegated_by) if x)
        found.update(s.signed_by for s in task.signoffs if s.signed_by)
        found.update(s.party for s in task.signoffs if s.kind == "user")
    for event in detail.timeline:
        data = event.data or {}
        found.update(str(data[k]) for k in ("to", "signer") if data.get(k))
    found.update(u.by for u in detail.urges)
    found.update(s.requested_by for s in detail.suspensions)
    return found


_SVG_CACHE: dict[tuple[Any, ...], Markup] = {}


def flowchart_svg(definition: Definition, departments: dict[str, DepartmentSpec], path: CasePath) -> Markup:
    """The case's live flowchart as inline SVG (graphviz), kept per process for the same state."""
    overlay = path.overlay
    key = (
        path.definition_key,
        path.definition_version,
        tuple(sorted((s, o.state, o.note) for s, o in overlay.items())),
        tuple(sorted(path.taken)),
        tuple(sorted((c, d.name) for c, d in departments.items())),
    )
    found = _SVG_CACHE.get(key)
    if found is not None:
        return found
    svg = render(definition, departments, "svg", overlay, path.taken).decode("utf-8")
    svg = re.sub(r'(width|height)="([\d.]+)pt"', r'\1="\2px"', svg, count=2)  # 12-point labels as 12 px
    svg = inline_svg(svg, f"{definition.name} 流程图（实时状态）")
    if len(_SVG_CACHE) > 256:
        _SVG_CACHE.clear()
    _SVG_CACHE[key] = Markup(svg)
    return _SVG_CACHE[key]


def shown_value(value: Any, kind: str, unmasked: bool) -> str:
    if value is None or value == "":
        return "—"
    if kind == "bool" or isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = value if isinstance(value, str) else str(value)
    return text if unmasked else mask_phone(mask_id(text))


def form_rows(definition: Definition, form: dict[str, Any], unmasked: bool) -> list[FormRow]:
    return [
        FormRow(
            key=f.key,
            label=f.label,
            type=f.type,
            shown=shown_value(form.get(f.key), f.type, unmasked),
            value=form.get(f.key),
            required=f.required,
            options=f.options,
            min=f.min,
            max=f.max,
            max_length=f.max_length,
            help=f.help,
        )
        for f in definition.form
    ]


def material_rows(definition: Definition, detail: CaseDetail) -> list[MaterialRow]:
    supplied, deferred = set(detail.materials or []), set(detail.deferred or [])
    requested = {m for s in detail.supplements if s.supplied_at is None for m in (s.missing or [])}
    rows = []
    for m in definition.materials:
        if m.key in deferred:
            status = "deferred"
        elif m.key in requested:
            status = "requested"
        elif m.key in supplied:
            status = "supplied"
        else:
            status = "missing"
        rows.append(MaterialRow(m.key, m.label, m.required, m.deferrable, MATERIAL_SOURCES[m.source], status))
    return rows


def event_label(event: EventView) -> str:
    return MORE_EVENT_LABELS.get(event.kind) or event.label


@dataclass(frozen=True)
class Names:
    """What the history's codes read as: people, steps, departments, form fields and materials."""

    people: dict[str, str]
    steps: dict[str, str]
    departments: dict[str, str]
    definition: Definition


def _event_detail(event: EventView, names: Names, unmasked: bool) -> str:
    data = event.data or {}
    people, steps, departments = names.people, names.steps, names.departments
    fields = names.definition.fields_by_key
    materials = {m.key: m.label for m in names.definition.materials}
    parts = []
    if data.get("outcome"):
        parts.append(TASK_OUTCOME_LABELS.get(data["outcome"], str(data["outcome"])))
    for key, label in (
        ("opinion", "意见"),
        ("reason", "理由"),
        ("message", "内容"),
        ("note", "说明"),
        ("result", "结果"),
    ):
        if data.get(key):
            parts.append(f"{label}：{data[key]}")
    if data.get("to"):
        parts.append(f"交给：{people.get(data['to'], data['to'])}")
    if data.get("signer"):
        parts.append(f"加签人：{people.get(data['signer'], data['signer'])}")
    if data.get("party") and data.get("slot"):
        party = data["party"]
        if data["slot"] == "department":
            party = departments.get(party, party)
        elif data["slot"] == "user":
            party = people.get(party, party)
        parts.append(f"{SLOT_KIND_LABELS.get(data['slot'], data['slot'])}：{party}")
    if data.get("missing"):
        parts.append("缺少材料：" + "、".join(materials.get(str(m), str(m)) for m in data["missing"]))
    if data.get("materials"):
        parts.append("材料：" + "、".join(materials.get(str(m), str(m)) for m in data["materials"]))
    if data.get("changes"):
        changes = (
            (fields[k].label, shown_value(v, fields[k].type, unmasked)) if k in fields else (k, str(v))
            for k, v in data["changes"].items()
        )
        parts.append("修改：" + "，".join(f"{label} 改为 {value}" for label, value in changes))
    if data.get("numbers"):
        parts.append("证照编号：" + "、".join(map(str, data["numbers"])))
    if data.get("delivery"):
        parts.append(DELIVERY_LABELS.get(data["delivery"], data["delivery"]))
    if data.get("amount"):
        parts.append(f"延长 {data['amount']}")
    if data.get("expected"):
        parts.append(f"预计 {data['expected']}")
    if event.kind == "evaluated" and data.get("level") in EVALUATION_LEVELS:
        parts.append(EVALUATION_LEVELS[data["level"]])
    if event.kind == "task_skipped" and data.get("reason") == "when_false":
        parts.append("条件不满足")
    if event.kind == "sent_back" and event.edge_to:
        parts.append(f"退回至：{steps.get(event.edge_to, event.edge_to)}")
    return "；".join(parts)


def timeline(detail: CaseDetail, names: Names, unmasked: bool) -> list[TimelineEntry]:
    return [
        TimelineEntry(
            at=e.at,
            label=event_label(e),
            kind=e.kind,
            actor=person_label(e.actor, names.people, detail.applicant) if e.actor else "",
            step=names.steps.get(e.step_id or "", e.step_id or ""),
            detail=_event_detail(e, names, unmasked),
        )
        for e in detail.timeline
        if e.kind not in HIDDEN_EVENTS
    ]


def kind_label(kind: str) -> str:
    return {**KIND_LABELS, "report": "不予审批报告"}.get(kind, kind)


def case_labels() -> dict[str, Any]:
    """The label tables the case templates read."""
    return {
        "outcome_labels": TASK_OUTCOME_LABELS,
        "slot_labels": SLOT_KIND_LABELS,
        "delivery_labels": DELIVERY_LABELS,
        "urge_labels": URGE_LABELS,
        "channel_labels": CHANNEL_LABELS,
        "evaluation_levels": EVALUATION_LEVELS,
        "kind_label": kind_label,
        "suspension_labels": SUSPENSION_KINDS,
    }


# ---------------------------------------------------------------------------------------------------
# routes


def _case_id(svc: Services, viewer: Viewer, number: str) -> int:
    if len(number) > 64 or text_problem(number, 64):  # no case has such a number (the database would refuse it)
        raise WebError(404, "not_found", "办件不存在或不在你的办理范围内")
    return visible_case_id(svc.engine, viewer, number)


FLASH = {"urge": "已发出催办/督办"}


@router.get("/cases/{number}")
def case_page(
    request: Request,
    number: str,
    flash: str = "",
    viewer: Viewer = Depends(page_viewer),
    svc: Services = Depends(services),
) -> Response:
    case_id = _case_id(svc, viewer, number)
    view = load_case(svc, viewer, case_id)
    actions = svc.engine.available_actions(viewer.user_id, case_id=case_id)
    record_view(svc.engine.db, viewer.user_id, case_id, f"/cases/{view.detail.case.number}", client_ip(request))
    may_urge = "urge_case" in actions and viewer.has("supervisor", "manager", "admin")
    return svc.templates.TemplateResponse(
        request,
        "cases/case.html",
        {
            "nav": "cases",
            "view": view,
            "case": view.detail.case,
            "may_urge": may_urge,
            "flash": FLASH.get(flash),
            **case_labels(),
        },
    )


@router.post("/cases/{number}/urge")
def urge_case(
    request: Request,
    number: str,
    message: str = Form(..., max_length=5000),
    level: str = Form("urge", pattern="^(urge|supervise)$"),
    within: str = Form("", max_length=16),
    viewer: Viewer = Depends(page_viewer),
    svc: Services = Depends(services),
) -> Response:
    """催办/督办 a case: whoever holds its open work is told."""
    case_id = _case_id(svc, viewer, number)
    svc.engine.urge(viewer.user_id, message, case_id=case_id, level=level, within=within.strip() or None)
    return done_response(request, f"/cases/{quote(number)}?flash=urge")


def done_response(request: Request, url: str) -> Response:
    """After an action: back to the page with its flash (htmx follows HX-Redirect; a plain form the 303)."""
    if request.headers.get("HX-Request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)
