"""What every route needs: the app's services, the person behind the request, CSRF, and what they may see.

Routes declare ``viewer: Viewer = Depends(page_viewer)`` (pages: no session → the log-in page) or
``Depends(api_viewer)`` (API: bearer token or session cookie, else 401), and ``require(...)`` for roles.
A form POST from a page carries the CSRF token (``csrf_token`` field or the ``X-CSRF-Token`` header,
which htmx sends from the page's meta tag); API calls with a bearer token need none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from fastapi.templating import Jinja2Templates
from sqlalchemy import exists, or_, select

from orchestrator.engine import Engine
from orchestrator.settings import Settings
from orchestrator.store.db import reading
from orchestrator.store.models import Case, Signoff, Task

from .accounts import Viewer, viewer_of
from .security import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, Signer


@dataclass
class Services:
    """Held by the app (``app.state.services``): one per process."""

    settings: Settings
    engine: Engine
    signer: Signer
    templates: Jinja2Templates


class WebError(Exception):
    """A refusal the web itself makes (the engine's are TongbanError): status, code, message."""

    def __init__(self, status: int, code: str, message: str, details: Any = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details, self.headers = status, code, message, details, headers


class LoginNeeded(Exception):
    """A page asked for without a session: the log-in page, then back."""


def services(request: Request) -> Services:
    return request.app.state.services


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _session_token(request: Request, signer: Signer) -> str | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    return signer.token_of(cookie) if cookie else None


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _viewer(request: Request, svc: Services) -> tuple[Viewer | None, bool]:
    """(viewer, came by cookie)."""
    cached = getattr(request.state, "viewer", None)
    if cached is not None:
        return cached
    settings = svc.settings
    token, by_cookie = _bearer(request), False
    if token is None:
        token, by_cookie = _session_token(request, svc.signer), True
    viewer = viewer_of(svc.engine.db, token, idle_minutes=settings.session_idle_minutes) if token else None
    request.state.viewer = (viewer, by_cookie)
    request.state.session_token = token if by_cookie else None
    return viewer, by_cookie


def _check_csrf(request: Request, svc: Services, by_cookie: bool, form_token: str | None) -> None:
    if request.method in ("GET", "HEAD", "OPTIONS") or not by_cookie:
        return
    given = request.headers.get(CSRF_HEADER) or form_token
    if not svc.signer.csrf_ok(request.state.session_token, given):
        raise WebError(403, "csrf", "表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试")


async def page_viewer(request: Request, svc: Services = Depends(services)) -> Viewer:
    viewer, by_cookie = _viewer(request, svc)
    if viewer is None:
        raise LoginNeeded()
    form_token = None
    if request.method == "POST" and request.headers.get(CSRF_HEADER) is None:
        form_token = (await request.form()).get(CSRF_FIELD)
    _check_csrf(request, svc, by_cookie, form_token if isinstance(form_token, str) else None)
    return viewer


# declares the bearer token in /openapi.json (the docs' Authorize button); _viewer reads the header itself
_bearer_scheme = HTTPBearer(auto_error=False, description="a token from POST /api/session, or an API token")


async def api_viewer(
    request: Request, svc: Services = Depends(services), _declared: Any = Depends(_bearer_scheme)
) -> Viewer:
    viewer, by_cookie = _viewer(request, svc)
    if viewer is None:
        raise WebError(
            401,
            "unauthenticated",
            "log in first: POST /api/session, then send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    _check_csrf(request, svc, by_cookie, None)
    return viewer


async def optional_viewer(request: Request, svc: Services = Depends(services)) -> Viewer | None:
    """Public pages (办事指南): the person if logged in, for the page's header; nobody is asked to log in."""
    return _viewer(request, svc)[0]


def require(*roles: str, api: bool = False) -> Callable[..., Any]:
    """A dependency: the viewer, if they hold one of ``roles`` (else 403)."""
    base = api_viewer if api else page_viewer

    async def check(viewer: Viewer = Depends(base)) -> Viewer:
        if not viewer.has(*roles):
            raise WebError(403, "forbidden", "你没有此操作的权限（需要角色：" + "、".join(roles) + "）")
        return viewer

    return check


# ---------------------------------------------------------------------------------------------------
# what a person may see: another department's case or task is "not found", not "forbidden" (no leak)


MAX_ID = 2**63 - 1  # ids are 64-bit integers


def _task_is_theirs(viewer: Viewer) -> Any:
    return or_(
        Task.department.in_(viewer.departments),
        Task.assignee == viewer.user_id,
        exists().where(
            Signoff.task_id == Task.id,
            or_(
                Signoff.party == viewer.user_id,
                Signoff.signed_by == viewer.user_id,
                (Signoff.kind == "department") & Signoff.party.in_(viewer.departments),  # a survey's participant
            ),
        ),
    )


def visible_case_id(engine: Engine, viewer: Viewer, number_or_id: str | int) -> int:
    """The id of a case the viewer may see (by 办件编号 or id), or WebError 404. Managers and admins see
    every case; window staff too (全市通办: any window answers for any case); staff and supervisors the
    cases with a task of their departments (or held, or to sign, by them)."""
    key = str(number_or_id)
    if len(key) > 40 or "\x00" in key:  # no 办件编号 is longer (cases.number); PostgreSQL refuses a NUL
        raise WebError(404, "not_found", f"办件 {key[:40]}… 不存在或不在你的办理范围内")
    by_id = key.isascii() and key.isdigit() and len(key) < 19  # within 64 bits; "²".isdigit() is true too
    with reading(engine.db) as conn:
        found = conn.execute(
            select(Case.id).where(Case.id == int(key)) if by_id else select(Case.id).where(Case.number == key)
        ).first()
        if found is not None and not (viewer.reads_everything or viewer.has("window")):
            theirs = conn.execute(
                select(Task.id).where(Task.case_id == found.id, _task_is_theirs(viewer)).limit(1)
            ).first()
            found = found if theirs is not None else None
    if found is None:
        raise WebError(404, "not_found", f"办件 {key} 不存在或不在你的办理范围内")
    return found.id


def visible_task(engine: Engine, viewer: Viewer, task_id: int) -> Any:
    """The task row (id, case_id, department) if the viewer may see it, or WebError 404."""
    if not 0 < task_id <= MAX_ID:
        raise WebError(404, "not_found", f"任务 {task_id} 不存在或不在你的办理范围内")
    with reading(engine.db) as conn:
        query = select(Task.id, Task.case_id, Task.department, Task.step_id).where(Task.id == task_id)
        if not viewer.reads_everything:
            query = query.where(_task_is_theirs(viewer))
        row = conn.execute(query).first()
    if row is None:
        raise WebError(404, "not_found", f"任务 {task_id} 不存在或不在你的办理范围内")
    return row
