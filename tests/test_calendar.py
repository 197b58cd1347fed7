"""Business calendar: official China working days, the day-1 rule, units, overrides, provisional years."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import calendar as calmod
from orchestrator.calendar import TZ, BusinessCalendar, CalendarError, CalendarOverrides, Due, library_years

SHIPPED_FILE = Path(__file__).resolve().parents[1] / "definitions" / "calendar.yaml"
LIBRARY_HAS_2027 = 2027 in library_years()

# A made-up 2027 schedule, for tests only (the real one is not published yet). Its shape is what an
# operator would copy from the State Council notice: New Year off 01-01..01-05, Sunday 01-10 worked.
HYPOTHETICAL_2027 = """
years:
  2027:
    source: "https://example.invalid/hypothetical-2027-notice"
    holidays:
      - {from: 2027-01-01, to: 2027-01-05, name: 元旦}
    workdays:
      - {date: 2027-01-10, name: 元旦调休}
"""


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=TZ)


def cal_from(text: str) -> BusinessCalendar:
    return BusinessCalendar(CalendarOverrides.from_yaml(text))


@pytest.fixture(scope="module")
def cal() -> BusinessCalendar:
    return BusinessCalendar()


# --- official data -----------------------------------------------------------------------------------


def test_agrees_with_chinese_calendar_on_every_covered_day(cal: BusinessCalendar) -> None:
    d, end = date(2004, 1, 1), date(2026, 12, 31)
    while d <= end:
        assert cal.is_working_day(d) == chinese_calendar.is_workday(d), d
        d += timedelta(days=1)


@pytest.mark.parametrize(
    "day",
    [
        *(date(2025, 1, 26), date(2025, 2, 8), date(2025, 4, 27), date(2025, 9, 28), date(2025, 10, 11)),
        *(date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9), date(2026, 9, 20)),
        date(2026, 10, 10),
    ],
)
def test_weekend_make_up_workdays_are_working_days(cal: BusinessCalendar, day: date) -> None:
    assert day.weekday() >= 5
    assert cal.is_working_day(day)


def test_holidays_on_weekdays_are_not_working_days(cal: BusinessCalendar) -> None:
    assert not cal.is_working_day(date(2025, 10, 8))  # Wednesday, swapped rest day
    assert [d for d in _days(date(2025, 10, 1), date(2025, 10, 8)) if cal.is_working_day(d)] == []
    assert [d for d in _days(date(2026, 2, 15), date(2026, 2, 23)) if cal.is_working_day(d)] == []
    assert cal.is_working_day(date(2026, 2, 24))


def test_official_years_are_the_library_range(cal: BusinessCalendar) -> None:
    assert cal.official_years()[0] == 2004
    assert 2025 in cal.official_years() and 2026 in cal.official_years()
    assert cal.is_official_year(2026)
    assert not cal.is_official_year(2003)


# --- working days and the day-1 rule -----------------------------------------------------------------


def test_national_day_2025_ten_working_days_from_friday(cal: BusinessCalendar) -> None:
    # Sat 09-27 rests, Sun 09-28 works, 10-01..10-08 off, Sat 10-11 works
    due = cal.add_working_days(at(2025, 9, 26, 15), 10)
    assert due == Due(at(2025, 10, 16, 17), provisional=False)
    assert cal.working_days_between(date(2025, 9, 26), date(2025, 10, 16)) == 10


def test_spring_festival_2026_five_working_days_from_friday(cal: BusinessCalendar) -> None:
    # Sat 02-14 works (day 1), 02-15..02-23 off, Sat 02-28 works
    assert cal.add_working_days(at(2026, 2, 13), 5).at == at(2026, 2, 27, 17)
    assert [cal.nth_working_day_after(date(2026, 2, 13), n) for n in (1, 2)] == [
        date(2026, 2, 14),
        date(2026, 2, 24),
    ]


def test_spring_festival_2025_counts_make_up_saturday(cal: BusinessCalendar) -> None:
    # 2025: Sun 01-26 works, 01-28..02-04 off, Sat 02-08 works
    assert cal.add_working_days(at(2025, 1, 24), 3).at == at(2025, 2, 5, 17)  # 01-26, 01-27, 02-05
    assert cal.add_working_days(at(2025, 1, 27), 4).at == at(2025, 2, 8, 17)
    assert cal.add_working_days(at(2025, 1, 27), 5).at == at(2025, 2, 10, 17)


def test_day_one_is_first_working_day_after_a_holiday_start(cal: BusinessCalendar) -> None:
    # chinese_calendar.find_workday(1, 2025-10-04) gives 10-10: one day late for Art. 201 counting
    assert cal.add_working_days(at(2025, 10, 4, 10), 1).at == at(2025, 10, 9, 17)


def test_time_of_day_of_acceptance_does_not_move_day_one(cal: BusinessCalendar) -> None:
    for hh, mm in ((0, 0), (8, 0), (16, 59), (17, 0), (23, 59)):
        assert cal.add_working_days(at(2025, 9, 22, hh, mm), 1).at == at(2025, 9, 23, 17)


def test_acceptance_on_make_up_sunday_counts_from_monday(cal: BusinessCalendar) -> None:
    assert cal.add_working_days(at(2025, 9, 28, 10), 1).at == at(2025, 9, 29, 17)


def test_working_days_between_convention(cal: BusinessCalendar) -> None:
    assert cal.working_days_between(date(2025, 9, 26), date(2025, 9, 26)) == 0
    assert cal.working_days_between(date(2025, 10, 16), date(2025, 9, 26)) == 0
    assert cal.working_days_between(date(2025, 9, 26), date(2025, 9, 28)) == 1  # only Sun 09-28
    assert cal.working_days_between(date(2024, 12, 31), date(2025, 12, 31)) == 248  # 261 weekdays - 18 + 5


# --- fractional days ---------------------------------------------------------------------------------


def test_half_day_counts_working_hours_from_the_start(cal: BusinessCalendar) -> None:
    assert cal.add_working_days(at(2025, 9, 22, 10), 0.5).at == at(2025, 9, 22, 14)
    assert cal.add_working_days(at(2025, 9, 22, 15), 0.5).at == at(2025, 9, 23, 11)
    assert cal.add_working_days(at(2025, 9, 27, 10), 0.5).at == at(2025, 9, 28, 13)  # make-up Sunday


def test_whole_day_ends_at_close_of_next_working_day(cal: BusinessCalendar) -> None:
    assert cal.add_working_days(at(2025, 9, 22, 10), 1).at == at(2025, 9, 23, 17)


def test_fraction_above_whole_days_runs_into_the_next_working_day(cal: BusinessCalendar) -> None:
    assert cal.add_working_days(at(2025, 9, 22, 10), 1.5).at == at(2025, 9, 24, 13)
    # 8.5d crossing National Day: end of day 8 is 10-14, half a day more is 10-15 13:00
    assert cal.add_working_days(at(2025, 9, 26), 8).at == at(2025, 10, 14, 17)
    assert cal.add_working_days(at(2025, 9, 26), 8.5).at == at(2025, 10, 15, 13)


def test_zero_returns_the_start(cal: BusinessCalendar) -> None:
    start = at(2025, 10, 3, 12)
    for unit in "dhn":
        assert cal.add(start, 0, unit) == Due(start, provisional=False)


# --- working hours -----------------------------------------------------------------------------------


def test_working_hours_across_a_weekend(cal: BusinessCalendar) -> None:
    assert cal.add_working_hours(at(2025, 9, 19, 15), 4).at == at(2025, 9, 22, 11)


def test_working_hours_across_national_day(cal: BusinessCalendar) -> None:
    assert cal.add_working_hours(at(2025, 9, 30, 15), 4).at == at(2025, 10, 9, 11)
    assert cal.add_working_hours(at(2025, 10, 1, 10), 1).at == at(2025, 10, 9, 10)


def test_working_hours_that_exactly_fill_a_window_stay_on_that_day(cal: BusinessCalendar) -> None:
    assert cal.add_working_hours(at(2025, 9, 22, 15), 2).at == at(2025, 9, 22, 17)
    assert cal.add_working_hours(at(2025, 9, 22, 9), 16).at == at(2025, 9, 23, 17)
    assert cal.add_working_hours(at(2025, 9, 19, 15), 10).at == at(2025, 9, 22, 17)


def test_start_outside_the_window_begins_at_next_window(cal: BusinessCalendar) -> None:
    assert cal.add_working_hours(at(2025, 9, 22, 7), 1).at == at(2025, 9, 22, 10)
    assert cal.add_working_hours(at(2025, 9, 22, 18), 1).at == at(2025, 9, 23, 10)
    assert cal.add_working_hours(at(2025, 9, 22, 17), 0.5).at == at(2025, 9, 23, 9, 30)


# --- natural days ------------------------------------------------------------------------------------


def test_natural_days_ending_on_a_working_day(cal: BusinessCalendar) -> None:
    assert cal.add_natural_days(at(2025, 9, 1, 11), 7).at == at(2025, 9, 8, 17)


def test_natural_days_ending_on_a_holiday_roll_to_next_working_day(cal: BusinessCalendar) -> None:
    due = cal.add_natural_days(at(2025, 9, 28, 11), 3)  # 10-01 is National Day
    assert due == Due(at(2025, 10, 9, 17), provisional=False)
    assert cal.add_natural_days(at(2025, 9, 15), 5).at == at(2025, 9, 22, 17)  # Saturday → Monday


def test_natural_days_must_be_whole(cal: BusinessCalendar) -> None:
    with pytest.raises(CalendarError, match="whole days"):
        cal.add_natural_days(at(2025, 9, 1), 1.5)


# --- measuring and suspensions -----------------------------------------------------------------------


def test_working_time_over_national_day_week_counts_only_working_days(cal: BusinessCalendar) -> None:
    # 09-30, 10-09, 10-10 work; 10-01..10-08 off
    assert cal.working_minutes_between(at(2025, 9, 30, 9), at(2025, 10, 10, 17)) == 3 * 480
    assert cal.working_minutes_between(at(2025, 10, 10, 17), at(2025, 9, 30, 9)) == -3 * 480
    assert cal.working_minutes_between(at(2025, 10, 2, 9), at(2025, 10, 6, 17)) == 0


def test_suspension_spanning_a_holiday_pushes_deadline_by_its_working_time(cal: BusinessCalendar) -> None:
    deadline = cal.add_working_days(at(2025, 9, 26), 10).at  # 2025-10-16 17:00
    paused = cal.working_time_between(at(2025, 9, 29, 14), at(2025, 10, 9, 10))
    assert paused == timedelta(hours=3 + 8 + 1)  # Mon 3h, Tue 8h, holiday 0, Thu 1h
    assert cal.add_working_time(deadline, paused).at == at(2025, 10, 20, 13)
    assert cal.add_working_hours(deadline, paused / timedelta(hours=1)).at == at(2025, 10, 20, 13)


def test_working_time_outside_hours_and_same_day(cal: BusinessCalendar) -> None:
    assert cal.working_minutes_between(at(2025, 9, 22, 7), at(2025, 9, 22, 20)) == 480
    assert cal.working_minutes_between(at(2025, 9, 22, 10), at(2025, 9, 22, 10, 30)) == 30
    assert cal.working_minutes_between(at(2025, 9, 22, 18), at(2025, 9, 23, 8)) == 0


# --- time zones --------------------------------------------------------------------------------------


def test_naive_is_shanghai_and_aware_is_converted(cal: BusinessCalendar) -> None:
    naive = cal.add_working_days(datetime(2025, 9, 22, 10), 0.5).at
    utc = cal.add_working_days(datetime(2025, 9, 22, 2, tzinfo=UTC), 0.5).at
    assert naive == utc == at(2025, 9, 22, 14)
    assert naive.tzinfo is TZ and utc.tzinfo is TZ


# --- uncovered years ---------------------------------------------------------------------------------


@pytest.mark.skipif(LIBRARY_HAS_2027, reason="chinesecalendar now covers 2027: move this to the next year")
def test_deadline_into_uncovered_2027_is_provisional_and_weekend_only(cal: BusinessCalendar) -> None:
    # Dec 29, 30, 31, then 2027 Mon–Fri only: Fri 01-01 counts (it will surely be a holiday)
    due = cal.add_working_days(at(2026, 12, 28), 10)
    assert due == Due(at(2027, 1, 11, 17), provisional=True)
    assert cal.is_working_day(date(2027, 1, 1))
    assert cal.provisional_years(date(2026, 12, 28), due.at.date()) == [2027]
    assert not cal.add_working_days(at(2026, 12, 1), 5).provisional


@pytest.mark.skipif(LIBRARY_HAS_2027, reason="chinesecalendar now covers 2027: move this to the next year")
def test_override_schedule_for_2027_is_official_and_honoured() -> None:
    cal = cal_from(HYPOTHETICAL_2027)
    assert cal.is_official_year(2027) and cal.official_years()[-1] == 2027
    assert not cal.is_working_day(date(2027, 1, 5))
    assert cal.is_working_day(date(2027, 1, 10))  # Sunday make-up workday
    # Dec 29, 30, 31, Jan 6, 7, 8, Sun 10, 11, 12, 13
    assert cal.add_working_days(at(2026, 12, 28), 10) == Due(at(2027, 1, 13, 17), provisional=False)


def test_every_year_after_the_library_is_counted_monday_to_friday(cal: BusinessCalendar) -> None:
    last = max(library_years())
    nxt = last + 1
    assert not cal.is_official_year(nxt)
    assert all(cal.is_working_day(d) == (d.weekday() < 5) for d in _days(date(nxt, 1, 1), date(nxt, 12, 31)))
    assert cal.add_working_days(at(last, 12, 10), 30).provisional
    assert cal.add_working_hours(at(last, 12, 31, 16), 2).provisional
    assert cal.add_natural_days(at(last, 12, 30), 5).provisional
    assert not cal.add_natural_days(at(last, 12, 1), 5).provisional
    assert cal.provisional_years(date(2003, 6, 1), date(nxt + 1, 1, 1)) == [2003, nxt, nxt + 1]


# --- local overrides ---------------------------------------------------------------------------------


def test_closure_moves_a_deadline() -> None:
    cal = cal_from("closures:\n  - {date: 2025-10-13, reason: 台风停工}\n")
    assert not cal.is_working_day(date(2025, 10, 13))
    assert cal.add_working_days(at(2025, 9, 26), 10) == Due(at(2025, 10, 17, 17), provisional=False)


def test_closure_range_and_extra_workday() -> None:
    cal = cal_from(
        "closures: [{from: 2025-10-13, to: 2025-10-14, reason: 台风停工}]\n"
        "extra_workdays: [{date: 2025-10-18, reason: 市政府通知}]\n"
    )
    # 10-09, 10-10, 10-11 (make-up Sat), 10-15, 10-16, 10-17, Sat 10-18 (extra)
    assert cal.add_working_days(at(2025, 10, 8), 7).at == at(2025, 10, 18, 17)


def test_working_hours_from_the_file() -> None:
    cal = cal_from('working_hours: {start: "08:30", end: "17:30"}\n')
    assert cal.hours_per_day == 9.0
    assert cal.add_working_days(at(2025, 9, 22, 10), 1).at == at(2025, 9, 23, 17, 30)
    assert cal.add_working_days(at(2025, 9, 22, 10), 0.5).at == at(2025, 9, 22, 14, 30)
    assert cal.work_start == time(8, 30)


def test_replace_true_overrides_library_year() -> None:
    cal = cal_from('years: {2025: {replace: true, source: "https://example.invalid/x", holidays: [2025-01-01]}}\n')
    assert cal.is_working_day(date(2025, 10, 8))
    assert not cal.is_working_day(date(2025, 1, 1))
    assert not cal.is_working_day(date(2025, 9, 28))  # no make-up workdays in this replacement


def test_shipped_file_is_valid_and_invents_no_years() -> None:
    cal = BusinessCalendar.from_file(SHIPPED_FILE)
    assert cal.overrides.years == {}
    assert (cal.work_start, cal.work_end, cal.hours_per_day) == (time(9), time(17), 8.0)
    assert cal.official_years() == list(library_years())


def test_missing_file_or_none_means_library_only(tmp_path: Path) -> None:
    for source in (None, tmp_path / "nope.yaml"):
        cal = BusinessCalendar.from_file(source)
        assert cal.overrides == CalendarOverrides()
    (tmp_path / "calendar.yaml").write_text("", encoding="utf-8")
    assert BusinessCalendar.from_file(tmp_path / "calendar.yaml").hours_per_day == 8.0


Y27 = 'years: {2027: {source: "https://example.invalid/n", '


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('years: {2025: {source: "https://x.invalid", holidays: [2025-01-01]}}', r"years\.2025: .*replace: true"),
        (Y27 + "holidays: [2027-02-30]}}", r"years\.2027\.holidays\[0\]\.date: '2027-02-30' is not a real"),
        (Y27 + "holidays: [01/02/2027]}}", r"not a date; write it as YYYY-MM-DD"),
        (Y27 + "holidays: [2027-02-06], workdays: [2027-02-06]}}", r"2027-02-06 listed both as holiday and"),
        (Y27 + "holidays: [2028-01-01]}}", r"years\.2027\.holidays: 2028-01-01 not in 2027"),
        (Y27 + "holidays: [2027-01-01], workdays: [2027-02-08]}}", r"2027-02-08 \(Monday\) is already a working"),
        (Y27 + "holidays: []}}", r"holidays is empty"),
        ("years: {2027: {holidays: [2027-01-01]}}", r"years\.2027\.source: required key 'source'"),
        ('years: {2027: {source: "gov.cn", holidays: [2027-01-01]}}', r"must be the http\(s\) URL"),
        (Y27 + "holidays: [{from: 2027-02-17, to: 2027-02-10}]}}", r"runs backwards"),
        (Y27 + "holidays: [{date: 2027-01-01, from: 2027-01-01, to: 2027-01-02}]}}", r"either date, or from"),
        ("closures: [2026-09-15]", r"closures\[0\]\.reason: required key 'reason'"),
        ('closures: [{date: 2026-09-15, reason: " "}]', r"reason must not be empty"),
        ("closures: [{date: 2026-09-15, reason: x, note: y}]", r"closures\[0\]: unknown key\(s\) note; allowed"),
        (
            "closures: [{date: 2026-09-15, reason: a}]\nextra_workdays: [{date: 2026-09-15, reason: b}]",
            r"2026-09-15 listed both in closures and in extra_workdays",
        ),
        ('working_hours: {start: "17:00", end: "09:00"}', r"working_hours: start 17:00 must be before end"),
        ('working_hours: {start: "9am", end: "17:00"}', r"working_hours\.start: '9am' is not a time of day"),
        ("workinghours: {}", r"unknown key\(s\) workinghours; allowed: closures, extra_workdays"),
        ("years: {twenty: {}}", r"a year must be a number like 2027"),
        ("- 2027-01-01", r"top level must be a mapping"),
        ("closures: []\nclosures: []", r"not valid YAML: line 2: found duplicate key"),
        (  # the yearly update with `years: {}` kept and the new year written below it
            "years: {}\n  2027:\n    source: https://www.gov.cn/x\n",
            r"not valid YAML: line 2: line 2 is indented under line 1, whose value is already given as \{\} "
            r"\(empty\): remove the \{\} so that the indented lines below become its value",
        ),
        (
            "closures: [\n  {date: 2026-09-15, reason: x}\n",
            r"not valid YAML: line 4: the \[…\] opened at line 1, column 11 is not closed here",
        ),
    ],
)
def test_bad_override_file_names_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "calendar.yaml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(CalendarError, match=r"^calendar\.yaml: .*" + problem):
        BusinessCalendar.from_file(path)


@pytest.mark.parametrize(("amount", "unit"), [(-1, "d"), (float("nan"), "h"), (float("inf"), "d"), (1, "w"), (1, "D")])
def test_bad_amounts_and_units_raise(cal: BusinessCalendar, amount: float, unit: str) -> None:
    with pytest.raises(CalendarError):
        cal.add(at(2025, 9, 22), amount, unit)


# --- speed: count library look-ups instead of timing -------------------------------------------------


def test_library_is_consulted_once_per_day_of_a_year_then_never(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = calmod._library_is_workday

    def counting(d: date) -> bool:
        nonlocal calls
        calls += 1
        return real(d)

    monkeypatch.setattr(calmod, "_library_is_workday", counting)
    cal = BusinessCalendar()
    cal.add_working_days(at(2025, 11, 20), 45)  # builds 2025 and 2026
    assert calls == 365 + 365
    for n in range(1, 200):
        cal.add_working_days(at(2025, 11, 20), n % 45 + 0.5)
        cal.working_minutes_between(at(2025, 1, 2), at(2026, 12, 30))
        cal.is_working_day(date(2026, 10, 10))
    assert calls == 730


# --- properties --------------------------------------------------------------------------------------

starts = st.datetimes(min_value=datetime(2004, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(TZ))


@settings(max_examples=300, deadline=None)
@given(start=starts, n=st.integers(min_value=0, max_value=300))
def test_whole_days_land_n_working_days_later(start: datetime, n: int) -> None:
    cal = _shared()
    due = cal.add_working_days(start, n)
    assert cal.working_days_between(start.date(), due.at.date()) == n
    if n:
        assert cal.is_working_day(due.at.date()) and due.at.time() == time(17)
        assert due.provisional == bool(cal.provisional_years(start.date() + timedelta(days=1), due.at.date()))


@settings(max_examples=300, deadline=None)
@given(start=starts, a=st.floats(0, 60), b=st.floats(0, 60))
def test_add_working_days_is_monotonic(start: datetime, a: float, b: float) -> None:
    cal = _shared()
    lo, hi = sorted((a, b))
    assert cal.add_working_days(start, lo).at <= cal.add_working_days(start, hi).at


@settings(max_examples=300, deadline=None)
@given(start=starts, minutes=st.integers(min_value=0, max_value=60 * 400))
def test_working_hours_round_trip(start: datetime, minutes: int) -> None:
    cal = _shared()
    due = cal.add_working_hours(start, minutes / 60)
    assert cal.working_minutes_between(start, due.at) == minutes
    assert due.at >= start


@settings(max_examples=200, deadline=None)
@given(a=starts, b=starts, c=starts)
def test_working_time_is_additive(a: datetime, b: datetime, c: datetime) -> None:
    cal = _shared()
    assert cal.working_time_between(a, c) == cal.working_time_between(a, b) + cal.working_time_between(b, c)


# --- helpers -----------------------------------------------------------------------------------------

_SHARED: list[BusinessCalendar] = []


def _shared() -> BusinessCalendar:
    # hypothesis tests may not take function-scoped fixtures; one calendar is reused across examples
    if not _SHARED:
        _SHARED.append(BusinessCalendar())
    return _SHARED[0]


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def test_day_span_turns_whole_days_both_included_into_a_period():
    assert calmod.day_span(date(2026, 3, 1), date(2026, 3, 31)) == (
        datetime(2026, 3, 1, tzinfo=TZ),
        datetime(2026, 4, 1, tzinfo=TZ),  # midnight after the last day, in Shanghai: 16:00 UTC the day before
    )
    assert calmod.day_span(None, date(2026, 3, 1)) == (None, datetime(2026, 3, 2, tzinfo=TZ))
    assert calmod.day_span(date(2026, 3, 1), None) == (datetime(2026, 3, 1, tzinfo=TZ), None)
