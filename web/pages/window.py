"""综合受理 (the window, role ``window``): pick a published 一件事, take the application on the form and the
materials checklist generated from its definition, then, on the case's acceptance screen, accept it
(容缺受理 for the deferrable materials still owed, with a supply deadline), send one 补正 notice that lists
everything missing (一次性告知), or refuse it (不予受理, with the written reason and the remedy; it waits for
the leader's confirmation, 不予审批报告制). The notices are pages made for printing. Any centre's window
takes any 一件事 for the whole city (全市通办); the case remembers the window's centre.

The form is parsed here (text from an HTML form → typed values, with a Chinese message next to each
field); what is allowed stays the engine's to decide: the buttons are ``available_actions``, each POST is
one engine call, and its refusal is shown on the form it came from.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from orchestrator.definition.limits import Limit
from orchestrator.definition.model import TEXT_LIMIT, Definition, FormField
from orchestrator.engine import read
from orchestrator.engine.errors import Conflict, InvalidData, NotAllowed
from orchestrator.engine.forms import APPLICANT_NAME_LIMIT, OPINION_LIMIT, text_problem
from orchestrator.engine.read.common import latest_definition_names
from orchestrator.engine.rules import NEGATIVE_REPORT_STEP, TASK_OPEN
from orchestrator.store.db import reading

from ..accounts import Viewer, audit, centres, record_view
from ..deps import Services, WebError, client_ip, require, services, visible_case_id
from ..masking import masked_applicant

router = APIRouter()
window_only = require("window")

ID_TYPES = {"id_card": "居民身份证", "uscc": "统一社会信用代码", "other": "其他有效证件（护照、港澳台居民证件等）"}
ID_TYPE_SHORT = {"id_card": "身份证号", "uscc": "统一社会信用代码", "other": "证件号码"}
DEFERRAL_CHOICES = ("0.5d", "1d", "2d", "3d", "5d", "10d", "15d", "20d", "30d")
DONE_MESSAGES = {
    "submitted": "申请已登记，请核对材料后受理、一次性告知补正或不予受理。",
    "accepted": "已受理。请打印受理通知书交申请人。",
    "supplement": "已一次性告知补正。请打印补正通知书交申请人。",
    "refused": "不予受理已报送负责人审核（不予审批报告制），负责人确认后告知申请人。",
    "supplied": "已收取申请人补交的材料。",
}
QUEUE_TABS = {"waiting": "待受理", "supplement": "待补正（等待申请人补交材料）"}
NOTE_LIMIT = 2_000  # characters of an opinion, reason, remedy or notice typed at the window
_IDEMPOTENCY = re.compile(r"^[0-9a-f]{32}$")
_INT = re.compile(r"^[+-]?\d{1,19}$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{2,3}-?\d{7,8}(-\d{1,6})?$")
_OTHER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{3,29}$")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


async def form_data(request: Request) -> FormData:
    """The posted form (read once; page_viewer read it already for the CSRF token)."""
    return await request.form()


# ---------------------------------------------------------------------------------------------------
# the applicant's identity


def id_card_problem(value: str) -> str | None:
    """Why this is no valid 18-digit 居民身份证号码 (GB 11643: birth date and check digit), or None."""
    if not re.fullmatch(r"\d{17}[\dX]", value):
        return "身份证号码应为18位，前17位为数字，末位为数字或X"
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return "身份证号码中的出生日期不正确"
    if born.year < 1900 or born > date.today():
        return "身份证号码中的出生日期不正确"
    check = "10X98765432"[sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True)) % 11]
    return None if value[17] == check else "身份证号码校验位不正确，请核对"


def uscc_problem(value: str) -> str | None:
    """Why this is no valid 统一社会信用代码 (GB 32100: 18 characters and a check character), or None."""
    if len(value) != 18 or any(c not in _USCC_CHARS for c in value):
        return "统一社会信用代码应为18位数字或大写字母（不含I、O、Z、S、V）"
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(value[:17], _USCC_WEIGHTS, strict=True))
    check = _USCC_CHARS[(31 - total % 31) % 31]
    return None if value[17] == check else "统一社会信用代码校验位不正确，请核对"


def _text(raw: Any) -> str:
    return raw.strip() if isinstance(raw, str) else ""


def _applicant(data: FormData, errors: dict[str, str]) -> dict[str, Any]:
    name = _text(data.get("applicant_name"))
    id_type = _text(data.get("applicant_id_type")) or "id_card"
    number = _text(data.get("applicant_id")).upper().replace(" ", "")
    phone = _text(data.get("applicant_phone")).replace(" ", "")
    if not name:
        errors["applicant_name"] = "请填写申请人姓名或单位名称"
    elif len(name) > APPLICANT_NAME_LIMIT or text_problem(name, APPLICANT_NAME_LIMIT):
        errors["applicant_name"] = f"申请人名称最多 {APPLICANT_NAME_LIMIT} 个字，且不能含有特殊控制字符"
    if id_type not in ID_TYPES:
        errors["applicant_id_type"] = "请选择证件类型"
    elif not number:
        errors["applicant_id"] = f"请填写{ID_TYPE_SHORT[id_type]}"
    else:
        problem = {
            "id_card": id_card_problem,
            "uscc": uscc_problem,
            "other": lambda v: None if _OTHER_ID.fullmatch(v) else "证件号码应为4至30位字母、数字或连字符",
        }[id_type](number)
        if problem:
            errors["applicant_id"] = problem
    if not phone:
        errors["applicant_phone"] = "请填写联系电话，用于告知办理结果"
    elif not (_MOBILE.fullmatch(phone) or _LANDLINE.fullmatch(phone)):
        errors["applicant_phone"] = "请填写11位手机号码或带区号的固定电话（如 0755-88889999）"
    return {"name": name, "id": number, "id_type": id_type, "phone": phone}


# ---------------------------------------------------------------------------------------------------
# the one-form (一表式), generated from the definition


def field_name(form_field: FormField) -> str:
    return f"f_{form_field.key}"


def _field_value(form_field: FormField, raw: Any) -> tuple[Any, str | None]:
    """(typed value or None for "not given", Chinese problem or None)."""
    label = form_field.label
    text = raw.strip() if isinstance(raw, str) else ""
    if text == "":
        if form_field.required and form_field.default is None:
            return None, f"请选择{label}" if form_field.type in ("bool", "choice", "date") else f"请填写{label}"
        return None, None
    kind = form_field.type
    if kind == "bool":
        if text not in ("true", "false"):
            return None, "请选择“是”或“否”"
        return text == "true", None
    if kind in ("int", "number"):
        if kind == "int" and not _INT.fullmatch(text):
            return None, "请输入整数"
        if kind == "number" and not _NUMBER.fullmatch(text):
            return None, "请输入数字"
        number: int | float = int(text) if kind == "int" else float(text)
        if abs(number) >= 2**63:
            return None, "数值过大"
        if form_field.min is not None and number < form_field.min:
            return None, f"不能小于 {form_field.min:g}"
        if form_field.max is not None and number > form_field.max:
            return None, f"不能大于 {form_field.max:g}"
        return number, None
    if kind == "date":
        try:
            return date.fromisoformat(text).isoformat(), None
        except ValueError:
            return None, "请输入日期，格式如 2026-03-01"
    if kind == "choice":
        return (text, None) if text in (form_field.options or []) else (None, "请从选项中选择")
    longest = form_field.max_length or TEXT_LIMIT
    if len(text) > longest:
        return None, f"最多 {longest} 个字（现为 {len(text)} 个字）"
    if text_problem(text, longest):
        return None, "含有无法保存的字符，请删除后重试"
    return text, None


@dataclass
class Application:
    """A new application as posted: typed values, and the problems to show next to their fields."""

    applicant: dict[str, Any]
    form: dict[str, Any]
    materials: list[str]
    idempotency_key: str | None
    errors: dict[str, str] = field(default_factory=dict)


def parse_application(definition: Definition, data: FormData) -> Application:
    errors: dict[str, str] = {}
    applicant = _applicant(data, errors)
    values: dict[str, Any] = {}
    for form_field in definition.form:
        value, problem = _field_value(form_field, data.get(field_name(form_field)))
        if problem:
            errors[field_name(form_field)] = problem
        elif value is not None:
            values[form_field.key] = value
    known = {m.key for m in definition.materials}
    materials = [m for m in data.getlist("materials") if isinstance(m, str)]
    if any(m not in known for m in materials):
        errors["materials"] = "材料清单中没有所选的材料，请刷新页面后重新勾选"
    key = _text(data.get("idempotency_key"))
    return Application(applicant, values, sorted(set(materials)), key if _IDEMPOTENCY.fullmatch(key) else None, errors)


def _typed_back(definition: Definition, data: FormData | None) -> dict[str, Any]:
    """The values as typed (to fill the form again) or the defaults of a new form."""
    if data is None:
        shown: dict[str, Any] = {"applicant_id_type": "id_card", "materials": []}
        for form_field in definition.form:
            default = form_field.default
            shown[field_name(form_field)] = (
                "" if default is None else ("true" if default is True else "false" if default is False else default)
            )
        return shown
    shown = {name: value for name, value in data.items() if isinstance(value, str) and name != "materials"}
    shown["materials"] = [m for m in data.getlist("materials") if isinstance(m, str)]
    return shown


# ---------------------------------------------------------------------------------------------------
# the window's start page and its lists


def _published(svc: Services) -> list[Definition]:
    with reading(svc.engine.db) as conn:
        names = latest_definition_names(conn)
        return [svc.engine.definitions.latest(conn, key)[1] for key in sorted(names)]


def _queue_page(svc: Services, tab: str, cursor: str | None) -> read.Page[read.CaseSummary]:
    filters = read.CaseFilter(state="submitted", supplement_open=tab == "supplement")
    try:
        with reading(svc.engine.db) as conn:
            return read.search_cases(
                conn, filters, now=svc.engine.clock(), calendar=svc.engine.calendar, cursor=cursor, limit=30
            )
    except ValueError:  # a cursor this page did not give out
        raise WebError(422, "invalid_data", "翻页参数无效，请回到第一页") from None


_NUMBER_SHAPE = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def _visible(svc: Services, viewer: Viewer, number: str) -> int:
    """The id of case ``number`` (which the window sees, 全市通办); 404 for anything else, a malformed
    number included (it never reaches the database)."""
    if not _NUMBER_SHAPE.fullmatch(number) or number.isdigit():
        raise WebError(404, "not_found", f"办件 {number[:64]} 不存在")
    return visible_case_id(svc.engine, viewer, number)


def _centre_names(svc: Services) -> dict[str, str]:
    return {code: row.name for code, row in centres(svc.engine.db).items()}


@router.get("/window")
def window_home(request: Request, viewer: Viewer = Depends(window_only), svc: Services = Depends(services)) -> Response:
    centre_names = _centre_names(svc)
    queues = {tab: _queue_page(svc, tab, None) for tab in QUEUE_TABS}
    return svc.templates.TemplateResponse(
        request,
        "window/index.html",
        {
            "nav": "window",
            "definitions": _published(svc),
            "queues": queues,
            "tabs": QUEUE_TABS,
            "centre_names": centre_names,
            "centre_name": centre_names.get(viewer.centre or "", viewer.centre or "（未设置服务中心）"),
        },
    )


@router.get("/window/queue")
def window_queue(
    request: Request,
    tab: str = "waiting",
    cursor: str | None = None,
    viewer: Viewer = Depends(window_only),
    svc: Services = Depends(services),
) -> Response:
    """One of the window's lists, as a fragment (htmx refreshes it every 10 s)."""
    if tab not in QUEUE_TABS:
        raise WebError(422, "invalid_data", f"没有“{tab}”这个列表")
    if cursor is not None and len(cursor) > 200:
        raise WebError(422, "invalid_data", "翻页参数无效，请回到第一页")
    return svc.templates.TemplateResponse(
        request,
        "window/_queue.html",
        {
            "tab": tab,
            "title": QUEUE_TABS[tab],
            "page": _queue_page(svc, tab, cursor),
            "cursor": cursor,
            "centre_names": _centre_names(svc),
        },
    )


