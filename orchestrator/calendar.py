"""China working-day calendar for time limits (工作日 / 工作小时 / 自然日).

Legal basis and the rules this module implements:

* 《行政许可法》 Art. 82: limits count working days and exclude statutory holidays. A weekend make-up
  workday (调休上班) is a working day; a holiday that falls on a weekday is not.
* 民法典 Art. 201: the start day is not counted. **Day 1 is the first working day strictly after the
  start's date**, whatever the time of day (even after hours, or on a holiday).
* 民法典 Art. 203: a natural-day period whose last day is a holiday or rest day ends on the first
  working day after it.

Data: official days come from ``chinese_calendar`` (PyPI ``chinesecalendar``; 2004–2026 in 1.11.0).
Its ``find_workday`` is deliberately not used: counted from a non-working day it is off by one against
the "day 1 = first working day after the start" rule. For a year the library does not cover, the
operator file (``definitions/calendar.yaml``) may declare that year's State Council schedule. A year with
neither is *uncovered*: it is counted on weekends alone (Mon–Fri working) and every result that relied on
it carries ``provisional=True``; nothing pretends to be official. The operator file also holds local
closures (e.g. a typhoon closure), extra workdays, and the daily working window (one window per day).

Units (``add(start, amount, unit)``):

``d`` working days
    Whole part ``W``: the deadline is the end of the working window (default 17:00) of the ``W``-th
    working day after the start date, so ``1d`` from Mon 10:00 is Tue 17:00.
    Fraction ``f`` (``0 < f < 1``) is ``f × hours_per_day`` working hours:

    * a pure fraction (``W == 0``) counts working hours from the start moment itself:
      ``0.5d`` from Mon 10:00 is Mon 14:00;
    * otherwise the fraction is counted on top of the whole days, from the end of day ``W``:
      ``1.5d`` from Mon 10:00 is Tue 17:00 + 4h = Wed 13:00.

    (The alternative, "fraction from the start, then whole days to end of day", makes ``1.5d`` equal
    ``1d`` for every start before 13:00: the half day would vanish. This rule keeps ``W + f`` strictly
    later than ``W`` and is monotonic in the amount.)
``h`` working hours
    Working time counted inside the daily window on working days. A start outside a window begins at the
    next window start; landing exactly on the window end stays at that end (17:00, not 09:00 next day).
    4h from Fri 15:00 in a normal week is Mon 11:00.
``n`` natural days (whole numbers only)
    End of the working window (17:00) of the N-th calendar day after the start date; if that day is not
    a working day, 17:00 of the first working day after it (Art. 203). A fraction is refused: a
    "half natural day" has no legal meaning.

An amount of 0 returns the start unchanged. Negative or non-finite amounts raise :class:`CalendarError`.

Time zones: everything is computed in Asia/Shanghai wall-clock time (no DST since 1991). Naive datetimes
are taken to be Asia/Shanghai; aware ones are converted. Results are aware, in Asia/Shanghai.

Speed: each year is turned once (lazily) into a flag table and a sorted tuple of working-day ordinals;
``is_working_day`` is a dict look-up plus an index, counting is ``bisect`` per year touched.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any, ClassVar
from zoneinfo import ZoneInfo

import chinese_calendar
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

__all__ = [
    "TZ",
    "BusinessCalendar",
    "CalendarError",
    "CalendarOverrides",
    "Due",
    "day_span",
    "library_years",
    "load_overrides",
]

TZ = ZoneInfo("Asia/Shanghai")
_ONE_DAY = timedelta(days=1)
_ZERO = timedelta(0)


def day_span(first: date | None, last: date | None) -> tuple[datetime | None, datetime | None]:
    """Whole days ``first`` to ``last``, both included (Asia/Shanghai), as the moments [start, end): midnight
    at the start of ``first`` and after ``last``; a side not given stays None (open). How the pages' date
    ranges become a read's period."""
    start = datetime.combine(first, time(), TZ) if first else None
    end = datetime.combine(last + _ONE_DAY, time(), TZ) if last else None
    return start, end


