"""效能监察: what the managers' dashboard reads beyond ``dashboard`` (dashboard.py) — live counts alone (for
the page's polling), weekly trends, the alert list (黄牌/红牌) and the refusals waiting for a leader (否定
报备), a definition's bottleneck heat map with the share of cases that took each branch, 好差评 by
department and definition with the rectification of the bad ones, and the city plan's targets with each
department's star rating (部门星级评价).

Every read is a set-based statement over an index (named at each one) and returns frozen dataclasses;
``departments`` / ``definitions`` narrow a read to a supervisor's departments and the 一件事 they take part
in (None: everything).

Rules the figures follow (the page states them):

* **visits** (跑动次数) of a closed case: 1 when it was applied for at a window (``cases.channel``), +1 for
  each 补正 round (a ``supplements`` row: before or after acceptance), +1 when a certificate was collected
  at a window (``certificates.delivery``); an online application, supplied and delivered without a visit,
  is 0. 最多跑一次 = at most one visit.
* **one window** (一窗受理): a window application recorded at a service centre (``cases.centre``), of all
  window applications; per item, a definition whose acceptance step belongs to a department whose
  members hold window accounts (综合窗口).
* **online** (网上可办): per case, ``cases.channel = 'online'``; per item, a definition an applicant can
  see through without a visit: every application may come in online, and each of its issue steps
  delivers online or by mail (or it issues nothing).
* **ratings by department**: a case's rating counts for every department that completed a task of it;
  satisfied = levels 1–3 (非常满意, 满意, 基本满意), bad = 4–5, which open a rectification task
  (``__rectification__``, at the entry step's department).
* **star rating**: score = 60 × on-time rate + 40 × satisfaction rate (0–100) of the period; a department
  without ratings is scored on its on-time rate alone (and the reverse); ★★★★★ from 95, ★★★★ from 90,
  ★★★ from 80, ★★ from 60, ★ below. A department with fewer than 10 timed tasks and ratings together is
  rated but ranked after the others (样本不足: one late task must not decide a ranking).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, select, text

from ...calendar import TZ, BusinessCalendar
from ...definition.model import Definition
from ...store.models import Account, Membership, Timestamp, User, WorkDay
from ..errors import NotFound
from ..rules import RECTIFICATION_STEP
from .common import aware, definition_names, department_names, latest_definition_names
from .dashboard import (
    _DEFINITIONS,
    LIVE_CASE_COUNTS,
    LIVE_DONE,
    LIVE_TASK_COUNTS,
    WorkTime,
    _definitions_of,
    _midnight,
    _whole_days,
    percentile_cont,
    summarized_through,
)

SATISFIED = (1, 2, 3)
BAD = (4, 5)
LEVEL_LABELS = {1: "非常满意", 2: "满意", 3: "基本满意", 4: "不满意", 5: "非常不满意"}
NEGATIVE_REPORT_STEP = "__negative_report__"

# the city plan (end of 2019): targets of 一件事 and 最多跑一次
PLAN_ITEMS = 200  # 一件事 sorted out
PLAN_ONLINE = 0.9  # service items handled online
PLAN_ONE_WINDOW = 0.7  # accepted at one window (一窗分类受理)
PLAN_ONE_VISIT = 0.9  # at most one visit (最多跑一次)

STAR_WEIGHTS = (0.6, 0.4)  # on-time rate, satisfaction rate
STAR_STEPS = ((95.0, 5), (90.0, 4), (80.0, 3), (60.0, 2))
STAR_MIN_SAMPLE = 10  # timed tasks plus ratings below this: rated, but ranked after the others (样本不足)

# the module's rules as SQL over ``cases`` and ``tasks`` by their names, for its statements and the case
# search's filters (search.py): a figure and the list of its cases agree
AT_CENTRE = "cases.centre IS NOT NULL"  # a window application recorded at a service centre
CASE_VISITS = (  # 跑动次数 (ix_supplements_case, ix_certificates_case)
    "(CASE WHEN cases.channel = 'window' THEN 1 ELSE 0 END"
    " + (SELECT COUNT(*) FROM supplements s WHERE s.case_id = cases.id)"
    " + CASE WHEN EXISTS (SELECT 1 FROM certificates k WHERE k.case_id = cases.id AND k.delivery = 'window')"
    " THEN 1 ELSE 0 END)"
)
SHARES_RATING = (  # a task whose department a case's rating counts for: completed, not 差评整改 or 否定报备
    "tasks.state = 'completed' AND substr(tasks.step_id, 1, 2) <> '__'"
)


def _in(name: str) -> Any:
    return bindparam(name, expanding=True)


def _narrow(values: Collection[str] | None) -> list[str] | None:
    return None if values is None else sorted(values)


# ----------------------------------------------------------------------------------------------
# live counts (polled by the page)


@dataclass(frozen=True)
class LiveCount:
    code: str  # department code or definition key
    name: str
    open: int = 0  # tasks (departments) or cases (definitions) open now
    warning: int = 0
    overdue: int = 0
    paused: int = 0


@dataclass(frozen=True)
class LiveBoard:
    departments: tuple[LiveCount, ...]
    definitions: tuple[LiveCount, ...]

    @property
    def open_tasks(self) -> int:
        return sum(d.open for d in self.departments)

    @property
    def warning_tasks(self) -> int:
        return sum(d.warning for d in self.departments)

    @property
    def overdue_tasks(self) -> int:
        return sum(d.overdue for d in self.departments)


def live_counts(
    conn: Connection, *, departments: Collection[str] | None = None, definitions: Collection[str] | None = None
) -> LiveBoard:
    """Open, warning (黄牌), overdue (红牌) and paused now: tasks per department (``ix_tasks_open_sla``) and
    live cases per definition (``ix_cases_live_sla``), both read index-only."""
    tasks: dict[str, dict[str | None, int]] = defaultdict(dict)
    for row in conn.execute(LIVE_TASK_COUNTS):
        tasks[row.department][row.sla_state] = row.n
    cases: dict[str, dict[str | None, int]] = defaultdict(dict)
    for row in conn.execute(LIVE_CASE_COUNTS):
        cases[row.definition_key][row.sla_state] = row.n
    department_name = department_names(conn)
    definition_name = latest_definition_names(conn)

    def counts(code: str, name: str, by_colour: dict[str | None, int]) -> LiveCount:
        return LiveCount(
            code,
            name,
            sum(by_colour.values()),
            by_colour.get("warning", 0),
            by_colour.get("overdue", 0),
            by_colour.get("paused", 0),
        )

    return LiveBoard(
        tuple(
            counts(code, department_name.get(code, code), tasks.get(code, {}))
            for code in sorted(set(tasks) | set(department_name))
            if departments is None or code in departments
        ),
        tuple(
            counts(key, definition_name.get(key, key), cases.get(key, {}))
            for key in sorted(set(cases) | set(definition_name))
            if definitions is None or key in definitions
        ),
    )


# ----------------------------------------------------------------------------------------------
# the alert list: 黄牌 / 红牌 and 否定报备


@dataclass(frozen=True)
class Urged:
    urges: int = 0  # 催办
    supervisions: int = 0  # 督办
    last_at: datetime | None = None


@dataclass(frozen=True)
class CardItem:
    """An open task: in warning (黄牌), overdue (红牌), paused, or any."""

    task_id: int
    case_id: int
    number: str
    definition_key: str
    definition_name: str
    step_id: str
    step_name: str
    department: str
    department_name: str
    state: str  # ready | claimed
    assignee: str | None
    assignee_name: str | None
    sla_state: str | None  # None: untimed (即办)
    ready_at: datetime
    due_at: datetime | None
    remaining_minutes: int | None  # working minutes to the due time, negative when overdue
    urged: Urged


_CARD_COLUMNS = (
    "SELECT t.id, t.case_id, t.step_id, t.name, t.department, t.state, t.assignee, t.sla_state, t.ready_at,"
    " t.due_at, c.number, c.definition_key, c.definition_version FROM tasks t JOIN cases c ON c.id = t.case_id"
    " WHERE t.state IN ('ready', 'claimed')"
)
CARD_COLOURS = ("overdue", "warning", "paused", "open")  # open: every open task, whatever its colour


def _cards_statement(colour: str, departments: bool) -> Any:
    where = "" if colour == "open" else " AND t.sla_state = :colour"
    if departments:
        where += " AND t.department IN :departments"
    if colour in ("overdue", "warning"):  # always timed: the due-time index in its order
        order = " ORDER BY t.due_at, t.id LIMIT :limit"
    else:  # untimed (即办) tasks after the timed ones, on both databases
        order = " ORDER BY CASE WHEN t.due_at IS NULL THEN 1 ELSE 0 END, t.due_at, t.id LIMIT :limit"
    statement = text(_CARD_COLUMNS + where + order).columns(ready_at=Timestamp, due_at=Timestamp)
    return statement.bindparams(_in("departments")) if departments else statement


URGES = (
    text(
        "SELECT task_id, level, COUNT(*) AS n, MAX(created_at) AS last_at FROM urges"
        " WHERE case_id IN :cases AND task_id IS NOT NULL GROUP BY task_id, level"
    )
    .bindparams(_in("cases"))
    .columns(last_at=Timestamp)
)


def _urged(conn: Connection, case_ids: Iterable[int]) -> dict[int, Urged]:
    """催办 and 督办 made per task of these cases (``ix_urges_case``)."""
    wanted = sorted(set(case_ids))
    if not wanted:
        return {}
    tallies: dict[int, dict[str, Any]] = defaultdict(lambda: {"urge": 0, "supervise": 0, "last": None})
    for row in conn.execute(URGES, {"cases": wanted}):
        tally = tallies[row.task_id]
        tally[row.level] = row.n
        tally["last"] = max(filter(None, (tally["last"], row.last_at)), default=None)
    return {task: Urged(t["urge"], t["supervise"], t["last"]) for task, t in tallies.items()}


def _user_names(conn: Connection, ids: Iterable[str | None]) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    users = User.__table__
    return dict(conn.execute(select(users.c.id, users.c.name).where(users.c.id.in_(wanted))).all())


def cards(
    conn: Connection,
    colour: str,
    *,
    now: datetime,
    calendar: BusinessCalendar,
    departments: Collection[str] | None = None,
    limit: int = 50,
) -> tuple[CardItem, ...]:
    """The open tasks of one colour (``overdue`` 红牌, ``warning`` 黄牌, ``paused``) or all of them (``open``),
    the longest-late first (by due time; untimed ones last): ``ix_tasks_open_due`` in order, or for a few
    departments ``ix_tasks_open_sla (department, sla_state)``. The total per colour is in ``live_counts``."""
    aware(now)
    if colour not in CARD_COLOURS:
        raise ValueError(f"colour {colour!r}: one of {', '.join(CARD_COLOURS)}")
    if not 1 <= limit <= 500:
        raise ValueError(f"limit {limit}: ask for 1 to 500 items")
    if departments is not None and not departments:
        return ()
    params: dict[str, Any] = {"colour": colour, "limit": limit}
    if departments is not None:
        params["departments"] = sorted(departments)
    rows = conn.execute(_cards_statement(colour, departments is not None), params).all()
    names = definition_names(conn, {(r.definition_key, r.definition_version) for r in rows})
    department_name = department_names(conn)
    people = _user_names(conn, (r.assignee for r in rows))
    urged = _urged(conn, (r.case_id for r in rows))
    return tuple(
        CardItem(
            task_id=r.id,
            case_id=r.case_id,
            number=r.number,
            definition_key=r.definition_key,
            definition_name=names.get((r.definition_key, r.definition_version), r.definition_key),
            step_id=r.step_id,
            step_name=r.name,
            department=r.department,
            department_name=department_name.get(r.department, r.department),
            state=r.state,
            assignee=r.assignee,
            assignee_name=people.get(r.assignee) if r.assignee else None,
            sla_state=r.sla_state,
            ready_at=r.ready_at,
            due_at=r.due_at,
            remaining_minutes=None if r.due_at is None else calendar.working_minutes_between(now, r.due_at),
            urged=urged.get(r.id, Urged()),
        )
        for r in rows
    )


@dataclass(frozen=True)
class PendingRefusal:
    """否定报备 (不予审批报告制): a proposed refusal waiting for the deciding department's leader."""

    report_id: int
    case_id: int
    number: str
    definition_key: str
    definition_name: str
    kind: str  # not_accepted (不予受理) | rejected (不予许可)
    department: str
    department_name: str
    reason: str
    proposed_by: str
    proposed_by_name: str
    proposed_at: datetime
    waiting_minutes: int  # working minutes since it was proposed
    report_task_id: int  # the leader's task (urge it)
    report_state: str | None
    report_sla_state: str | None
    report_due_at: datetime | None
    urged: Urged


