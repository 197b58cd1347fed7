"""效能监察 (``/dashboard``): the managers' dashboard — managers and admins see the whole city, a department's
supervisor their departments and the 一件事 those take part in.

* ``/dashboard`` 总览: open, warning (黄牌) and overdue (红牌) counts per department and 一件事, polled
  live (``/dashboard/live``); the period's on-time rates and working times (average, 90th percentile)
  per department, 一件事 and step; weekly trends; the alert list (``/dashboard/alerts``: 红牌, 黄牌 and
  the refusals waiting for a leader, 否定报备) with 催办 / 督办 (``/dashboard/urge/{task}``);
* ``/dashboard/tasks``: the open tasks behind a department's count, each with its case;
* ``/dashboard/heatmap/{key}``: the 一件事's flowchart, each step coloured by its working time against
  its limit, its figures on hover, and the share of cases that took each branch;
* ``/dashboard/ratings``: 好差评 by department and 一件事, the bad ones with their rectification;
* ``/dashboard/targets``: the city plan's targets per item and per case, and the departments' stars.

Every table exports as CSV (``/dashboard/<table>.csv`` with the same period). Every count links to what
lies behind it: the open tasks (``/dashboard/tasks``), one case (``/cases/{number}``) or the case search
(``/cases`` through ``search.cases_link``, with filters that keep exactly the cases the figure counts;
a task count lists the cases of its tasks). Figures come from
``orchestrator.engine.read`` (``dashboard`` and ``performance``); the rules behind them are stated on
the pages (and in performance.py).
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy import Connection, select

from orchestrator.calendar import TZ, day_span
from orchestrator.definition.model import Department as DepartmentSpec
from orchestrator.engine import read
from orchestrator.engine.errors import NotFound
from orchestrator.engine.read import performance as perf
from orchestrator.engine.read.common import CASE_STEP_LABELS, KIND_LABELS, department_names, latest_definition_names
from orchestrator.render import StepOverlay, flowchart
from orchestrator.store.db import reading
from orchestrator.store.models import Department

from ..accounts import Viewer
from ..deps import Services, WebError, require, services, visible_task
from .search import cases_link

router = APIRouter()
watcher = require("manager", "supervisor", "admin")

MAX_DAYS = 366
DEFAULT_DAYS = 30
TREND_WEEKS = 12
TASK_ID_MAX = 2**62  # beyond any id: a larger number is a 422, not a database error
CARD_LIMIT = 10  # per colour on the overview; /dashboard/tasks lists them all
URGE_WITHIN = {"": "不设期限", "4h": "4 工作小时内", "1d": "1 个工作日内", "2d": "2 个工作日内", "3d": "3 个工作日内"}
URGE_LEVELS = {"urge": "催办", "supervise": "督办"}
DEFAULT_URGE = "请抓紧办理，按承诺时限办结。"
SLA_WORDS = {"open": "在办", "warning": "黄牌（预警）", "overdue": "红牌（逾期）", "paused": "暂停计时"}


# ---------------------------------------------------------------------------------------------------
# the period, the viewer's scope, links


@dataclass(frozen=True)
class Period:
    """Whole days, both ends included (Asia/Shanghai)."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        return day_span(self.first, self.last)[0]

    @property
    def end(self) -> datetime:
        return day_span(self.first, self.last)[1]

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def query(self) -> str:
        return urlencode({"start": self.first.isoformat(), "end": self.last.isoformat()})

    @property
    def label(self) -> str:
        return f"{self.first:%Y-%m-%d} 至 {self.last:%Y-%m-%d}（{self.days} 天）"

    def filters(self, kind: str) -> dict[str, str]:
        """The same days as a pair of /cases' filters: ``date`` (submitted), ``closed``, ``done`` (a task
        completed), ``rated``."""
        return {f"{kind}_from": self.first.isoformat(), f"{kind}_to": self.last.isoformat()}


def quick_periods(today: date) -> list[tuple[str, Period]]:
    month = today.replace(day=1)
    last_month_end = month - timedelta(days=1)
    return [
        ("今天", Period(today, today)),
        ("近 7 天", Period(today - timedelta(days=6), today)),
        ("近 30 天", Period(today - timedelta(days=29), today)),
        ("本月", Period(month, today)),
        ("上月", Period(last_month_end.replace(day=1), last_month_end)),
        ("近 90 天", Period(today - timedelta(days=89), today)),
        ("今年", Period(today.replace(month=1, day=1), today)),
    ]


def parse_period(start: str, end: str, today: date) -> Period:
    """``start``/``end`` as YYYY-MM-DD (both included); default: the last 30 days up to today."""
    try:
        last = date.fromisoformat(end) if end else today
        first = date.fromisoformat(start) if start else last - timedelta(days=DEFAULT_DAYS - 1)
    except ValueError:
        raise WebError(422, "invalid_data", "日期格式应为 YYYY-MM-DD，例如 2026-03-01") from None
    if first > last:
        raise WebError(422, "invalid_data", "开始日期不能晚于结束日期")
    if (last - first).days >= MAX_DAYS:
        raise WebError(422, "invalid_data", f"统计期最长 {MAX_DAYS} 天，请缩短时间范围")
    return Period(first, last)


@dataclass(frozen=True)
class Scope:
    """What the viewer's dashboard covers: everything (managers, admins) or a supervisor's departments and
    the 一件事 they take part in."""

    departments: frozenset[str] | None = None
    definitions: frozenset[str] | None = None

    @property
    def everything(self) -> bool:
        return self.departments is None

    def has_department(self, code: str) -> bool:
        return self.departments is None or code in self.departments

    def has_definition(self, key: str) -> bool:
        return self.definitions is None or key in self.definitions


def scope_of(conn: Connection, viewer: Viewer) -> Scope:
    if viewer.reads_everything:
        return Scope()
    departments = frozenset(viewer.supervises)
    return Scope(departments, perf.definitions_of_departments(conn, departments))


def tasks_link(department: str, sla: str) -> str:
    return "/dashboard/tasks?" + urlencode({"department": department, "sla": sla} if department else {"sla": sla})


# ---------------------------------------------------------------------------------------------------
# tables: one description serves the page and the CSV export


@dataclass(frozen=True)
class Cell:
    text: str
    href: str | None = None
    css: str | None = None  # e.g. "sla sla-overdue" on the text
    value: Any = None  # what the CSV holds when it differs from the text (minutes, raw numbers)


@dataclass(frozen=True)
class Table:
    name: str  # /dashboard/<name>.csv
    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    numeric: frozenset[int] = frozenset()  # right-aligned columns
    csv_columns: tuple[str, ...] | None = None  # when the CSV's values differ in unit
    note: str | None = None

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(self.csv_columns or self.columns)
        for row in self.rows:
            writer.writerow([_spreadsheet_safe(cell.text if cell.value is None else cell.value) for cell in row])
        return out.getvalue()


_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


