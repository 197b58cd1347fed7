"""One settings object for every process: a calendar that is configured but missing or broken stops
start-up, relative paths are taken from TONGBAN_HOME, and SQLite is durable unless told otherwise."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import pytest
from click.testing import CliRunner

from orchestrator.calendar import TZ
from orchestrator.cli import main
from orchestrator.settings import SettingsError, load_settings, make_engine

from .conftest import DEFINITIONS


def test_calendar_is_found_from_home_wherever_the_process_starts(tmp_path, monkeypatch):
    elsewhere = tmp_path / "cron-cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("TONGBAN_HOME", str(DEFINITIONS.parent))
    monkeypatch.setenv("TONGBAN_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite'}")
    settings = load_settings()
    assert settings.calendar_path == DEFINITIONS / "calendar.yaml"
    engine = make_engine(settings)
    try:
        assert engine.calendar.overrides.working_hours.start.hour == 9
    finally:
        engine.dispose()


def test_missing_calendar_is_an_error_at_start_up_not_a_silent_fallback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TONGBAN_HOME", raising=False)
    monkeypatch.delenv("TONGBAN_CALENDAR_FILE", raising=False)
    with pytest.raises(SettingsError, match=r"calendar file .*calendar.yaml not found: set TONGBAN_CALENDAR_FILE"):
        make_engine(load_settings(database_url=f"sqlite:///{tmp_path / 'x.sqlite'}"))
    result = CliRunner().invoke(main, ["timers", "--url", f"sqlite:///{tmp_path / 'x.sqlite'}"])
    assert result.exit_code == 1
    assert "not found: set TONGBAN_CALENDAR_FILE" in result.output


def test_broken_calendar_is_an_error_naming_the_file(tmp_path, monkeypatch):
    broken = tmp_path / "calendar.yaml"
    broken.write_text("working_hours: {start: '09:00', end: '08:00'}\nbogus: 1\n", encoding="utf-8")
    monkeypatch.setenv("TONGBAN_CALENDAR_FILE", str(broken))
    with pytest.raises(SettingsError, match=r"^calendar file \S*/calendar\.yaml: unknown key\(s\) bogus"):  # named once
        make_engine(load_settings(database_url=f"sqlite:///{tmp_path / 'x.sqlite'}"))


def test_calendar_none_means_library_data_on_purpose(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TONGBAN_CALENDAR_FILE", "none")
    engine = make_engine(load_settings(database_url=f"sqlite:///{tmp_path / 'x.sqlite'}"))
    try:
        due = engine.calendar.add(datetime(2026, 9, 30, 10, tzinfo=TZ), 5, "d")
        assert due.at.date().isoformat() == "2026-10-13"
    finally:
        engine.dispose()


def test_relative_sqlite_path_is_under_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TONGBAN_HOME", str(tmp_path))
    settings = load_settings(database_url="sqlite:///data/tb.sqlite")
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'data' / 'tb.sqlite'}"


@pytest.mark.parametrize(("setting", "expected"), [(None, 2), ("NORMAL", 1), ("normal", 1)])
def test_sqlite_is_durable_by_default_and_normal_only_when_set(tmp_path, monkeypatch, setting, expected):
    monkeypatch.setenv("TONGBAN_CALENDAR_FILE", "none")
    if setting:
        monkeypatch.setenv("TONGBAN_SQLITE_SYNCHRONOUS", setting)
    engine = make_engine(load_settings(database_url=f"sqlite:///{tmp_path / 'x.sqlite'}"))
    try:
        with engine.db.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == expected  # 2 = FULL, 1 = NORMAL
    finally:
        engine.dispose()
    assert sqlite3.sqlite_version_info >= (3, 7)


def test_bad_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv("TONGBAN_POOL_SIZE", "lots")
    with pytest.raises(SettingsError, match="TONGBAN_POOL_SIZE='lots'"):
        load_settings()


def test_the_leaders_time_for_a_refusal_is_a_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("TONGBAN_NEGATIVE_REPORT_LIMIT", "4h")
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'x.sqlite'}", calendar_file="none")
    assert settings.negative_report_limit == "4h"
    engine = make_engine(settings)
    try:
        assert str(engine.env.negative_report_limit) == "4h"
    finally:
        engine.dispose()
    monkeypatch.setenv("TONGBAN_NEGATIVE_REPORT_LIMIT", "one day")
    with pytest.raises(SettingsError, match="TONGBAN_NEGATIVE_REPORT_LIMIT='one day'"):
        load_settings()