REFUSALS = text(
    "SELECT r.id, r.case_id, r.kind, r.department, r.reason, r.proposed_by, r.proposed_at, r.report_task_id,"
    " c.number, c.definition_key, c.definition_version, t.state AS report_state, t.sla_state AS report_sla,"
    " t.due_at AS report_due FROM negative_reports r JOIN cases c ON c.id = r.case_id"
    " LEFT JOIN tasks t ON t.id = r.report_task_id WHERE r.decision IS NULL ORDER BY r.proposed_at, r.id"
).columns(proposed_at=Timestamp, report_due=Timestamp)


def pending_refusals(
    conn: Connection, *, now: datetime, calendar: BusinessCalendar, departments: Collection[str] | None = None
) -> tuple[PendingRefusal, ...]:
    """Every proposed refusal not decided yet, the oldest first. ``negative_reports`` holds one row per
    refusal ever proposed (a few per hundred cases) and is read whole; the undecided ones are few."""
    aware(now)
    rows = [r for r in conn.execute(REFUSALS) if departments is None or r.department in departments]
    names = definition_names(conn, {(r.definition_key, r.definition_version) for r in rows})
    department_name = department_names(conn)
    people = _user_names(conn, (r.proposed_by for r in rows))
    urged = _urged(conn, (r.case_id for r in rows))
    return tuple(
        PendingRefusal(
            report_id=r.id,
            case_id=r.case_id,
            number=r.number,
            definition_key=r.definition_key,
            definition_name=names.get((r.definition_key, r.definition_version), r.definition_key),
            kind=r.kind,
            department=r.department,
            department_name=department_name.get(r.department, r.department),
            reason=r.reason,
            proposed_by=r.proposed_by,
            proposed_by_name=people.get(r.proposed_by, r.proposed_by),
            proposed_at=r.proposed_at,
            waiting_minutes=calendar.working_minutes_between(r.proposed_at, now),
            report_task_id=r.report_task_id,
            report_state=r.report_state,
            report_sla_state=r.report_sla,
            report_due_at=r.report_due,
            urged=urged.get(r.report_task_id, Urged()),
        )
        for r in rows
    )


