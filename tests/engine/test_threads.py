"""Several threads share one Engine, as the request threads of a web server do.

Each thread's connection is its own, the kept copies are shared: threads act on the same cases at
random (so they race for the same tasks), every refusal a race brings is a typed error, and in the end
every case is completed with each task completed once and the engine's copies true to the database.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from pathlib import Path

from orchestrator.calendar import BusinessCalendar
from orchestrator.definition.validator import load_departments
from orchestrator.engine import Engine, publish_paths
from orchestrator.engine.errors import TongbanError
from orchestrator.settings import connect_database
from orchestrator.simulation.simulate import EVERYONE_APPROVES, SimClock, act, create_staff, submit_case

from .helpers import KAIBAN_FORM, assert_kept_copy_is_true, case_row, events, signoffs, tasks_of

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"
THREADS = 4
CASES = 12


def test_threads_sharing_one_engine_complete_every_task_once(db):
    clock = SimClock()
    (published,) = publish_paths(db, [DEFINITIONS / "kaiban-qiye.yaml"], clock())
    assert not published.problems
    engine = Engine(db, BusinessCalendar.from_file(DEFINITIONS / "calendar.yaml"), clock)
    with db.connect() as conn:
        _, definition = engine.definitions.latest(conn, "kaiban-qiye")
    staff = create_staff(engine, definition, load_departments(DEFINITIONS / "departments.yaml"))
    setup = random.Random(7)
    case_ids = [submit_case(engine, definition, setup, n, EVERYONE_APPROVES) for n in range(CASES)]
    open_cases = set(case_ids)
    failures: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(2000):
                if not open_cases:
                    return
                case_id = rng.choice(sorted(open_cases))
                try:
                    if not act(engine, case_id, rng, staff, EVERYONE_APPROVES):
                        open_cases.discard(case_id)
                except TongbanError:  # another thread got there first: a typed refusal, nothing written
                    pass
        except BaseException as exc:
            failures.append(exc)
        finally:
            engine.close()

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures
    assert not open_cases, f"cases left open: {sorted(open_cases)}"
    for case_id in case_ids:
        case = case_row(engine, case_id)
        assert case["state"] == "completed"
        tasks = tasks_of(engine, case_id)
        completed = Counter(e["task_id"] for e in events(engine, case_id, "task_completed"))
        assert all(n == 1 for n in completed.values())
        assert {t["id"] for t in tasks if t["state"] == "completed"} == set(completed)
        slots = [row for task in tasks for row in signoffs(engine, task["id"])]
        assert_kept_copy_is_true(engine, case, tasks, slots)


WEB_THREADS = 40  # uvicorn's default thread pool


def test_forty_threads_share_a_sized_pool_without_timing_out(engine, db, clock):
    """Each call takes a connection from the pool and gives it back: 40 threads on the default pool
    (10 kept + 20 overflow, fewer than the threads) all finish their cases, none times out."""
    from orchestrator.settings import Settings

    settings = Settings(database_url=db.url.render_as_string(hide_password=False), calendar_file="none")
    shared = connect_database(settings)
    engine = Engine(shared, BusinessCalendar(), clock)  # the published fixtures and staff of `engine`
    assert shared.pool.size() == 10
    failures: list[BaseException] = []
    done: list[int] = []
    start = threading.Barrier(WEB_THREADS)

    def work(n: int) -> None:
        try:
            start.wait(30)
            case_id = engine.submit_case(
                "kaiban-mini", {"id": f"9131{n:014d}", "name": f"申请人{n}"}, KAIBAN_FORM, ["id_card", "lease"]
            )
            engine.accept_case(case_id, "zwfw1")
            while True:
                open_now = [t for t in tasks_of(engine, case_id) if t["state"] in ("ready", "claimed")]
                if not open_now:
                    break
                task = open_now[0]
                if task["kind"] == "issue":
                    engine.issue_certificates(task["id"], "zwfw1")
                else:
                    engine.complete_task(task["id"], f"{task['department']}1", "approve", "同意")
            done.append(case_id)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(WEB_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    shared.dispose()
    assert not failures, failures[:3]
    assert len(done) == WEB_THREADS
    assert all(case_row(engine, case_id)["state"] == "completed" for case_id in done)
