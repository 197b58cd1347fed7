"""Dashboard aggregates (效能监察) per department and per definition over a period [start, end).

Live figures (open, warning, overdue, paused) count what is open now; period figures count what happened
in the period. Every figure is one set-based statement over an index, nothing loops over rows in Python:

* open tasks per department and colour: ``ix_tasks_open_sla (department, sla_state) WHERE state IN
  ('ready', 'claimed')``, read index-only;
* live cases per definition and colour: ``ix_cases_live_sla (definition_key, sla_state) WHERE state IN
  ('accepted', 'in_progress', 'suspended')``, index-only;
* completions in the period: ``ix_tasks_completed (completed_at, case_id, department, step_id,
  work_minutes, due_at) WHERE state = 'completed'``, a covering range scan, joined to the case by its key
  for the definition; the 90th percentile of working time is ``percentile_cont(0.9)`` on PostgreSQL and,
  on SQLite (no percentile function), the same interpolation between the two ranked rows around it,
  picked by ``row_number()`` over each group;
* cases completed (办结) in the period: ``ix_cases_closed (closed_at, definition_key) WHERE closed_at IS
  NOT NULL``; alerts: ``ix_alerts_raised``; evaluations: ``ix_evaluations_at``.

Cost grows with the completions in the period, not with the table: a month of a busy city is tens of
thousands of rows (bench/read.py measures a 30-day period over 1,000,000 tasks).

Working time is ``tasks.work_minutes`` (working minutes from ready to completed, less the case's
suspensions), written by the engine on completion; on time means completed no later than the due time
(which suspensions and extensions pushed out). Untimed tasks count as completed, not in the on-time rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, bindparam, text

from ...store.models import Timestamp
from ..errors import NotFound
from ..publish import DefinitionCache
from .common import aware, department_names, latest_definition_names

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


LIVE_TASKS = text(
    "SELECT department, sla_state, COUNT(*) AS n FROM tasks WHERE tasks.state IN ('ready', 'claimed')"
    " GROUP BY department, sla_state"
)
LIVE_CASES = text(
    "SELECT definition_key, sla_state, COUNT(*) AS n FROM cases"
    " WHERE cases.state IN ('accepted', 'in_progress', 'suspended') GROUP BY definition_key, sla_state"
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
# SQLite: one pass materializes the period's completions, then sums and the two ranked rows around the
# 90th percentile of each group (percentile_cont's interpolation: position 0.9 * (n - 1) from 0)
SQLITE_DONE = _period(f"CREATE TEMPORARY TABLE dashboard_done AS {_DONE}")


def _sqlite_groups(keys: str) -> tuple[str, str]:
    sums = f"SELECT {keys}, {_SUMS} FROM dashboard_done GROUP BY {keys}"
    ranks = (
        f"SELECT {keys}, rn, n, work_minutes FROM (SELECT {keys}, work_minutes,"
        f" ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY work_minutes) AS rn,"
        f" COUNT(*) OVER (PARTITION BY {keys}) AS n FROM dashboard_done WHERE work_minutes IS NOT NULL)"
        f" WHERE rn = CAST({P90} * (n - 1) AS INTEGER) + 1 OR rn = CAST({P90} * (n - 1) AS INTEGER) + 2"
    )
    return sums, ranks


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


def _interpolate(rows: list[object]) -> dict[tuple, float]:
    """percentile_cont(0.9) from the ranked rows around it: (key) -> value."""
    picked: dict[tuple, dict[int, float]] = {}
    sizes: dict[tuple, int] = {}
    for row in rows:
        *key, rn, n, value = tuple(row)  # type: ignore[arg-type]
        picked.setdefault(tuple(key), {})[rn] = value
        sizes[tuple(key)] = n
    found = {}
    for key, values in picked.items():
        position = P90 * (sizes[key] - 1)
        low = int(position)
        fraction = position - low
        lower = values[low + 1]
        upper = values.get(low + 2, lower)
        found[key] = lower + (upper - lower) * fraction
    return found


def dashboard(conn: Connection, start: datetime, end: datetime) -> Dashboard:
    """The figures of every department and definition for [start, end), and the live counts now."""
    aware(start), aware(end)
    if end <= start:
        raise ValueError(f"the period [{start}, {end}) is empty: end must be after start")
    period = {"start": start, "end": end}
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        steps = [(r, r.p90) for r in conn.execute(PG_STEPS, period)]
        departments_work = [(r, r.p90) for r in conn.execute(PG_DEPARTMENTS, period)]
    else:
        conn.execute(SQLITE_DONE, period)
        try:
            sums, ranks = _sqlite_groups("definition_key, step_id, department")
            p90 = _interpolate(list(conn.exec_driver_sql(ranks)))
            steps = [(r, p90.get((r.definition_key, r.step_id, r.department))) for r in conn.exec_driver_sql(sums)]
            sums, ranks = _sqlite_groups("department")
            p90 = _interpolate(list(conn.exec_driver_sql(ranks)))
            departments_work = [(r, p90.get((r.department,))) for r in conn.exec_driver_sql(sums)]
        finally:
            conn.exec_driver_sql("DROP TABLE temp.dashboard_done")

    department_live: dict[str, dict[str | None, int]] = {}
    for row in conn.execute(LIVE_TASKS):
        department_live.setdefault(row.department, {})[row.sla_state] = row.n
    definition_live: dict[str, dict[str | None, int]] = {}
    for row in conn.execute(LIVE_CASES):
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
    work_by_department = {r.department: _work(r, p90) for r, p90 in departments_work}
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
    step_names = _step_names(conn, {r.definition_key for r, _ in steps})
    steps_by_definition: dict[str, list[StepFigures]] = {}
    for row, p90 in steps:
        steps_by_definition.setdefault(row.definition_key, []).append(
            StepFigures(
                row.definition_key,
                row.step_id,
                step_names.get((row.definition_key, row.step_id), row.step_id),
                row.department,
                _work(row, p90),
            )
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


__all__ = ["Dashboard", "DefinitionFigures", "DepartmentFigures", "StepFigures", "WorkTime", "dashboard"]