def _spreadsheet_safe(value: Any) -> Any:
    """Text a spreadsheet would run as a formula (an applicant's comment "=HYPERLINK(…)") is quoted."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER.match(value):
        return "'" + value
    return value


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def pct_value(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}"


def duration(minutes: float | None, per_day: float = 480.0) -> str:
    """Working time, short: ``2.3 工作日``, ``1.5 小时``, ``40 分钟`` (a working day is 8 hours)."""
    if minutes is None:
        return "—"
    amount = abs(minutes)
    if amount >= per_day:
        return f"{amount / per_day:.1f} 工作日"
    if amount >= 60:
        return f"{amount / 60:.1f} 小时"
    return f"{amount:.0f} 分钟"


def minutes_cell(minutes: float | None, href: str | None = None) -> Cell:
    return Cell(duration(minutes), href, value="" if minutes is None else round(minutes, 1))


def count_cell(n: int, href: str | None = None, css: str | None = None) -> Cell:
    return Cell(str(n), href if n else None, css if n else None, value=n)


def rate_cell(rate: float | None, href: str | None = None, css: str | None = None) -> Cell:
    """A rate, linked (like its count) to the cases behind it; "—" (nothing to rate) links nowhere."""
    return Cell(pct(rate), href if rate is not None else None, css, value=pct_value(rate))


# -- 总览 -------------------------------------------------------------------------------------------


def live_department_table(live: perf.LiveBoard) -> Table:
    rows = tuple(
        (
            Cell(d.name, value=f"{d.name}（{d.code}）"),
            count_cell(d.open, tasks_link(d.code, "open")),
            count_cell(d.warning, tasks_link(d.code, "warning"), "sla sla-warning"),
            count_cell(d.overdue, tasks_link(d.code, "overdue"), "sla sla-overdue"),
            count_cell(d.paused, tasks_link(d.code, "paused"), "sla sla-paused"),
        )
        for d in live.departments
        if d.open
    )
    return Table(
        "live-departments",
        "各部门在办任务（实时）",
        ("部门", "在办任务", "黄牌（预警）", "红牌（逾期）", "暂停计时"),
        rows,
        frozenset({1, 2, 3, 4}),
        note="数字链接到这些任务及其办件。",
    )


def live_definition_table(live: perf.LiveBoard) -> Table:
    rows = tuple(
        (
            Cell(d.name, f"/dashboard/heatmap/{d.code}", value=f"{d.name}（{d.code}）"),
            count_cell(d.open, cases_link(definition=d.code, live="1")),
            count_cell(d.warning, cases_link(definition=d.code, sla="warning"), "sla sla-warning"),
            count_cell(d.overdue, cases_link(definition=d.code, sla="overdue"), "sla sla-overdue"),
            count_cell(d.paused, cases_link(definition=d.code, sla="paused"), "sla sla-paused"),
        )
        for d in live.definitions
    )
    return Table(
        "live-definitions",
        "各一件事在办办件（实时）",
        ("一件事", "在办办件", "黄牌（预警）", "红牌（逾期）", "暂停计时"),
        rows,
        frozenset({1, 2, 3, 4}),
        note="办件时效按整件的承诺时限计；数字链接到办件查询。",
    )


def period_department_table(board: read.Dashboard, period: Period) -> Table:
    rows = []
    for d in board.departments:
        if not (d.work.completed or d.alerts):
            continue
        done = cases_link(department=d.department, **period.filters("done"))
        rows.append(
            (
                Cell(d.name, value=f"{d.name}（{d.department}）"),
                count_cell(d.work.completed, done),
                rate_cell(d.work.on_time_rate, done),
                minutes_cell(d.work.average_minutes),
                minutes_cell(d.work.p90_minutes),
                count_cell(d.alerts.get("warning", 0)),
                count_cell(d.alerts.get("overdue", 0)),
            )
        )
    return Table(
        "departments",
        f"各部门办理效能（{period.label}）",
        ("部门", "办结任务", "按时办结率", "平均用时", "90% 用时（P90）", "期内黄牌", "期内红牌"),
        tuple(rows),
        frozenset({1, 2, 3, 4, 5, 6}),
        ("部门", "办结任务", "按时办结率(%)", "平均用时(工作分钟)", "P90用时(工作分钟)", "期内黄牌", "期内红牌"),
        note="用时为工作时间（扣除暂停计时），从任务到达到办结；按时 = 不晚于环节时限。",
    )


def period_definition_table(board: read.Dashboard, period: Period) -> Table:
    rows = []
    for f in board.definitions:
        closed = cases_link(definition=f.definition_key, state="completed", **period.filters("closed"))
        rated = sum(f.evaluations.values())
        satisfied = sum(n for level, n in f.evaluations.items() if level in perf.SATISFIED)
        rows.append(
            (
                Cell(f.name, f"/dashboard/heatmap/{f.definition_key}?{period.query}", value=f.name),
                count_cell(f.completed, closed),
                rate_cell(f.on_time_rate, closed),
                count_cell(rated, f"/dashboard/ratings?{period.query}"),
                rate_cell(satisfied / rated if rated else None),
                count_cell(f.alerts.get("warning", 0)),
                count_cell(f.alerts.get("overdue", 0)),
                count_cell(f.alerts.get("negative_decision", 0)),
            )
        )
    return Table(
        "definitions",
        f"各一件事办理效能（{period.label}）",
        ("一件事", "办结办件", "按时办结率", "好差评", "满意率", "期内黄牌", "期内红牌", "否定报备"),
        tuple(rows),
        frozenset({1, 2, 3, 4, 5, 6, 7}),
        ("一件事", "办结办件", "按时办结率(%)", "好差评", "满意率(%)", "期内黄牌", "期内红牌", "否定报备"),
        note="按时办结 = 整件在承诺时限内办结（特别程序暂停的时间不计）。一件事名称链接到其瓶颈热力图。",
    )


def step_table(board: read.Dashboard, period: Period) -> Table:
    names = {d.department: d.name for d in board.departments}
    rows = []
    for f in board.definitions:
        for s in f.steps:
            # a row is a step and the department that did it
            done = cases_link(
                definition=f.definition_key, step=s.step_id, department=s.department, **period.filters("done")
            )
            rows.append(
                (
                    Cell(f.name, f"/dashboard/heatmap/{f.definition_key}?{period.query}"),
                    Cell(_step_label(s.step_id, s.step_name), value=f"{s.step_name}（{s.step_id}）"),
                    Cell(names.get(s.department, s.department)),
                    count_cell(s.work.completed, done),
                    rate_cell(s.work.on_time_rate, done),
                    minutes_cell(s.work.average_minutes),
                    minutes_cell(s.work.p90_minutes),
                )
            )
    return Table(
        "steps",
        f"各环节用时（{period.label}）",
        ("一件事", "环节", "部门", "办结", "按时率", "平均用时", "90% 用时（P90）"),
        tuple(rows),
        frozenset({3, 4, 5, 6}),
        ("一件事", "环节", "部门", "办结", "按时率(%)", "平均用时(工作分钟)", "P90用时(工作分钟)"),
    )


def _step_label(step_id: str, name: str) -> str:
    return CASE_STEP_LABELS.get(step_id, name)


def trend_table(weeks: Sequence[perf.Week]) -> Table:
    rows = []
    for w in weeks:
        sunday = w.start + timedelta(days=6)
        week = Period(w.start, sunday)
        closed = cases_link(state="completed", **week.filters("closed"))
        rows.append(
            (
                Cell(f"{w.start:%m-%d} ~ {sunday:%m-%d}", value=w.start.isoformat()),
                count_cell(w.submitted, cases_link(**week.filters("date"))),
                count_cell(w.closed, closed),
                rate_cell(w.on_time_rate, closed),
                count_cell(w.tasks),
                rate_cell(w.tasks_on_time_rate),
                minutes_cell(w.average_minutes),
            )
        )
    return Table(
        "trends",
        "按周趋势",
        ("周（周一至周日）", "申请", "办结办件", "按时办结率", "办结任务", "任务按时率", "任务平均用时"),
        tuple(rows),
        frozenset({1, 2, 3, 4, 5, 6}),
        ("周一", "申请", "办结办件", "按时办结率(%)", "办结任务", "任务按时率(%)", "任务平均用时(工作分钟)"),
    )


def card_table(items: Iterable[perf.CardItem], caption: str, name: str) -> Table:
    rows = tuple(
        (
            Cell(c.number, f"/cases/{c.number}"),
            Cell(c.definition_name),
            Cell(c.step_name),
            Cell(c.department_name),
            Cell(c.assignee_name or "待签收", value=c.assignee or ""),
            Cell(_local(c.due_at), value=_iso(c.due_at)),
            Cell(
                _remaining(c.remaining_minutes),
                css=f"sla sla-{c.sla_state}" if c.sla_state else None,
                value="" if c.remaining_minutes is None else c.remaining_minutes,
            ),
            Cell(_urged(c.urged), value=c.urged.urges + c.urged.supervisions),
        )
        for c in items
    )
    return Table(
        name,
        caption,
        ("办件编号", "一件事", "环节", "部门", "办理人", "时限", "剩余/超时", "已催办"),
        rows,
        csv_columns=("办件编号", "一件事", "环节", "部门", "办理人", "时限", "剩余工作分钟", "催办督办次数"),
    )


def refusal_table(items: Iterable[perf.PendingRefusal]) -> Table:
    kinds: ClassVar[dict[str, str]] = {"not_accepted": "不予受理", "rejected": "不予许可"}
    rows = tuple(
        (
            Cell(r.number, f"/cases/{r.number}"),
            Cell(r.definition_name),
            Cell(kinds.get(r.kind, r.kind)),
            Cell(r.department_name),
            Cell(r.reason),
            Cell(r.proposed_by_name, value=r.proposed_by),
            Cell(_local(r.proposed_at), value=_iso(r.proposed_at)),
            Cell(duration(r.waiting_minutes), value=r.waiting_minutes),
        )
        for r in items
    )
    return Table(
        "refusals",
        "否定报备：待领导确认的不予决定",
        ("办件编号", "一件事", "拟作决定", "决定部门", "理由", "拟办人", "报备时间", "已等待"),
        rows,
        csv_columns=("办件编号", "一件事", "拟作决定", "决定部门", "理由", "拟办人", "报备时间", "已等待(工作分钟)"),
    )


def _local(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(TZ).strftime("%m-%d %H:%M")


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(TZ).isoformat(timespec="minutes")


def _remaining(minutes: int | None) -> str:
    if minutes is None:
        return "不限时"
    return ("剩余 " if minutes >= 0 else "超时 ") + duration(minutes)


def _urged(urged: perf.Urged) -> str:
    parts = ([f"催办 {urged.urges}"] if urged.urges else []) + (
        [f"督办 {urged.supervisions}"] if urged.supervisions else []
    )
    return "、".join(parts) or "—"


# -- 好差评, 目标, 星级 -------------------------------------------------------------------------------


def rating_table(rows: Iterable[perf.RatingRow], caption: str, name: str, first: str, period: Period) -> Table:
    body = []
    for row in rows:
        link = cases_link(
            definition=row.code if name == "ratings-definitions" else None,
            rated_department=row.code if name == "ratings-departments" else None,
            **period.filters("rated"),
        )
        body.append(
            (
                Cell(row.name, value=f"{row.name}（{row.code}）"),
                count_cell(row.total, link),
                *(count_cell(row.levels.get(level, 0)) for level in perf.LEVEL_LABELS),
                rate_cell(row.satisfaction_rate),
                Cell("—" if row.average_level is None else f"{row.average_level:.2f}", value=row.average_level or ""),
            )
        )
    return Table(
        name,
        caption,
        (first, "评价数", *perf.LEVEL_LABELS.values(), "满意率", "平均等级"),
        tuple(body),
        frozenset(range(1, 9)),
        (first, "评价数", *perf.LEVEL_LABELS.values(), "满意率(%)", "平均等级(1最好)"),
    )


RECTIFICATION_WORDS = {"open": "整改中", "done": "已整改", "none": "无整改任务"}


def bad_rating_table(items: Iterable[perf.BadRating]) -> Table:
    rows = []
    for b in items:
        state = RECTIFICATION_WORDS[b.rectification_state]
        if b.rectification_state == "done":
            state += "（按期）" if b.rectification_on_time else "（逾期）"
        rows.append(
            (
                Cell(b.number, f"/cases/{b.number}"),
                Cell(b.definition_name),
                Cell(b.level_label, css="sla sla-overdue" if b.level == 5 else "sla sla-warning", value=b.level),
                Cell(b.comment or "—", value=b.comment or ""),
                Cell(_local(b.at), value=_iso(b.at)),
                Cell(b.rectification_department_name or "—", value=b.rectification_department or ""),
                Cell(state, css="sla sla-on_track" if b.rectification_state == "done" else "sla sla-warning"),
                Cell(_local(b.rectification_due_at), value=_iso(b.rectification_due_at)),
                Cell(b.rectification_result or "—", value=b.rectification_result or ""),
            )
        )
    return Table(
        "bad-ratings",
        "差评及整改情况",
        ("办件编号", "一件事", "评价", "评价内容", "评价时间", "整改部门", "整改状态", "整改时限", "整改结果"),
        tuple(rows),
    )


def target_rows(plan: perf.PlanTargets, period: Period) -> list[dict[str, Any]]:
    """The four targets, each measured per item and per case, with the rule behind them."""

    def side(text: str, n: int, of: int | None, goal: float, href: str | None = None) -> dict[str, Any]:
        share = (n / of if of else None) if of is not None else n / goal  # a count target: the share reached
        reached = share is not None and share >= (1.0 if of is None else goal)
        return {"text": text, "share": share, "reached": reached, "href": href if n else None}

    windows = "、".join(plan.window_departments) or "暂无持综合窗口账号的部门"
    return [
        {
            "name": "梳理一件事",
            "target_text": f"{perf.PLAN_ITEMS} 件",
            "marker": None,
            "item": side(f"已发布 {plan.published} 件", plan.published, None, perf.PLAN_ITEMS),
            "case": side(f"期内有申请的 {plan.items_with_cases} 件", plan.items_with_cases, None, perf.PLAN_ITEMS),
            "rule": "按事项：已发布的一件事（流程定义）个数；按办件：统计期内有申请的一件事个数。"
            "完成度为已达目标件数的比例。",
        },
        {
            "name": "网上可办",
            "target_text": f"{perf.PLAN_ONLINE:.0%}",
            "marker": perf.PLAN_ONLINE,
            "item": side(
                f"{plan.online_items} / {plan.published} 件事项", plan.online_items, plan.published, perf.PLAN_ONLINE
            ),
            "case": side(
                f"{plan.online} / {plan.submitted} 件申请",
                plan.online,
                plan.submitted,
                perf.PLAN_ONLINE,
                cases_link(channel="online", **period.filters("date")),
            ),
            "rule": "按事项：可网上申请，且每个出件环节都可在线送达或邮寄（无出件亦可）；"
            "按办件：统计期内网上申请（cases.channel = online）的占比。",
        },
        {
            "name": "一窗分类受理",
            "target_text": f"{perf.PLAN_ONE_WINDOW:.0%}",
            "marker": perf.PLAN_ONE_WINDOW,
            "item": side(
                f"{plan.one_window_items} / {plan.published} 件事项",
                plan.one_window_items,
                plan.published,
                perf.PLAN_ONE_WINDOW,
            ),
            "case": side(
                f"{plan.at_centre} / {plan.at_window} 件窗口申请",
                plan.at_centre,
                plan.at_window,
                perf.PLAN_ONE_WINDOW,
                cases_link(channel="window", at_centre="1", **period.filters("date")),
            ),
            "rule": f"按事项：受理环节由综合窗口部门（{windows}）办理；"
            "按办件：统计期内窗口申请中，在政务服务中心综合窗口受理（记录了受理中心 cases.centre）的占比。",
        },
        {
            "name": "最多跑一次",
            "target_text": f"{perf.PLAN_ONE_VISIT:.0%}",
            "marker": perf.PLAN_ONE_VISIT,
            "item": side(
                f"{plan.one_visit_items} / {plan.published} 件事项",
                plan.one_visit_items,
                plan.published,
                perf.PLAN_ONE_VISIT,
            ),
            "case": side(
                f"{plan.at_most_one_visit} / {plan.closed} 件办结办件",
                plan.at_most_one_visit,
                plan.closed,
                perf.PLAN_ONE_VISIT,
                cases_link(max_visits="1", **period.filters("closed")),
            ),
            "rule": "跑动次数：窗口申请 1 次，网上申请 0 次；每轮补正（受理前或受理后）+1 次；证照窗口领取 +1 次"
            "（邮寄、在线送达不计）。按办件：统计期内办结（含不予受理、撤回等）的办件中跑动不超过 1 次的占比；"
            "按事项：最少跑动（网上申请并在线或邮寄送达为 0 次，只能窗口领证为 1 次）不超过 1 次的事项占比。",
        },
    ]


def target_table(plan: perf.PlanTargets, period: Period) -> Table:
    rows = []
    for t in target_rows(plan, period):
        item, case = t["item"], t["case"]
        rows.append(
            (
                Cell(t["name"]),
                Cell(t["target_text"]),
                Cell(item["text"]),
                rate_cell(item["share"]),
                Cell("达标" if item["reached"] else "未达标"),
                Cell(case["text"], case["href"]),
                rate_cell(case["share"]),
                Cell("达标" if case["reached"] else "未达标"),
                Cell(t["rule"]),
            )
        )
    return Table(
        "targets",
        f"全市规划目标（2019 年底）完成情况（按办件：{period.label}）",
        ("目标", "目标值", "按事项", "完成度", "是否达标", "按办件", "完成度", "是否达标", "口径"),
        tuple(rows),
        frozenset({3, 6}),
        ("目标", "目标值", "按事项", "按事项完成(%)", "按事项达标", "按办件", "按办件完成(%)", "按办件达标", "口径"),
    )


def visit_table(plan: perf.PlanTargets, period: Period) -> Table:
    rows = tuple(
        (
            Cell(f"{visits} 次"),
            count_cell(n, cases_link(visits=str(visits), **period.filters("closed"))),
            rate_cell(n / plan.closed if plan.closed else None),
        )
        for visits, n in plan.visits.items()
    )
    return Table(
        "visits",
        "办结办件的跑动次数分布",
        ("跑动次数", "办件数", "占比"),
        rows,
        frozenset({1, 2}),
        ("跑动次数", "办件数", "占比(%)"),
    )


def star_table(stars: Sequence[perf.StarRow]) -> Table:
    rows = tuple(
        (
            Cell(str(s.rank), value=s.rank),
            Cell(s.name, value=f"{s.name}（{s.department}）"),
            Cell(
                ("★" * s.stars + "☆" * (5 - s.stars) if s.stars else "无数据") + ("" if s.enough else "（样本不足）"),
                css="stars",
                value=s.stars,
            ),
            Cell("—" if s.score is None else f"{s.score:.1f}", value="" if s.score is None else s.score),
            rate_cell(s.on_time_rate),
            count_cell(s.timed),
            rate_cell(s.satisfaction_rate),
            count_cell(s.rated),
        )
        for s in stars
    )
    return Table(
        "stars",
        "部门星级评价（排名）",
        ("名次", "部门", "星级", "得分", "按时办结率", "计时任务", "满意率", "评价数"),
        rows,
        frozenset({0, 3, 4, 5, 6, 7}),
        ("名次", "部门", "星级", "得分", "按时办结率(%)", "计时任务", "满意率(%)", "评价数"),
        note="得分 = 60 × 按时办结率 + 40 × 满意率（满分 100）；只有其一时按该项计。"
        "★★★★★ ≥ 95，★★★★ ≥ 90，★★★ ≥ 80，★★ ≥ 60，★ < 60。"
        f"计时任务与评价合计不足 {perf.STAR_MIN_SAMPLE} 件的部门标为样本不足，排在其余部门之后。",
    )


def heat_table(heat: perf.Heat, names: dict[str, str], period: Period) -> Table:
    rows = []
    for step_id, s in heat.steps.items():
        step = heat.definition.steps_by_id.get(step_id)
        limit = step.limit.label if step is not None and step.limit else "—"
        share = "—" if s.branch_share is None else f"{pct(s.branch_share)}（{s.taken}/{s.reached}）"
        done = cases_link(definition=heat.definition_key, step=step_id, **period.filters("done"))
        rows.append(
            (
                Cell(_step_label(step_id, step.name if step else step_id), value=step_id),
                Cell(names.get(s.department, s.department)),
                Cell(limit),
                count_cell(s.work.completed, done),
                rate_cell(s.work.on_time_rate),
                minutes_cell(s.work.average_minutes),
                minutes_cell(s.median_minutes),
                minutes_cell(s.work.p90_minutes),
                Cell(pct(_ratio(s, step)), value=pct_value(_ratio(s, step))),
                Cell(share, value="" if s.branch_share is None else pct_value(s.branch_share)),
            )
        )
    return Table(
        f"heatmap-{heat.definition_key}",
        f"{heat.definition.name}：各环节用时与分支（{period.label}）",
        ("环节", "部门", "环节时限", "办结", "按时率", "平均", "中位数", "P90", "P90/时限", "走此环节的办件"),
        tuple(rows),
        frozenset({3, 4, 5, 6, 7, 8}),
        (
            "环节",
            "部门",
            "环节时限",
            "办结",
            "按时率(%)",
            "平均(工作分钟)",
            "中位数(工作分钟)",
            "P90(工作分钟)",
            "P90/时限(%)",
            "走此环节占比(%)",
        ),
        note=f"分支占比：统计期内办结的 {heat.closed_cases} 件办件中，流程走到该环节并办理（未跳过）的比例。",
    )


# ---------------------------------------------------------------------------------------------------
# the heat map drawing

FILLS = ("#a5d6a7", "#e6ee9c", "#ffe082", "#ffab91", "#ef9a9a")  # green … red
HEAT_SCALE = (  # against the step's limit: (ratio up to, fill, words)
    (0.5, FILLS[0], "≤ 50% 时限"),
    (0.8, FILLS[1], "50–80%"),
    (1.0, FILLS[2], "80–100%"),
    (1.5, FILLS[3], "超时限 ≤ 50%"),
    (float("inf"), FILLS[4], "超时限 > 50%"),
)
RELATIVE_SCALE = (  # against the slowest step of the chart
    (0.2, FILLS[0], "≤ 20% 最慢环节"),
    (0.4, FILLS[1], "20–40%"),
    (0.6, FILLS[2], "40–60%"),
    (0.8, FILLS[3], "60–80%"),
    (float("inf"), FILLS[4], "> 80%（瓶颈）"),
)
NO_LIMIT_FILL, NO_DATA_FILL = "#bbdefb", "#eeeeee"
MEASURES = {"p90": "P90", "median": "中位数", "average": "平均"}
COMPARES = {"limit": "对照环节时限", "relative": "对照最慢环节"}


def _limit_minutes(step: Any, minutes_per_day: float) -> float | None:
    limit = getattr(step, "limit", None)
    if limit is None:
        return None
    return limit.amount * 60 if limit.unit == "h" else limit.working_hours / 8.0 * minutes_per_day


def _measured(s: perf.StepHeat, measure: str) -> float | None:
    return {"p90": s.work.p90_minutes, "median": s.median_minutes, "average": s.work.average_minutes}[measure]


def _ratio(s: perf.StepHeat, step: Any, minutes_per_day: float = 480.0, measure: str = "p90") -> float | None:
    """The measure over the step's limit (None: untimed, or nothing measured)."""
    limit, value = _limit_minutes(step, minutes_per_day), _measured(s, measure)
    return None if limit is None or value is None else value / limit


