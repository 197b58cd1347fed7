"""Fill a migrated Tongban database with many open tasks for the SLA sweep benchmark (bench/sweep.py).

    python bench/make_open_tasks.py                                  # build/bench/open-tasks-1000000.sqlite
    python bench/make_open_tasks.py build/x.sqlite --tasks 200000
    python bench/make_open_tasks.py postgresql://postgres@127.0.0.1:5432/tongban_bench

The target is migrated with ``orchestrator.store.upgrade`` and must hold no cases yet. Rows are made by
the database itself (``INSERT … SELECT`` over a recursive CTE on SQLite, ``generate_series`` on
PostgreSQL), with the secondary indexes of ``tasks`` and ``cases`` dropped during the load and
re-created from their own stored definitions afterwards (an index built once over sorted data is much
faster than one million random inserts into it).

Shape (``--tasks N --per-case K``; defaults 1,000,000 and 10, so 100,000 cases): every task is open
(ready, or claimed by one of 997 users for every third task), owned by one of 20 departments (each with
a supervisor role); every case is ``in_progress``. Deadlines are spread around ``REFERENCE_NOW`` (Mon
2026-03-16 10:00 Asia/Shanghai) by a fixed permutation, so the shares are exact and repeatable:

* 2 % of tasks and cases are past their due time (→ overdue at ``REFERENCE_NOW``),
* 5 % are past their warning time but not due (→ warning),
* 1 % of tasks are untimed (no due time, ``sla_state`` NULL, as 即办 steps),
* the rest are on track, due within the next ~10 working days;
* every 100th case is suspended (特别程序): it and its tasks are ``paused`` and must not be swept, even
  when their times have passed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, bindparam, text  # noqa: E402

from orchestrator.calendar import TZ  # noqa: E402
from orchestrator.store import connect, upgrade  # noqa: E402
from orchestrator.store.models import Timestamp  # noqa: E402

REFERENCE_NOW = datetime(2026, 3, 16, 10, 0, tzinfo=TZ)
DEFAULT_TASKS = 1_000_000
DEFAULT_PER_CASE = 10
DEPARTMENTS = 20
SUSPENDED_EVERY = 100  # every 100th case is suspended


def default_path(tasks: int = DEFAULT_TASKS) -> Path:
    return ROOT / "build" / "bench" / f"open-tasks-{tasks}.sqlite"


def _url(target: str | Path) -> str:
    target = str(target)
    return target if "://" in target else f"sqlite:///{target}"


# ----------------------------------------------------------------------------------------------
# row recipes: the same arithmetic on both backends, only the number source and timestamps differ


def _classes(n: str) -> dict[str, str]:
    """SQL for the SLA class of row number ``n``: a permutation of 0..999 within every 1000 rows."""
    r = f"(({n} * 7919) % 1000)"
    return {
        "overdue": f"{r} < 20",
        "warning": f"{r} >= 20 AND {r} < 70",
        "untimed": f"{r} >= 990",
    }


def _offsets(n: str) -> tuple[str, str]:
    """(warn offset, due offset) in minutes from REFERENCE_NOW for row ``n`` (NULL when untimed)."""
    c = _classes(n)
    warn = (
        f"CASE WHEN {c['untimed']} THEN NULL"
        f" WHEN {c['overdue']} THEN -(241 + ({n} * 31) % 2880)"
        f" WHEN {c['warning']} THEN -(1 + ({n} * 31) % 240)"
        f" ELSE 1 + ({n} * 31) % 14400 END"
    )
    due = (
        f"CASE WHEN {c['untimed']} THEN NULL"
        f" WHEN {c['overdue']} THEN -(1 + ({n} * 31) % 2880)"
        f" WHEN {c['warning']} THEN 1 + ({n} * 17) % 480"
        f" ELSE 1 + ({n} * 31) % 14400 + 60 + ({n} * 17) % 480 END"
    )
    return warn, due


class _Dialect:
    def __init__(self, postgres: bool, now: datetime) -> None:
        self.postgres = postgres
        self.now = now.astimezone(UTC)

    def at(self, minutes: str) -> str:
        """REFERENCE_NOW + minutes (NULL stays NULL), in the column's storage form."""
        if self.postgres:
            return f"(TIMESTAMPTZ '{self.now.isoformat()}' + ({minutes}) * INTERVAL '1 minute')"
        # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' text in UTC (models.UTCDateTime);
        # datetime(epoch, 'unixepoch') is several times faster than strftime with a modifier string
        return f"(datetime({int(self.now.timestamp())} + ({minutes}) * 60, 'unixepoch') || '.000000')"

    def numbers(self, count: int) -> str:
        """A row source ``n(i)`` of 1..count."""
        if self.postgres:
            return f"generate_series(CAST(1 AS BIGINT), {count}) AS n(i)"  # bigint: n * 7919 passes 2^31
        return f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {count}) SELECT i FROM s) n"

    def text(self, expr: str) -> str:
        return f"CAST({expr} AS TEXT)"


