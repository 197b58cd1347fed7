"""The tongban commands that drive the engine: db, publish, calendar, doctor, timers, simulate."""

from __future__ import annotations

import re
import shutil
from datetime import date, datetime

import chinese_calendar
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from orchestrator.calendar import TZ, BusinessCalendar
from orchestrator.cli import main
from orchestrator.engine import Engine
from orchestrator.store import connect, upgrade
from orchestrator.store.migrate import head_revision

from .conftest import DEFINITIONS, FIXTURES


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'cli.sqlite'}"


@pytest.fixture
def folder(tmp_path):
    """A copy of the test definitions that a test may edit."""
    target = tmp_path / "defs"
    target.mkdir()
    for name in ("departments.yaml", "kaiban-mini.yaml"):
        shutil.copy(FIXTURES / name, target / name)
    return target


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def stored_versions(url: str) -> list[tuple[str, int]]:
    db = connect(url)
    try:
        with db.connect() as conn:
            rows = conn.execute(sa.text("select key, version from definition_versions order by key, version"))
            return [tuple(r) for r in rows]
    finally:
        db.dispose()


# -- tongban db ----------------------------------------------------------------------------------


def test_db_upgrade_creates_the_schema_and_current_reports_head(url):
    result = run("db", "current", "--url", url)
    assert result.exit_code == 0, result.output
    assert "empty (no schema yet); run `tongban db upgrade`" in result.output

    result = run("db", "upgrade", "--url", url)
    assert result.exit_code == 0, result.output
    assert "schema upgraded from (empty) to revision" in result.output
    db = connect(url)
    tables = set(sa.inspect(db).get_table_names())
    db.dispose()
    assert {"definition_versions", "cases", "tasks", "signoffs", "events", "alerts", "alembic_version"} <= tables

    again = run("db", "upgrade", "--url", url)
    assert again.exit_code == 0 and "already at revision" in again.output
    current = run("db", "current", "--url", url)
    assert "(head, up to date)" in current.output


def test_db_commands_refuse_a_bad_url():
    result = run("db", "current", "--url", "nosuchdb://x")
    assert result.exit_code == 1
    assert "cannot use database URL nosuchdb://x" in result.output


# -- tongban publish -----------------------------------------------------------------------------


def test_publish_creates_the_schema_then_second_publish_is_unchanged(url, folder):
    first = run("publish", str(folder), "--url", url)
    assert first.exit_code == 0, first.output
    assert "empty database, schema created" in first.output
    assert "published kaiban-mini v1" in first.output

    second = run("publish", str(folder), "--url", url)
    assert second.exit_code == 0, second.output
    assert "unchanged kaiban-mini v1" in second.output
    assert "schema created" not in second.output
    assert stored_versions(url) == [("kaiban-mini", 1)]


def test_an_edited_definition_is_v2_and_a_running_case_stays_on_v1(url, folder):
    assert run("publish", str(folder), "--url", url).exit_code == 0
    db = connect(url)
    clock = lambda: datetime(2026, 3, 2, 10, 0, tzinfo=TZ)  # noqa: E731
    engine = Engine(db, BusinessCalendar(), clock)
    engine.add_user("zwfw1", "窗口", [("zwfw", "handler")])
    engine.add_user("scjg1", "市场监管", [("scjg", "handler")])
    form = {"company_name": "甲公司", "needs_seal": True, "employees": 0}
    old_case = engine.submit_case("kaiban-mini", {"id": "A1", "name": "张三"}, form, ["id_card", "lease"])
    engine.accept_case(old_case, "zwfw1")

    path = folder / "kaiban-mini.yaml"
    text = path.read_text(encoding="utf-8")
    edited = text.replace("limit: 0.5d, lead: true}", "limit: 0.5d, lead: true, review_chain: [承办, 审核]}")
    assert edited != text
    path.write_text(edited, encoding="utf-8")
    result = run("publish", str(folder), "--url", url)
    assert result.exit_code == 0, result.output
    assert "published kaiban-mini v2" in result.output
    assert stored_versions(url) == [("kaiban-mini", 1), ("kaiban-mini", 2)]

    new_case = engine.submit_case("kaiban-mini", {"id": "A2", "name": "李四"}, form, ["id_card", "lease"])
    engine.accept_case(new_case, "zwfw1")
    with db.connect() as conn:
        versions = dict(conn.execute(sa.text("select id, definition_version from cases")).all())
        licence = dict(
            conn.execute(sa.text("select case_id, id from tasks where step_id = 'licence' and state = 'ready'")).all()
        )
        signoffs = dict(
            conn.execute(sa.text("select case_id, signoffs_open from tasks where step_id = 'licence'")).all()
        )
    assert versions == {old_case: 1, new_case: 2}
    assert signoffs == {old_case: 0, new_case: 2}  # the v2 review chain does not reach the running v1 case
    engine.complete_task(licence[old_case], "scjg1")  # one approval completes it, as in v1
    with db.connect() as conn:
        state = conn.execute(sa.text("select state from tasks where id = :id"), {"id": licence[old_case]}).scalar()
    engine.close()
    db.dispose()
    assert state == "completed"