@router.get("/window/open")
def window_open(number: str = "", viewer: Viewer = Depends(window_only), svc: Services = Depends(services)) -> Response:
    """办件编号 typed at the window (the applicant is back with 补正 or 容缺 materials)."""
    number = number.strip().upper()
    if not number or len(number) > 64:
        raise WebError(422, "invalid_data", "请输入办件编号")
    _visible(svc, viewer, number)
    return RedirectResponse(f"/window/cases/{quote(number)}", status_code=303)


# ---------------------------------------------------------------------------------------------------
# a new application


def _definition(svc: Services, key: str) -> tuple[int, Definition]:
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,63}", key):
        raise WebError(404, "not_found", f"没有编号为 {key} 的一件事")
    with reading(svc.engine.db) as conn:
        return svc.engine.definitions.latest(conn, key)


def _new_form(
    request: Request,
    svc: Services,
    viewer: Viewer,
    definition: Definition,
    data: FormData | None,
    errors: dict[str, str] | None = None,
    failure: str | None = None,
    status: int = 200,
) -> Response:
    shown = _typed_back(definition, data)
    shown.setdefault("idempotency_key", uuid.uuid4().hex)
    return svc.templates.TemplateResponse(
        request,
        "window/new.html",
        {
            "nav": "window",
            "definition": definition,
            "shown": shown,
            "errors": errors or {},
            "failure": failure,
            "id_types": ID_TYPES,
            "field_name": field_name,
            "centre_name": _centre_names(svc).get(viewer.centre or "", viewer.centre),
        },
        status_code=status,
    )


