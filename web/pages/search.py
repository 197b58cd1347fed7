"""办件查询 (``/cases``): find cases by number (or its beginning), applicant name or id, 一件事, state, SLA
colour and submission dates, newest first, a page at a time behind the read side's keyset cursor.

Besides the form's fields, /cases takes the filters the managers' dashboard links with (``cases_link``):
live, department and step of a task completed in a period, closed, rated (and the department a rating
counts for), channel, at a service centre, visits. Each keeps exactly the cases its figure counts (the
rules are the read side's, ``read.CaseFilter``); the page lists the active ones above the results, in
Chinese, with a link that clears them, and the form carries them along. ``Query``'s fields are every name
/cases knows: ``cases_link`` refuses any other.

What a person finds is what they may open (web.deps.visible_case_id): window staff, managers and admins
every case of the city; staff and supervisors the cases their departments have a task in (or that they
hold or sign). Applicants' ids are masked in the list. Each row links to the case page, /cases/{number}.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from orchestrator.calendar import day_span
from orchestrator.engine import read
from orchestrator.engine.forms import text_problem
from orchestrator.engine.read.common import (
    CASE_STATE_LABELS,
    SLA_LABELS,
    department_names,
    latest_definition_names,
)
from orchestrator.engine.read.search import MAX_VISITS
from orchestrator.store.db import reading

from ..accounts import Viewer, centres
from ..deps import Services, require, services

router = APIRouter()
searcher = require("staff", "supervisor", "window", "manager", "admin")
PAGE_SIZE = 30


@dataclass(frozen=True)
class Query:
    """The search as given (to fill the form again, list the active filters and build the paging links).
    Its fields are the filters /cases knows, in the order of its links."""

    number: str = ""
    applicant: str = ""
    definition: str = ""
    state: str = ""
    sla: str = ""
    date_from: str = ""
    date_to: str = ""
    # the dashboard's: no field on the form, listed above the results
    live: str = ""
    department: str = ""
    step: str = ""
    done_from: str = ""
    done_to: str = ""
    closed_from: str = ""
    closed_to: str = ""
    rated_department: str = ""
    rated_from: str = ""
    rated_to: str = ""
    channel: str = ""
    at_centre: str = ""
    visits: str = ""
    max_visits: str = ""

    def link(self, **extra: str) -> str:
        return cases_link(**{name: getattr(self, name) for name in FILTERS}, **extra)

    @property
    def any(self) -> bool:
        return any(getattr(self, name) for name in FILTERS)

    @property
    def extras(self) -> dict[str, str]:
        """The dashboard's filters given (the form keeps them as hidden fields)."""
        return {name: getattr(self, name) for name in LINK_FILTERS if getattr(self, name)}

    def without_extras(self) -> Query:
        return dataclasses.replace(self, **dict.fromkeys(LINK_FILTERS, ""))


FILTERS = tuple(f.name for f in dataclasses.fields(Query))
FORM_FILTERS = ("number", "applicant", "definition", "state", "sla", "date_from", "date_to")
LINK_FILTERS = tuple(name for name in FILTERS if name not in FORM_FILTERS)


def cases_link(**filters: str | None) -> str:
    """/cases with these filters (empty ones left out) and perhaps a ``cursor``; a name /cases does not know
    is a ValueError, not a link that would silently show every case."""
    unknown = set(filters) - set(FILTERS) - {"cursor"}
    if unknown:
        raise ValueError(f"/cases knows no filter {', '.join(sorted(unknown))}; it knows {', '.join(FILTERS)}")
    given = {name: value for name, value in filters.items() if value}
    return "/cases" + ("?" + urlencode(given) if given else "")


CHANNEL_LABELS = {"online": "网上申请", "window": "窗口申请"}
FLAGS = {"1": True, "0": False}
SHOWN = 32  # characters of a bad value shown back


@dataclass(frozen=True)
class Known:
    """The codes a query may name, with their names: 一件事, departments and (when a step is asked for)
    the steps of the 一件事 asked for, or of all."""

    definitions: dict[str, str]
    departments: dict[str, str] = field(default_factory=dict)
    steps: dict[str, str] = field(default_factory=dict)


def known_for(svc: Services, query: Query) -> Known:
    with reading(svc.engine.db) as conn:
        definitions = latest_definition_names(conn)
        departments = department_names(conn) if query.department or query.rated_department else {}
        steps = {}
        if query.step:
            steps = read.step_names(conn, query.definition if query.definition in definitions else None)
    return Known(definitions, departments, steps)


@dataclass(frozen=True)
class ActiveFilter:
    """One of the dashboard's filters as the page lists it: its words and the fields behind them."""

    label: str
    names: tuple[str, ...]


def _date(text: str, name: str, errors: dict[str, str]) -> date | None:
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is None or not 1900 <= day.year <= 9000:  # a day whose end still is a timestamp
        errors[name] = "请输入日期，格式如 2026-03-01"
        return None
    return day


def _days(query: Query, kind: str, errors: dict[str, str]) -> tuple[datetime | None, datetime | None]:
    """``<kind>_from`` to ``<kind>_to``, whole days both included, as [start, end)."""
    first = _date(getattr(query, f"{kind}_from"), f"{kind}_from", errors)
    last = _date(getattr(query, f"{kind}_to"), f"{kind}_to", errors)
    if first and last and last < first:
        errors[f"{kind}_to"] = "结束日期不能早于开始日期"
    return day_span(first, last)


def _flag(text: str, name: str, errors: dict[str, str]) -> bool | None:
    if text and text not in FLAGS:
        errors[name] = "应为 1（是）或 0（否）"
    return FLAGS.get(text)