def test_an_invalid_file_is_refused_and_nothing_of_it_is_stored(url, folder):
    good = (folder / "kaiban-mini.yaml").read_text(encoding="utf-8")
    (folder / "kaiban-mini.yaml").write_text(good.replace("department: gaj", "department: gongan"), encoding="utf-8")
    (folder / "kaiban-other.yaml").write_text(good.replace("key: kaiban-mini", "key: kaiban-other"), encoding="utf-8")
    result = run("publish", str(folder), "--url", url)
    assert result.exit_code == 1
    assert re.search(r"kaiban-mini\.yaml:\d+:\d+: step 'seal': unknown department 'gongan'", result.output)
    assert "kaiban-mini.yaml: refused (1 problem), nothing stored" in result.output
    assert "published kaiban-other v1" in result.output
    assert stored_versions(url) == [("kaiban-other", 1)]


def test_publish_says_when_there_is_nothing_to_publish(url, tmp_path):
    result = run("publish", str(tmp_path / "missing"), "--url", url)
    assert result.exit_code == 1
    assert "no such file or folder" in result.output


# -- tongban calendar ----------------------------------------------------------------------------


def test_the_2026_national_day_schedule_is_what_the_command_relies_on():
    off = [date(2026, 10, d) for d in range(1, 8)]
    assert all(chinese_calendar.is_holiday(d) for d in off)
    assert chinese_calendar.is_workday(date(2026, 9, 20))  # Sunday, make-up workday
    assert chinese_calendar.is_workday(date(2026, 10, 10))  # Saturday, make-up workday


def test_calendar_add_skips_national_day_and_counts_the_make_up_saturday():
    # day 1 = Thu 10-08, 2 = Fri 10-09, 3 = Sat 10-10 (调休上班), 4 = Mon 10-12, 5 = Tue 10-13
    result = run("calendar", "add", "2026-09-30", "5d")
    assert result.exit_code == 0, result.output
    assert "→ 2026-10-13 (周二) 17:00 Asia/Shanghai" in result.output
    assert "provisional" not in result.output


def test_calendar_add_working_hours_from_a_time_of_day():
    result = run("calendar", "add", "2026-09-30", "4h", "--from-time", "15:00")
    assert result.exit_code == 0, result.output
    assert "→ 2026-10-08 (周四) 11:00" in result.output  # 2h on 09-30, then 2h after the holiday


def test_calendar_add_into_2027_is_provisional():
    result = run("calendar", "add", "2026-12-20", "10d")
    assert result.exit_code == 0, result.output
    assert "→ 2027-01-01" in result.output  # counted Mon–Fri: New Year's Day is not known to be off
    assert "(provisional: 2027 has no official holiday data)" in result.output


def test_calendar_between_counts_working_days_after_a_up_to_b():
    result = run("calendar", "between", "2026-09-30", "2026-10-13")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("5 working days")
    assert run("calendar", "between", "2026-10-01", "2026-10-07").output.startswith("0 working days")


def test_calendar_refuses_bad_input_with_a_hint():
    result = run("calendar", "add", "2026-02-30", "5d")
    assert result.exit_code != 0
    assert "write YYYY-MM-DD" in result.output
    result = run("calendar", "add", "2026-09-30", "5 days")
    assert result.exit_code != 0
    assert "d = working days" in result.output


# -- tongban doctor ------------------------------------------------------------------------------


