"""The read side's statements read the indexes they were written for (EXPLAIN on SQLite and PostgreSQL),
over the benchmark's data (bench/read.py) at 2,000 cases / 20,000 tasks, statistics as a load leaves them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from orchestrator.calendar import BusinessCalendar
from orchestrator.engine import read
from orchestrator.store import prepared
from orchestrator.store.db import reading

from .test_sla import _bench_module, captured, plan, reads_index

CAL = BusinessCalendar()


@pytest.fixture
def bench_data(db):
    bench = _bench_module("read")
    bench.fill(db, 2_000)
    return db, bench


@pytest.fixture
def prepared_statements(monkeypatch):
    """The statements the read side runs on the driver cursor (store/prepared.py), with their parameters."""
    seen: list[tuple[str, object]] = []
    original = prepared.fetch

    def fetch(conn, statement, values):
        params = statement.params(values)
        seen.append((statement.sql, tuple(params) if isinstance(params, list) else params))
        return original(conn, statement, values)

    monkeypatch.setattr(prepared, "fetch", fetch)
    return seen


def _no_full_scan(text: str, tables: tuple[str, ...]) -> bool:
    """No table of ``tables`` is read whole: SQLite's ``SCAN t`` without an index, PostgreSQL's Seq Scan."""
    for table in tables:
        if re.search(rf"\bSCAN {table}\b(?! USING)", text) or re.search(rf"Seq Scan on {table}\b", text):
            return False
    return True


def test_the_queue_reads_the_pool_and_the_signatures_owed_through_their_indexes(bench_data, prepared_statements):
    db, bench = bench_data
    with reading(db) as conn:
        page = read.queue(
            conn, department=bench.QUEUE_DEPARTMENT, user=bench.QUEUE_USER, now=bench.REFERENCE_NOW, calendar=CAL
        )
    assert len(page) == 50 and {i.source for i in page} >= {"pool"}
    union = next(s for s in prepared_statements if "UNION ALL" in s[0])
    with reading(db) as conn:
        text = plan(conn, *union)
    # the pool: its own index; PostgreSQL may instead walk the open tasks in due order (ix_tasks_open_due)
    # when its statistics say the department's tasks are dense among them
    pool_index = reads_index(text, "ix_tasks_queue", bitmap=True)
    assert pool_index or (db.dialect.name == "postgresql" and reads_index(text, "ix_tasks_open_due")), text
    assert reads_index(text, "ix_signoffs_unsigned", bitmap=True), text
    if db.dialect.name == "sqlite":  # the owed task's key from the open-task index alone, not the table row
        assert "COVERING INDEX ix_tasks_open_key" in text and "COVERING INDEX ix_signoffs_unsigned" in text, text
    assert _no_full_scan(text, ("tasks", "signoffs", "cases")), text


def test_the_case_page_reads_every_table_by_its_case_index(bench_data, prepared_statements):
    db, bench = bench_data
    with reading(db) as conn:
        detail = read.case_detail(conn, 1999, now=bench.REFERENCE_NOW, calendar=CAL)
    assert len(detail.tasks) == 10 and detail.timeline
    expected = {
        "FROM tasks": "ix_tasks_case",
        "FROM events": "ix_events_case",
        "FROM alerts": "ix_alerts_case",
        "FROM signoffs": "ix_signoffs_task",
    }
    with reading(db) as conn:
        plans = {sql: plan(conn, sql, params) for sql, params in prepared_statements}
    for fragment, index in expected.items():
        sql = next(s for s in plans if fragment in s and "WHERE" in s)
        assert reads_index(plans[sql], index, bitmap=True), (index, plans[sql])
    for sql, text in plans.items():
        assert _no_full_scan(text, ("tasks", "events", "signoffs", "alerts", "cases", "evaluations")), (sql, text)


def test_the_dashboard_reads_its_covering_and_partial_indexes(bench_data):
    db, bench = bench_data
    now = bench.REFERENCE_NOW
    with captured(db) as seen, reading(db) as conn:
        board = read.dashboard(conn, now - timedelta(days=30), now)
    assert sum(d.work.completed for d in board.departments) > 0
    completions = next(s for s in seen if "t.completed_at >= " in s[0])
    live_tasks = next(s for s in seen if "FROM tasks WHERE tasks.state IN" in s[0])
    live_cases = next(s for s in seen if "FROM cases WHERE cases.state IN" in s[0])
    with reading(db) as conn:
        texts = [plan(conn, *statement) for statement in (completions, live_tasks, live_cases)]
    completions_plan, live_tasks_plan, live_cases_plan = texts
    assert reads_index(completions_plan, "ix_tasks_completed", bitmap=True), completions_plan
    assert reads_index(live_cases_plan, "ix_cases_live_sla", bitmap=True), live_cases_plan
    # the live counts read an index of the open tasks only: SQLite its own covering one; PostgreSQL, by its
    # statistics, any of the open-task partial indexes (they share the predicate)
    open_indexes = ["ix_tasks_open_sla"]
    if db.dialect.name == "postgresql":
        open_indexes += ["ix_tasks_open_due", "ix_tasks_open_warn", "ix_tasks_open_key"]
    assert any(reads_index(live_tasks_plan, index, bitmap=True) for index in open_indexes), live_tasks_plan


def test_the_case_search_finds_a_figures_cases_without_reading_every_task(bench_data):
    """The dashboard's filters (a task completed, a rating's department, visits) probe the tasks of each
    case by an index (ix_tasks_case, or ix_tasks_completed's period), never the whole table."""
    db, bench = bench_data
    now = bench.REFERENCE_NOW
    month = (now - timedelta(days=30), now)
    searches = {
        "done": read.CaseFilter(done_department="d12", done_from=month[0], done_to=month[1]),
        "step": read.CaseFilter(definition_key="bench-def-0", done_step="step2", done_from=month[0], done_to=month[1]),
        "rated": read.CaseFilter(rated_department="d12", rated_from=month[0], rated_to=month[1]),
        "visits": read.CaseFilter(max_visits=1, closed_from=month[0], closed_to=month[1]),
    }
    for name, filters in searches.items():
        with captured(db) as seen, reading(db) as conn:
            read.search_cases(conn, filters, now=now, calendar=CAL)
        statement = next(s for s in seen if "ORDER BY cases.submitted_at DESC" in s[0])
        with reading(db) as conn:
            text = plan(conn, *statement)
        assert _no_full_scan(text, ("tasks",)), (name, text)