# ----------------------------------------------------------------------------------------------
# weekly trends


@dataclass(frozen=True)
class Week:
    start: date  # Monday (Asia/Shanghai)
    submitted: int = 0  # applications
    closed: int = 0  # cases 办结
    closed_timed: int = 0
    closed_on_time: int = 0
    tasks: int = 0  # tasks completed
    tasks_timed: int = 0
    tasks_on_time: int = 0
    tasks_measured: int = 0
    minutes_total: int = 0

    @property
    def end(self) -> date:
        return self.start + timedelta(days=7)

    @property
    def on_time_rate(self) -> float | None:
        """Of the cases 办结 this week with a limit, those within it."""
        return self.closed_on_time / self.closed_timed if self.closed_timed else None

    @property
    def tasks_on_time_rate(self) -> float | None:
        return self.tasks_on_time / self.tasks_timed if self.tasks_timed else None

    @property
    def average_minutes(self) -> float | None:
        return self.minutes_total / self.tasks_measured if self.tasks_measured else None


def _weeks_statement(column: str, extra: str, sums: str, weeks: int, definitions: list[str] | None) -> Any:
    """Rows of ``cases`` in [start, end) counted per week: the week is a CASE over the weeks' boundaries
    (plain comparisons on the indexed column, no time-zone arithmetic per row)."""
    bounds = " ".join(f"WHEN {column} < :w{i} THEN {i - 1}" for i in range(1, weeks))
    week = f"CASE {bounds} ELSE {weeks - 1} END" if bounds else "0"
    where = f"{column} >= :start AND {column} < :end {extra}"
    if definitions is not None:
        where += " AND definition_key IN :definitions"
    statement = text(f"SELECT {week} AS week, {sums} FROM cases WHERE {where} GROUP BY 1").bindparams(
        *(bindparam(name, type_=Timestamp) for name in ("start", "end", *(f"w{i}" for i in range(1, weeks))))
    )
    return statement.bindparams(_in("definitions")) if definitions is not None else statement