def test_doctor_warns_loudly_about_next_year_without_holiday_data(url, folder):
    assert run("publish", str(folder), "--url", url).exit_code == 0
    result = run("doctor", "--url", url, "--today", "2026-11-30")
    assert result.exit_code == 0, result.output
    assert f"reachable, schema revision {head_revision()} (head), 1 definition(s)" in result.output
    assert "official holiday data for 2004–2026" in result.output
    assert "WARNING: 2027 (next year) has NO official holiday data" in result.output
    assert "flagged provisional" in result.output
    assert "2026 (this year)" not in result.output


def test_doctor_fails_when_the_database_cannot_be_reached():
    result = run("doctor", "--url", "nosuchdb://x", "--today", "2026-11-30")
    assert result.exit_code == 1
    assert "✗ database" in result.output


# -- tongban simulate ----------------------------------------------------------------------------


def counts(output: str) -> list[str]:
    """The lines of a simulate report that a seed fixes (not the wall-clock figures)."""
    keep = ("cases", "task completions", "states", "outcomes", "deadlines", "SLA cards", "simulated time")
    return [line for line in output.splitlines() if line.startswith(keep)]


# -- tongban timers -------------------------------------------------------------------------------


def test_timers_terminate_lapsed_deferrals_then_raise_the_cards_once(url, folder):
    assert run("publish", str(folder), "--url", url).exit_code == 0
    db = connect(url)
    engine = Engine(db, BusinessCalendar(), lambda: datetime(2026, 3, 2, 10, 0, tzinfo=TZ))  # the past
    engine.add_user("zwfw1", "窗口", [("zwfw", "handler")])
    form = {"company_name": "甲公司", "needs_seal": True, "employees": 0}
    owing = engine.submit_case("kaiban-mini", {"id": "A1", "name": "张三"}, form, ["id_card"])
    engine.accept_case(owing, "zwfw1", deferred=["lease"], deferred_limit="4h")
    late = engine.submit_case("kaiban-mini", {"id": "A2", "name": "李四"}, form, ["id_card", "lease"])
    engine.accept_case(late, "zwfw1")
    engine.close()

    result = run("timers", "--url", url)  # now: long after both deadlines
    assert result.exit_code == 0, result.output
    assert f"容缺 timer: 1 case(s) terminated (终止办理): case {owing}" in result.output
    assert "0 task(s) and 0 case(s) turned yellow (黄牌), 1 task(s) and 1 case(s) red (红牌)" in result.output
    with db.connect() as conn:
        states = dict(conn.execute(sa.text("select id, state from cases")).all())
    db.dispose()
    assert states == {owing: "terminated", late: "accepted"}

    again = run("timers", "--url", url)
    assert again.exit_code == 0, again.output
    assert "容缺 timer: 0 case(s) terminated" in again.output
    assert "0 task(s) and 0 case(s) red (红牌); 0 alert(s)" in again.output


def test_timers_need_the_current_schema(url):
    result = run("timers", "--url", url)
    assert result.exit_code == 1
    assert "has no schema yet: run `tongban db upgrade` and `tongban publish`" in result.output
    db = connect(url)
    upgrade(db, "0005")
    head = head_revision()
    db.dispose()
    result = run("timers", "--url", url)
    assert result.exit_code == 1
    assert f"is at schema revision 0005, this tongban needs {head}: run `tongban db upgrade`" in result.output


def test_simulate_runs_cases_to_the_end_and_is_deterministic_for_a_seed():
    path = str(DEFINITIONS / "kaiban-qiye.yaml")
    first = run("simulate", path, "--cases", "20", "--seed", "1")
    assert first.exit_code == 0, first.output
    lines = counts(first.output)
    assert "cases            20" in lines
    assert re.search(r"^completions/s\s+[\d.]+", first.output, re.M)
    assert re.search(r"^wall seconds\s+[\d.]+", first.output, re.M)
    states = dict(re.findall(r"(\w+)（[^）]+） (\d+)", next(x for x in lines if x.startswith("states"))))
    assert sum(map(int, states.values())) == 20
    assert set(states) <= {"completed", "rejected", "not_accepted", "withdrawn", "terminated"}  # every case ended
    assert int(states.get("completed", 0)) >= 15  # mostly approve
    second = run("simulate", path, "--cases", "20", "--seed", "1")
    assert counts(second.output) == lines


