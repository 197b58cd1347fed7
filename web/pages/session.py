"""Log-in, log-out and the start page (each role lands where its work is)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from ..accounts import LoginRefused, Viewer, log_in, log_out
from ..deps import Services, client_ip, page_viewer, services
from ..security import SESSION_COOKIE

router = APIRouter()


def _safe_next(target: str | None) -> str:
    """Only a path of this site (no //host, no scheme): the log-in page is no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
def login_page(request: Request, next: str = "/", svc: Services = Depends(services)) -> Response:
    return _login(request, svc, _safe_next(next))


def _login(
    request: Request,
    svc: Services,
    next_path: str,
    error: str | None = None,
    username: str = "",
    status: int = 200,
    headers: dict | None = None,
) -> Response:
    from ..demo import demo_logins

    context = {"next": next_path, "error": error, "username": username}
    if svc.settings.demo:
        context.update(demo_logins=demo_logins(svc.engine), demo_password=svc.settings.demo_password)
    return svc.templates.TemplateResponse(request, "login.html", context, status_code=status, headers=headers)


@router.post("/login")
def login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
    svc: Services = Depends(services),
) -> Response:
    settings = svc.settings
    try:
        token = log_in(
            svc.engine.db,
            username,
            password,
            client_ip(request),
            session_minutes=settings.session_minutes,
            max_failures=settings.login_max_failures,
        )
    except LoginRefused as exc:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return _login(request, svc, _safe_next(next), str(exc), username, 429 if exc.retry_after else 401, headers)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        svc.signer.cookie(token),
        max_age=settings.session_minutes * 60,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )
    return response


@router.post("/logout")
def logout(request: Request, viewer: Viewer = Depends(page_viewer), svc: Services = Depends(services)) -> Response:
    token = getattr(request.state, "session_token", None)
    if token:
        log_out(svc.engine.db, token, client_ip(request))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/")
def home(viewer: Viewer = Depends(page_viewer)) -> Response:
    for role, path in (
        ("staff", "/tasks"),
        ("supervisor", "/tasks"),
        ("window", "/window"),
        ("manager", "/dashboard"),
        ("designer", "/studio"),
        ("admin", "/admin"),
    ):
        if viewer.has(role):
            return RedirectResponse(path, status_code=303)
    return RedirectResponse("/cases", status_code=303)