LIVE_SUMS = (
    "SELECT COUNT(*) AS completed, COUNT(t.due_at) AS timed,"
    " COALESCE(SUM(CASE WHEN t.due_at IS NOT NULL AND t.completed_at <= t.due_at THEN 1 ELSE 0 END), 0) AS on_time,"
    " COUNT(t.work_minutes) AS measured, COALESCE(SUM(t.work_minutes), 0) AS minutes FROM tasks t"
    " WHERE t.state = 'completed' AND t.completed_at >= :start AND t.completed_at < :end"
)


def _live_sums(conn: Connection, start: datetime, end: datetime, departments: list[str] | None) -> Any:
    """Completions in [start, end) summed from the covering ``ix_tasks_completed``."""
    statement = LIVE_SUMS + (" AND t.department IN :departments" if departments is not None else "")
    query = text(statement).bindparams(bindparam("start", type_=Timestamp), bindparam("end", type_=Timestamp))
    params: dict[str, Any] = {"start": start, "end": end}
    if departments is not None:
        query = query.bindparams(_in("departments"))
        params["departments"] = departments
    return conn.execute(query, params).one()


def weekly_trends(
    conn: Connection,
    *,
    now: datetime,
    weeks: int = 12,
    departments: Collection[str] | None = None,
    definitions: Collection[str] | None = None,
) -> tuple[Week, ...]:
    """The last ``weeks`` weeks (Monday to Sunday, the current one up to now): applications and cases 办结
    (per week over ``ix_cases_submitted`` and ``ix_cases_closed``), tasks completed with their on-time rate
    and average working time (``work_days`` for summarized days, ``ix_tasks_completed`` for the rest).
    ``departments`` narrows the tasks, ``definitions`` the cases."""
    aware(now)
    if not 1 <= weeks <= 104:
        raise ValueError(f"weeks {weeks}: ask for 1 to 104 weeks")
    today = now.astimezone(TZ).date()
    first = today - timedelta(days=today.weekday() + 7 * (weeks - 1))
    start = _midnight(first)
    keys = _narrow(definitions)
    codes = _narrow(departments)
    rows: dict[date, dict[str, int]] = {first + timedelta(days=7 * i): defaultdict(int) for i in range(weeks)}

    mondays = list(rows)
    params: dict[str, Any] = {"start": start, "end": now}
    params.update({f"w{i}": _midnight(monday) for i, monday in enumerate(mondays) if i})
    if keys is not None:
        params["definitions"] = keys
    if keys is None or keys:
        submitted = _weeks_statement("submitted_at", "", "COUNT(*) AS n", weeks, keys)
        for row in conn.execute(submitted, params):
            rows[mondays[row.week]]["submitted"] += row.n
        closed = _weeks_statement(
            "closed_at",
            "AND closed_at IS NOT NULL AND state = 'completed'",
            "COUNT(*) AS n, SUM(CASE WHEN due_at IS NOT NULL THEN 1 ELSE 0 END) AS timed,"
            " SUM(CASE WHEN due_at IS NOT NULL AND closed_at <= due_at THEN 1 ELSE 0 END) AS on_time",
            weeks,
            keys,
        )
        for row in conn.execute(closed, params):
            week = rows[mondays[row.week]]
            week["closed"] += row.n
            week["closed_timed"] += int(row.timed or 0)
            week["closed_on_time"] += int(row.on_time or 0)

    if codes is None or codes:
        through = summarized_through(conn)
        live_from = start
        if through is not None and through > first:
            w = WorkDay.__table__
            last = min(through - timedelta(days=1), today)
            week = case(
                *((w.c.day < monday.isoformat(), i - 1) for i, monday in enumerate(mondays) if i), else_=weeks - 1
            ).label("week")
            query = (
                select(
                    week,
                    func.sum(w.c.completed).label("completed"),
                    func.sum(w.c.timed).label("timed"),
                    func.sum(w.c.on_time).label("on_time"),
                    func.sum(w.c.measured).label("measured"),
                    func.sum(w.c.minutes_total).label("minutes"),
                )
                .where(w.c.day >= first.isoformat(), w.c.day <= last.isoformat())
                .group_by(week)
            )
            if codes is not None:
                query = query.where(w.c.department.in_(codes))
            for row in conn.execute(query):  # a handful of rows: summed by the database, per week
                figures = rows[mondays[row.week]]
                figures["tasks"] += int(row.completed)
                figures["tasks_timed"] += int(row.timed)
                figures["tasks_on_time"] += int(row.on_time)
                figures["tasks_measured"] += int(row.measured)
                figures["minutes_total"] += int(row.minutes)
            live_from = _midnight(last + timedelta(days=1))
        for monday in rows:  # the days not summarized, a week at a time
            low, high = max(_midnight(monday), live_from), min(_midnight(monday + timedelta(days=7)), now)
            if low >= high:
                continue
            sums = _live_sums(conn, low, high, codes)
            week = rows[monday]
            week["tasks"] += sums.completed
            week["tasks_timed"] += sums.timed
            week["tasks_on_time"] += int(sums.on_time)
            week["tasks_measured"] += sums.measured
            week["minutes_total"] += int(sums.minutes)
    return tuple(Week(monday, **figures) for monday, figures in rows.items())


# ----------------------------------------------------------------------------------------------
# the heat map of one definition


@dataclass(frozen=True)
class StepHeat:
    step_id: str
    department: str
    work: WorkTime
    median_minutes: float | None
    reached: int = 0  # cases closed in the period whose path decided this step (a task, taken or skipped)
    taken: int = 0  # of which took it (not skipped)

    @property
    def branch_share(self) -> float | None:
        return self.taken / self.reached if self.reached else None


@dataclass(frozen=True)
class Heat:
    definition_key: str
    version: int
    definition: Definition
    start: datetime
    end: datetime
    closed_cases: int  # cases of the definition closed in the period (the branch shares' base)
    steps: dict[str, StepHeat]  # by step id; also __rectification__ / __negative_report__ when any


