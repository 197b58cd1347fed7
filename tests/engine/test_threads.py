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
from orchestrator.simulation.simulate import EVERYONE_APPROVES, SimClock, act, create_staff, submit_case

from .helpers import assert_kept_copy_is_true, case_row, events, signoffs, tasks_of

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
