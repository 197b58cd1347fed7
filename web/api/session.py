"""``POST /api/session``: a session token for a name and password; ``DELETE`` ends it; ``GET /api/me``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from ..accounts import LoginRefused, Viewer, log_in, log_out
from ..deps import Services, WebError, api_viewer, client_ip, services
from .models import ERRORS

router = APIRouter(tags=["session"])


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class SessionToken(BaseModel):
    token: str = Field(description="send as Authorization: Bearer <token>")
    user_id: str
    expires_in_s: int


class Me(BaseModel):
    user_id: str
    name: str
    roles: list[str]
    departments: list[str]
    supervises: list[str]
    centre: str | None


@router.post("/session", response_model=SessionToken, responses=ERRORS, status_code=201)
def open_session(body: Credentials, request: Request, svc: Services = Depends(services)) -> SessionToken:
    settings = svc.settings
    try:
        token = log_in(
            svc.engine.db,
            body.username,
            body.password,
            client_ip(request),
            session_minutes=settings.session_minutes,
            max_failures=settings.login_max_failures,
        )
    except LoginRefused as exc:
        if exc.retry_after:
            raise WebError(429, "too_many_attempts", str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
        raise WebError(401, "unauthenticated", str(exc)) from None
    return SessionToken(token=token, user_id=body.username.strip(), expires_in_s=settings.session_minutes * 60)


@router.delete("/session", status_code=204, responses=ERRORS)
def close_session(
    request: Request, viewer: Viewer = Depends(api_viewer), svc: Services = Depends(services)
) -> Response:
    header = request.headers.get("authorization", "")
    token = header.partition(" ")[2].strip() or getattr(request.state, "session_token", None)
    if token:
        log_out(svc.engine.db, token, client_ip(request))
    return Response(status_code=204)


@router.get("/me", response_model=Me, responses=ERRORS)
def me(viewer: Viewer = Depends(api_viewer)) -> Me:
    return Me(
        user_id=viewer.user_id,
        name=viewer.name,
        roles=sorted(viewer.roles),
        departments=sorted(viewer.departments),
        supervises=sorted(viewer.supervises),
        centre=viewer.centre,
    )