BRANCHES = text(
    "SELECT t.step_id AS step_id, COUNT(DISTINCT t.case_id) AS reached,"
    " COUNT(DISTINCT CASE WHEN t.state <> 'skipped' THEN t.case_id END) AS taken"
    " FROM cases c JOIN tasks t ON t.case_id = c.id"
    " WHERE c.closed_at IS NOT NULL AND c.closed_at >= :start AND c.closed_at < :end AND c.definition_key = :key"
    " GROUP BY t.step_id"
).bindparams(bindparam("start", type_=Timestamp), bindparam("end", type_=Timestamp))
CLOSED_OF = text(
    "SELECT COUNT(*) FROM cases c WHERE c.closed_at IS NOT NULL AND c.closed_at >= :start AND c.closed_at < :end"
    " AND c.definition_key = :key"
).bindparams(bindparam("start", type_=Timestamp), bindparam("end", type_=Timestamp))


class _Values:
    __slots__ = ("completed", "measured", "minutes", "on_time", "timed", "values")

    def __init__(self) -> None:
        self.completed = self.timed = self.on_time = self.measured = self.minutes = 0
        self.values: list[int] = []

    def work(self) -> tuple[WorkTime, float | None]:
        self.values.sort()
        work = WorkTime(
            completed=self.completed,
            timed=self.timed,
            on_time=self.on_time,
            measured=self.measured,
            average_minutes=self.minutes / self.measured if self.measured else None,
            p90_minutes=percentile_cont(self.values),
        )
        return work, percentile_cont(self.values, 0.5)


def step_heat(conn: Connection, definition_key: str, start: datetime, end: datetime) -> Heat:
    """Working time per step of one definition over [start, end) — count, on-time rate, average, median and
    90th percentile — from ``work_days`` (whole summarized days: its primary key begins with the day) and
    ``ix_tasks_completed`` for the rest; and per step, of the cases closed in the period
    (``ix_cases_closed (closed_at, definition_key)``, their tasks by ``ix_tasks_case``), how many decided
    it and how many took it."""
    aware(start), aware(end)
    if end <= start:
        raise ValueError(f"the period [{start}, {end}) is empty: end must be after start")
    version, definition = _DEFINITIONS.latest(conn, definition_key)
    tallies: dict[tuple[str, str], _Values] = defaultdict(_Values)
    ranges = [(start, end)]
    days = _whole_days(start, end, summarized_through(conn))
    if days is not None:
        first, last = days
        w = WorkDay.__table__
        columns = (w.c.step_id, w.c.department, w.c.completed, w.c.timed, w.c.on_time, w.c.measured)
        query = select(*columns, w.c.minutes_total, w.c.minutes).where(
            w.c.day >= first.isoformat(), w.c.day <= last.isoformat(), w.c.definition_key == definition_key
        )
        for step_id, department, completed, timed, on_time, measured, total, minutes in conn.execute(query):
            tally = tallies[(step_id, department)]
            tally.completed += completed
            tally.timed += timed
            tally.on_time += on_time
            tally.measured += measured
            tally.minutes += total
            tally.values += minutes
        ranges = [(start, _midnight(first)), (_midnight(last + timedelta(days=1)), end)]
    rows = [row for low, high in ranges if low < high for row in conn.execute(LIVE_DONE, {"start": low, "end": high})]
    definition_of = _definitions_of(conn, {row[0] for row in rows})
    for case_id, department, step_id, work, on_time in rows:
        if definition_of.get(case_id) != definition_key:
            continue
        tally = tallies[(step_id, department)]
        tally.completed += 1
        if on_time is not None:
            tally.timed += 1
            tally.on_time += on_time
        if work is not None:
            tally.measured += 1
            tally.minutes += work
            tally.values.append(work)
    period = {"start": start, "end": end, "key": definition_key}
    branches = {r.step_id: (r.reached, r.taken) for r in conn.execute(BRANCHES, period)}
    closed = conn.execute(CLOSED_OF, period).scalar_one()

    by_step: dict[str, _Values] = defaultdict(_Values)  # a step's department is fixed; merge to be safe
    departments: dict[str, str] = {}
    for (step_id, department), tally in tallies.items():
        merged = by_step[step_id]
        merged.completed += tally.completed
        merged.timed += tally.timed
        merged.on_time += tally.on_time
        merged.measured += tally.measured
        merged.minutes += tally.minutes
        merged.values += tally.values
        departments.setdefault(step_id, department)
    steps: dict[str, StepHeat] = {}
    for step in definition.steps:
        work, median = by_step.pop(step.id, _Values()).work()
        reached, taken = branches.get(step.id, (0, 0))
        steps[step.id] = StepHeat(step.id, step.department, work, median, reached, taken)
    for step_id, tally in sorted(by_step.items()):  # 差评整改, 否定报备, steps of older versions
        work, median = tally.work()
        reached, taken = branches.get(step_id, (0, 0))
        steps[step_id] = StepHeat(step_id, departments.get(step_id, ""), work, median, reached, taken)
    return Heat(definition_key, version, definition, start, end, closed, steps)


def latest_definition(conn: Connection, key: str) -> tuple[int, Definition]:
    """The newest published version of a definition (parsed once per process); NotFound if none."""
    return _DEFINITIONS.latest(conn, key)


# ----------------------------------------------------------------------------------------------
# 好差评


@dataclass(frozen=True)
class RatingRow:
    code: str  # department code or definition key
    name: str
    levels: dict[int, int] = field(default_factory=dict)  # level -> ratings

    @property
    def total(self) -> int:
        return sum(self.levels.values())

    @property
    def satisfied(self) -> int:
        return sum(self.levels.get(level, 0) for level in SATISFIED)

    @property
    def bad(self) -> int:
        return sum(self.levels.get(level, 0) for level in BAD)

    @property
    def satisfaction_rate(self) -> float | None:
        return self.satisfied / self.total if self.total else None

    @property
    def average_level(self) -> float | None:
        return sum(level * n for level, n in self.levels.items()) / self.total if self.total else None


