"""The daily report (日报): per definition, and per department within each definition, what one day
(Asia/Shanghai) brought — intake, completions, the on-time rate — and what is open and overdue at its
end. Written as CSV (for spreadsheets) and HTML (to read) under the reports directory.

* **per definition** (一件事): applications submitted that day; cases 办结 that day and how many of
  those were within their promised limit (承诺时限); cases open (accepted or in progress) at the end of
  the day whose limit had passed.
* **per department** in each definition: tasks that reached the department's queue that day; tasks it
  completed that day and how many within the step's limit; its open tasks past their limit at the end
  of the day (a task waiting for the applicant's 补正 is not counted: its clock stands still).

Every figure is one GROUP BY over indexed columns; the files are written under a temporary name and
renamed, so a reader never sees half a report and two workers writing the same day write the same bytes.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

from jinja2 import Environment, PackageLoader
from sqlalchemy import Connection, and_, case, func, select

from .calendar import TZ
from .store.models import Case, DefinitionVersion, Department, Task

_cases = Case.__table__
_tasks = Task.__table__


@dataclass
class Figures:
    intake: int = 0
    completed: int = 0
    completed_timed: int = 0  # of the completions, those with a limit
    completed_on_time: int = 0
    open_overdue: int = 0

    @property
    def on_time_rate(self) -> float | None:
        return self.completed_on_time / self.completed_timed if self.completed_timed else None


@dataclass
class DepartmentRow:
    definition_key: str
    department: str
    department_name: str
    figures: Figures = field(default_factory=Figures)


@dataclass
class DefinitionRow:
    definition_key: str
    name: str
    figures: Figures = field(default_factory=Figures)
    departments: list[DepartmentRow] = field(default_factory=list)


@dataclass
class DailyReport:
    day: date
    start: datetime
    end: datetime
    definitions: list[DefinitionRow]

    @property
    def totals(self) -> Figures:
        total = Figures()
        for row in self.definitions:
            for name in ("intake", "completed", "completed_timed", "completed_on_time", "open_overdue"):
                setattr(total, name, getattr(total, name) + getattr(row.figures, name))
        return total


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=TZ)
    return start, start + timedelta(days=1)


def daily_report(conn: Connection, day: date) -> DailyReport:
    """The figures of one day (read in the caller's read-only transaction)."""
    start, end = day_bounds(day)
    definitions: dict[str, DefinitionRow] = {}
    departments: dict[tuple[str, str], DepartmentRow] = {}

    def definition(key: str) -> DefinitionRow:
        return definitions.setdefault(key, DefinitionRow(key, key))

    def department(key: str, code: str) -> DepartmentRow:
        return departments.setdefault((key, code), DepartmentRow(key, code, code))

    in_day = lambda column: and_(column >= start, column < end)  # noqa: E731
    for key, n in conn.execute(
        select(_cases.c.definition_key, func.count())
        .where(in_day(_cases.c.submitted_at))
        .group_by(_cases.c.definition_key)
    ):
        definition(key).figures.intake = n
    on_time = case((_cases.c.closed_at <= _cases.c.due_at, 1), else_=0)
    for key, n, timed, punctual in conn.execute(
        select(_cases.c.definition_key, func.count(), func.count(_cases.c.due_at), func.coalesce(func.sum(on_time), 0))
        .where(_cases.c.state == "completed", in_day(_cases.c.closed_at))
        .group_by(_cases.c.definition_key)
    ):
        figures = definition(key).figures
        figures.completed, figures.completed_timed, figures.completed_on_time = n, timed, int(punctual)
    for key, n in conn.execute(
        select(_cases.c.definition_key, func.count())
        .where(_cases.c.state.in_(("accepted", "in_progress")), _cases.c.due_at < end)
        .group_by(_cases.c.definition_key)
    ):
        definition(key).figures.open_overdue = n

    joined = _tasks.join(_cases, _cases.c.id == _tasks.c.case_id)
    by = (_cases.c.definition_key, _tasks.c.department)
    for key, code, n in conn.execute(
        select(*by, func.count())
        .select_from(joined)
        .where(in_day(_tasks.c.ready_at), _tasks.c.state != "skipped")
        .group_by(*by)
    ):
        department(key, code).figures.intake = n
    punctual_task = case((_tasks.c.completed_at <= _tasks.c.due_at, 1), else_=0)
    for key, code, n, timed, punctual in conn.execute(
        select(*by, func.count(), func.count(_tasks.c.due_at), func.coalesce(func.sum(punctual_task), 0))
        .select_from(joined)
        .where(_tasks.c.state == "completed", in_day(_tasks.c.completed_at))
        .group_by(*by)
    ):
        figures = department(key, code).figures
        figures.completed, figures.completed_timed, figures.completed_on_time = n, timed, int(punctual)
    for key, code, n in conn.execute(
        select(*by, func.count())
        .select_from(joined)
        .where(_tasks.c.state.in_(("ready", "claimed")), _tasks.c.due_at < end, _tasks.c.waiting.is_(None))
        .group_by(*by)
    ):
        department(key, code).figures.open_overdue = n

    names = dict(conn.execute(select(Department.code, Department.name)).all())
    latest = select(DefinitionVersion.key, DefinitionVersion.name).order_by(
        DefinitionVersion.key, DefinitionVersion.version
    )
    titles = {key: name for key, name in conn.execute(latest)}  # the newest version's name wins
    for (key, _), row in sorted(departments.items()):
        row.department_name = names.get(row.department, row.department)
        definition(key).departments.append(row)
    for row in definitions.values():
        row.name = titles.get(row.definition_key, row.definition_key)
    return DailyReport(day, start, end, sorted(definitions.values(), key=lambda r: r.definition_key))


CSV_COLUMNS = [
    "day", "definition_key", "definition_name", "department", "department_name", "intake", "completed",
    "completed_timed", "completed_on_time", "on_time_rate", "open_overdue",
]  # fmt: skip


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def report_csv(report: DailyReport) -> str:
    """One row per definition (department empty) followed by its departments' rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    day = report.day.isoformat()
    for row in report.definitions:
        rows = [("", "", row.figures)] + [(d.department, d.department_name, d.figures) for d in row.departments]
        for code, name, f in rows:
            counts = [f.intake, f.completed, f.completed_timed, f.completed_on_time]
            writer.writerow(
                [day, row.definition_key, row.name, code, name, *counts, _rate(f.on_time_rate), f.open_overdue]
            )
    return out.getvalue()


_HTML = Environment(
    loader=PackageLoader("orchestrator", "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True
).get_template("daily_report.html")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def report_html(report: DailyReport) -> str:
    start, end = report.start.astimezone(TZ), report.end.astimezone(TZ)
    view = DailyReport(report.day, start, end, report.definitions)
    return _HTML.render(r=view, t=report.totals, pct=_pct)


@dataclass(frozen=True)
class ReportFiles:
    csv: Path
    html: Path


def write_report(report: DailyReport, directory: Path) -> ReportFiles:
    """``daily-YYYY-MM-DD.csv`` and ``.html`` in ``directory`` (made if missing), each written whole."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"daily-{report.day.isoformat()}"
    files = ReportFiles(directory / f"{stem}.csv", directory / f"{stem}.html")
    _write_whole(files.csv, report_csv(report))
    _write_whole(files.html, report_html(report))
    return files


def _write_whole(path: Path, content: str) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