def heat_fill(ratio: float | None, has_data: bool, scale: Sequence[tuple[float, str, str]] = HEAT_SCALE) -> str:
    if not has_data:
        return NO_DATA_FILL
    if ratio is None:
        return NO_LIMIT_FILL
    return next(fill for upto, fill, _ in scale if ratio <= upto)


def heat_overlay(
    heat: perf.Heat, minutes_per_day: float, measure: str = "p90", compare: str = "limit"
) -> tuple[dict[str, StepOverlay], dict[str, str]]:
    """Per step: the fill and a one-line note for the chart, and the full figures for its hover title.
    ``measure``: P90, median or average working time; ``compare``: against the step's limit, or against
    the slowest step of the chart (a bottleneck shows even when every step is late, or none is)."""
    overlay: dict[str, StepOverlay] = {}
    titles: dict[str, str] = {}
    word = MEASURES[measure]
    slowest = max((v for s in heat.steps.values() if (v := _measured(s, measure))), default=None)
    for step in heat.definition.steps:
        s = heat.steps[step.id]
        value = _measured(s, measure)
        has_data = s.work.completed > 0
        if compare == "relative":
            ratio = value / slowest if value is not None and slowest else None
            fill = heat_fill(ratio if has_data else None, has_data, RELATIVE_SCALE)
            if has_data and ratio is None:
                fill = NO_LIMIT_FILL
            shown = f"（最慢环节的 {ratio:.0%}）" if ratio is not None else ""
        else:
            ratio = _ratio(s, step, minutes_per_day, measure)
            fill = heat_fill(ratio, has_data)
            shown = f"（时限的 {ratio:.0%}）" if ratio is not None else "（不限时）"
        note = f"{word} {duration(value)}{shown}" if has_data else "期内无办结"
        if step.when is not None and s.branch_share is not None:
            note += f" · 分支 {s.branch_share:.0%}"
        overlay[step.id] = StepOverlay(color=fill, note=note)
        lines = [
            f"{step.name}（{KIND_LABELS.get(step.kind, step.kind)}）",
            f"环节时限：{step.limit.label if step.limit else '不限时'}",
            f"期内办结：{s.work.completed} 件，按时率 {pct(s.work.on_time_rate)}",
            f"平均 {duration(s.work.average_minutes)}，中位数 {duration(s.median_minutes)}，"
            f"P90 {duration(s.work.p90_minutes)}（工作时间）",
        ]
        limit_ratio = _ratio(s, step, minutes_per_day)
        if limit_ratio is not None:
            lines.append(f"P90 为时限的 {limit_ratio:.0%}")
        if s.reached:
            lines.append(f"办结办件中走此环节：{s.taken}/{s.reached}（{pct(s.branch_share)}）")
        titles[step.id] = "\n".join(lines)
    return overlay, titles