@dataclass(frozen=True)
class Ratings:
    by_department: tuple[RatingRow, ...]
    by_definition: tuple[RatingRow, ...]


RATINGS_BY_DEFINITION = text(
    "SELECT c.definition_key AS code, e.level AS level, COUNT(*) AS n FROM evaluations e"
    " JOIN cases c ON c.id = e.case_id WHERE e.at >= :start AND e.at < :end GROUP BY c.definition_key, e.level"
).bindparams(bindparam("start", type_=Timestamp), bindparam("end", type_=Timestamp))
# every department that completed a task of the rated case (ix_evaluations_at, then ix_tasks_case)
RATINGS_BY_DEPARTMENT = text(
    "SELECT department AS code, level, COUNT(*) AS n FROM (SELECT tasks.department AS department, e.id AS id,"
    f" e.level AS level FROM evaluations e JOIN tasks ON tasks.case_id = e.case_id AND {SHARES_RATING}"
    " WHERE e.at >= :start AND e.at < :end GROUP BY tasks.department, e.id, e.level) rated"
    " GROUP BY department, level"
).bindparams(bindparam("start", type_=Timestamp), bindparam("end", type_=Timestamp))


def ratings(
    conn: Connection,
    start: datetime,
    end: datetime,
    *,
    departments: Collection[str] | None = None,
    definitions: Collection[str] | None = None,
) -> Ratings:
    """好差评 given in [start, end) by level, per definition and per department (a rating counts for every
    department that completed a task of the case)."""
    aware(start), aware(end)
    period = {"start": start, "end": end}

    def gather(statement: Any, names: dict[str, str], keep: Collection[str] | None) -> tuple[RatingRow, ...]:
        levels: dict[str, dict[int, int]] = defaultdict(dict)
        for row in conn.execute(statement, period):
            levels[row.code][row.level] = row.n
        return tuple(
            RatingRow(code, names.get(code, code), dict(sorted(found.items())))
            for code, found in sorted(levels.items())
            if keep is None or code in keep
        )

    return Ratings(
        gather(RATINGS_BY_DEPARTMENT, department_names(conn), departments),
        gather(RATINGS_BY_DEFINITION, latest_definition_names(conn), definitions),
    )


@dataclass(frozen=True)
class BadRating:
    evaluation_id: int
    case_id: int
    number: str
    definition_key: str
    definition_name: str
    level: int
    comment: str | None
    channel: str
    at: datetime
    rectification_task: int | None
    rectification_department: str | None
    rectification_department_name: str | None
    rectification_state: str  # open (整改中) | done (已整改) | none (no task)
    rectification_assignee: str | None
    rectification_due_at: datetime | None
    rectification_done_at: datetime | None
    rectification_result: str | None  # the rectification's opinion (整改结果)
    rectification_on_time: bool | None

    @property
    def level_label(self) -> str:
        return LEVEL_LABELS.get(self.level, str(self.level))


BAD_RATINGS = (
    text(
        "SELECT e.id, e.case_id, e.level, e.comment, e.channel, e.at, e.rectification_task, c.number,"
        " c.definition_key, c.definition_version, t.department, t.state, t.assignee, t.due_at, t.completed_at,"
        " t.opinion FROM evaluations e JOIN cases c ON c.id = e.case_id"
        " LEFT JOIN tasks t ON t.id = e.rectification_task"
        " WHERE e.at >= :start AND e.at < :end AND e.level >= 4 ORDER BY e.at DESC, e.id DESC"
    )
    .bindparams(bindparam("start", type_=Timestamp), bindparam("end", type_=Timestamp))
    .columns(at=Timestamp, due_at=Timestamp, completed_at=Timestamp)
)
CASES_OF_DEPARTMENTS = text(
    f"SELECT DISTINCT case_id FROM tasks WHERE case_id IN :cases AND department IN :departments AND {SHARES_RATING}"
).bindparams(_in("cases"), _in("departments"))


def bad_ratings(
    conn: Connection,
    start: datetime,
    end: datetime,
    *,
    departments: Collection[str] | None = None,
    definitions: Collection[str] | None = None,
    limit: int = 200,
) -> tuple[BadRating, ...]:
    """不满意 / 非常不满意 given in [start, end), newest first, each with its rectification task
    (``__rectification__``): open, done (and its result, on time or not). ``departments``: of the cases
    one of them completed a task of (as ``ratings`` counts them)."""
    aware(start), aware(end)
    rows = [
        r
        for r in conn.execute(BAD_RATINGS, {"start": start, "end": end})
        if definitions is None or r.definition_key in definitions
    ]
    if departments is not None:
        ids = sorted({r.case_id for r in rows})
        theirs: set[int] = set()
        for low in range(0, len(ids), 500):
            chunk = {"cases": ids[low : low + 500], "departments": sorted(departments) or [""]}
            theirs.update(conn.execute(CASES_OF_DEPARTMENTS, chunk).scalars())
        rows = [r for r in rows if r.case_id in theirs]
    rows = rows[:limit]
    names = definition_names(conn, {(r.definition_key, r.definition_version) for r in rows})
    department_name = department_names(conn)
    found = []
    for r in rows:
        if r.rectification_task is None or r.state is None:
            state = "none"
        else:
            state = "done" if r.state == "completed" else "open"
        found.append(
            BadRating(
                evaluation_id=r.id,
                case_id=r.case_id,
                number=r.number,
                definition_key=r.definition_key,
                definition_name=names.get((r.definition_key, r.definition_version), r.definition_key),
                level=r.level,
                comment=r.comment,
                channel=r.channel,
                at=r.at,
                rectification_task=r.rectification_task,
                rectification_department=r.department,
                rectification_department_name=department_name.get(r.department, r.department) if r.department else None,
                rectification_state=state,
                rectification_assignee=r.assignee,
                rectification_due_at=r.due_at,
                rectification_done_at=r.completed_at if state == "done" else None,
                rectification_result=r.opinion if state == "done" else None,
                rectification_on_time=(r.due_at is None or r.completed_at <= r.due_at) if state == "done" else None,
            )
        )
    return tuple(found)