@router.get("/window/new/{key}")
def new_application(
    request: Request, key: str, viewer: Viewer = Depends(window_only), svc: Services = Depends(services)
) -> Response:
    _, definition = _definition(svc, key)
    return _new_form(request, svc, viewer, definition, None)


@router.post("/window/new/{key}")
def submit_application(
    request: Request,
    key: str,
    viewer: Viewer = Depends(window_only),
    data: FormData = Depends(form_data),
    svc: Services = Depends(services),
) -> Response:
    _, definition = _definition(svc, key)
    application = parse_application(definition, data)
    if application.errors:
        return _new_form(request, svc, viewer, definition, data, application.errors, status=422)
    try:
        case_id = svc.engine.submit_case(
            definition.key,
            application.applicant,
            application.form,
            application.materials,
            application.idempotency_key,
            channel="window",
            centre=viewer.centre,
        )
    except InvalidData as exc:
        return _new_form(request, svc, viewer, definition, data, failure=_said(exc), status=422)
    with reading(svc.engine.db) as conn:
        number = read.case_detail(conn, case_id, now=svc.engine.clock(), calendar=svc.engine.calendar).case.number
    return RedirectResponse(f"/window/cases/{quote(number)}?done=submitted", status_code=303)


def _said(exc: InvalidData | NotAllowed | Conflict) -> str:
    problems = getattr(exc, "problems", None)
    if problems and problems != [exc.message]:
        return exc.message.split(": ", 1)[0] + "：" + "；".join(problems)
    return exc.message