SVG_NS, XLINK_NS = "http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)
_SVG_CACHE: dict[Any, Markup] = {}


def heat_svg(
    heat: perf.Heat,
    departments: dict[str, DepartmentSpec],
    minutes_per_day: float,
    measure: str = "p90",
    compare: str = "limit",
) -> Markup:
    """The flowchart with the heat overlay, each step's <title> (and link title) replaced by its figures,
    so hovering a step shows them. Kept per process for the same figures."""
    overlay, titles = heat_overlay(heat, minutes_per_day, measure, compare)
    key = (heat.definition_key, heat.version, tuple(sorted(titles.items())), tuple(sorted(overlay.items())))
    found = _SVG_CACHE.get(key)
    if found is not None:
        return found
    raw = flowchart(heat.definition, departments, overlay).pipe(format="svg")
    root = ET.fromstring(raw)
    for group in root.iter(f"{{{SVG_NS}}}g"):
        if group.get("class") != "node":
            continue
        title = group.find(f"{{{SVG_NS}}}title")
        if title is None or title.text not in titles:
            continue
        figures = titles[title.text]
        group.set("data-step", title.text)
        title.text = figures
        for anchor in group.iter(f"{{{SVG_NS}}}a"):
            if anchor.get(f"{{{XLINK_NS}}}title") is not None:
                anchor.set(f"{{{XLINK_NS}}}title", figures)
    _fit(root)
    root.set("role", "img")
    root.set("aria-label", f"{heat.definition.name} 瓶颈热力图")
    svg = Markup(ET.tostring(root, encoding="unicode"))
    if len(_SVG_CACHE) > 64:
        _SVG_CACHE.clear()
    _SVG_CACHE[key] = svg
    return svg