# ----------------------------------------------------------------------------------------------
# the city plan's targets and the departments' stars


@dataclass(frozen=True)
class ItemFacts:
    """A published 一件事 as the plan counts it (its newest version)."""

    key: str
    name: str
    online: bool  # seen through without a visit: every issue step delivers online or by mail
    one_window: bool  # accepted by the 综合窗口 department
    fewest_visits: int  # 0 when online application and delivery suffice, else 1 (collect at a window)


@dataclass(frozen=True)
class PlanTargets:
    items: tuple[ItemFacts, ...]
    window_departments: tuple[str, ...]
    # per case, in the period
    submitted: int = 0
    online: int = 0
    at_window: int = 0
    at_centre: int = 0  # window applications recorded at a service centre
    closed: int = 0
    visits: dict[int, int] = field(default_factory=dict)  # visits -> closed cases
    items_with_cases: int = 0  # 一件事 with an application in the period

    @property
    def published(self) -> int:
        return len(self.items)

    @property
    def online_items(self) -> int:
        return sum(item.online for item in self.items)

    @property
    def one_window_items(self) -> int:
        return sum(item.one_window for item in self.items)

    @property
    def one_visit_items(self) -> int:
        return sum(item.fewest_visits <= 1 for item in self.items)

    @property
    def at_most_one_visit(self) -> int:
        return sum(n for visits, n in self.visits.items() if visits <= 1)


SUBMITTED_CHANNELS = text(
    f"SELECT channel, CASE WHEN {AT_CENTRE} THEN 1 ELSE 0 END AS at_centre, COUNT(*) AS n,"
    " COUNT(DISTINCT definition_key) AS items FROM cases WHERE submitted_at >= :start AND submitted_at < :end"
    f" GROUP BY channel, CASE WHEN {AT_CENTRE} THEN 1 ELSE 0 END"
).bindparams(bindparam("start", type_=Timestamp), bindparam("end", type_=Timestamp))
ITEMS_SUBMITTED = text(
    "SELECT COUNT(DISTINCT definition_key) FROM cases WHERE submitted_at >= :start AND submitted_at < :end"
).bindparams(bindparam("start", type_=Timestamp), bindparam("end", type_=Timestamp))
# visits of each case closed in the period (ix_cases_closed; ix_supplements_case, ix_certificates_case)
VISITS = text(
    f"SELECT visits, COUNT(*) AS n FROM (SELECT {CASE_VISITS} AS visits FROM cases"
    " WHERE cases.closed_at IS NOT NULL AND cases.closed_at >= :start AND cases.closed_at < :end) v GROUP BY visits"
).bindparams(bindparam("start", type_=Timestamp), bindparam("end", type_=Timestamp))


def window_departments(conn: Connection) -> tuple[str, ...]:
    """The 综合窗口 departments: where the people with window accounts are members."""
    accounts = Account.__table__
    members = Membership.__table__
    windows = [r.user_id for r in conn.execute(select(accounts.c.user_id, accounts.c.roles)) if "window" in r.roles]
    if not windows:
        return ()
    found = conn.execute(select(members.c.department).where(members.c.user_id.in_(windows)).distinct()).scalars()
    return tuple(sorted(found))


def item_facts(definition: Definition, windows: Collection[str]) -> ItemFacts:
    issues = [step for step in definition.steps if step.kind == "issue"]
    remote = all({"online", "mail"} & set(step.delivery) for step in issues)  # type: ignore[union-attr]
    return ItemFacts(
        key=definition.key,
        name=definition.name,
        online=remote,
        one_window=definition.entry.department in windows,
        fewest_visits=0 if remote else 1,
    )


def plan_targets(conn: Connection, start: datetime, end: datetime) -> PlanTargets:
    """The city plan's four targets, per published item and per case: applications in [start, end) by
    channel (``ix_cases_submitted``), and the visits of the cases closed in it (see the module's rules)."""
    aware(start), aware(end)
    windows = window_departments(conn)
    items = []
    for key in sorted(latest_definition_names(conn)):
        try:
            _, definition = _DEFINITIONS.latest(conn, key)
        except NotFound:  # pragma: no cover - listed keys are published
            continue
        items.append(item_facts(definition, windows))
    period = {"start": start, "end": end}
    submitted = online = at_window = at_centre = 0
    for row in conn.execute(SUBMITTED_CHANNELS, period):
        submitted += row.n
        if row.channel == "online":
            online += row.n
        else:
            at_window += row.n
            at_centre += row.n if row.at_centre else 0
    visits = {int(r.visits): r.n for r in conn.execute(VISITS, period)}
    return PlanTargets(
        items=tuple(items),
        window_departments=windows,
        submitted=submitted,
        online=online,
        at_window=at_window,
        at_centre=at_centre,
        closed=sum(visits.values()),
        visits=dict(sorted(visits.items())),
        items_with_cases=conn.execute(ITEMS_SUBMITTED, period).scalar_one(),
    )


@dataclass(frozen=True)
class StarRow:
    department: str
    name: str
    rank: int
    on_time_rate: float | None  # tasks completed in the period within their limit
    timed: int
    satisfaction_rate: float | None
    rated: int
    score: float | None  # 0-100
    stars: int  # 0: not rated (no figures)
    enough: bool = True  # sample of at least STAR_MIN_SAMPLE (timed tasks + ratings)