def test_simulate_refuses_an_invalid_definition(tmp_path):
    shutil.copy(FIXTURES / "departments.yaml", tmp_path)
    text = (FIXTURES / "kaiban-mini.yaml").read_text(encoding="utf-8").replace("department: gaj", "department: x")
    (tmp_path / "kaiban-mini.yaml").write_text(text, encoding="utf-8")
    result = run("simulate", str(tmp_path / "kaiban-mini.yaml"), "--cases", "2")
    assert result.exit_code == 1
    assert "unknown department 'x'" in result.output
    assert "nothing was simulated" in result.output


# -- tongban staff ----------------------------------------------------------------------------------


def test_staff_set_gives_exactly_the_roles_and_show_tells_their_history(url, folder):
    assert run("publish", str(folder), "--url", url).exit_code == 0
    result = run("staff", "set", "li", "李雷", "scjg:handler", "gaj:handler", "--url", url, "--by", "admin-wang")
    assert result.exit_code == 0, result.output
    assert "li (李雷): gaj:handler, scjg:handler (was a new user)" in result.output
    result = run("staff", "set", "li", "李雷", "gaj:handler", "gaj:duty_a", "--url", url, "--by", "admin-wang")
    assert result.exit_code == 0, result.output
    assert "li (李雷): gaj:duty_a, gaj:handler (was gaj:handler, scjg:handler)" in result.output
    shown = run("staff", "show", "li", "--url", url)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0] == "li (李雷): gaj:duty_a, gaj:handler"
    assert re.fullmatch(r"  \d{4}-\d\d-\d\d \d\d:\d\d by admin-wang: no roles → gaj:handler, scjg:handler", lines[1])
    assert lines[2].endswith("by admin-wang: gaj:handler, scjg:handler → gaj:duty_a, gaj:handler")