def _fit(root: ET.Element) -> None:
    """Let the chart scale to the page's width (its viewBox keeps the proportions), down to 60% of its size."""
    natural = re.match(r"([\d.]+)pt", root.get("width", ""))
    for name in ("width", "height"):
        root.attrib.pop(name, None)
    root.set("width", "100%")
    if natural is not None:  # never below 60% of its size (1 pt = 4/3 px): the page scrolls instead
        root.set("style", f"min-width: {float(natural.group(1)) * 4 / 3 * 0.6:.0f}px")


def department_specs(conn: Connection) -> dict[str, DepartmentSpec]:
    rows = conn.execute(select(Department.code, Department.name, Department.parent, Department.supervisor_role))
    return {
        r.code: DepartmentSpec(code=r.code, name=r.name, parent=r.parent, supervisor_role=r.supervisor_role)
        for r in rows
    }


# ---------------------------------------------------------------------------------------------------
# what each page reads


@dataclass
class View:
    """One page's context: the period, the scope and the tables (by name, for the CSV export)."""

    period: Period
    scope: Scope
    tables: dict[str, Table] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, *tables: Table) -> None:
        for table in tables:
            self.tables[table.name] = table


def _live(conn: Connection, scope: Scope) -> perf.LiveBoard:
    return perf.live_counts(conn, departments=scope.departments, definitions=scope.definitions)


