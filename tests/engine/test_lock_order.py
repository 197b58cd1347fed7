"""Lock order, everywhere: the case row, then its tasks.

The automatic-step runner used to lock a waiting task (``FOR UPDATE SKIP LOCKED``) and then its case,
while every other transition locks the case and then its tasks: a worker deciding 秒批 steps while the
applicant withdrew the same cases deadlocked on PostgreSQL and surfaced a raw driver error. Two real
processes race here — one runs the automatic steps, the other withdraws the same cases from the other
end — and PostgreSQL's own deadlock counter for the database must not move (the engine's one retry
would otherwise hide a deadlock from the results).
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from orchestrator.calendar import BusinessCalendar
from orchestrator.engine import Engine, TongbanError
from orchestrator.store import connect
from orchestrator.store.models import Case, Task

from .helpers import AUTO_APPLICANT

CASES = 60
TIMEOUT = 120


def _auto_worker(url: str, start: str, barrier: Any, out: Any) -> None:
    results: Counter[str] = Counter()
    try:
        base = datetime.fromisoformat(start)
        engine = Engine(connect(url), BusinessCalendar(), lambda: base + timedelta(minutes=5), auto_inline=False)
        barrier.wait(TIMEOUT)
        while True:
            try:
                if engine.run_auto_tasks(limit=5) == 0:
                    break
                results["ran"] += 1
            except TongbanError as exc:
                results[type(exc).__name__] += 1
        engine.dispose()
    except Exception:
        results["error: " + traceback.format_exc(limit=3)] += 1
    out.put(("auto", dict(results)))


def _withdrawer(url: str, start: str, case_ids: list[int], barrier: Any, out: Any) -> None:
    results: Counter[str] = Counter()
    try:
        base = datetime.fromisoformat(start)
        engine = Engine(connect(url), BusinessCalendar(), lambda: base + timedelta(minutes=5))
        barrier.wait(TIMEOUT)
        for case_id in reversed(case_ids):
            try:
                engine.withdraw_case(case_id, AUTO_APPLICANT["id"], "不办了")
                results["withdrawn"] += 1
            except TongbanError as exc:
                results[type(exc).__name__] += 1
        engine.dispose()
    except Exception:
        results["error: " + traceback.format_exc(limit=3)] += 1
    out.put(("withdraw", dict(results)))


def _deadlocks(db: sa.Engine) -> int:
    with db.connect() as conn:
        conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
        return conn.exec_driver_sql(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ).scalar_one()


@pytest.mark.parametrize("db", ["postgres"], indirect=True)  # row locks are PostgreSQL's; SQLite has one writer
def test_automatic_steps_and_withdrawals_race_without_deadlock(db, engine, clock):
    waiting = Engine(db, BusinessCalendar(), clock, auto_inline=False)
    case_ids = []
    for _ in range(CASES):
        case_id = waiting.submit_case("auto-mini", AUTO_APPLICANT, {"age": 70}, ["id_card"])
        waiting.accept_case(case_id, "zwfw1")
        case_ids.append(case_id)
    url = db.url.render_as_string(hide_password=False)
    deadlocks_before = _deadlocks(db)
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(2), context.Queue()
    workers = [
        context.Process(target=_auto_worker, args=(url, clock.now.isoformat(), barrier, out)),
        context.Process(target=_withdrawer, args=(url, clock.now.isoformat(), case_ids, barrier, out)),
    ]
    for worker in workers:
        worker.start()
    results = dict(out.get(timeout=TIMEOUT) for _ in workers)
    for worker in workers:
        worker.join(TIMEOUT)
    errors = [k for r in results.values() for k in r if k.startswith("error") or k == "Busy"]
    assert not errors, results
    time.sleep(1.2)  # PostgreSQL publishes its counters at most once a second
    assert _deadlocks(db) == deadlocks_before, f"the race deadlocked: {results}"

    with db.connect() as conn:
        cases = dict(conn.execute(sa.select(Case.id, Case.state).where(Case.id.in_(case_ids))).all())
        checks = conn.execute(sa.select(Task.case_id, Task.state).where(Task.step_id == "check")).all()
    assert set(cases.values()) <= {"withdrawn", "in_progress"}
    assert results["withdraw"].get("withdrawn", 0) == sum(1 for s in cases.values() if s == "withdrawn")
    for case_id, state in checks:  # each 秒批 step decided, or cancelled with its withdrawn case
        assert state == "completed" or (state == "cancelled" and cases[case_id] == "withdrawn"), (case_id, state)