class CalendarError(ValueError):
    """A bad override file, or a bad argument to the calendar."""


@dataclass(frozen=True)
class Due:
    """Result of adding a limit."""

    at: datetime
    provisional: bool  # True if any day counted lies in a year without official data


@cache
def library_years() -> range:
    """Years ``chinese_calendar`` answers for (it validates against the same min/max)."""
    years = [d.year for d in chinese_calendar.holidays]
    return range(min(years), max(years) + 1)


def _library_is_workday(d: date) -> bool:
    # Same rule as chinese_calendar.is_workday, on its published tables: calling is_workday per day
    # re-scans the tables for its year check each time. tests/test_calendar.py cross-checks every day.
    return d in chinese_calendar.workdays or (d.weekday() < 5 and d not in chinese_calendar.holidays)


# --------------------------------------------------------------------------------------------------
# Override file (definitions/calendar.yaml)
# --------------------------------------------------------------------------------------------------

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME_RE = re.compile(r"(\d{1,2}):(\d{2})")
_EMPTY = ("", "~", "null", "Null", "NULL")


def _parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        raise ValueError(f"{value!s} has a time of day; write just the date, e.g. 2027-01-01")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DATE_RE.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a real calendar date") from None
    raise ValueError(f"{value!r} is not a date; write it as YYYY-MM-DD, e.g. 2027-01-01")


def _parse_clock(value: Any) -> time:
    if isinstance(value, time):
        return value
    match = _TIME_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f'{value!r} is not a time of day; write it quoted as HH:MM, e.g. "09:00"')
    return time(int(match[1]), int(match[2]))


def _empty_to_list(value: Any) -> Any:
    # A key left blank in YAML (``closures:``) means "none", not an error.
    return [] if value is None or value in _EMPTY else value


def _empty_to_dict(value: Any) -> Any:
    return {} if value is None or value in _EMPTY else value


