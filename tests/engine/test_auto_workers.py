"""Automatic steps under several real worker processes on PostgreSQL: every task decided exactly once,
and a worker killed (SIGKILL) in the middle of a batch loses and duplicates nothing — its transaction
rolls back, its lease on a task whose shared data it was fetching lapses and another worker takes over."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import traceback
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from orchestrator.calendar import BusinessCalendar
from orchestrator.engine import Engine
from orchestrator.engine.commands.auto import RunPolicy
from orchestrator.engine.lookups import load_records
from orchestrator.store import connect
from orchestrator.store.models import Event, Task

from .helpers import AUTO_APPLICANT

TIMEOUT = 180
POLICY = {"max_attempts": 5, "backoff_s": 0.0, "lease_s": 2.0}


def _worker(url: str, out: Any, barrier: Any | None, batch: int) -> None:
    """Decide automatic tasks on the real clock until none is left."""
    results: Counter[str] = Counter()
    try:
        engine = Engine(connect(url), BusinessCalendar(), auto_inline=False)
        if barrier is not None:
            barrier.wait(TIMEOUT)
        idle_since = None
        while True:
            done = engine.run_auto_batch(batch, policy=RunPolicy(**POLICY))
            results["decided"] += done.decided
            results["failed"] += done.failed
            results["lost"] += done.lost
            if done.attempts:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > 2 * POLICY["lease_s"] + 1:  # a lapsed lease is free again
                break
            else:
                time.sleep(0.2)
        engine.dispose()
    except Exception:
        results["error: " + traceback.format_exc(limit=4)] += 1
    out.put(dict(results))


def _cases(engine: Engine, count: int) -> list[int]:
    """Half of them decided in one transaction (auto-mini), half through a look-up (lookup-mini)."""
    ids = [f"3101011950{n:08d}" for n in range(count)]
    load_records(engine.db, "hukou", [(i, {"local": True}) for i in ids], engine.clock())
    made = []
    for n, id_number in enumerate(ids):
        if n % 2:
            case_id = engine.submit_case("auto-mini", AUTO_APPLICANT, {"age": 70}, ["id_card"])
            engine.accept_case(case_id, "zwfw1")
        else:  # accepted by the system
            form = {"id_number": id_number, "age": 70}
            case_id = engine.submit_case("lookup-mini", AUTO_APPLICANT, form, ["id_card", "photo"])
        made.append(case_id)
    return made


def _decisions(db: sa.Engine, case_ids: list[int]) -> tuple[dict[int, str], Counter[int]]:
    """Each `check` task's state, and how many times each was completed in the history."""
    with db.connect() as conn:
        query = sa.select(Task.id, Task.state).where(Task.case_id.in_(case_ids), Task.step_id == "check")
        states = dict(conn.execute(query).all())
        completed = Counter(
            conn.execute(
                sa.select(Event.task_id).where(Event.kind == "task_completed", Event.task_id.in_(list(states)))
            ).scalars()
        )
    return states, completed


@pytest.mark.parametrize("db", ["postgres"], indirect=True)  # SKIP LOCKED is PostgreSQL's; SQLite has one writer
def test_two_workers_decide_every_automatic_task_exactly_once(db, engine):
    case_ids = _cases(Engine(db, BusinessCalendar(), engine.clock, auto_inline=False), 120)
    url = db.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_worker, args=(url, out, barrier, 7)) for _ in range(2)]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=TIMEOUT) for _ in workers]
    for worker in workers:
        worker.join(TIMEOUT)
    assert not [k for r in results for k in r if k.startswith("error")], results
    states, completed = _decisions(db, case_ids)
    assert set(states.values()) == {"completed"} and len(states) == 120
    assert all(completed[task] == 1 for task in states), [t for t in states if completed[t] != 1]
    assert sum(r.get("decided", 0) for r in results) == 120
    assert sum(r.get("failed", 0) for r in results) == 0


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
def test_a_worker_killed_in_the_middle_of_a_batch_loses_and_duplicates_nothing(db, engine):
    case_ids = _cases(Engine(db, BusinessCalendar(), engine.clock, auto_inline=False), 300)
    url = db.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    doomed = context.Process(target=_worker, args=(url, out, None, 10_000))  # one batch for everything
    doomed.start()
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        states, _ = _decisions(db, case_ids)
        if sum(s == "completed" for s in states.values()) >= 40:
            break
        time.sleep(0.05)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join(TIMEOUT)
    assert doomed.exitcode == -signal.SIGKILL
    states, _ = _decisions(db, case_ids)
    assert 0 < sum(s == "completed" for s in states.values()) < 300, "killed before or after its batch"

    survivor = context.Process(target=_worker, args=(url, out, None, 50))
    survivor.start()
    result = out.get(timeout=TIMEOUT)
    survivor.join(TIMEOUT)
    assert not [k for k in result if k.startswith("error")], result
    states, completed = _decisions(db, case_ids)
    assert set(states.values()) == {"completed"} and len(states) == 300
    assert all(completed[task] == 1 for task in states), [t for t in states if completed[t] != 1]
    with db.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM auto_attempts").scalar_one() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM incidents").scalar_one() == 0
