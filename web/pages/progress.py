"""办理进度查询 (public, no log-in): the applicant enters the case number and their id number and sees the
steps done, the step now, the due date and the state — no staff names, and nothing of any other case (a
wrong pair gets exactly the message of an unknown number). Once the case has ended, whatever the outcome,
they rate the service (好差评, 一事一评).

No session, so no session CSRF token: the forms carry a signed double-submit token instead — a random
value in a strict same-site cookie and its HMAC (the app's secret) in the form; a POST whose pair does not
match is refused. Failed look-ups are counted per case number and per address (in ``login_attempts``,
under keys of their own, so they never lock anyone out of logging in) and slowed down past a limit, so an
id number cannot be guessed for a known case number.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import insert
from starlette.datastructures import FormData

from orchestrator.engine import read
from orchestrator.engine.errors import Conflict, NotAllowed, NotFound
from orchestrator.engine.forms import text_problem
from orchestrator.engine.rules import CASE_FINAL
from orchestrator.store.db import reading
from orchestrator.store.models import LoginAttempt

from ..accounts import wait_after_failures
from ..deps import Services, WebError, client_ip, services
from .window import form_data

router = APIRouter()

FORM_COOKIE = "tongban_form"
FORM_FIELD = "form_token"
NOT_FOUND_TEXT = "未查询到该办件：请核对办件编号和申请人证件号码（身份证号码或统一社会信用代码）"
RATING_LEVELS = {1: "非常满意", 2: "满意", 3: "基本满意", 4: "不满意", 5: "非常不满意"}
COMMENT_LIMIT = 500
WINDOW_MINUTES = 15
MAX_FAILURES_PER_NUMBER = 10
MAX_FAILURES_PER_ADDRESS = 100  # a centre's kiosks share one address; the per-number limit is what stops guessing
_NONCE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


# ---------------------------------------------------------------------------------------------------
# the signed double-submit token


def _nonce(request: Request) -> tuple[str, bool]:
    """(this browser's form nonce, whether it is new and must be set as the cookie)."""
    found = request.cookies.get(FORM_COOKIE, "")
    if _NONCE.fullmatch(found):
        return found, False
    return secrets.token_urlsafe(24), True


def _form_token(svc: Services, nonce: str) -> str:
    return svc.signer.csrf("public-form:" + nonce)


def _check_form_token(request: Request, svc: Services, data: FormData) -> None:
    cookie = request.cookies.get(FORM_COOKIE, "")
    given = data.get(FORM_FIELD)
    if not _NONCE.fullmatch(cookie) or not svc.signer.csrf_ok(
        "public-form:" + cookie, given if isinstance(given, str) else None
    ):
        raise WebError(403, "csrf", "页面已过期或来源不明，请刷新“办理进度查询”页面后重新提交")


# ---------------------------------------------------------------------------------------------------
# failed look-ups, counted to slow down guessing


def _keys(request: Request, number: str) -> tuple[str, str]:
    return ("progress:" + number)[:64], ("progress:" + client_ip(request))[:64]


def look_up_wait_s(svc: Services, request: Request, number: str) -> int | None:
    """Seconds to wait before the next look-up, when this number or this address failed too often."""
    by_number, by_address = _keys(request, number)
    with svc.engine.db.connect() as conn:
        return wait_after_failures(
            conn,
            [
                (LoginAttempt.username, by_number, MAX_FAILURES_PER_NUMBER),
                (LoginAttempt.ip, by_address, MAX_FAILURES_PER_ADDRESS),
            ],
            datetime.now(UTC),
            WINDOW_MINUTES,
        )


def count_failed_look_up(svc: Services, request: Request, number: str) -> None:
    by_number, by_address = _keys(request, number)
    with svc.engine.db.begin() as conn:
        conn.execute(insert(LoginAttempt).values(username=by_number, ip=by_address, at=datetime.now(UTC)))


# ---------------------------------------------------------------------------------------------------
# pages


def _render(
    request: Request,
    svc: Services,
    *,
    found: read.Progress | None = None,
    applicant_id: str = "",
    number: str = "",
    errors: dict[str, str] | None = None,
    message: str | None = None,
    thanks: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    nonce, new = _nonce(request)
    labels: dict[str, str] = {}
    if found is not None:
        with reading(svc.engine.db) as conn:
            definition = svc.engine.definitions.get(conn, found.definition_key, found.definition_version)
        labels = {m.key: m.label for m in definition.materials}
    response = svc.templates.TemplateResponse(
        request,
        "progress/index.html",
        {
            "found": found,
            "number": number,
            "applicant_id": applicant_id,
            "errors": errors or {},
            "message": message,
            "thanks": thanks,
            "labels": labels,
            "levels": RATING_LEVELS,
            "form_token": _form_token(svc, nonce),
            "form_field": FORM_FIELD,
        },
        status_code=status,
        headers=headers,
    )
    response.headers["Cache-Control"] = "no-store"  # the page may carry the applicant's id number
    if new:
        response.set_cookie(
            FORM_COOKIE, nonce, httponly=True, samesite="strict", secure=svc.settings.secure_cookies, path="/progress"
        )
    return response


@router.get("/progress")
def progress_page(request: Request, svc: Services = Depends(services)) -> Response:
    return _render(request, svc)


def _pair(data: FormData, errors: dict[str, str]) -> tuple[str, str]:
    raw_number, raw_id = data.get("number"), data.get("applicant_id")
    number = (raw_number if isinstance(raw_number, str) else "").strip().upper()
    applicant_id = (raw_id if isinstance(raw_id, str) else "").strip().replace(" ", "")
    if not number:
        errors["number"] = "请填写办件编号（见受理通知书）"
    elif len(number) > 64 or text_problem(number, 64):
        errors["number"] = "办件编号不正确，请核对"
    if not applicant_id:
        errors["applicant_id"] = "请填写申请人证件号码"
    elif len(applicant_id) > 64 or text_problem(applicant_id, 64):
        errors["applicant_id"] = "证件号码不正确，请核对"
    return number, applicant_id


def _look_up(svc: Services, request: Request, number: str, applicant_id: str) -> tuple[read.Progress, str] | None:
    """The progress and the applicant id as stored (an 'x' typed for the 身份证 check 'X' matches), or
    None; a failure is counted."""
    tries = [applicant_id] + ([applicant_id.upper()] if applicant_id.upper() != applicant_id else [])
    with reading(svc.engine.db) as conn:
        for candidate in tries:
            try:
                return read.progress(conn, number, candidate), candidate
            except NotFound:
                continue
    count_failed_look_up(svc, request, number)
    return None


def _guarded(request: Request, svc: Services, data: FormData) -> tuple[str, str, Response | None]:
    """Token, input and rate limit checked: (number, id, None) or the response that refuses it."""
    _check_form_token(request, svc, data)
    errors: dict[str, str] = {}
    number, applicant_id = _pair(data, errors)
    if errors:
        return (
            number,
            applicant_id,
            _render(request, svc, number=number, applicant_id=applicant_id, errors=errors, status=422),
        )
    wait = look_up_wait_s(svc, request, number)
    if wait is not None:
        minutes = max(1, round(wait / 60))
        return (
            number,
            applicant_id,
            _render(
                request,
                svc,
                number=number,
                message=f"查询失败次数过多，请约 {minutes} 分钟后再试",
                status=429,
                headers={"Retry-After": str(wait)},
            ),
        )
    return number, applicant_id, None


@router.post("/progress")
def look_up(request: Request, data: FormData = Depends(form_data), svc: Services = Depends(services)) -> Response:
    number, applicant_id, refused = _guarded(request, svc, data)
    if refused is not None:
        return refused
    found = _look_up(svc, request, number, applicant_id)
    if found is None:
        return _render(request, svc, number=number, message=NOT_FOUND_TEXT, status=404)
    return _render(request, svc, found=found[0], applicant_id=found[1], number=number)


@router.post("/progress/rate")
def rate(request: Request, data: FormData = Depends(form_data), svc: Services = Depends(services)) -> Response:
    """好差评 by the applicant (the rater is their id; channel pc), once the case has ended."""
    number, applicant_id, refused = _guarded(request, svc, data)
    if refused is not None:
        return refused
    found = _look_up(svc, request, number, applicant_id)
    if found is None:
        return _render(request, svc, number=number, message=NOT_FOUND_TEXT, status=404)
    progress, stored_id = found
    errors: dict[str, str] = {}
    raw_level, raw_comment = data.get("level"), data.get("comment")
    level = int(raw_level) if isinstance(raw_level, str) and raw_level in ("1", "2", "3", "4", "5") else None
    if level is None:
        errors["level"] = "请选择评价等级（非常满意至非常不满意）"
    comment = (raw_comment if isinstance(raw_comment, str) else "").strip()
    if len(comment) > COMMENT_LIMIT or text_problem(comment, COMMENT_LIMIT):
        errors["comment"] = f"评价内容最多 {COMMENT_LIMIT} 个字（现为 {len(comment)} 个字）"
    if errors:
        return _render(request, svc, found=progress, applicant_id=stored_id, number=number, errors=errors, status=422)
    try:
        svc.engine.evaluate_case(progress.case_id, stored_id, level, "pc", comment)
    except (NotAllowed, Conflict):
        with reading(svc.engine.db) as conn:
            again = read.progress(conn, number, stored_id)
        text = "该办件已评价过，每件只能评价一次" if again.state in CASE_FINAL else "该办件尚未办结，办结后方可评价"
        return _render(request, svc, found=again, applicant_id=stored_id, number=number, message=text, status=409)
    with reading(svc.engine.db) as conn:
        rated = read.progress(conn, number, stored_id)
    return _render(
        request,
        svc,
        found=rated,
        applicant_id=stored_id,
        number=number,
        thanks=f"感谢您的评价（{RATING_LEVELS[level]}）。" + ("我们将核实整改并回访。" if level >= 4 else ""),
    )