def live_view(conn: Connection, scope: Scope, period: Period) -> View:
    view = View(period, scope)
    live = _live(conn, scope)
    view.extra["live"] = live
    view.add(live_department_table(live), live_definition_table(live))
    return view


def _scoped_board(board: read.Dashboard, scope: Scope) -> read.Dashboard:
    return read.Dashboard(
        board.start,
        board.end,
        tuple(d for d in board.departments if scope.has_department(d.department)),
        tuple(f for f in board.definitions if scope.has_definition(f.definition_key)),
    )


def overview_view(conn: Connection, scope: Scope, period: Period, now: datetime) -> View:
    view = live_view(conn, scope, period)
    board = _scoped_board(read.dashboard(conn, period.start, period.end), scope)
    weeks = perf.weekly_trends(
        conn, now=now, weeks=TREND_WEEKS, departments=scope.departments, definitions=scope.definitions
    )
    view.add(period_department_table(board, period), period_definition_table(board, period), step_table(board, period))
    view.add(trend_table(weeks))
    view.extra["weeks"] = weeks
    view.extra["board"] = board
    return view


def alerts_view(
    conn: Connection, scope: Scope, period: Period, now: datetime, calendar: Any, live: perf.LiveBoard | None = None
) -> View:
    view = View(period, scope)
    red = perf.cards(conn, "overdue", now=now, calendar=calendar, departments=scope.departments, limit=CARD_LIMIT)
    yellow = perf.cards(conn, "warning", now=now, calendar=calendar, departments=scope.departments, limit=CARD_LIMIT)
    refusals = perf.pending_refusals(conn, now=now, calendar=calendar, departments=scope.departments)
    live = live or _live(conn, scope)
    view.add(
        card_table(red, "红牌：已超过时限的环节", "red-cards"),
        card_table(yellow, "黄牌：即将到期的环节", "yellow-cards"),
        refusal_table(refusals),
    )
    view.extra.update(
        red=red,
        yellow=yellow,
        refusals=refusals,
        live=live,
        # each row with the task a 催办 goes to (a refusal's: its leader's report task)
        red_rows=list(zip(view.tables["red-cards"].rows, [c.task_id for c in red], strict=True)),
        yellow_rows=list(zip(view.tables["yellow-cards"].rows, [c.task_id for c in yellow], strict=True)),
        refusal_rows=list(zip(view.tables["refusals"].rows, [r.report_task_id for r in refusals], strict=True)),
    )
    return view


def ratings_view(conn: Connection, scope: Scope, period: Period) -> View:
    view = View(period, scope)
    rated = perf.ratings(conn, period.start, period.end, departments=scope.departments, definitions=scope.definitions)
    bad = perf.bad_ratings(conn, period.start, period.end, departments=scope.departments, definitions=scope.definitions)
    view.extra.update(rated=rated, bad=bad)
    view.add(
        rating_table(rated.by_department, "各部门好差评", "ratings-departments", "部门", period),
        rating_table(rated.by_definition, "各一件事好差评", "ratings-definitions", "一件事", period),
        bad_rating_table(bad),
    )
    return view


def targets_view(conn: Connection, scope: Scope, period: Period) -> View:
    view = View(period, scope)
    plan = perf.plan_targets(conn, period.start, period.end)
    on_time = perf.on_time_by_department(conn, period.start, period.end)
    stars = perf.department_stars(on_time, perf.ratings(conn, period.start, period.end))
    view.extra.update(plan=plan, targets=target_rows(plan, period), stars=stars)
    view.add(target_table(plan, period), visit_table(plan, period), star_table(stars))
    return view


def heatmap_view(conn: Connection, scope: Scope, period: Period, key: str, minutes_per_day: float) -> View:
    if not scope.has_definition(key):
        raise WebError(404, "not_found", f"一件事 {key} 不存在或不在你的监察范围内")
    try:
        heat = perf.step_heat(conn, key, period.start, period.end)
    except NotFound:
        raise WebError(404, "not_found", f"一件事 {key} 不存在或不在你的监察范围内") from None
    departments = department_specs(conn)
    view = View(period, scope)
    view.add(heat_table(heat, {c: d.name for c, d in departments.items()}, period))
    view.extra.update(heat=heat, departments=departments, minutes_per_day=minutes_per_day)
    return view


# ---------------------------------------------------------------------------------------------------
# routes


def _period(svc: Services, start: str, end: str) -> Period:
    if len(start) > 10 or len(end) > 10:
        raise WebError(422, "invalid_data", "日期格式应为 YYYY-MM-DD，例如 2026-03-01")
    return parse_period(start, end, svc.engine.clock().astimezone(TZ).date())


class Fmt:
    """What the templates format with (passed as ``fmt``; web/templating.py's filters stay as they are)."""

    duration = staticmethod(duration)
    remaining = staticmethod(_remaining)
    local = staticmethod(_local)
    urged = staticmethod(_urged)
    pct = staticmethod(pct)
    kinds: ClassVar[dict[str, str]] = {"not_accepted": "不予受理", "rejected": "不予许可"}


