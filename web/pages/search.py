"""办件查询 (``/cases``): find cases by number (or its beginning), applicant name or id, 一件事, state, SLA
colour and submission dates, newest first, a page at a time behind the read side's keyset cursor.

What a person finds is what they may open (web.deps.visible_case_id): window staff, managers and admins
every case of the city; staff and supervisors the cases their departments have a task in (or that they
hold or sign). Applicants' ids are masked in the list. Each row links to the case page, /cases/{number}.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from orchestrator.calendar import TZ
from orchestrator.engine import read
from orchestrator.engine.forms import text_problem
from orchestrator.engine.read.common import CASE_STATE_LABELS, SLA_LABELS, latest_definition_names
from orchestrator.store.db import reading

from ..accounts import Viewer, centres
from ..deps import Services, require, services

router = APIRouter()
searcher = require("staff", "supervisor", "window", "manager", "admin")
PAGE_SIZE = 30
FIELDS = ("number", "applicant", "definition", "state", "sla", "date_from", "date_to")


@dataclass(frozen=True)
class Query:
    """The search as typed (to fill the form again and to build the paging links)."""

    number: str = ""
    applicant: str = ""
    definition: str = ""
    state: str = ""
    sla: str = ""
    date_from: str = ""
    date_to: str = ""

    def link(self, **extra: str) -> str:
        given = {name: getattr(self, name) for name in FIELDS if getattr(self, name)}
        given.update({k: v for k, v in extra.items() if v})
        return "/cases" + ("?" + urlencode(given) if given else "")

    @property
    def any(self) -> bool:
        return any(getattr(self, name) for name in FIELDS)


def _date(text: str, name: str, errors: dict[str, str]) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors[name] = "请输入日期，格式如 2026-03-01"
        return None


def case_filter(query: Query, viewer: Viewer, definitions: dict[str, str]) -> tuple[read.CaseFilter | None, dict]:
    """The read side's filter for the query, limited to what the viewer may see, or the problems to show
    next to their fields."""
    errors: dict[str, str] = {}
    for name in ("number", "applicant"):
        value = getattr(query, name)
        if len(value) > 64 or text_problem(value, 64):
            errors[name] = "最多 64 个字符，且不能含有特殊控制字符"
    if query.definition and query.definition not in definitions:
        errors["definition"] = "请从列表中选择一件事"
    if query.state and query.state not in CASE_STATE_LABELS:
        errors["state"] = "请从列表中选择办件状态"
    if query.sla and query.sla not in SLA_LABELS:
        errors["sla"] = "请从列表中选择时效状态"
    start, end = _date(query.date_from, "date_from", errors), _date(query.date_to, "date_to", errors)
    if start and end and end < start:
        errors["date_to"] = "结束日期不能早于开始日期"
    if errors:
        return None, errors
    visibility = {}
    if not (viewer.reads_everything or viewer.has("window")):  # as web.deps.visible_case_id
        visibility = {"departments": tuple(sorted(viewer.departments)), "worker": viewer.user_id}
    return (
        read.CaseFilter(
            number_prefix=query.number.upper() or None,
            applicant=query.applicant or None,
            definition_key=query.definition or None,
            state=query.state or None,
            sla_state=query.sla or None,  # type: ignore[arg-type]
            submitted_from=datetime.combine(start, time(0), TZ) if start else None,
            submitted_to=datetime.combine(end + timedelta(days=1), time(0), TZ) if end else None,
            **visibility,
        ),
        {},
    )


@router.get("/cases")
def case_search(
    request: Request,
    number: str = "",
    applicant: str = "",
    definition: str = "",
    state: str = "",
    sla: str = "",
    date_from: str = "",
    date_to: str = "",
    cursor: str = "",
    viewer: Viewer = Depends(searcher),
    svc: Services = Depends(services),
) -> Response:
    query = Query(
        number.strip(), applicant.strip(), definition.strip(), state.strip(), sla.strip(), date_from.strip(),
        date_to.strip(),
    )  # fmt: skip
    with reading(svc.engine.db) as conn:
        definitions = latest_definition_names(conn)
    filters, errors = case_filter(query, viewer, definitions)
    page, status = None, 200
    if filters is not None:
        try:
            if len(cursor) > 200:
                raise ValueError(cursor)
            with reading(svc.engine.db) as conn:
                page = read.search_cases(
                    conn,
                    filters,
                    now=svc.engine.clock(),
                    calendar=svc.engine.calendar,
                    cursor=cursor or None,
                    limit=PAGE_SIZE,
                )
        except ValueError:
            errors["cursor"] = "翻页参数无效，请回到第一页"
    if errors:
        status = 422
    context = {
        "nav": "cases",
        "query": query,
        "cursor": cursor,
        "page": page,
        "errors": errors,
        "definitions": definitions,
        "states": CASE_STATE_LABELS,
        "slas": SLA_LABELS,
        "centre_names": {code: row.name for code, row in centres(svc.engine.db).items()},
        "limited": not (viewer.reads_everything or viewer.has("window")),
    }
    fragment = request.headers.get("HX-Request") == "true" and page is not None
    return svc.templates.TemplateResponse(
        request, "search/_results.html" if fragment else "search/index.html", context, status_code=status
    )
