"""Dashboard aggregates (效能监察) per department and per definition over a period [start, end).

Live figures (open, warning, overdue, paused) count what is open now; period figures count what happened
in the period. Live counts are set-based statements over small partial indexes, read index-only:

* open tasks per department and colour: ``ix_tasks_open_sla (department, sla_state) WHERE state IN
  ('ready', 'claimed')``; live cases per definition and colour: ``ix_cases_live_sla (definition_key,
  sla_state) WHERE state IN ('accepted', 'in_progress', 'suspended')``;
* cases completed (办结) in the period: ``ix_cases_closed (closed_at, definition_key) WHERE closed_at IS
  NOT NULL``; alerts: ``ix_alerts_raised``; evaluations: ``ix_evaluations_at``.

Working time per step (count, on-time rate, average, 90th percentile) must see every completion of the
period: some 65,000 in a 30-day period at 1,000,000 tasks. Read from the tasks that costs 0.5–1.5 s
(SQLite has no percentile function and sorts the rows once per grouping; PostgreSQL's percentile_cont
sorts them too; both then hand every row over), so it is designed around a **summary of closed days**:

* ``work_days``: per closed day (Asia/Shanghai), definition, department and step, the counts, the sum
  and the list of every ``work_minutes``, so a percentile over any run of days stays exact. It is written
  by ``refresh_work_summary`` (one ``INSERT … SELECT … GROUP BY`` per refresh, from the scheduler); a
  closed day never changes, as a task is completed at the moment of its transition and stays so.
* A dashboard reads the summary for the whole days of its period and the tasks for the rest (today, a
  partial first day) through the covering ``ix_tasks_completed (completed_at, case_id, department,
  step_id, work_minutes, due_at, state) WHERE state = 'completed'``, the definitions of their cases by key.
  The percentile is ``percentile_cont(0.9)``'s interpolation, computed over the merged, sorted values.
* Until the first refresh, PostgreSQL answers with plain ``percentile_cont(0.9)`` statements and SQLite
  reads every completion of the period (correct, slow at that size).

Working time is ``tasks.work_minutes`` (working minutes from ready to completed, less the case's
suspensions), written by the engine on completion; on time means completed no later than the due time
(which suspensions and extensions pushed out). Untimed tasks count as completed, not in the on-time rate.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import Connection, bindparam, column, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ...calendar import TZ
from ...store.models import Timestamp, WorkDay, WorkDaysState
from ..errors import NotFound
from ..publish import DefinitionCache
from .common import LIVE_CASES, OPEN_TASKS, aware, department_names, latest_definition_names

P90 = 0.9


@dataclass(frozen=True)
class WorkTime:
    completed: int = 0  # completed tasks in the period
    timed: int = 0  # of which had a due time
    on_time: int = 0  # of which completed by it
    measured: int = 0  # of which have work_minutes
    average_minutes: float | None = None
    p90_minutes: float | None = None

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.timed if self.timed else None


@dataclass(frozen=True)
class StepFigures:
    definition_key: str
    step_id: str
    step_name: str
    department: str
    work: WorkTime


@dataclass(frozen=True)
class DepartmentFigures:
    department: str
    name: str
    open: int = 0  # open tasks now (ready or claimed)
    warning: int = 0
    overdue: int = 0
    paused: int = 0
    work: WorkTime = field(default_factory=WorkTime)  # tasks completed in the period
    alerts: dict[str, int] = field(default_factory=dict)  # by kind, raised in the period


@dataclass(frozen=True)
class DefinitionFigures:
    definition_key: str
    name: str
    open: int = 0  # live cases now (accepted, in progress, suspended)
    warning: int = 0
    overdue: int = 0
    paused: int = 0
    completed: int = 0  # cases 办结 in the period
    completed_on_time: int = 0
    completed_timed: int = 0
    steps: tuple[StepFigures, ...] = ()
    alerts: dict[str, int] = field(default_factory=dict)
    evaluations: dict[int, int] = field(default_factory=dict)  # 好差评 level -> count, rated in the period

    @property
    def on_time_rate(self) -> float | None:
        return self.completed_on_time / self.completed_timed if self.completed_timed else None


@dataclass(frozen=True)
class Dashboard:
    start: datetime
    end: datetime
    departments: tuple[DepartmentFigures, ...]
    definitions: tuple[DefinitionFigures, ...]


def _period(statement: str) -> text:
    return text(statement).bindparams(bindparam("start", type_=Timestamp), bindparam("end", type_=Timestamp))


# the open tasks and live cases of the case search's filters too (common's predicates)
LIVE_TASK_COUNTS = text(
    f"SELECT department, sla_state, COUNT(*) AS n FROM tasks WHERE {OPEN_TASKS.text} GROUP BY department, sla_state"
)
LIVE_CASE_COUNTS = text(
    f"SELECT definition_key, sla_state, COUNT(*) AS n FROM cases WHERE {LIVE_CASES.text}"
    " GROUP BY definition_key, sla_state"
)
# completions in the period, with the definition of their case
_DONE = (
    "SELECT c.definition_key AS definition_key, t.department AS department, t.step_id AS step_id,"
    " t.work_minutes AS work_minutes, CASE WHEN t.due_at IS NULL THEN NULL WHEN t.completed_at <= t.due_at"
    " THEN 1 ELSE 0 END AS on_time FROM tasks t JOIN cases c ON c.id = t.case_id"
    " WHERE t.state = 'completed' AND t.completed_at >= :start AND t.completed_at < :end"
)
_SUMS = (
    "COUNT(*) AS completed, COUNT(on_time) AS timed, COALESCE(SUM(on_time), 0) AS on_time,"
    " COUNT(work_minutes) AS measured, AVG(work_minutes) AS average"
)
PG_STEPS = _period(
    f"WITH done AS ({_DONE}) SELECT definition_key, step_id, department, {_SUMS},"
    " percentile_cont(0.9) WITHIN GROUP (ORDER BY work_minutes) AS p90 FROM done"
    " GROUP BY definition_key, step_id, department"
)
PG_DEPARTMENTS = _period(
    f"WITH done AS ({_DONE}) SELECT department, {_SUMS},"
    " percentile_cont(0.9) WITHIN GROUP (ORDER BY work_minutes) AS p90 FROM done GROUP BY department"
)


def percentile_cont(ordered: list[int], fraction: float = P90) -> float | None:
    """PostgreSQL's percentile_cont over an ascending list: linear between the two values around
    ``fraction × (n - 1)``."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class _Tally:
    __slots__ = ("completed", "measured", "minutes", "on_time", "timed", "values")

    def __init__(self) -> None:
        self.completed = self.timed = self.on_time = self.measured = self.minutes = 0
        self.values: list[int] = []

    def add(self, work: int | None, on_time: int | None) -> None:
        self.completed += 1
        if on_time is not None:
            self.timed += 1
            self.on_time += on_time
        if work is not None:
            self.measured += 1
            self.minutes += work
            self.values.append(work)

    def merge(self, other: _Tally) -> None:
        self.completed += other.completed
        self.timed += other.timed
        self.on_time += other.on_time
        self.measured += other.measured
        self.minutes += other.minutes
        self.values += other.values  # sorted runs: the sort in work() merges them

    def work(self) -> WorkTime:
        self.values.sort()
        return WorkTime(
            completed=self.completed,
            timed=self.timed,
            on_time=self.on_time,
            measured=self.measured,
            average_minutes=self.minutes / self.measured if self.measured else None,
            p90_minutes=percentile_cont(self.values),
        )


