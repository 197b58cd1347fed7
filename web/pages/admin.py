"""系统管理 (/admin, admins only): people and their roles, API tokens, service centres, the audit log and
a case's access log (访问记录).

Forms post back here; a form with mistakes comes back with each problem next to its field (422), a
done change redirects (303) to the page that shows it. Department memberships change through
``Engine.set_memberships`` (web.accounts.change_person), so the engine's history records them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from orchestrator.engine.errors import InvalidData, NotAllowed

from ..accounts import (
    CENTRE_LEVELS,
    CITY_ROLES,
    MIN_PASSWORD,
    AccountRow,
    DepartmentRoles,
    Viewer,
    account_of,
    add_account,
    add_centre,
    api_tokens,
    audit_entries,
    case_views,
    centres,
    change_person,
    create_api_token,
    department_roles,
    list_accounts,
    revoke_token,
    set_active,
    set_password,
)
from ..deps import Services, WebError, require, services, visible_case_id

router = APIRouter(prefix="/admin")
admin_only = require("admin")

USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
CENTRE_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
LEVEL_LABELS = {"city": "市级", "district": "区级", "community": "街道/社区"}
ACTION_LABELS = {
    "login": "登录",
    "login_failed": "登录失败",
    "logout": "退出登录",
    "account_added": "添加人员",
    "account_changed": "修改角色",
    "account_blocked": "停用账号",
    "account_unblocked": "启用账号",
    "password_changed": "重置密码",
    "token_created": "创建 API 令牌",
    "token_revoked": "吊销 API 令牌",
    "accounts_opened": "批量开通账号",
    "centre_added": "添加服务中心",
}
DONE = {
    "added": "已添加人员。",
    "saved": "已保存角色与部门。",
    "password": "已重置密码，该人员的登录会话已全部结束。",
    "blocked": "已停用账号：该人员的会话和 API 令牌立即失效。",
    "unblocked": "已启用账号。",
    "revoked": "已吊销令牌。",
    "centre": "已添加服务中心。",
}
PAGE_LABELS = {"case": "办件页", "task": "任务页", "api": "接口", "print": "打印"}


def _page(request: Request, svc: Services, template: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("nav", "admin")
    context.setdefault("flash", DONE.get(request.query_params.get("done", "")))
    context.update(action_labels=ACTION_LABELS, level_labels=LEVEL_LABELS)
    return svc.templates.TemplateResponse(request, f"admin/{template}", context, status_code=status)


def _back(path: str, **query: Any) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode(query)}" if query else path, status_code=303)


def _text(form: FormData, name: str, limit: int = 200) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _texts(form: FormData, name: str) -> list[str]:
    return [v.strip() for v in form.getlist(name) if isinstance(v, str) and v.strip()]


def _role_label(department: DepartmentRoles | None, role: str) -> str:
    if department is None:
        return role
    if role == "handler":
        return "承办"
    if role == department.supervisor_role:
        return "负责人"
    return role


# ---------------------------------------------------------------------------------------------------
# people


@dataclass
class PersonForm:
    """What the person form carried, as typed (it is shown again when something is wrong)."""

    user_id: str = ""
    name: str = ""
    roles: list[str] = field(default_factory=list)
    memberships: list[str] = field(default_factory=list)  # "department:role"
    centre: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, account: AccountRow) -> PersonForm:
        return cls(
            account.user_id,
            account.name,
            list(account.roles),
            [f"{d}:{r}" for d, r in account.memberships],
            account.centre or "",
        )

    def pairs(self) -> list[tuple[str, str]]:
        return [tuple(item.split(":", 1)) for item in self.memberships]  # type: ignore[misc]


def _read_person(form: FormData, departments: list[DepartmentRoles], known_centres: dict[str, Any]) -> PersonForm:
    person = PersonForm(
        user_id=_text(form, "user_id", 100),
        name=_text(form, "name", 200),
        roles=sorted(set(_texts(form, "roles"))),
        memberships=sorted(set(_texts(form, "memberships"))),
        centre=_text(form, "centre", 64),
    )
    errors = person.errors
    if not person.name:
        errors["name"] = "请填写姓名"
    elif len(person.name) > 100:
        errors["name"] = "姓名最多 100 个字"
    unknown = [r for r in person.roles if r not in CITY_ROLES]
    if unknown:
        errors["roles"] = "未知角色：" + "、".join(unknown)
    offered = {f"{d.code}:{r}" for d in departments for r in d.roles}
    wrong = [m for m in person.memberships if m not in offered]
    if wrong:
        errors["memberships"] = "以下部门角色不存在：" + "、".join(wrong)
    if person.centre and person.centre not in known_centres:
        errors["centre"] = f"服务中心 {person.centre} 不存在"
    elif "window" in person.roles and not person.centre:
        errors["centre"] = "综合窗口人员须选择所在服务中心"
    return person


def _person_context(svc: Services) -> dict[str, Any]:
    return {"departments": department_roles(svc.engine.db), "centres": centres(svc.engine.db), "city_roles": CITY_ROLES}


@router.get("")
def people(
    request: Request,
    q: str = "",
    part: str = "",
    viewer: Viewer = Depends(admin_only),
    svc: Services = Depends(services),
) -> Response:
    q = q.strip()[:64]
    accounts = list_accounts(svc.engine.db)
    if q:
        accounts = [a for a in accounts if q.lower() in a.user_id.lower() or q in a.name]
    departments = {d.code: d for d in department_roles(svc.engine.db)}
    context = {"accounts": accounts, "q": q, "departments": departments, "role_label": _role_label}
    if part == "rows":  # htmx refreshes the list
        return _page(request, svc, "_people_rows.html", **context)
    return _page(request, svc, "people.html", section="people", **context)


@router.get("/people/new")
def new_person(request: Request, viewer: Viewer = Depends(admin_only), svc: Services = Depends(services)) -> Response:
    return _page(request, svc, "person_new.html", section="new", person=PersonForm(), **_person_context(svc))


@router.post("/people")
async def add_person(
    request: Request, viewer: Viewer = Depends(admin_only), svc: Services = Depends(services)
) -> Response:
    form = await request.form()
    context = _person_context(svc)
    person = _read_person(form, context["departments"], context["centres"])
    password, again = form.get("password"), form.get("password_again")
    password = password if isinstance(password, str) else ""
    if not USER_ID.fullmatch(person.user_id):
        person.errors["user_id"] = "用户名须为 1–64 位字母、数字或 _ . @ -，以字母或数字开头"
    elif any(a.user_id == person.user_id for a in list_accounts(svc.engine.db)):
        person.errors["user_id"] = f"用户名 {person.user_id} 已有账号"
    if len(password) < MIN_PASSWORD or len(password) > 200:
        person.errors["password"] = f"密码须为 {MIN_PASSWORD}–200 个字符"
    elif password != again:
        person.errors["password_again"] = "两次输入的密码不一致"
    if not person.errors:
        try:
            add_account(
                svc.engine,
                person.user_id,
                person.name,
                password,
                roles=person.roles,
                memberships=person.pairs(),
                centre=person.centre or None,
                actor=viewer.user_id,
            )
            return _back(f"/admin/people/{person.user_id}", done="added")
        except InvalidData as exc:
            person.errors["form"] = _problem(exc)
    return _page(request, svc, "person_new.html", 422, section="new", person=person, **context)


def _problem(exc: InvalidData | NotAllowed) -> str:
    details = getattr(exc, "problems", None) or []
    return exc.message + ("：" + "；".join(str(p) for p in details) if details else "")


def _person_page(
    request: Request, svc: Services, user_id: str, status: int = 200, person: PersonForm | None = None, **more: Any
) -> Response:
    account = account_of(svc.engine.db, user_id)
    staff = svc.engine.staff(user_id)
    context = _person_context(svc)
    member_of = {d for d, _ in account.memberships}
    departments = {d.code: d for d in context["departments"]}
    return _page(
        request,
        svc,
        "person.html",
        status,
        section="people",
        account=account,
        person=person or PersonForm.of(account),
        changes=list(reversed(staff.changes)),
        held=staff.held,
        member_of=member_of,
        department_map=departments,
        role_label=_role_label,
        **context,
        **more,
    )


@router.get("/people/{user_id}")
def person(
    request: Request, user_id: str, viewer: Viewer = Depends(admin_only), svc: Services = Depends(services)
) -> Response:
    return _person_page(request, svc, user_id)


@router.post("/people/{user_id}")
async def change(
    request: Request, user_id: str, viewer: Viewer = Depends(admin_only), svc: Services = Depends(services)
) -> Response:
    form = await request.form()
    context = _person_context(svc)
    person = _read_person(form, context["departments"], context["centres"])
    person.user_id = user_id
    if user_id == viewer.user_id and "admin" not in person.roles:
        person.errors["roles"] = "不能取消自己的系统管理角色（请由其他管理员操作）"
    if not person.errors:
        try:
            change_person(
                svc.engine,
                user_id,
                person.name,
                roles=person.roles,
                memberships=person.pairs(),
                centre=person.centre or None,
                actor=viewer.user_id,
            )
            return _back(f"/admin/people/{user_id}", done="saved")
        except (InvalidData, NotAllowed) as exc:
            person.errors["form"] = _problem(exc)
    return _person_page(request, svc, user_id, 422, person=person)


@router.post("/people/{user_id}/password")
async def reset_password(
    request: Request, user_id: str, viewer: Viewer = Depends(admin_only), svc: Services = Depends(services)
) -> Response:
    form = await request.form()
    password, again = form.get("password"), form.get("password_again")
    password = password if isinstance(password, str) else ""
    errors: dict[str, str] = {}
    if len(password) < MIN_PASSWORD or len(password) > 200:
        errors["password"] = f"密码须为 {MIN_PASSWORD}–200 个字符"
    elif password != again:
        errors["password_again"] = "两次输入的密码不一致"
    if errors:
        return _person_page(request, svc, user_id, 422, password_errors=errors)
    set_password(svc.engine.db, user_id, password, actor=viewer.user_id)
    return _back(f"/admin/people/{user_id}", done="password")


@router.post("/people/{user_id}/active")
async def block_or_unblock(
    request: Request, user_id: str, viewer: Viewer = Depends(admin_only), svc: Services = Depends(services)
) -> Response:
    form = await request.form()
    active = _text(form, "active", 8)
    if active not in ("0", "1"):
        raise WebError(422, "invalid_data", "active 须为 0（停用）或 1（启用）")
    set_active(svc.engine.db, user_id, active == "1", actor=viewer.user_id)
    return _back(f"/admin/people/{user_id}", done="unblocked" if active == "1" else "blocked")


# ---------------------------------------------------------------------------------------------------
# API tokens


def _tokens_page(request: Request, svc: Services, status: int = 200, **context: Any) -> Response:
    context.setdefault("values", {})
    context.setdefault("errors", {})
    response = _page(
        request,
        svc,
        "tokens.html",
        status,
        section="tokens",
        tokens=api_tokens(svc.engine.db),
        accounts=list_accounts(svc.engine.db),
        **context,
    )
    response.headers["Cache-Control"] = "no-store"  # a new token is on it once
    return response


@router.get("/tokens")
def tokens(request: Request, viewer: Viewer = Depends(admin_only), svc: Services = Depends(services)) -> Response:
    return _tokens_page(request, svc)


@router.post("/tokens")
async def create_token(
    request: Request, viewer: Viewer = Depends(admin_only), svc: Services = Depends(services)
) -> Response:
    form = await request.form()
    values = {"user_id": _text(form, "user_id", 100), "name": _text(form, "name", 200), "days": _text(form, "days", 8)}
    errors: dict[str, str] = {}
    if not values["user_id"]:
        errors["user_id"] = "请填写令牌所属人员的用户名"
    elif not any(a.user_id == values["user_id"] for a in list_accounts(svc.engine.db)):
        errors["user_id"] = f"用户名 {values['user_id']} 没有账号"
    if not values["name"]:
        errors["name"] = "请填写用途（例如对接的系统名称）"
    elif len(values["name"]) > 100:
        errors["name"] = "用途最多 100 个字"
    days = None
    if values["days"]:
        if not values["days"].isdigit() or not 1 <= int(values["days"]) <= 3650:
            errors["days"] = "有效天数须为 1–3650 的整数，留空表示长期有效"
        else:
            days = int(values["days"])
    if errors:
        return _tokens_page(request, svc, 422, values=values, errors=errors)
    token = create_api_token(svc.engine.db, values["user_id"], values["name"], viewer.user_id, days)
    return _tokens_page(request, svc, 201, created={"token": token, **values})


@router.post("/tokens/{token_id}/revoke")
def revoke(token_id: int, viewer: Viewer = Depends(admin_only), svc: Services = Depends(services)) -> Response:
    revoke_token(svc.engine.db, token_id, viewer.user_id)
    return _back("/admin/tokens", done="revoked")


# ---------------------------------------------------------------------------------------------------
# service centres


def _centres_page(request: Request, svc: Services, status: int = 200, **context: Any) -> Response:
    context.setdefault("values", {"level": "district"})
    context.setdefault("errors", {})
    return _page(
        request,
        svc,
        "centres.html",
        status,
        section="centres",
        centres=centres(svc.engine.db),
        levels=CENTRE_LEVELS,
        **context,
    )


@router.get("/centres")
def centre_list(request: Request, viewer: Viewer = Depends(admin_only), svc: Services = Depends(services)) -> Response:
    return _centres_page(request, svc)


@router.post("/centres")
async def new_centre(
    request: Request, viewer: Viewer = Depends(admin_only), svc: Services = Depends(services)
) -> Response:
    form = await request.form()
    values = {key: _text(form, key, 200) for key in ("code", "name", "level", "parent")}
    known = centres(svc.engine.db)
    errors: dict[str, str] = {}
    if not CENTRE_CODE.fullmatch(values["code"]):
        errors["code"] = "编码须为 1–32 位字母、数字、_ 或 -，以字母或数字开头"
    elif values["code"] in known:
        errors["code"] = f"编码 {values['code']} 已存在"
    if not values["name"]:
        errors["name"] = "请填写名称"
    elif len(values["name"]) > 100:
        errors["name"] = "名称最多 100 个字"
    if values["level"] not in CENTRE_LEVELS:
        errors["level"] = "请选择层级"
    if values["parent"] and values["parent"] not in known:
        errors["parent"] = f"上级中心 {values['parent']} 不存在"
    if not errors:
        try:
            add_centre(
                svc.engine.db,
                values["code"],
                values["name"],
                values["level"],
                values["parent"] or None,
                actor=viewer.user_id,
            )
            return _back("/admin/centres", done="centre")
        except InvalidData as exc:  # added meanwhile by another admin
            errors["code"] = exc.message
    return _centres_page(request, svc, 422, values=values, errors=errors)


# ---------------------------------------------------------------------------------------------------
# what people did


@router.get("/audit")
def audit_log(
    request: Request,
    part: str = "",
    limit: int = 200,
    viewer: Viewer = Depends(admin_only),
    svc: Services = Depends(services),
) -> Response:
    entries = audit_entries(svc.engine.db, max(1, min(limit, 1000)))
    if part == "rows":
        return _page(request, svc, "_audit_rows.html", entries=entries)
    return _page(request, svc, "audit.html", section="audit", entries=entries)


@router.get("/views")
def access_log(
    request: Request, case: str = "", viewer: Viewer = Depends(admin_only), svc: Services = Depends(services)
) -> Response:
    case = case.strip()
    views, error, status = None, None, 200
    if case:
        if len(case) > 40 or (case.isdigit() and len(case) > 18):
            error, status = "办件编号最多 40 个字符", 422
        else:
            try:
                views = case_views(svc.engine.db, visible_case_id(svc.engine, viewer, case))
            except WebError:
                error, status = f"未找到办件 {case}", 404
    return _page(
        request,
        svc,
        "views.html",
        status,
        section="views",
        case=case,
        views=views,
        error=error,
        page_labels=PAGE_LABELS,
    )
