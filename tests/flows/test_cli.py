"""The commands of what runs by itself: run-jobs --once, lookups load, incidents list/retry/hand-over,
report, and deploy/worker without a Prefect server named."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from orchestrator.calendar import BusinessCalendar
from orchestrator.cli import main
from orchestrator.engine import Engine, publish_paths
from orchestrator.store import connect, upgrade

from ..conftest import FIXTURES

ID = "310101195001011234"


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env)


@pytest.fixture
def url(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    db = connect(url)
    upgrade(db)
    publish_paths(db, [FIXTURES], datetime.now(UTC))
    db.dispose()
    monkeypatch.setenv("TONGBAN_CALENDAR_FILE", "none")
    monkeypatch.setenv("TONGBAN_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("TONGBAN_AUTO_BACKOFF_S", "0")
    monkeypatch.setenv("TONGBAN_AUTO_MAX_ATTEMPTS", "2")
    return url


def engine_of(url: str) -> Engine:
    return Engine(connect(url), BusinessCalendar())


def test_run_jobs_once_decides_a_look_up_step_from_the_loaded_records(url, tmp_path):
    records = tmp_path / "hukou.jsonl"
    records.write_text(json.dumps({"key": ID, "local": True}) + "\n\n", encoding="utf-8")
    loaded = run("lookups", "load", "--url", url, "hukou", str(records))
    assert loaded.exit_code == 0, loaded.output
    assert "1 record(s) of hukou loaded" in loaded.output
    engine = engine_of(url)
    case_id = engine.submit_case("lookup-mini", {"id": ID, "name": "王五"}, {"id_number": ID, "age": 70},
                                 ["id_card", "photo"])  # fmt: skip
    once = run("run-jobs", "--url", url, "--once", "--only", "auto_steps,timers,deemed_consent,daily_report")
    assert once.exit_code == 0, once.output
    assert '"decided": 1' in once.output and "auto_steps:" in once.output and "daily_report:" in once.output
    with engine.db.connect() as conn:
        assert conn.exec_driver_sql("SELECT state FROM cases WHERE id = ?", (case_id,)).scalar() == "completed"
    engine.dispose()
    assert list((tmp_path / "reports").glob("daily-*.html"))


def test_lookups_load_refuses_a_line_that_is_no_record(url, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": "1", "local": true}\n[1, 2]\n', encoding="utf-8")
    result = run("lookups", "load", "--url", url, "hukou", str(bad))
    assert result.exit_code == 1
    assert 'bad.jsonl:2: a record is an object with a "key" string' in result.output


def test_incidents_are_listed_retried_and_handed_over_from_the_command_line(url):
    engine = engine_of(url)
    engine.add_user("rsj_boss", "负责人", [("rsj", "rsj_supervisor")])
    engine.add_user("rsj1", "办理人", [("rsj", "handler")])
    case_id = engine.submit_case("lookup-mini", {"id": ID, "name": "王五"}, {"id_number": ID}, ["id_card", "photo"])
    for _ in range(2):  # `age >= 60` on an empty age: two failed attempts make an incident
        assert run("run-jobs", "--url", url, "--once", "--only", "auto_steps").exit_code == 0
    listed = run("incidents", "list", "--url", url)
    assert listed.exit_code == 0, listed.output
    with engine.db.connect() as conn:
        task_id = conn.exec_driver_sql(
            "SELECT id FROM tasks WHERE case_id = ? AND step_id = 'check'", (case_id,)
        ).scalar()
    assert (
        f"task {task_id}" in listed.output
        and "rule, 2 attempts" in listed.output
        and "1 open incident(s)" in listed.output
    )
    refused = run("incidents", "retry", "--url", url, str(task_id), "--as", "rsj1")
    assert refused.exit_code == 1 and "only the supervisor (rsj_supervisor) of rsj may retry it" in refused.output
    assert run("incidents", "retry", "--url", url, str(task_id), "--as", "rsj_boss").exit_code == 0
    for _ in range(2):
        run("run-jobs", "--url", url, "--once", "--only", "auto_steps")
    handed = run("incidents", "hand-over", "--url", url, str(task_id), "--as", "rsj_boss", "--note", "人工核实年龄")
    assert handed.exit_code == 0, handed.output
    assert "in the department's queue as a manual task" in handed.output
    assert "0 open incident(s)" in run("incidents", "list", "--url", url).output
    engine.dispose()


def test_report_writes_the_day_asked_for(url, tmp_path):
    result = run("report", "--url", url, "--day", "2026-03-02")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "reports" / "daily-2026-03-02.csv").is_file()
    assert run("report", "--url", url, "--day", "2026-02-30").exit_code == 2


def test_deploy_and_worker_need_a_prefect_server_named(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    for command in ("deploy", "worker"):
        result = run(command)
        assert result.exit_code == 1
        assert "PREFECT_API_URL is not set" in result.output