# ----------------------------------------------------------------------------------------------
# the summary of closed days


def _local_day(column: str, postgres: bool) -> str:
    """The Asia/Shanghai date of a stored UTC timestamp, as YYYY-MM-DD."""
    if postgres:
        return f"to_char({column} AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD')"
    return f"date({column}, '+8 hours')"  # stored as UTC text; Shanghai keeps +8 all year


_SUMMARIZE = (
    "INSERT INTO work_days (day, definition_key, department, step_id, completed, timed, on_time, measured,"
    " minutes_total, minutes)"
    " SELECT {day}, c.definition_key, t.department, t.step_id, COUNT(*), COUNT(t.due_at),"
    " SUM(CASE WHEN t.due_at IS NOT NULL AND t.completed_at <= t.due_at THEN 1 ELSE 0 END), COUNT(t.work_minutes),"
    " COALESCE(SUM(t.work_minutes), 0), {values}"
    " FROM tasks t JOIN cases c ON c.id = t.case_id"
    " WHERE t.state = 'completed' AND t.completed_at >= :start AND t.completed_at < :end"
    " GROUP BY 1, 2, 3, 4"
)
SUMMARIZE = {
    "postgresql": _period(
        _SUMMARIZE.format(
            day=_local_day("t.completed_at", True),
            values="COALESCE(json_agg(t.work_minutes ORDER BY t.work_minutes)"
            " FILTER (WHERE t.work_minutes IS NOT NULL), '[]'::json)",
        )
    ),
    "sqlite": _period(
        _SUMMARIZE.format(
            day=_local_day("t.completed_at", False),
            values="json_group_array(t.work_minutes) FILTER (WHERE t.work_minutes IS NOT NULL)",
        )
    ),
}
FIRST_COMPLETION = text("SELECT MIN(completed_at) FROM tasks WHERE tasks.state = 'completed'").columns(
    column("min", Timestamp)
)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=TZ)