# ---------------------------------------------------------------------------------------------------
# the acceptance screen


@dataclass(frozen=True)
class MaterialLine:
    key: str
    label: str
    required: bool
    deferrable: bool
    source: str
    status: str  # received | deferred | requested | missing | optional

    @property
    def status_label(self) -> str:
        return {
            "received": "已收取",
            "deferred": "容缺待补",
            "requested": "已告知补正",
            "missing": "缺少",
            "optional": "未提交（非必要）",
        }[self.status]


def material_lines(definition: Definition, detail: read.CaseDetail) -> list[MaterialLine]:
    received = set(detail.materials)
    deferred = set(detail.deferred)
    requested = {m for s in detail.supplements if s.supplied_at is None for m in s.missing}
    lines = []
    for m in definition.materials:
        if m.key in received and m.key not in requested:
            status = "received"
        elif m.key in deferred:
            status = "deferred"
        elif m.key in requested:
            status = "requested"
        else:
            status = "missing" if m.required else "optional"
        lines.append(MaterialLine(m.key, m.label, m.required, m.deferrable, m.source, status))
    return lines


def deferral_choices(definition: Definition) -> tuple[list[Limit], Limit | None]:
    """The supply deadlines offered for 容缺 (none beyond the promised limit, which the engine refuses),
    and the one preselected."""
    promised = definition.limits.promised
    choices = [Limit.parse(c) for c in DEFERRAL_CHOICES]
    if promised is not None:
        choices = [c for c in choices if c.working_hours <= promised.working_hours] or [promised]
    preferred = [c for c in choices if c.working_hours <= Limit.parse("5d").working_hours]
    return choices, (preferred or choices)[-1] if choices else None