def _render(request: Request, svc: Services, template: str, view: View, **context: Any) -> Response:
    local = svc.engine.clock().astimezone(TZ)
    return svc.templates.TemplateResponse(
        request,
        template,
        {
            "nav": "dashboard",
            "now_label": f"{local:%H:%M:%S}",
            "fmt": Fmt,
            "view": view,
            "period": view.period,
            "scope": view.scope,
            "quick": quick_periods(local.date()),
            "tables": view.tables,
            **view.extra,
            **context,
        },
    )


def _read(svc: Services, viewer: Viewer, build: Callable[[Connection, Scope], View]) -> View:
    with reading(svc.engine.db) as conn:
        return build(conn, scope_of(conn, viewer))


@router.get("/dashboard")
def overview(
    request: Request,
    start: str = "",
    end: str = "",
    viewer: Viewer = Depends(watcher),
    svc: Services = Depends(services),
) -> Response:
    period = _period(svc, start, end)
    now = svc.engine.clock()

    def build(conn: Connection, scope: Scope) -> View:
        view = overview_view(conn, scope, period, now)
        alerts = alerts_view(conn, scope, period, now, svc.engine.calendar, view.extra["live"])
        view.add(*alerts.tables.values())
        view.extra.update(alerts.extra)
        return view

    view = _read(svc, viewer, build)
    chart = _trend_chart(view.extra["weeks"])
    return _render(
        request,
        svc,
        "dashboard/index.html",
        view,
        tab="overview",
        chart=chart,
        can_urge=viewer.has("manager", "supervisor"),
    )


def _trend_chart(weeks: Sequence[perf.Week]) -> dict[str, Any]:
    return {
        "labels": [f"{w.start:%m-%d}" for w in weeks],
        "submitted": [w.submitted for w in weeks],
        "closed": [w.closed for w in weeks],
        "on_time": [None if w.on_time_rate is None else round(w.on_time_rate * 100, 1) for w in weeks],
        "tasks_on_time": [
            None if w.tasks_on_time_rate is None else round(w.tasks_on_time_rate * 100, 1) for w in weeks
        ],
    }


@router.get("/dashboard/live")
def live(
    request: Request,
    start: str = "",
    end: str = "",
    viewer: Viewer = Depends(watcher),
    svc: Services = Depends(services),
) -> Response:
    period = _period(svc, start, end)
    view = _read(svc, viewer, lambda conn, scope: live_view(conn, scope, period))
    return _render(request, svc, "dashboard/_live.html", view)


@router.get("/dashboard/alerts")
def alerts(
    request: Request,
    start: str = "",
    end: str = "",
    viewer: Viewer = Depends(watcher),
    svc: Services = Depends(services),
) -> Response:
    period = _period(svc, start, end)
    now = svc.engine.clock()
    view = _read(svc, viewer, lambda conn, scope: alerts_view(conn, scope, period, now, svc.engine.calendar))
    return _render(request, svc, "dashboard/_alerts.html", view, can_urge=viewer.has("manager", "supervisor"))


def tasks_view(
    conn: Connection, scope: Scope, period: Period, department: str, sla: str, now: datetime, calendar: Any
) -> View:
    if sla not in SLA_WORDS:
        raise WebError(422, "invalid_data", "时效状态应为 open、warning、overdue 或 paused")
    names = department_names(conn)
    if department and (department not in names or not scope.has_department(department)):
        raise WebError(404, "not_found", f"部门 {department[:32]} 不存在或不在你的监察范围内")
    which = {department} if department else scope.departments
    items = perf.cards(conn, sla, now=now, calendar=calendar, departments=which, limit=500)
    view = View(period, scope)
    whose = names[department] if department else ("全市" if scope.everything else "本部门")
    view.add(card_table(items, f"{whose}：{SLA_WORDS[sla]}任务", "tasks"))
    view.extra.update(items=items, department=department, sla=sla)
    return view


@router.get("/dashboard/tasks")
def open_tasks(
    request: Request,
    department: str = "",
    sla: str = "open",
    viewer: Viewer = Depends(watcher),
    svc: Services = Depends(services),
) -> Response:
    """The open tasks behind a live count (of one department, or of all the viewer oversees), most late
    first."""
    period, now = _period(svc, "", ""), svc.engine.clock()
    view = _read(
        svc, viewer, lambda conn, scope: tasks_view(conn, scope, period, department, sla, now, svc.engine.calendar)
    )
    return _render(request, svc, "dashboard/tasks.html", view, can_urge=viewer.has("manager", "supervisor"))


@router.get("/dashboard/tasks.csv")
def open_tasks_csv(
    department: str = "", sla: str = "open", viewer: Viewer = Depends(watcher), svc: Services = Depends(services)
) -> Response:
    period, now = _period(svc, "", ""), svc.engine.clock()
    view = _read(
        svc, viewer, lambda conn, scope: tasks_view(conn, scope, period, department, sla, now, svc.engine.calendar)
    )
    return _csv(view.tables["tasks"], Period(now.astimezone(TZ).date(), now.astimezone(TZ).date()))


@router.get("/dashboard/heatmap")
def heatmaps(
    request: Request,
    start: str = "",
    end: str = "",
    viewer: Viewer = Depends(watcher),
    svc: Services = Depends(services),
) -> Response:
    period = _period(svc, start, end)

    def build(conn: Connection, scope: Scope) -> View:
        view = View(period, scope)
        names = latest_definition_names(conn)
        view.extra["definitions"] = [(k, n) for k, n in sorted(names.items()) if scope.has_definition(k)]
        return view

    view = _read(svc, viewer, build)
    if len(view.extra["definitions"]) == 1:  # one 一件事 only: show it
        key = view.extra["definitions"][0][0]
        return RedirectResponse(f"/dashboard/heatmap/{key}?{period.query}", status_code=303)
    return _render(request, svc, "dashboard/heatmaps.html", view, tab="heatmap")


@router.get("/dashboard/heatmap/{key}.csv")
def heatmap_csv(
    key: str, start: str = "", end: str = "", viewer: Viewer = Depends(watcher), svc: Services = Depends(services)
) -> Response:
    period = _period(svc, start, end)
    view = _read(svc, viewer, lambda conn, scope: heatmap_view(conn, scope, period, key[:64], _per_day(svc)))
    return _csv(next(iter(view.tables.values())), period)