FileDate = Annotated[date, BeforeValidator(_parse_date)]
ClockTime = Annotated[time, BeforeValidator(_parse_clock)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        # Name the allowed keys: pydantic's own "extra inputs" message does not.
        if isinstance(data, dict):
            allowed = {f.alias or name for name, f in cls.model_fields.items()}
            unknown = sorted(str(k) for k in data if k not in allowed)
            if unknown:
                raise ValueError(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        return data


class WorkingHours(_Strict):
    """The daily working window on working days (one window; no lunch break modelled)."""

    start: ClockTime = time(9, 0)
    end: ClockTime = time(17, 0)

    @model_validator(mode="after")
    def _ordered(self) -> WorkingHours:
        if self.start >= self.end:
            raise ValueError(f"start {self.start:%H:%M} must be before end {self.end:%H:%M}")
        return self


class _Span(_Strict):
    """One date (``2027-01-01`` or ``{date: 2027-01-01}``) or a range ``{from: ..., to: ...}``."""

    MAX_SPAN_DAYS: ClassVar[int] = 366

    on: FileDate | None = Field(default=None, alias="date")
    start: FileDate | None = Field(default=None, alias="from")
    end: FileDate | None = Field(default=None, alias="to")

    @model_validator(mode="before")
    @classmethod
    def _bare_date(cls, data: Any) -> Any:
        return {"date": data} if isinstance(data, str | date) else data

    @model_validator(mode="after")
    def _one_form(self) -> _Span:
        if self.on is not None:
            if self.start is not None or self.end is not None:
                raise ValueError("give either date, or from and to, not both")
        elif self.start is None or self.end is None:
            raise ValueError("give a date, or a range with both from and to")
        elif self.start > self.end:
            raise ValueError(f"range from {self.start} to {self.end} runs backwards")
        elif (self.end - self.start).days >= self.MAX_SPAN_DAYS:
            raise ValueError(f"range from {self.start} to {self.end} is longer than a year")
        return self

    def days(self) -> list[date]:
        if self.on is not None:
            return [self.on]
        assert self.start is not None and self.end is not None
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


class NamedSpan(_Span):
    """A day or range in an official schedule, optionally named (春节, 国庆节…)."""

    name: str | None = None


class LocalSpan(_Span):
    """A local closure or extra workday; the reason is mandatory (it is audited)."""

    reason: str

    @model_validator(mode="after")
    def _has_reason(self) -> LocalSpan:
        if not self.reason.strip():
            raise ValueError("reason must not be empty; say why (e.g. 台风停工, 市政府通知)")
        return self


class YearSchedule(_Strict):
    """A year's official schedule, copied from the State Council notice."""

    source: str
    replace: bool = False
    holidays: Annotated[list[NamedSpan], BeforeValidator(_empty_to_list)]
    workdays: Annotated[list[NamedSpan], BeforeValidator(_empty_to_list)] = []

    @model_validator(mode="after")
    def _filled(self) -> YearSchedule:
        if not self.source.startswith(("https://", "http://")):
            raise ValueError(f"source {self.source!r} must be the http(s) URL of the State Council notice")
        if not self.holidays:
            raise ValueError("holidays is empty; list every day off of the year from the notice")
        return self

    def holiday_dates(self) -> set[date]:
        return {d for span in self.holidays for d in span.days()}

    def workday_dates(self) -> set[date]:
        return {d for span in self.workdays for d in span.days()}


def _year_problems(year: int, sched: YearSchedule) -> list[str]:
    problems: list[str] = []
    if not MINYEAR <= year <= MAXYEAR:
        return [f"years.{year}: not a usable year"]
    if year in library_years() and not sched.replace:
        problems.append(
            f"years.{year}: chinesecalendar already has the official {year} schedule; delete this entry, "
            "or add `replace: true` to use yours instead of the library's"
        )
    off, on = sched.holiday_dates(), sched.workday_dates()
    for label, days in (("holidays", off), ("workdays", on)):
        stray = sorted(d for d in days if d.year != year)
        if stray:
            problems.append(f"years.{year}.{label}: {', '.join(map(str, stray))} not in {year}")
    both = sorted(off & on)
    if both:
        problems.append(f"years.{year}: {', '.join(map(str, both))} listed both as holiday and as workday; keep one")
    weekday_workdays = sorted(d for d in on - off if d.weekday() < 5)
    if weekday_workdays:
        problems.append(
            f"years.{year}.workdays: {', '.join(f'{d} ({d:%A})' for d in weekday_workdays)} is already "
            "a working day; list only the Saturdays/Sundays that become make-up workdays (调休上班)"
        )
    return problems


class CalendarOverrides(_Strict):
    """The validated contents of ``definitions/calendar.yaml``."""

    working_hours: WorkingHours = WorkingHours()
    years: Annotated[dict[int, YearSchedule], BeforeValidator(_empty_to_dict)] = {}
    closures: Annotated[list[LocalSpan], BeforeValidator(_empty_to_list)] = []
    extra_workdays: Annotated[list[LocalSpan], BeforeValidator(_empty_to_list)] = []

    @model_validator(mode="after")
    def _consistent(self) -> CalendarOverrides:
        problems = [p for year, sched in sorted(self.years.items()) for p in _year_problems(year, sched)]
        both = sorted(set(self.closure_dates()) & set(self.extra_workday_dates()))
        if both:
            problems.append(f"{', '.join(map(str, both))} listed both in closures and in extra_workdays; keep one")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def closure_dates(self) -> dict[date, str]:
        return {d: span.reason for span in self.closures for d in span.days()}

    def extra_workday_dates(self) -> dict[date, str]:
        return {d: span.reason for span in self.extra_workdays for d in span.days()}

    @classmethod
    def from_yaml(cls, text: str, source_name: str = "calendar.yaml") -> CalendarOverrides:
        """Parse and validate; every problem is reported as ``CalendarError('<file>: ...')``."""
        try:
            # The base loader keeps every scalar a string, so dates and times are parsed (and their
            # errors worded) here rather than by YAML's own timestamp rules.
            data = YAML(typ="base").load(text)
        except YAMLError as exc:
            raise CalendarError(f"{source_name}: not valid YAML: {_yaml_problem(exc, text)}") from None
        if data is None or data == "":
            data = {}
        if not isinstance(data, dict):
            raise CalendarError(
                f"{source_name}: the top level must be a mapping with keys "
                "working_hours, years, closures, extra_workdays"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise CalendarError(f"{source_name}: {_describe(exc)}") from None


def _yaml_problem(exc: YAMLError, text: str) -> str:
    """The syntax error in plain words, as the definitions' loader says it (libyaml reads the same
    text); ruamel's own wording when libyaml finds nothing wrong (a key given twice)."""
    import yaml

    from .definition.source import plain_syntax_error

    try:
        yaml.compose(text, Loader=yaml.CSafeLoader)
    except yaml.MarkedYAMLError as plain:
        line, _column, message = plain_syntax_error(plain, text)
        return f"line {line}: {message}"
    except yaml.YAMLError:
        pass
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"line {mark.line + 1}: {problem}"
    return str(exc).strip().splitlines()[0]


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ""
        for item in err["loc"]:
            if isinstance(item, int):
                loc += f"[{item}]"
            elif item == "[key]":
                loc += " (the key)"
            else:
                loc += f".{item}" if loc else str(item)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = f"required key {err['loc'][-1]!r} is missing"
        elif "[key]" in err["loc"] and err["loc"][0] == "years":
            msg = "a year must be a number like 2027"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def load_overrides(path: str | Path) -> CalendarOverrides:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CalendarError(f"{path.name}: cannot read {path}: {exc}") from None
    return CalendarOverrides.from_yaml(text, path.name)


# --------------------------------------------------------------------------------------------------
# The calendar
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Year:
    first: int  # ordinal of 1 January
    flags: bytes  # flags[ordinal - first] == 1 on a working day
    ords: tuple[int, ...]  # working-day ordinals, ascending
    official: bool


def _local(dt: datetime) -> datetime:
    if not isinstance(dt, datetime):
        raise CalendarError(f"expected a datetime, got {type(dt).__name__} {dt!r}")
    return dt.replace(tzinfo=TZ) if dt.tzinfo is None else dt.astimezone(TZ)


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=TZ)


def _time_of_day(dt: datetime) -> timedelta:
    return timedelta(hours=dt.hour, minutes=dt.minute, seconds=dt.second, microseconds=dt.microsecond)


def _amount(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise CalendarError(f"{what} must be a finite number >= 0, got {value!r}")
    return float(value)


class BusinessCalendar:
    """Working days, working hours and deadlines on the official China calendar plus local overrides."""

    def __init__(self, overrides: CalendarOverrides | None = None) -> None:
        self.overrides = overrides or CalendarOverrides()
        hours = self.overrides.working_hours
        self.work_start: time = hours.start
        self.work_end: time = hours.end
        self._ws = timedelta(hours=hours.start.hour, minutes=hours.start.minute)
        self._we = timedelta(hours=hours.end.hour, minutes=hours.end.minute)
        self._window = self._we - self._ws
        self.hours_per_day: float = self._window / timedelta(hours=1)
        self._closures = self.overrides.closure_dates()
        self._extra = self.overrides.extra_workday_dates()
        self._years: dict[int, _Year] = {}

    @classmethod
    def from_file(cls, path: str | Path | None) -> BusinessCalendar:
        """Load the operator file; ``None`` or a missing file means library data only."""
        if path is None or not Path(path).exists():
            return cls()
        return cls(load_overrides(path))

    # -- year tables ---------------------------------------------------------------------------

    def _year(self, year: int) -> _Year:
        table = self._years.get(year)
        if table is None:
            table = self._years[year] = self._build(year)
        return table

    def _build(self, year: int) -> _Year:
        first = date(year, 1, 1).toordinal()
        days = [date.fromordinal(o) for o in range(first, date(year, 12, 31).toordinal() + 1)]
        sched = self.overrides.years.get(year)
        if sched is not None and (sched.replace or year not in library_years()):
            off, on = sched.holiday_dates(), sched.workday_dates()
            flags = [d in on or (d.weekday() < 5 and d not in off) for d in days]
        elif year in library_years():
            flags = [_library_is_workday(d) for d in days]
        else:  # uncovered: weekends alone, results marked provisional
            flags = [d.weekday() < 5 for d in days]
        for i, d in enumerate(days):
            if d in self._closures:
                flags[i] = False
            elif d in self._extra:
                flags[i] = True
        return _Year(
            first=first,
            flags=bytes(flags),
            ords=tuple(first + i for i, f in enumerate(flags) if f),
            official=self.is_official_year(year),
        )

    # -- day queries -------------------------------------------------------------------------------

    def is_working_day(self, d: date) -> bool:
        """Whether ``d`` (a local date) is a working day. O(1) once its year is built."""
        table = self._years.get(d.year) or self._year(d.year)
        return table.flags[d.toordinal() - table.first] == 1

    def is_official_year(self, year: int) -> bool:
        return year in library_years() or year in self.overrides.years

    def official_years(self) -> list[int]:
        return sorted(set(library_years()) | set(self.overrides.years))

    def provisional_years(self, start: date, end: date) -> list[int]:
        """Years in ``[start, end]`` (inclusive) without official data; empty if ``end < start``."""
        return [y for y in range(start.year, end.year + 1) if not self.is_official_year(y)]

    def _provisional(self, lo: int, hi: int) -> bool:
        # lo, hi: ordinals of the first and last day whose working status the result depends on
        if hi < lo:
            return False
        y_lo, y_hi = date.fromordinal(lo).year, date.fromordinal(hi).year
        return any(not self.is_official_year(y) for y in range(y_lo, y_hi + 1))

    def _nth_after(self, ordinal: int, n: int) -> int:
        """Ordinal of the n-th working day strictly after ``ordinal`` (n >= 1)."""
        year = date.fromordinal(ordinal).year
        while True:
            table = self._year(year)
            i = bisect_right(table.ords, ordinal)
            if i + n - 1 < len(table.ords):
                return table.ords[i + n - 1]
            n -= len(table.ords) - i
            year += 1
            if year > MAXYEAR:
                raise CalendarError("deadline falls after 9999-12-31")

    def nth_working_day_after(self, d: date, n: int) -> date:
        """The n-th working day strictly after ``d`` (day 1 = first working day after ``d``)."""
        if n < 1:
            raise CalendarError(f"n must be >= 1, got {n}")
        return date.fromordinal(self._nth_after(d.toordinal(), n))

    def working_days_between(self, a: date, b: date) -> int:
        """Number of working days ``d`` with ``a < d <= b`` (0 if ``b <= a``).

        With this convention ``working_days_between(start, add_working_days(start, n).at.date()) == n``.
        """
        lo, hi = a.toordinal(), b.toordinal()
        if hi <= lo:
            return 0
        total = 0
        for year in range(a.year, b.year + 1):
            ords = self._year(year).ords
            total += bisect_right(ords, hi) - bisect_right(ords, lo)
        return total

    # -- adding limits -----------------------------------------------------------------------------

    def add(self, start: datetime, amount: float, unit: str) -> Due:
        """Add a limit: ``unit`` is ``'d'`` (working days), ``'h'`` (working hours), ``'n'`` (natural days)."""
        if unit == "d":
            return self.add_working_days(start, amount)
        if unit == "h":
            return self.add_working_hours(start, amount)
        if unit == "n":
            return self.add_natural_days(start, amount)
        raise CalendarError(f"unknown limit unit {unit!r}; use d (working days), h (working hours), n (natural days)")

    def add_working_days(self, start: datetime, days: float) -> Due:
        """See the module docstring: whole days end at the window end, a fraction is working hours."""
        days = _amount(days, "working days")
        local = _local(start)
        whole = int(days)
        frac = round((days - whole) * self._window.total_seconds(), 6)
        if frac >= self._window.total_seconds():  # float noise such as 1.9999999999
            whole, frac = whole + 1, 0.0
        frac_td = timedelta(seconds=frac)
        start_ord = local.date().toordinal()
        if whole == 0:
            if frac_td <= _ZERO:
                return Due(local, provisional=False)
            at = self._add_work(local, frac_td)
            # the start day's own status matters here (is the start inside a window?)
            return Due(at, self._provisional(start_ord, at.date().toordinal()))
        day = self._nth_after(start_ord, whole)
        at = _midnight(date.fromordinal(day)) + self._we
        if frac_td > _ZERO:
            at = self._add_work(at, frac_td)
        return Due(at, self._provisional(start_ord + 1, at.date().toordinal()))

    def add_working_hours(self, start: datetime, hours: float) -> Due:
        hours = _amount(hours, "working hours")
        return self.add_working_time(start, timedelta(hours=hours))

    def add_working_time(self, start: datetime, amount: timedelta) -> Due:
        """Add working time (e.g. the working length of a suspension, to push a deadline out)."""
        if amount < _ZERO:
            raise CalendarError(f"working time must be >= 0, got {amount}")
        local = _local(start)
        if amount == _ZERO:
            return Due(local, provisional=False)
        at = self._add_work(local, amount)
        return Due(at, self._provisional(local.date().toordinal(), at.date().toordinal()))

    def _add_work(self, start: datetime, amount: timedelta) -> datetime:
        day = start.date()
        tod = _time_of_day(start)
        if tod < self._we and self.is_working_day(day):
            pos = max(tod, self._ws)
            room = self._we - pos
            if amount <= room:
                return _midnight(day) + pos + amount
            amount -= room
        whole, rest = divmod(amount, self._window)
        if rest:
            target = self._nth_after(day.toordinal(), whole + 1)
            return _midnight(date.fromordinal(target)) + self._ws + rest
        # exactly whole windows: stay at the end of the last one, not 09:00 the day after
        target = self._nth_after(day.toordinal(), whole)
        return _midnight(date.fromordinal(target)) + self._we

    def add_natural_days(self, start: datetime, days: float) -> Due:
        """End (window end) of the N-th calendar day after the start date, rolled to a working day."""
        days = _amount(days, "natural days")
        if days != int(days):
            raise CalendarError(f"natural-day limits must be whole days, got {days:g}")
        local = _local(start)
        if days == 0:
            return Due(local, provisional=False)
        try:
            last = local.date() + timedelta(days=int(days))
        except OverflowError:
            raise CalendarError("deadline falls after 9999-12-31") from None
        end = last.toordinal()
        if not self.is_working_day(last):  # 民法典 Art. 203
            end = self._nth_after(end, 1)
        at = _midnight(date.fromordinal(end)) + self._we
        return Due(at, self._provisional(last.toordinal(), end))

    # -- measuring ---------------------------------------------------------------------------------

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time inside working windows from ``a`` to ``b``; negative if ``b < a``."""
        a, b = _local(a), _local(b)
        if b < a:
            return -self.working_time_between(b, a)
        da, db = a.date(), b.date()
        ta = min(max(_time_of_day(a), self._ws), self._we)
        tb = min(max(_time_of_day(b), self._ws), self._we)
        a_works, b_works = self.is_working_day(da), self.is_working_day(db)
        if da == db:
            return tb - ta if a_works else _ZERO
        total = (self._we - ta if a_works else _ZERO) + (tb - self._ws if b_works else _ZERO)
        inner = self.working_days_between(da, db) - (1 if b_works else 0)  # days strictly between
        return total + inner * self._window

    def working_minutes_between(self, a: datetime, b: datetime) -> int:
        """Whole working minutes from ``a`` to ``b`` (truncated toward zero); negative if ``b < a``."""
        return int(self.working_time_between(a, b) / timedelta(minutes=1))