def _case_screen(
    request: Request,
    svc: Services,
    viewer: Viewer,
    number: str,
    *,
    errors: dict[str, str] | None = None,
    failures: dict[str, str] | None = None,
    posted: FormData | None = None,
    posted_form: str | None = None,
    status: int = 200,
) -> Response:
    case_id = _visible(svc, viewer, number)
    with reading(svc.engine.db) as conn:
        detail = read.case_detail(conn, case_id, now=svc.engine.clock(), calendar=svc.engine.calendar)
        definition = svc.engine.definitions.get(conn, detail.case.definition_key, detail.case.definition_version)
    record_view(svc.engine.db, viewer.user_id, case_id, "window", client_ip(request))
    actions = svc.engine.available_actions(viewer.user_id, case_id=case_id)
    applicant_id = detail.applicant.get("id")
    supply = bool(applicant_id) and "supply" in svc.engine.available_actions(str(applicant_id), case_id=case_id)
    lines = material_lines(definition, detail)
    choices, preselected = deferral_choices(definition)
    done = request.query_params.get("done")
    shown_forms = {
        "accept": "accept" in actions,
        "supplement": "request_supplement" in actions,
        "refuse": "refuse" in actions,
        "supply": supply,
    }
    failures = failures or {}
    return svc.templates.TemplateResponse(
        request,
        "window/case.html",
        {
            "nav": "window",
            "detail": detail,
            "case": detail.case,
            "definition": definition,
            "applicant": masked_applicant(detail.applicant, viewer.sees_identities),
            "id_types": ID_TYPES,
            "actions": actions.names,
            "can_supply": supply,
            "materials": lines,
            "labels": {m.key: m.label for m in definition.materials},
            "owed": [m for m in lines if m.status in ("deferred", "requested")],
            "open_supplement": next((s for s in detail.supplements if s.supplied_at is None), None),
            "refusal_pending": any(t.step_id == NEGATIVE_REPORT_STEP and t.state in TASK_OPEN for t in detail.tasks),
            "deferral_choices": choices,
            "deferral_default": str(preselected) if preselected else "",
            "centre_name": _centre_names(svc).get(detail.case.centre or "", detail.case.centre),
            "done": DONE_MESSAGES.get(done or ""),
            "errors": errors or {},
            "failures": failures,
            # a refusal whose form is no longer offered (someone else acted meanwhile) is shown on top
            "stray_failures": [text for form, text in failures.items() if not shown_forms.get(form)],
            "posted": posted,
            "posted_form": posted_form,
        },
        status_code=status,
    )


@router.get("/window/cases/{number}")
def acceptance_screen(
    request: Request, number: str, viewer: Viewer = Depends(window_only), svc: Services = Depends(services)
) -> Response:
    return _case_screen(request, svc, viewer, number)


def _after(number: str, done: str) -> Response:
    return RedirectResponse(f"/window/cases/{quote(number)}?done={done}", status_code=303)


def _note(data: FormData, name: str, errors: dict[str, str], *, required: str | None = None) -> str:
    value = _text(data.get(name))
    if required and not value:
        errors[name] = required
    elif len(value) > NOTE_LIMIT or text_problem(value, OPINION_LIMIT):
        errors[name] = f"最多 {NOTE_LIMIT} 个字，且不能含有特殊控制字符"
    return value