def summarized_through(conn: Connection) -> date | None:
    """Every day before this one is in ``work_days`` (None: nothing summarized yet)."""
    state = WorkDaysState.__table__
    through = conn.execute(select(state.c.through).where(state.c.id == 1)).scalar()
    return None if through is None else date.fromisoformat(through)


def refresh_work_summary(conn: Connection, now: datetime) -> int:
    """Summarize every closed day (before today, Asia/Shanghai) not summarized yet, in one set-based
    INSERT … SELECT … GROUP BY; returns the number of days added. Run it in a write transaction
    (``with db.begin()``) from the scheduler, e.g. once a night; a day, once closed, never changes (a task is
    completed at the moment of its transition and stays so), so its summary stays true. Two refreshes at once
    are serialized by the state row's lock."""
    aware(now)
    state = WorkDaysState.__table__
    today = now.astimezone(TZ).date()
    if conn.dialect.name == "postgresql":
        conn.execute(pg_insert(state).values(id=1, through="0001-01-01").on_conflict_do_nothing())
        through = conn.execute(select(state.c.through).where(state.c.id == 1).with_for_update()).scalar_one()
    else:
        conn.execute(sqlite_insert(state).values(id=1, through="0001-01-01").on_conflict_do_nothing())
        through = conn.execute(select(state.c.through).where(state.c.id == 1)).scalar_one()
    start = date.fromisoformat(through)
    if start == date.min:  # the first refresh starts at the first completion
        first = conn.execute(FIRST_COMPLETION).scalar()
        if first is None:
            conn.execute(state.update().where(state.c.id == 1).values(through=today.isoformat()))
            return 0
        start = first.astimezone(TZ).date()
    if start >= today:
        return 0
    conn.execute(SUMMARIZE[conn.dialect.name], {"start": _midnight(start), "end": _midnight(today)})
    conn.execute(state.update().where(state.c.id == 1).values(through=today.isoformat()))
    return (today - start).days