@router.get("/dashboard/heatmap/{key}")
def heatmap(
    request: Request,
    key: str,
    start: str = "",
    end: str = "",
    measure: str = "p90",
    compare: str = "limit",
    viewer: Viewer = Depends(watcher),
    svc: Services = Depends(services),
) -> Response:
    if measure not in MEASURES or compare not in COMPARES:
        raise WebError(422, "invalid_data", "度量应为 p90、median 或 average，对照应为 limit 或 relative")
    period = _period(svc, start, end)
    view = _read(svc, viewer, lambda conn, scope: heatmap_view(conn, scope, period, key[:64], _per_day(svc)))
    heat = view.extra["heat"]
    svg = heat_svg(heat, view.extra["departments"], view.extra["minutes_per_day"], measure, compare)
    with reading(svc.engine.db) as conn:
        names = [(k, n) for k, n in sorted(latest_definition_names(conn).items()) if view.scope.has_definition(k)]
    table = next(iter(view.tables.values()))
    choice = urlencode({"measure": measure, "compare": compare})
    return _render(
        request, svc, "dashboard/heatmap.html", view, tab="heatmap", svg=svg, table=table,
        scale=RELATIVE_SCALE if compare == "relative" else HEAT_SCALE, no_limit=NO_LIMIT_FILL, no_data=NO_DATA_FILL,
        definitions=names, measure=measure, compare=compare, measures=MEASURES, compares=COMPARES, choice=choice,
    )  # fmt: skip


def _per_day(svc: Services) -> float:
    return float(getattr(svc.engine.calendar, "hours_per_day", 8.0)) * 60


@router.get("/dashboard/ratings")
def ratings(
    request: Request,
    start: str = "",
    end: str = "",
    viewer: Viewer = Depends(watcher),
    svc: Services = Depends(services),
) -> Response:
    period = _period(svc, start, end)
    view = _read(svc, viewer, lambda conn, scope: ratings_view(conn, scope, period))
    chart = {
        "labels": [row.name for row in view.extra["rated"].by_definition],
        # a list, in level order (tojson sorts a dict's keys)
        "series": [
            {"label": label, "values": [row.levels.get(level, 0) for row in view.extra["rated"].by_definition]}
            for level, label in perf.LEVEL_LABELS.items()
        ],
    }
    return _render(request, svc, "dashboard/ratings.html", view, tab="ratings", chart=chart)


@router.get("/dashboard/targets")
def targets(
    request: Request,
    start: str = "",
    end: str = "",
    viewer: Viewer = Depends(watcher),
    svc: Services = Depends(services),
) -> Response:
    period = _period(svc, start, end)
    view = _read(svc, viewer, lambda conn, scope: targets_view(conn, scope, period))
    chart = {
        "labels": [s.name + ("" if s.enough else "（样本不足）") for s in view.extra["stars"] if s.score is not None],
        "scores": [s.score for s in view.extra["stars"] if s.score is not None],
        "enough": [s.enough for s in view.extra["stars"] if s.score is not None],
    }
    return _render(request, svc, "dashboard/targets.html", view, tab="targets", chart=chart)


# -- CSV ---------------------------------------------------------------------------------------------

EXPORTS: dict[str, str] = {  # table -> the view that builds it
    "live-departments": "live",
    "live-definitions": "live",
    "departments": "overview",
    "definitions": "overview",
    "steps": "overview",
    "trends": "overview",
    "red-cards": "alerts",
    "yellow-cards": "alerts",
    "refusals": "alerts",
    "ratings-departments": "ratings",
    "ratings-definitions": "ratings",
    "bad-ratings": "ratings",
    "targets": "targets",
    "visits": "targets",
    "stars": "targets",
}


@router.get("/dashboard/{name}.csv")
def export(
    name: str, start: str = "", end: str = "", viewer: Viewer = Depends(watcher), svc: Services = Depends(services)
) -> Response:
    if name not in EXPORTS:
        raise WebError(404, "not_found", f"没有名为 {name[:40]} 的报表")
    period = _period(svc, start, end)
    now = svc.engine.clock()
    builders: dict[str, Callable[[Connection, Scope], View]] = {
        "live": lambda conn, scope: live_view(conn, scope, period),
        "overview": lambda conn, scope: overview_view(conn, scope, period, now),
        "alerts": lambda conn, scope: alerts_view(conn, scope, period, now, svc.engine.calendar),
        "ratings": lambda conn, scope: ratings_view(conn, scope, period),
        "targets": lambda conn, scope: targets_view(conn, scope, period),
    }
    view = _read(svc, viewer, builders[EXPORTS[name]])
    return _csv(view.tables[name], period)


def _csv(table: Table, period: Period) -> Response:
    filename = f"{table.name}_{period.first:%Y%m%d}-{period.last:%Y%m%d}.csv"
    return Response(
        "\ufeff" + table.csv(),  # the BOM: spreadsheets then read the Chinese as UTF-8
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# -- 催办 / 督办 --------------------------------------------------------------------------------------


def _urger(viewer: Viewer) -> None:
    if not viewer.has("manager", "supervisor"):
        raise WebError(403, "forbidden", "催办、督办由效能监察人员和部门负责人发起")


@router.get("/dashboard/urge/{task_id}")
def urge_form(
    request: Request,
    task_id: int = Path(ge=1, le=TASK_ID_MAX),
    viewer: Viewer = Depends(watcher),
    svc: Services = Depends(services),
) -> Response:
    """The 催办/督办 form of one task, if the engine lets this person urge it (available_actions)."""
    _urger(viewer)
    visible_task(svc.engine, viewer, task_id)
    actions = svc.engine.available_actions(viewer.user_id, task_id=task_id)
    return svc.templates.TemplateResponse(
        request,
        "dashboard/_urge_form.html",
        {
            "task_id": task_id,
            "allowed": "urge_task" in actions,
            "levels": URGE_LEVELS,
            "within": URGE_WITHIN,
            "message": DEFAULT_URGE,
            "level": "supervise" if viewer.has("manager") else "urge",
        },
    )


@router.get("/dashboard/urge/{task_id}/button")
def urge_button(
    request: Request,
    task_id: int = Path(ge=1, le=TASK_ID_MAX),
    viewer: Viewer = Depends(watcher),
    svc: Services = Depends(services),
) -> Response:
    """The button again (the form cancelled)."""
    return svc.templates.TemplateResponse(request, "dashboard/_urge_button.html", {"task_id": task_id})


@router.post("/dashboard/urge/{task_id}")
def urge(
    request: Request,
    task_id: int = Path(ge=1, le=TASK_ID_MAX),
    level: str = Form("urge"),
    message: str = Form(DEFAULT_URGE),
    within: str = Form(""),
    viewer: Viewer = Depends(watcher),
    svc: Services = Depends(services),
) -> Response:
    _urger(viewer)
    if level not in URGE_LEVELS or within not in URGE_WITHIN:
        raise WebError(422, "invalid_data", "请选择催办或督办，以及办理期限")
    message = message.strip()
    if not message or len(message) > 500:
        raise WebError(422, "invalid_data", "请填写催办内容（不超过 500 字）")
    visible_task(svc.engine, viewer, task_id)
    svc.engine.urge(viewer.user_id, message, task_id=task_id, level=level, within=within or None)
    return svc.templates.TemplateResponse(
        request,
        "dashboard/_urged.html",
        {"task_id": task_id, "label": URGE_LEVELS[level], "within": URGE_WITHIN[within], "message": message},
    )