def _cases_sql(d: _Dialect, cases: int) -> str:
    warn, due = _offsets("n.i")
    suspended = f"n.i % {SUSPENDED_EVERY} = 0"
    return (
        "INSERT INTO cases (id, number, definition_key, definition_version, state, outcome, applicant, form,"
        " materials, deferred, deferred_due_at, idempotency_key, submitted_at, accepted_at, closed_at, due_at,"
        " warn_at, sla_state, provisional, reason, remedy, version)"
        f" SELECT n.i, 'TB20260316-B' || {d.text('1000000000 + n.i')}, 'bench-one-thing', 1,"
        f" CASE WHEN {suspended} THEN 'suspended' ELSE 'in_progress' END, NULL,"
        " '{\"id\": \"applicant\", \"name\": \"申请人\"}', '{}', '[]', '[]', NULL, NULL,"
        f" {d.at('-2880')}, {d.at('-2880')}, NULL, {d.at(due)}, {d.at(warn)},"
        f" CASE WHEN {suspended} THEN 'paused' ELSE 'on_track' END, FALSE, NULL, NULL, 1"
        f" FROM {d.numbers(cases)}"
    )


def _tasks_sql(d: _Dialect, tasks: int, per_case: int) -> str:
    warn, due = _offsets("n.i")
    untimed = _classes("n.i")["untimed"]
    claimed = "n.i % 3 = 0"
    case_id = f"((n.i - 1) / {per_case} + 1)"
    step = f"((n.i - 1) % {per_case})"
    sla = f"CASE WHEN {untimed} THEN NULL WHEN {case_id} % {SUSPENDED_EVERY} = 0 THEN 'paused' ELSE 'on_track' END"
    return (
        "INSERT INTO tasks (id, case_id, step_id, kind, name, department, state, outcome, assignee, delegated_by,"
        " opinion, ready_at, claimed_at, completed_at, completed_by, due_at, warn_at, sla_state, provisional,"
        " waiting, created_by_task, superseded, signoffs_open, version)"
        f" SELECT n.i, {case_id}, 'step' || {d.text(step)}, 'approval', '审批环节' || {d.text(step)},"
        f" 'd' || {d.text(f'10 + (n.i * 13) % {DEPARTMENTS}')},"
        f" CASE WHEN {claimed} THEN 'claimed' ELSE 'ready' END, NULL,"
        f" CASE WHEN {claimed} THEN 'u' || {d.text('n.i % 997')} END, NULL, NULL,"
        f" {d.at('-1440')}, CASE WHEN {claimed} THEN {d.at('-720')} END, NULL, NULL,"
        f" {d.at(due)}, {d.at(warn)}, {sla}, FALSE, NULL, NULL, FALSE, 0, 1"
        f" FROM {d.numbers(tasks)}"
    )


_INDEXES = {
    # (name, CREATE statement) of the ix_ indexes of tasks and cases, as the database itself stores them
    "postgresql": (
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        " AND tablename IN ('tasks', 'cases') AND indexname LIKE 'ix%'"
    ),
    "sqlite": (
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('tasks', 'cases')"
        " AND sql IS NOT NULL AND name LIKE 'ix%'"
    ),
}