def _command(
    request: Request,
    svc: Services,
    viewer: Viewer,
    number: str,
    data: FormData,
    form: str,
    errors: dict[str, str],
    run: Any,
    done: str,
) -> Response:
    """Run one engine command for the acceptance screen's ``form``; its refusal is shown on that form."""
    shown = {"posted": data, "posted_form": form}
    if errors:
        return _case_screen(request, svc, viewer, number, errors=errors, status=422, **shown)
    try:
        run()
    except InvalidData as exc:
        return _case_screen(request, svc, viewer, number, failures={form: _said(exc)}, status=422, **shown)
    except (NotAllowed, Conflict) as exc:
        return _case_screen(request, svc, viewer, number, failures={form: _said(exc)}, status=409, **shown)
    return _after(number, done)


@router.post("/window/cases/{number}/accept")
def accept(
    request: Request,
    number: str,
    viewer: Viewer = Depends(window_only),
    data: FormData = Depends(form_data),
    svc: Services = Depends(services),
) -> Response:
    case_id = _visible(svc, viewer, number)
    errors: dict[str, str] = {}
    deferred = [m for m in data.getlist("deferred") if isinstance(m, str)]
    limit = _text(data.get("deferred_limit")) or None
    if deferred and limit is None:
        errors["deferred_limit"] = "容缺受理须选择材料补齐期限"
    elif limit is not None and limit not in DEFERRAL_CHOICES:
        errors["deferred_limit"] = "请从列表中选择补齐期限"
    opinion = _note(data, "opinion", errors)
    return _command(
        request,
        svc,
        viewer,
        number,
        data,
        "accept",
        errors,
        lambda: svc.engine.accept_case(
            case_id,
            viewer.user_id,
            deferred=deferred,
            deferred_limit=limit if deferred else None,
            opinion=opinion or ("容缺受理" if deferred else "材料齐全，予以受理"),
        ),
        "accepted",
    )


@router.post("/window/cases/{number}/supplement")
def request_supplement(
    request: Request,
    number: str,
    viewer: Viewer = Depends(window_only),
    data: FormData = Depends(form_data),
    svc: Services = Depends(services),
) -> Response:
    case_id = _visible(svc, viewer, number)
    errors: dict[str, str] = {}
    missing = [m for m in data.getlist("missing") if isinstance(m, str)]
    if not missing:
        errors["missing"] = "请勾选需要补正的全部材料（一次性告知）"
    notice = _note(data, "notice", errors, required="请填写补正告知内容：缺什么、要求什么形式")
    return _command(
        request,
        svc,
        viewer,
        number,
        data,
        "supplement",
        errors,
        lambda: svc.engine.request_supplement(case_id, viewer.user_id, missing, notice),
        "supplement",
    )


@router.post("/window/cases/{number}/refuse")
def refuse(
    request: Request,
    number: str,
    viewer: Viewer = Depends(window_only),
    data: FormData = Depends(form_data),
    svc: Services = Depends(services),
) -> Response:
    case_id = _visible(svc, viewer, number)
    errors: dict[str, str] = {}
    reason = _note(data, "reason", errors, required="请填写不予受理的理由")
    remedy = _note(data, "remedy", errors, required="请告知申请人依法申请行政复议或者提起行政诉讼的权利和途径")
    return _command(
        request,
        svc,
        viewer,
        number,
        data,
        "refuse",
        errors,
        lambda: svc.engine.refuse_case(case_id, viewer.user_id, reason, remedy),
        "refused",
    )


@router.post("/window/cases/{number}/supply")
def supply(
    request: Request,
    number: str,
    viewer: Viewer = Depends(window_only),
    data: FormData = Depends(form_data),
    svc: Services = Depends(services),
) -> Response:
    """The applicant hands in the materials a 补正 notice asked for, or those owed under 容缺: the window
    records them on the applicant's behalf (the engine's actor is the applicant; the audit log names the
    window)."""
    case_id = _visible(svc, viewer, number)
    with reading(svc.engine.db) as conn:
        detail = read.case_detail(conn, case_id, now=svc.engine.clock(), calendar=svc.engine.calendar)
    errors: dict[str, str] = {}
    materials = [m for m in data.getlist("supplied") if isinstance(m, str)]
    if not materials:
        errors["supplied"] = "请勾选申请人本次补交的材料"
    applicant_id = str(detail.applicant.get("id") or "")

    def run() -> None:
        svc.engine.supply_materials(case_id, applicant_id, materials)
        audit(svc.engine.db, viewer.user_id, "window_received_materials", detail.case.number, client_ip(request),
              materials=materials)  # fmt: skip

    return _command(request, svc, viewer, number, data, "supply", errors, run, "supplied")