@dataclass(frozen=True)
class OnTime:
    department: str
    name: str
    completed: int = 0
    timed: int = 0
    on_time: int = 0

    @property
    def rate(self) -> float | None:
        return self.on_time / self.timed if self.timed else None


LIVE_ON_TIME = text(
    "SELECT t.department AS department, COUNT(*) AS completed, COUNT(t.due_at) AS timed,"
    " COALESCE(SUM(CASE WHEN t.due_at IS NOT NULL AND t.completed_at <= t.due_at THEN 1 ELSE 0 END), 0) AS on_time"
    " FROM tasks t WHERE t.state = 'completed' AND t.completed_at >= :start AND t.completed_at < :end"
    " GROUP BY t.department"
).bindparams(bindparam("start", type_=Timestamp), bindparam("end", type_=Timestamp))


def on_time_by_department(conn: Connection, start: datetime, end: datetime) -> tuple[OnTime, ...]:
    """Tasks completed in [start, end) per department and how many by their due time: the sums of
    ``work_days`` for whole summarized days (no working-time lists read) and ``ix_tasks_completed`` for the
    rest — what the star rating needs, cheaper than ``dashboard``'s percentiles."""
    aware(start), aware(end)
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    ranges = [(start, end)]
    days = _whole_days(start, end, summarized_through(conn))
    if days is not None:
        first, last = days
        w = WorkDay.__table__
        query = (
            select(w.c.department, func.sum(w.c.completed), func.sum(w.c.timed), func.sum(w.c.on_time))
            .where(w.c.day >= first.isoformat(), w.c.day <= last.isoformat())
            .group_by(w.c.department)
        )
        for department, completed, timed, on_time in conn.execute(query):
            total = totals[department]
            total[0], total[1], total[2] = total[0] + int(completed), total[1] + int(timed), total[2] + int(on_time)
        ranges = [(start, _midnight(first)), (_midnight(last + timedelta(days=1)), end)]
    for low, high in ranges:
        if low < high:
            for row in conn.execute(LIVE_ON_TIME, {"start": low, "end": high}):
                total = totals[row.department]
                total[0] += row.completed
                total[1] += row.timed
                total[2] += int(row.on_time)
    names = department_names(conn)
    return tuple(OnTime(code, names.get(code, code), *figures) for code, figures in sorted(totals.items()))


def _stars(score: float | None) -> int:
    if score is None:
        return 0
    return next((stars for floor, stars in STAR_STEPS if score >= floor), 1)


def department_stars(
    on_time: Iterable[OnTime], rated: Ratings, min_sample: int = STAR_MIN_SAMPLE
) -> tuple[StarRow, ...]:
    """部门星级评价, ranked by score (the module states the formula): every department with completed tasks
    or ratings in the period; those with a sample under ``min_sample`` after the others."""
    satisfaction = {row.code: row for row in rated.by_department}
    figures = {row.department: row for row in on_time}
    for code, row in satisfaction.items():
        figures.setdefault(code, OnTime(code, row.name))
    scored = []
    for department in figures.values():
        rate = department.rate
        rating = satisfaction.get(department.department)
        satisfied = rating.satisfaction_rate if rating else None
        if rate is not None and satisfied is not None:
            score = 100 * (STAR_WEIGHTS[0] * rate + STAR_WEIGHTS[1] * satisfied)
        elif rate is not None or satisfied is not None:
            score = 100 * (rate if rate is not None else satisfied)  # type: ignore[operator]
        else:
            score = None
        enough = department.timed + (rating.total if rating else 0) >= min_sample
        scored.append((department, rate, rating, satisfied, score, enough))
    scored.sort(key=lambda item: (not item[5], item[4] is None, -round(item[4] or 0, 6), item[0].department))
    return tuple(
        StarRow(
            department=department.department,
            name=department.name,
            rank=rank,
            on_time_rate=rate,
            timed=department.timed,
            satisfaction_rate=satisfied,
            rated=rating.total if rating else 0,
            score=None if score is None else round(score, 1),
            stars=_stars(score),
            enough=enough,
        )
        for rank, (department, rate, rating, satisfied, score, enough) in enumerate(scored, start=1)
    )


def definitions_of_departments(conn: Connection, departments: Collection[str]) -> frozenset[str]:
    """The 一件事 (definition keys) in whose newest version one of ``departments`` has a step or takes
    part in a survey: what a supervisor's dashboard covers."""
    found = set()
    for key in latest_definition_names(conn):
        _, definition = _DEFINITIONS.latest(conn, key)
        if set(definition.departments) & set(departments):
            found.add(key)
    return frozenset(found)


__all__ = [
    "BAD",
    "CARD_COLOURS",
    "LEVEL_LABELS",
    "PLAN_ITEMS",
    "PLAN_ONE_VISIT",
    "PLAN_ONE_WINDOW",
    "PLAN_ONLINE",
    "RECTIFICATION_STEP",
    "SATISFIED",
    "STAR_MIN_SAMPLE",
    "STAR_STEPS",
    "STAR_WEIGHTS",
    "BadRating",
    "CardItem",
    "Heat",
    "ItemFacts",
    "LiveBoard",
    "LiveCount",
    "OnTime",
    "PendingRefusal",
    "PlanTargets",
    "RatingRow",
    "Ratings",
    "StarRow",
    "StepHeat",
    "Urged",
    "Week",
    "bad_ratings",
    "cards",
    "definitions_of_departments",
    "department_stars",
    "item_facts",
    "latest_definition",
    "live_counts",
    "on_time_by_department",
    "pending_refusals",
    "plan_targets",
    "ratings",
    "step_heat",
    "weekly_trends",
    "window_departments",
]