def one_line_refusal(result, *words: str) -> None:
    """Exit status 1 and one `Error:` line that says it: no traceback (the exception is click's exit)."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), f"a traceback: {result.exception!r}"
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for word in words:
        assert word in errors[0], errors[0]


def test_an_engine_refusal_is_one_line_and_exit_status_1(url, folder):
    assert run("publish", str(folder), "--url", url).exit_code == 0
    one_line_refusal(
        run("staff", "set", "li", "李雷", "scjq:handler", "gaj:fire_reviewer", "--url", url),
        "invalid_data:",
        "'scjq' is not a published department (did you mean 'scjg'?)",
        "'fire_reviewer' is no role of gaj",
    )
    one_line_refusal(run("staff", "show", "nobody", "--url", url), "not_found: user nobody does not exist")
    bad = run("staff", "set", "li", "李雷", "scjg", "--url", url)
    assert bad.exit_code == 2 and "write DEPARTMENT:ROLE" in bad.output  # a malformed argument: usage


def test_a_database_error_under_the_engine_is_one_line_and_exit_status_1(url, folder):
    assert run("publish", str(folder), "--url", url).exit_code == 0
    db = connect(url)
    with db.begin() as conn:  # a broken database: the sweep's table is gone
        conn.exec_driver_sql("DROP TABLE alerts")
    db.dispose()
    one_line_refusal(run("timers", "--url", url), "no such table: alerts")


def test_simulate_shows_each_step_and_the_certificates_and_validate_warns_of_an_unguarded_issue_step(tmp_path):
    """An issue step behind a conditional step only: valid, but most applicants got nothing. validate
    warns (exit 0), and simulate shows the issue step skipped and fewer certificates than cases."""
    shutil.copy(FIXTURES / "departments.yaml", tmp_path)
    text = (FIXTURES / "kaiban-mini.yaml").read_text(encoding="utf-8")
    text = text.replace("after: [seal, invoice, social]", "after: [seal]")
    path = tmp_path / "kaiban-mini.yaml"
    path.write_text(text, encoding="utf-8")

    checked = run("validate", str(path))
    assert checked.exit_code == 0, checked.output
    assert "warning: issue step 'issue' waits only on steps that may be skipped: seal (when: needs_seal)" in (
        checked.output
    )

    result = run("simulate", str(path), "--cases", "30", "--seed", "3")
    assert result.exit_code == 0, result.output
    rows = {
        line.split()[0]: [int(n) for n in line.split()[1:6]]
        for line in result.output.splitlines()
        if line.startswith("  ") and line.split()[0] in ("accept", "licence", "seal", "invoice", "social", "issue")
    }
    assert set(rows) == {"accept", "licence", "seal", "invoice", "social", "issue"}
    ran, skipped, _refused, cancelled, not_reached = rows["issue"]
    assert skipped == rows["seal"][1] > 0  # dead-path elimination: no seal, no issue
    assert ran + skipped + cancelled + not_reached == 30  # cancelled: a parallel step refused the case
    certificates = re.search(r"^certificates\s+营业执照（business_licence） (\d+)", result.output, re.M)
    assert certificates is not None and int(certificates[1]) <= ran < 30
    again = run("simulate", str(path), "--cases", "30", "--seed", "3")
    steps = [line for line in result.output.splitlines() if line.startswith(("  ", "certificates"))]
    assert steps == [line for line in again.output.splitlines() if line.startswith(("  ", "certificates"))]


# -- the calendar, checked up front ----------------------------------------------------------------

BROKEN_CALENDAR = "working_hours: {start: '09:00', end: '17:00'}\nyears:\n  2027:\n    holidays: [2027-01-01]\n"


def test_validate_and_publish_check_the_calendar_that_timers_would_load(url, folder, tmp_path):
    """A broken calendar.yaml passed validate and publish, then `tongban timers` failed every minute."""
    (folder / "calendar.yaml").write_text(BROKEN_CALENDAR, encoding="utf-8")
    result = run("validate", str(folder))
    assert result.exit_code == 1
    assert f"calendar file {folder / 'calendar.yaml'}: years.2027.source: required key 'source' is missing" in (
        result.output
    )
    assert "kaiban-mini.yaml: ok" in result.output  # the definitions are still checked

    configured = tmp_path / "operator-calendar.yaml"
    configured.write_text(BROKEN_CALENDAR, encoding="utf-8")
    (folder / "calendar.yaml").unlink()
    environment = {"TONGBAN_CALENDAR_FILE": str(configured)}
    result = CliRunner().invoke(main, ["publish", str(folder), "--url", url], env=environment)
    assert result.exit_code == 1
    assert f"calendar file {configured}: years.2027.source" in result.output
    assert "nothing was published" in result.output
    assert not (tmp_path / "cli.sqlite").exists() or stored_versions(url) == []
    assert CliRunner().invoke(main, ["validate", str(folder)], env=environment).exit_code == 1

    configured.write_text("years: {}\n", encoding="utf-8")
    assert CliRunner().invoke(main, ["publish", str(folder), "--url", url], env=environment).exit_code == 0


def test_doctor_fails_on_a_database_tongban_cannot_work_with_yet(url, folder):
    """It used to pass on an empty database, where `tongban timers` then failed."""
    advice = "run `tongban db upgrade` and `tongban publish definitions/`"
    result = run("doctor", "--url", url, "--today", "2026-11-30")
    assert result.exit_code == 1
    assert f"✗ database {url}: no file yet; {advice}" in result.output
    db = connect(url)
    with db.begin() as conn:  # an empty SQLite file
        conn.exec_driver_sql("SELECT 1")
    db.dispose()
    result = run("doctor", "--url", url, "--today", "2026-11-30")
    assert result.exit_code == 1
    assert f"reachable but empty; {advice}" in result.output
    assert run("db", "upgrade", "--url", url).exit_code == 0
    result = run("doctor", "--url", url, "--today", "2026-11-30")
    assert result.exit_code == 1
    assert "no definition published; run `tongban publish definitions/`" in result.output
    assert run("publish", str(folder), "--url", url).exit_code == 0
    assert run("doctor", "--url", url, "--today", "2026-11-30").exit_code == 0


def test_simulate_runs_in_a_scratch_database_whatever_tongban_database_url_says(tmp_path):
    help_text = run("simulate", "--help").output
    assert "default: a scratch SQLite file" in " ".join(help_text.split())
    real = tmp_path / "real.sqlite"
    path = str(FIXTURES / "kaiban-mini.yaml")
    result = CliRunner().invoke(
        main, ["simulate", path, "--cases", "2"], env={"TONGBAN_DATABASE_URL": f"sqlite:///{real}"}
    )
    assert result.exit_code == 0, result.output
    assert "in a scratch SQLite file" in result.output
    assert not real.exists()  # the real database was never touched