def _load(run: Callable[[str], list[Any]], d: _Dialect, tasks: int, per_case: int) -> None:
    """The load itself, through ``run(sql) -> rows`` inside one transaction."""
    if run("SELECT COUNT(*) FROM cases")[0][0]:
        raise SystemExit("the target already holds cases; fill an empty, migrated database")
    departments = ", ".join(
        f"('d{10 + k}', '测试部门{10 + k}', NULL, 'd{10 + k}_supervisor')" for k in range(DEPARTMENTS)
    )
    run(f"INSERT INTO departments (code, name, parent, supervisor_role) VALUES {departments}")
    indexes = run(_INDEXES["postgresql" if d.postgres else "sqlite"])
    for name, _sql in indexes:
        run(f"DROP INDEX {name}")
    run(_cases_sql(d, -(-tasks // per_case)))
    run(_tasks_sql(d, tasks, per_case))
    for _name, sql in indexes:
        run(sql)


def fill(
    db: Engine, tasks: int = DEFAULT_TASKS, per_case: int = DEFAULT_PER_CASE, now: datetime = REFERENCE_NOW
) -> dict[str, int]:
    """Load ``tasks`` open tasks (``per_case`` per case) into an empty migrated database. Returns the shape."""
    postgres = db.dialect.name == "postgresql"
    d = _Dialect(postgres, now)
    if postgres:
        with db.begin() as conn:
            # psycopg reads % as a placeholder even without parameters: the modulo operator is %%
            _load(lambda sql: _rows(conn.exec_driver_sql(sql.replace("%", "%%"))), d, tasks, per_case)
            for table in ("cases", "tasks"):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
                )
        with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE cases, tasks")  # what autovacuum does after a load
    else:
        # a bulk load: no journal, no fsync, sort in memory; the file goes back to WAL afterwards
        raw = db.raw_connection()
        try:
            cursor = raw.cursor()
            for pragma in (
                "journal_mode = OFF",
                "synchronous = OFF",
                "temp_store = MEMORY",
                "cache_size = -131072",
                "threads = 2",
            ):
                cursor.execute(f"PRAGMA {pragma}")
            cursor.execute("BEGIN IMMEDIATE")
            _load(lambda sql: cursor.execute(sql).fetchall(), d, tasks, per_case)
            cursor.execute("COMMIT")
            cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            raw.close()
    return shape(db, now)


def _rows(result: Any) -> list[Any]:
    return list(result) if result.returns_rows else []


def shape(db: Engine, now: datetime = REFERENCE_NOW) -> dict[str, int]:
    """How many rows a sweep at ``now`` should change, counted the slow way (for checking, not timing)."""
    sweepable = "sla_state IN ('on_track', 'warning')"
    open_case = "state IN ('accepted', 'in_progress')"
    open_task = "state IN ('ready', 'claimed')"
    queries = {
        "open_tasks": f"SELECT COUNT(*) FROM tasks WHERE {open_task}",
        "cases": "SELECT COUNT(*) FROM cases",
        "tasks_warning": (
            f"SELECT COUNT(*) FROM tasks WHERE {open_task} AND sla_state = 'on_track'"
            " AND warn_at <= :now AND due_at > :now"
        ),
        "tasks_overdue": f"SELECT COUNT(*) FROM tasks WHERE {open_task} AND {sweepable} AND due_at <= :now",
        "cases_warning": (
            f"SELECT COUNT(*) FROM cases WHERE {open_case} AND sla_state = 'on_track'"
            " AND warn_at <= :now AND due_at > :now"
        ),
        "cases_overdue": f"SELECT COUNT(*) FROM cases WHERE {open_case} AND {sweepable} AND due_at <= :now",
    }
    with db.connect() as conn:
        return {
            key: conn.execute(
                text(sql).bindparams(bindparam("now", type_=Timestamp)) if ":now" in sql else text(sql),
                {"now": now} if ":now" in sql else {},
            ).scalar_one()
            for key, sql in queries.items()
        }


def build(
    target: str | Path, tasks: int = DEFAULT_TASKS, per_case: int = DEFAULT_PER_CASE, now: datetime = REFERENCE_NOW
) -> dict[str, int]:
    """Migrate ``target`` (a SQLite path or a database URL) and fill it."""
    db = connect(_url(target))
    try:
        upgrade(db)
        db.dispose()  # the SQLite load switches the journal off, which needs the only connection
        return fill(db, tasks, per_case, now)
    finally:
        db.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", help="SQLite file or database URL (default build/bench/…)")
    parser.add_argument("--tasks", type=int, default=DEFAULT_TASKS)
    parser.add_argument("--per-case", type=int, default=DEFAULT_PER_CASE)
    parser.add_argument("--force", action="store_true", help="replace an existing SQLite file")
    args = parser.parse_args(argv)
    target = args.target or str(default_path(args.tasks))
    if "://" not in target:
        path = Path(target)
        if path.exists():
            if not args.force:
                print(f"{path} exists (use --force to rebuild)")
                return
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    counts = build(target, args.tasks, args.per_case)
    print(f"built {target} in {time.perf_counter() - started:.1f} s: {counts}")


if __name__ == "__main__":
    main()
