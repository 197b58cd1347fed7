"""Jinja2 set-up: the filters and globals every page uses (times in Asia/Shanghai, masking, SLA colours,
the CSRF token of the request's session)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates

from orchestrator.calendar import TZ
from orchestrator.engine.read.common import CASE_STATE_LABELS, OUTCOME_LABELS, SLA_LABELS, TASK_STATE_LABELS

from .accounts import ROLE_LABELS
from .masking import mask_id, mask_phone
from .security import CSRF_FIELD, SESSION_COOKIE, Signer


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return "—" if value is None else value.astimezone(TZ).strftime(fmt)


def working_minutes(minutes: float | int | None) -> str:
    """Working time as '2天3小时' in 8-hour working days ('已超 …' when negative)."""
    if minutes is None:
        return "—"
    late = minutes < 0
    total = abs(int(minutes))
    days, rest = divmod(total, 8 * 60)
    hours, mins = divmod(rest, 60)
    parts = (
        ([f"{days}个工作日"] if days else [])
        + ([f"{hours}小时"] if hours else [])
        + ([f"{mins}分"] if mins and not days else [])
    )
    text = "".join(parts) or "0分"
    return f"已超 {text}" if late else text


def setup_templates(directory: Path, signer: Signer) -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(directory))
    env = templates.env
    env.filters.update(
        local_time=local_time,
        working=working_minutes,
        mask_id=mask_id,
        mask_phone=mask_phone,
        sla_label=lambda v: SLA_LABELS.get(v, v or "—"),
        case_state=lambda v: CASE_STATE_LABELS.get(v, v),
        task_state=lambda v: TASK_STATE_LABELS.get(v, v),
        outcome_label=lambda v: OUTCOME_LABELS.get(v, v or "—"),
    )

    def csrf_token(request: Request) -> str:
        token = getattr(request.state, "session_token", None)
        if token is None and SESSION_COOKIE in request.cookies:  # a page that asked nobody's name (log-in)
            token = signer.token_of(request.cookies[SESSION_COOKIE])
        return signer.csrf(token) if token else ""

    def csrf_input(request: Request) -> Any:
        from markupsafe import Markup

        return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{csrf_token(request)}">')

    def viewer_of_request(request: Request) -> Any:
        found = getattr(request.state, "viewer", None)
        return found[0] if found else None

    env.globals.update(
        csrf_token=csrf_token, csrf_input=csrf_input, current_viewer=viewer_of_request, role_labels=ROLE_LABELS
    )
    return templates