def _visits(text: str, name: str, errors: dict[str, str]) -> int | None:
    if not text:
        return None
    if not (text.isascii() and text.isdigit() and int(text) <= MAX_VISITS):
        errors[name] = f"请输入 0 到 {MAX_VISITS} 之间的整数"
        return None
    return int(text)


def _code(text: str, name: str, known: dict[str, str], what: str, errors: dict[str, str]) -> str | None:
    if text and text not in known:
        errors[name] = f"没有编码为 {text[:SHOWN]} 的{what}"
    return text or None


def case_filter(query: Query, viewer: Viewer, known: Known) -> tuple[read.CaseFilter | None, dict[str, str]]:
    """The read side's filter for the query, limited to what the viewer may see, or the problems to show
    next to their fields."""
    errors: dict[str, str] = {}
    for name in ("number", "applicant"):
        value = getattr(query, name)
        if len(value) > 64 or text_problem(value, 64):
            errors[name] = "最多 64 个字符，且不能含有特殊控制字符"
    if query.definition and query.definition not in known.definitions:
        errors["definition"] = "请从列表中选择一件事"
    if query.state and query.state not in CASE_STATE_LABELS:
        errors["state"] = "请从列表中选择办件状态"
    if query.sla and query.sla not in SLA_LABELS:
        errors["sla"] = "请从列表中选择时效状态"
    if query.channel and query.channel not in CHANNEL_LABELS:
        errors["channel"] = "应为 online（网上申请）或 window（窗口申请）"
    submitted, closed = _days(query, "date", errors), _days(query, "closed", errors)
    done, rated = _days(query, "done", errors), _days(query, "rated", errors)
    wanted = {
        "live": _flag(query.live, "live", errors),
        "at_centre": _flag(query.at_centre, "at_centre", errors),
        "visits": _visits(query.visits, "visits", errors),
        "max_visits": _visits(query.max_visits, "max_visits", errors),
        "done_department": _code(query.department, "department", known.departments, "部门", errors),
        "rated_department": _code(query.rated_department, "rated_department", known.departments, "部门", errors),
        "done_step": _code(query.step, "step", known.steps, "环节", errors),
    }
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
            channel=query.channel or None,  # type: ignore[arg-type]
            submitted_from=submitted[0],
            submitted_to=submitted[1],
            closed_from=closed[0],
            closed_to=closed[1],
            done_from=done[0],
            done_to=done[1],
            rated_from=rated[0],
            rated_to=rated[1],
            **wanted,
            **visibility,
        ),
        {},
    )


def active_filters(query: Query, known: Known) -> list[ActiveFilter]:
    """The dashboard's filters given, in words (a value not known is shown as given)."""
    shown: list[ActiveFilter] = []

    def say(label: str, *names: str) -> None:
        if any(getattr(query, name) for name in names):
            shown.append(ActiveFilter(label, names))

    def cut(text: str) -> str:
        return text[:SHOWN]

    def named(names: dict[str, str], code: str) -> str:
        return names.get(code, cut(code))

    def days(kind: str) -> str:
        first, last = cut(getattr(query, f"{kind}_from")), cut(getattr(query, f"{kind}_to"))
        return f"{first} 至 {last}" if first and last else (f"{first} 起" if first else f"{last} 止")

    say({"1": "在办", "0": "不在办"}.get(query.live, cut(query.live)), "live")
    say("部门 " + named(known.departments, query.department), "department")
    say("环节 " + named(known.steps, query.step), "step")
    say("任务办结 " + days("done"), "done_from", "done_to")
    say("办件办结 " + days("closed"), "closed_from", "closed_to")
    say("评价 " + days("rated"), "rated_from", "rated_to")
    say("评价计入部门 " + named(known.departments, query.rated_department), "rated_department")
    say(CHANNEL_LABELS.get(query.channel, cut(query.channel)), "channel")
    say({"1": "政务服务中心窗口受理", "0": "未记录受理中心"}.get(query.at_centre, cut(query.at_centre)), "at_centre")
    say(f"跑动 {cut(query.visits)} 次", "visits")
    say(f"跑动 ≤ {cut(query.max_visits)} 次", "max_visits")
    return shown


def notes_on(query: Query) -> list[str]:
    """What the combined filters mean, where it is not plain from their words."""
    notes = []
    if sum(bool(v) for v in (query.department, query.step, query.done_from or query.done_to)) > 1:
        notes.append("部门、环节和任务办结日期指同一项已办结的任务。")
    if query.rated_department:
        notes.append("一条评价计入完成过该办件任务（差评整改、否定报备除外）的每个部门。")
    if (query.closed_from or query.closed_to) and not query.state:
        notes.append("办件办结指结案，含不予受理、不予许可、撤回和终止。")
    return notes


@router.get("/cases")
def case_search(
    request: Request,
    cursor: str = "",
    viewer: Viewer = Depends(searcher),
    svc: Services = Depends(services),
) -> Response:
    query = Query(**{name: request.query_params.get(name, "").strip() for name in FILTERS})
    known = known_for(svc, query)
    filters, errors = case_filter(query, viewer, known)
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
        "definitions": known.definitions,
        "states": CASE_STATE_LABELS,
        "slas": SLA_LABELS,
        "active": active_filters(query, known),
        "notes": notes_on(query),
        "centre_names": {code: row.name for code, row in centres(svc.engine.db).items()},
        "limited": not (viewer.reads_everything or viewer.has("window")),
    }
    fragment = request.headers.get("HX-Request") == "true" and page is not None
    return svc.templates.TemplateResponse(
        request, "search/_results.html" if fragment else "search/index.html", context, status_code=status
    )