# The period's completions outside the summary: from the covering ix_tasks_completed alone, and the
# definition of their cases by key afterwards. Not a join: for a day's completions PostgreSQL hashes every
# case (its default costs price a thousand index probes above one sequential scan).
LIVE_DONE = _period(
    "SELECT t.case_id, t.department, t.step_id, t.work_minutes, CASE WHEN t.due_at IS NULL THEN NULL"
    " WHEN t.completed_at <= t.due_at THEN 1 ELSE 0 END FROM tasks t"
    " WHERE t.state = 'completed' AND t.completed_at >= :start AND t.completed_at < :end"
)
CASE_DEFINITIONS = text("SELECT id, definition_key FROM cases WHERE id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)


PG_CASE_DEFINITIONS = text("SELECT id, definition_key FROM cases WHERE id = ANY(:ids)")


def _definitions_of(conn: Connection, case_ids: set[int]) -> dict[int, str]:
    ordered = sorted(case_ids)
    if conn.dialect.name == "postgresql":  # one array parameter
        return dict(conn.execute(PG_CASE_DEFINITIONS, {"ids": ordered}).all())
    found: dict[int, str] = {}
    for start in range(0, len(ordered), 500):
        found.update(conn.execute(CASE_DEFINITIONS, {"ids": ordered[start : start + 500]}).all())
    return found


def _whole_days(start: datetime, end: datetime, through: date | None) -> tuple[date, date] | None:
    """The first and last summarized day lying wholly inside [start, end)."""
    if through is None:
        return None
    first = start.astimezone(TZ).date()
    if _midnight(first) < start:
        first += timedelta(days=1)
    last = min(end.astimezone(TZ).date() - timedelta(days=1), through - timedelta(days=1))
    return (first, last) if first <= last else None


def _work_figures(
    conn: Connection, start: datetime, end: datetime
) -> tuple[dict[tuple[str, str, str], WorkTime], dict[str, WorkTime]]:
    """Completions in [start, end): per (definition, step, department) and per department."""
    days = _whole_days(start, end, summarized_through(conn))
    postgres = conn.dialect.name == "postgresql"
    if postgres and days is None:  # one plain statement each, percentiles by the database
        period = {"start": start, "end": end}
        steps = {(r.definition_key, r.step_id, r.department): _work(r, r.p90) for r in conn.execute(PG_STEPS, period)}
        return steps, {r.department: _work(r, r.p90) for r in conn.execute(PG_DEPARTMENTS, period)}
    tallies: dict[tuple[str, str, str], _Tally] = defaultdict(_Tally)
    ranges = [(start, end)]
    if days is not None:
        first, last = days
        w = WorkDay.__table__
        summary = select(
            w.c.definition_key, w.c.step_id, w.c.department, w.c.completed, w.c.timed, w.c.on_time, w.c.measured,
            w.c.minutes_total, w.c.minutes,
        ).where(w.c.day >= first.isoformat(), w.c.day <= last.isoformat())  # fmt: skip
        for key, step_id, department, completed, timed, on_time, measured, total, minutes in conn.execute(summary):
            tally = tallies[(key, step_id, department)]
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
        tallies[(definition_of[case_id], step_id, department)].add(work, on_time)
    steps = {key: tally.work() for key, tally in tallies.items()}  # sorts each step's values
    by_department: dict[str, _Tally] = defaultdict(_Tally)
    for (_, _, department), tally in tallies.items():
        by_department[department].merge(tally)
    return steps, {department: tally.work() for department, tally in by_department.items()}


CASES_CLOSED = _period(
    "SELECT definition_key, COUNT(*) AS completed,"
    " SUM(CASE WHEN due_at IS NOT NULL THEN 1 ELSE 0 END) AS timed,"
    " SUM(CASE WHEN due_at IS NOT NULL AND closed_at <= due_at THEN 1 ELSE 0 END) AS on_time"
    " FROM cases WHERE cases.closed_at IS NOT NULL AND closed_at >= :start AND closed_at < :end"
    " AND state = 'completed' GROUP BY definition_key"
)
ALERTS = _period(
    "SELECT a.department AS department, c.definition_key AS definition_key, a.kind AS kind, COUNT(*) AS n"
    " FROM alerts a JOIN cases c ON c.id = a.case_id WHERE a.raised_at >= :start AND a.raised_at < :end"
    " GROUP BY a.department, c.definition_key, a.kind"
)
EVALUATIONS = _period(
    "SELECT c.definition_key AS definition_key, e.level AS level, COUNT(*) AS n FROM evaluations e"
    " JOIN cases c ON c.id = e.case_id WHERE e.at >= :start AND e.at < :end GROUP BY c.definition_key, e.level"
)


def _work(row: object, p90: float | None) -> WorkTime:
    average = getattr(row, "average", None)
    return WorkTime(
        completed=row.completed,  # type: ignore[attr-defined]
        timed=row.timed,  # type: ignore[attr-defined]
        on_time=row.on_time,  # type: ignore[attr-defined]
        measured=row.measured,  # type: ignore[attr-defined]
        average_minutes=None if average is None else float(average),
        p90_minutes=None if p90 is None else float(p90),
    )


def dashboard(conn: Connection, start: datetime, end: datetime) -> Dashboard:
    """The figures of every department and definition for [start, end), and the live counts now."""
    aware(start), aware(end)
    if end <= start:
        raise ValueError(f"the period [{start}, {end}) is empty: end must be after start")
    period = {"start": start, "end": end}
    step_work, work_by_department = _work_figures(conn, start, end)

    department_live: dict[str, dict[str | None, int]] = {}
    for row in conn.execute(LIVE_TASK_COUNTS):
        department_live.setdefault(row.department, {})[row.sla_state] = row.n
    definition_live: dict[str, dict[str | None, int]] = {}
    for row in conn.execute(LIVE_CASE_COUNTS):
        definition_live.setdefault(row.definition_key, {})[row.sla_state] = row.n
    closed = {r.definition_key: r for r in conn.execute(CASES_CLOSED, period)}
    department_alerts: dict[str, dict[str, int]] = {}
    definition_alerts: dict[str, dict[str, int]] = {}
    for row in conn.execute(ALERTS, period):
        if row.department is not None:
            tally = department_alerts.setdefault(row.department, {})
            tally[row.kind] = tally.get(row.kind, 0) + row.n
        tally = definition_alerts.setdefault(row.definition_key, {})
        tally[row.kind] = tally.get(row.kind, 0) + row.n
    evaluations: dict[str, dict[int, int]] = {}
    for row in conn.execute(EVALUATIONS, period):
        evaluations.setdefault(row.definition_key, {})[row.level] = row.n

    names = department_names(conn)
    codes = sorted(set(department_live) | set(work_by_department) | set(department_alerts))
    departments = tuple(
        DepartmentFigures(
            department=code,
            name=names.get(code, code),
            open=sum(department_live.get(code, {}).values()),
            warning=department_live.get(code, {}).get("warning", 0),
            overdue=department_live.get(code, {}).get("overdue", 0),
            paused=department_live.get(code, {}).get("paused", 0),
            work=work_by_department.get(code, WorkTime()),
            alerts=department_alerts.get(code, {}),
        )
        for code in codes
    )
    step_names = _step_names(conn, {key for key, _, _ in step_work})
    steps_by_definition: dict[str, list[StepFigures]] = {}
    for (key, step_id, department), work in step_work.items():
        steps_by_definition.setdefault(key, []).append(
            StepFigures(key, step_id, step_names.get((key, step_id), step_id), department, work)
        )
    definition_names = latest_definition_names(conn)
    keys = sorted(
        set(definition_live) | set(closed) | set(steps_by_definition) | set(definition_alerts) | set(evaluations)
    )
    definitions = tuple(
        DefinitionFigures(
            definition_key=key,
            name=definition_names.get(key, key),
            open=sum(definition_live.get(key, {}).values()),
            warning=definition_live.get(key, {}).get("warning", 0),
            overdue=definition_live.get(key, {}).get("overdue", 0),
            paused=definition_live.get(key, {}).get("paused", 0),
            completed=closed[key].completed if key in closed else 0,
            completed_on_time=int(closed[key].on_time or 0) if key in closed else 0,
            completed_timed=int(closed[key].timed or 0) if key in closed else 0,
            steps=tuple(sorted(steps_by_definition.get(key, []), key=lambda s: (s.step_id, s.department))),
            alerts=definition_alerts.get(key, {}),
            evaluations=evaluations.get(key, {}),
        )
        for key in keys
    )
    return Dashboard(start, end, departments, definitions)


_DEFINITIONS = DefinitionCache()  # parsed versions never change


def _step_names(conn: Connection, keys: set[str]) -> dict[tuple[str, str], str]:
    """Step names of the given definitions, from their newest version (parsed once per process)."""
    names: dict[tuple[str, str], str] = {}
    for key in keys:
        try:
            _, definition = _DEFINITIONS.latest(conn, key)
        except NotFound:
            continue
        names.update({(key, step.id): step.name for step in definition.steps})
    return names


__all__ = [
    "Dashboard",
    "DefinitionFigures",
    "DepartmentFigures",
    "StepFigures",
    "WorkTime",
    "dashboard",
    "percentile_cont",
    "refresh_work_summary",
    "summarized_through",
]