# ---------------------------------------------------------------------------------------------------
# notices for printing: 受理通知书, 一次性告知补正通知书, 不予受理决定书

NOTICE_KINDS = {"accepted": "受理通知书", "supplement": "一次性告知补正通知书", "refusal": "不予受理决定书"}


def deferred_at_acceptance(detail: read.CaseDetail) -> tuple[list[str], list[str]]:
    """(materials received when the case was accepted, materials deferred then under 容缺), from the case
    as it is now and the materials supplied since (a 补正 after acceptance excluded)."""
    accepted_at = next((e.at for e in detail.timeline if e.kind == "accept"), None)
    if accepted_at is None:
        return sorted(detail.materials), []
    supplied_after = {
        m
        for e in detail.timeline
        if e.kind == "materials_supplied" and e.at >= accepted_at
        for m in (e.data or {}).get("materials", [])
    }
    asked_after = {m for s in detail.supplements if s.requested_at >= accepted_at for m in s.missing}
    deferred = set(detail.deferred) | (supplied_after - asked_after)
    received = set(detail.materials) - supplied_after - set(detail.deferred)
    return sorted(received), sorted(deferred)


@router.get("/window/cases/{number}/notice")
def notice(
    request: Request,
    number: str,
    kind: str | None = None,
    viewer: Viewer = Depends(window_only),
    svc: Services = Depends(services),
) -> Response:
    case_id = _visible(svc, viewer, number)
    with reading(svc.engine.db) as conn:
        detail = read.case_detail(conn, case_id, now=svc.engine.clock(), calendar=svc.engine.calendar)
        definition = svc.engine.definitions.get(conn, detail.case.definition_key, detail.case.definition_version)
    case = detail.case
    supplement = detail.supplements[-1] if detail.supplements else None
    if kind is None:
        kind = "refusal" if case.state == "not_accepted" else "accepted" if case.accepted_at else "supplement"
    if kind not in NOTICE_KINDS:
        raise WebError(404, "not_found", "没有这种通知书")
    if kind == "accepted" and case.accepted_at is None:
        raise WebError(409, "not_allowed", f"办件 {case.number} 尚未受理，没有受理通知书")
    if kind == "supplement" and (
        supplement is None or (case.accepted_at and supplement.requested_at > case.accepted_at)
    ):
        raise WebError(409, "not_allowed", f"办件 {case.number} 没有受理前的一次性告知补正")
    if kind == "refusal" and case.state != "not_accepted":
        raise WebError(409, "not_allowed", f"办件 {case.number} 没有已生效的不予受理决定（负责人确认后方可出具）")
    record_view(svc.engine.db, viewer.user_id, case_id, f"notice:{kind}", client_ip(request))
    received, deferred = deferred_at_acceptance(detail)
    labels = {m.key: m.label for m in definition.materials}
    centre = _centre_names(svc).get(case.centre or "", None)
    return svc.templates.TemplateResponse(
        request,
        "window/notice.html",
        {
            "nav": "window",
            "kind": kind,
            "title": ("容缺受理通知书" if kind == "accepted" and deferred else NOTICE_KINDS[kind]),
            "detail": detail,
            "case": case,
            "definition": definition,
            "applicant": masked_applicant(detail.applicant, False),
            "id_types": ID_TYPES,
            "labels": labels,
            "received": received,
            "deferred": deferred,
            "supplement": supplement,
            "issuer": centre or "政务服务中心",
            "progress_url": str(request.base_url).rstrip("/") + "/progress",
        },
    )
