"""Benchmark: the SLA sweep (orchestrator/engine/sla.py) over 1,000,000 open tasks.

    python bench/sweep.py                       # SQLite; database cached in build/bench/
    python bench/sweep.py --runs 3              # median of 3 runs, each on a fresh copy
    python bench/sweep.py --postgres postgresql://postgres@127.0.0.1:5432/postgres

The database (bench/make_open_tasks.py: 100,000 cases x 10 open tasks, 5 % past their warning time,
2 % past their due time, every 100th case suspended) is built once and kept; each run sweeps a fresh
copy of it (a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL, where the URL names
a server database to connect to for that). A run times ``sweep(db, now)`` (one transaction, commit
included), checks its counts against what the generator planted, then times a second sweep at the same
``now``, which must change nothing. The last line is JSON; with several runs it holds the medians:

    {"sweep_1m_s": 1.23, "sweep_1m_repeat_s": 0.12, "changed": 75000}
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402
from make_open_tasks import DEFAULT_PER_CASE, DEFAULT_TASKS, REFERENCE_NOW, build, default_path, shape  # noqa: E402

from orchestrator.engine.sla import SweepResult, sweep  # noqa: E402
from orchestrator.store import connect  # noqa: E402

EXPECTED = ("tasks_warning", "tasks_overdue", "cases_warning", "cases_overdue")


def _timed_sweeps(db: sa.Engine, expected: dict[str, int]) -> tuple[float, float, SweepResult]:
    started, cpu = time.perf_counter(), time.process_time()
    first = sweep(db, REFERENCE_NOW)
    first_s = time.perf_counter() - started
    print(f"  sweep: {first_s:.3f} s wall, {time.process_time() - cpu:.3f} s CPU in this process")
    got = {k: getattr(first, k) for k in EXPECTED}
    want = {k: expected[k] for k in EXPECTED}
    if got != want:
        raise SystemExit(f"the sweep changed {got}, the generator planted {want}")
    started = time.perf_counter()
    again = sweep(db, REFERENCE_NOW)
    repeat_s = time.perf_counter() - started
    if again.as_dict() != SweepResult().as_dict():
        raise SystemExit(f"a second sweep at the same time changed something: {again}")
    return first_s, repeat_s, first


def _sqlite_runs(tasks: int, per_case: int, runs: int, rebuild: bool) -> list[tuple[float, float, SweepResult]]:
    pristine = (
        default_path(tasks)
        if per_case == DEFAULT_PER_CASE
        else default_path(tasks).with_suffix(f".per{per_case}.sqlite")
    )
    if rebuild or not pristine.exists():
        partial = pristine.with_name(f"{pristine.name}.building")  # renamed once complete
        for path in (pristine, partial):
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        started = time.perf_counter()
        build(partial, tasks, per_case)
        partial.rename(pristine)
        print(f"built {pristine} ({tasks:,} open tasks) in {time.perf_counter() - started:.1f} s")
    else:
        print(f"using cached {pristine}")
    db = connect(f"sqlite:///{pristine}")
    expected = shape(db, REFERENCE_NOW)
    db.dispose()
    results = []
    work = pristine.with_name("sweep-run.sqlite")
    for run in range(1, runs + 1):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(pristine, work)
        with open(work, "rb+") as copy:  # flush the copy now, so its write-back does not land in the timing
            os.fsync(copy.fileno())
        db = connect(f"sqlite:///{work}")
        try:
            results.append(_timed_sweeps(db, expected))
        finally:
            db.dispose()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{work}{suffix}").unlink(missing_ok=True)
        _report(run, *results[-1])
    return results


def _postgres_runs(server_url: str, tasks: int, per_case: int, runs: int, rebuild: bool) -> list:
    server = connect(server_url, isolation_level="AUTOCOMMIT")
    pristine, work = f"tongban_bench_{tasks}_{per_case}", f"tongban_bench_{tasks}_{per_case}_run"
    base = server.url

    def url(name: str) -> str:
        return base.set(database=name).render_as_string(hide_password=False)

    with server.connect() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": pristine}).first()
        if exists and not rebuild:  # a build that failed half-way leaves an empty database behind
            db = connect(url(pristine))
            with db.connect() as check:
                complete = check.exec_driver_sql("SELECT COUNT(*) FROM tasks").scalar() == tasks
            db.dispose()
            rebuild = not complete
        if rebuild and exists:
            conn.exec_driver_sql(f'DROP DATABASE "{pristine}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.exec_driver_sql(f'CREATE DATABASE "{pristine}"')
            started = time.perf_counter()
            build(url(pristine), tasks, per_case)
            print(f"built {pristine} ({tasks:,} open tasks) in {time.perf_counter() - started:.1f} s")
        else:
            print(f"using cached database {pristine}")
    db = connect(url(pristine))
    expected = shape(db, REFERENCE_NOW)
    db.dispose()
    results = []
    for run in range(1, runs + 1):
        with server.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{work}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{work}" TEMPLATE "{pristine}"')
        db = connect(url(work))
        try:
            results.append(_timed_sweeps(db, expected))
        finally:
            db.dispose()
            with server.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{work}" WITH (FORCE)')
        _report(run, *results[-1])
    server.dispose()
    return results


def _report(run: int, first_s: float, repeat_s: float, result: SweepResult) -> None:
    print(f"run {run}: sweep {first_s:.3f} s ({result})")
    print(f"run {run}: repeat sweep at the same now {repeat_s:.3f} s (nothing changed)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=DEFAULT_TASKS)
    parser.add_argument("--per-case", type=int, default=DEFAULT_PER_CASE)
    parser.add_argument("--runs", type=int, default=1, help="runs on fresh copies; the JSON holds the medians")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached database")
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL server URL (database to connect to)")
    args = parser.parse_args(argv)
    if args.postgres:
        results = _postgres_runs(args.postgres, args.tasks, args.per_case, args.runs, args.rebuild)
    else:
        results = _sqlite_runs(args.tasks, args.per_case, args.runs, args.rebuild)
    first = statistics.median(r[0] for r in results)
    repeat = statistics.median(r[1] for r in results)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"median of {len(results)}: sweep {first:.3f} s, repeat {repeat:.3f} s; peak RSS {rss:.0f} MiB")
    print(
        json.dumps(
            {"sweep_1m_s": round(first, 3), "sweep_1m_repeat_s": round(repeat, 3), "changed": results[0][2].changed}
        )
    )


if __name__ == "__main__":
    main()
