"""The storage floor of one task completion: raw sqlite3, no SQLAlchemy, no engine logic.

On a scratch database with the real schema and 150 accepted 开办企业 cases, each loop is the least a
completion must write in one durable transaction: BEGIN IMMEDIATE; the case lock (``UPDATE cases SET
revision = revision + 1 … RETURNING``); the task's new state; three history rows; COMMIT (WAL,
synchronous=FULL unless --synchronous NORMAL, SQLite's own checkpoint, as a plain deployment would run
it). Compare its time with bench/engine.py's time per completion.

    .venv/bin/python bench/floor.py [--transactions 5000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.calendar import BusinessCalendar  # noqa: E402
from orchestrator.definition.validator import load_departments  # noqa: E402
from orchestrator.engine import Engine, publish_paths  # noqa: E402
from orchestrator.simulation.simulate import EVERYONE_APPROVES, SimClock, create_staff, submit_case  # noqa: E402
from orchestrator.store import connect, upgrade  # noqa: E402

DEFINITIONS = ROOT / "definitions"
LOCK = "UPDATE cases SET revision = revision + 1 WHERE id = ? RETURNING id, revision"
EVENT = (
    "INSERT INTO events (case_id, task_id, step_id, kind, actor, at, from_state, to_state, edge_from, edge_to, data)"
    " VALUES (?, ?, 'licence', 'task_completed', 'scjg-1', '2026-09-21 01:00:00.000000', 'claimed', 'completed',"
    ' NULL, NULL, \'{"outcome":"approve"}\')'
)


def scratch_database(path: Path, cases: int) -> None:
    db = connect(f"sqlite:///{path}")
    upgrade(db)
    clock = SimClock()
    publish_paths(db, [DEFINITIONS / "kaiban-qiye.yaml"], clock())
    engine = Engine(db, BusinessCalendar.from_file(DEFINITIONS / "calendar.yaml"), clock)
    with db.connect() as conn:
        _, definition = engine.definitions.latest(conn, "kaiban-qiye")
    staff = create_staff(engine, definition, load_departments(DEFINITIONS / "departments.yaml"))
    rng = random.Random(1)
    for n in range(cases):
        case_id = submit_case(engine, definition, rng, n, EVERYONE_APPROVES)
        engine.accept_case(case_id, staff.handlers["zwfw"][0])
    engine.close()
    db.dispose()


args_synchronous = "FULL"


def loop(path: Path, transactions: int, seed: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={args_synchronous}")
    tasks = conn.execute("SELECT id, case_id FROM tasks").fetchall()
    rng = random.Random(seed)
    started = time.perf_counter()
    for _ in range(transactions):
        task_id, case_id = rng.choice(tasks)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(LOCK, (case_id,)).fetchall()
        state = rng.choice(("claimed", "ready"))
        conn.execute("UPDATE tasks SET state = ?, version = version + 1 WHERE id = ?", (state, task_id))
        conn.executemany(EVENT, [(case_id, task_id)] * 3)
        conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return seconds / transactions * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL")
    args = parser.parse_args()
    global args_synchronous
    args_synchronous = args.synchronous
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "floor.sqlite"
        scratch_database(path, 150)
        results = [loop(path, args.transactions, run) for run in range(args.runs)]
    floor = statistics.median(results)
    print(f"minimal completion transaction on SQLite: {floor:.0f} µs (median of {args.runs})")
    print(
        json.dumps(
            {"floor_us_per_transaction": round(floor, 1), "runs": args.runs, "sqlite_synchronous": args.synchronous}
        )
    )


if __name__ == "__main__":
    main()
