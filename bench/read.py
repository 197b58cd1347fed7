"""Benchmark of the engine's read side (orchestrator/engine/read) at 1,000,000 tasks, on SQLite and PostgreSQL.

    python bench/read.py                      # 100,000 cases × 10 tasks on both databases
    python bench/read.py --cases 20000        # smaller
    python bench/read.py --only sqlite

Builds the data with ``fill`` (rows made by the database itself, ``INSERT … SELECT`` over a recursive CTE
on SQLite and ``generate_series`` on PostgreSQL, secondary indexes dropped during the load and re-created
from their stored definitions, as bench/make_open_tasks.py does), then times each read in process, each
in its own ``reading()`` transaction, and prints the median in ms per read per database. The last line is
one JSON object: ``queue_page_ms``, ``case_detail_ms``, ``dashboard_ms`` (each the slower of the two
databases) and the per-database figures. PostgreSQL runs in a scratch database (dropped afterwards).

Shape, around ``REFERENCE_NOW`` (Mon 2026-03-16 10:00 Asia/Shanghai), exact and repeatable:

* 8 definitions of 10 steps over 20 departments; case ``n`` runs definition ``n % 8`` and was submitted
  ``(C - n) / C`` of a year before now, so the newest fifth of the cases (≈ the last 73 days) are live
  (in progress; every 50th suspended) and the rest closed (85 % 办结, the rest rejected or withdrawn);
* a closed case's ten tasks are completed one after another, each with ``work_minutes`` and a due time
  (about one in six late); a live case has its first eight steps completed and its last two open (two
  thirds ready, one third claimed by one of 997 users), due times spread as in bench/make_open_tasks.py
  (2 % overdue, 5 % warning, 1 % untimed);
* steps 3 and 8 are joint surveys (three department sign-offs each), steps 5 and 9 或签 (two role
  sign-offs, one of which stays unsigned once the other signed, as the engine leaves them): ~1,000,000
  sign-offs;
* ten events per case, an alert for every overdue task and every 20th closed task, an evaluation for every
  other completed case.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from make_open_tasks import REFERENCE_NOW, _classes, _Dialect, _offsets  # noqa: E402
from sqlalchemy import Engine  # noqa: E402

from orchestrator.calendar import BusinessCalendar  # noqa: E402
from orchestrator.engine import read  # noqa: E402
from orchestrator.store import connect, upgrade  # noqa: E402
from orchestrator.store.db import reading, scratch_postgres  # noqa: E402

DEPARTMENTS = 20
DEFINITIONS = 8
STEPS = 10
YEAR_MINUTES = 365 * 24 * 60
LIVE_SHARE = 5  # the newest 1/5 of the cases are live
SURVEY_STEPS = (3, 8)
EITHER_STEPS = (5, 9)
QUEUE_USER, QUEUE_DEPARTMENT = "u5", "d15"


def _definition_source(k: int) -> str:
    lines = [
        f"key: bench-def-{k}",
        f"name: 基准事项{k}",
        "case_kind: promised",
        "limits: {promised: 20d, statutory: 40d}",
        "steps:",
        "  - {id: step0, kind: acceptance, name: 综合受理, department: d10, limit: 1d}",
    ]
    for step in range(1, STEPS):
        department = f"d{10 + (k * 3 + step * 7) % DEPARTMENTS}"
        lines.append(
            f"  - {{id: step{step}, kind: approval, name: 审批环节{step}, department: {department},"
            f" after: [step{step - 1}], limit: 2d}}"
        )
    return "\n".join(lines) + "\n"


def _tables_sql(d: _Dialect, cases: int) -> list[str]:
    """The load, as SQL statements (row numbers ``n.i``; the same arithmetic on both databases)."""
    tasks = cases * STEPS
    live_from = cases - cases // LIVE_SHARE  # case ids above this are live
    n = "n.i"
    submitted = f"-(({cases} - {n}) * {YEAR_MINUTES} / {cases}) - 1440"
    json = (lambda s: f"CAST({s} AS JSON)") if d.postgres else (lambda s: s)
    case_state = (
        f"CASE WHEN {n} > {live_from} THEN (CASE WHEN {n} % 50 = 0 THEN 'suspended' ELSE 'in_progress' END)"
        f" WHEN {n} % 20 < 17 THEN 'completed' WHEN {n} % 20 < 19 THEN 'rejected' ELSE 'withdrawn' END"
    )
    case_warn, case_due = _offsets(n)
    applicant_id, applicant_name = d.text(f"100000000 + {n}"), d.text(f"{n} % 20000")
    applicant_json = (
        '\'{"id": "9131\' || ' + applicant_id + ' || \'", "name": "申请人\' || ' + applicant_name + " || '\"}'"
    )
    statements = [
        "INSERT INTO cases (id, number, definition_key, definition_version, state, outcome, applicant, form,"
        " materials, deferred, deferred_due_at, idempotency_key, submitted_at, accepted_at, closed_at, due_at,"
        " warn_at, sla_state, provisional, reason, remedy, version, revision)"
        f" SELECT {n}, 'TB2026-R' || {d.text(f'1000000000 + {n}')}, 'bench-def-' || {d.text(f'{n} % {DEFINITIONS}')},"
        f" 1, {case_state},"
        f" CASE WHEN {n} > {live_from} THEN NULL WHEN {n} % 20 < 17 THEN 'approved' WHEN {n} % 20 < 19"
        " THEN 'rejected' ELSE 'withdrawn' END,"
        + json(applicant_json)
        + f", {json(repr('{}'))}, {json(repr('[]'))}, {json(repr('[]'))}, NULL, NULL,"
        f" {d.at(submitted)}, {d.at(submitted)},"
        f" CASE WHEN {n} > {live_from} THEN NULL ELSE {d.at(f'{submitted} + 7000 + ({n} * 13) % 2880')} END,"
        f" CASE WHEN {n} > {live_from} THEN {d.at(case_due)} ELSE {d.at(f'{submitted} + 8640')} END,"
        f" CASE WHEN {n} > {live_from} THEN {d.at(case_warn)} ELSE {d.at(f'{submitted} + 7200')} END,"
        f" CASE WHEN {n} <= {live_from} THEN NULL WHEN {n} % 50 = 0 THEN 'paused'"
        f" WHEN {_classes(n)['overdue']} THEN 'overdue' WHEN {_classes(n)['warning']} THEN 'warning'"
        " ELSE 'on_track' END, FALSE, NULL, NULL, 1, 1"
        f" FROM {d.numbers(cases)}",
    ]
    case_id = f"(({n} - 1) / {STEPS} + 1)"
    step = f"(({n} - 1) % {STEPS})"
    live = f"{case_id} > {live_from}"
    open_ = f"({live} AND {step} >= 8)"
    claimed = f"{n} % 3 = 0"
    case_submitted = f"-(({cases} - {case_id}) * {YEAR_MINUTES} / {cases}) - 1440"
    ready = f"{case_submitted} + {step} * 700"
    work = f"(10 + ({n} * 37) % 960)"
    warn, due = _offsets(n)
    untimed = _classes(n)["untimed"]
    kind = f"CASE WHEN {step} IN {SURVEY_STEPS} THEN 'survey' WHEN {step} = 0 THEN 'acceptance' ELSE 'approval' END"
    department = f"'d' || {d.text(f'10 + (({case_id} % {DEFINITIONS}) * 3 + {step} * 7) % {DEPARTMENTS}')}"
    signoffs_open = (
        f"CASE WHEN NOT {open_} THEN 0 WHEN {step} IN {SURVEY_STEPS} THEN 3"
        f" WHEN {step} IN {EITHER_STEPS} THEN 1 ELSE 0 END"
    )
    task_sla = (
        f"CASE WHEN NOT {open_} THEN NULL WHEN {untimed} THEN NULL WHEN {case_id} % 50 = 0 THEN 'paused'"
        f" WHEN {_classes(n)['overdue']} THEN 'overdue' WHEN {_classes(n)['warning']} THEN 'warning'"
        " ELSE 'on_track' END"
    )
    statements.append(
        "INSERT INTO tasks (id, case_id, step_id, kind, name, department, state, outcome, assignee, delegated_by,"
        " opinion, ready_at, claimed_at, completed_at, completed_by, due_at, warn_at, sla_state, provisional,"
        " waiting, created_by_task, superseded, signoffs_open, version, work_minutes, paused_minutes)"
        f" SELECT {n}, {case_id}, 'step' || {d.text(step)}, {kind}, '审批环节' || {d.text(step)}, {department},"
        f" CASE WHEN {open_} THEN (CASE WHEN {claimed} THEN 'claimed' ELSE 'ready' END) ELSE 'completed' END,"
        f" CASE WHEN {open_} THEN NULL WHEN {n} % 97 = 0 THEN 'reject' ELSE 'approve' END,"
        f" CASE WHEN {open_} AND NOT ({claimed}) THEN NULL ELSE 'u' || {d.text(f'{n} % 997')} END, NULL, NULL,"
        f" CASE WHEN {open_} THEN {d.at('-1440')} ELSE {d.at(ready)} END,"
        f" CASE WHEN {open_} AND NOT ({claimed}) THEN NULL WHEN {open_} THEN {d.at('-720')} ELSE {d.at(ready)} END,"
        f" CASE WHEN {open_} THEN NULL ELSE {d.at(f'{ready} + {work}')} END,"
        f" CASE WHEN {open_} THEN NULL ELSE 'u' || {d.text(f'{n} % 997')} END,"
        f" CASE WHEN {open_} THEN {d.at(due)} ELSE {d.at(f'{ready} + 800')} END,"
        f" CASE WHEN {open_} THEN {d.at(warn)} ELSE {d.at(f'{ready} + 600')} END,"
        f" {task_sla}, FALSE, NULL, NULL, FALSE, {signoffs_open}, 1,"
        f" CASE WHEN {open_} THEN NULL ELSE {work} END, 0"
        f" FROM {d.numbers(tasks)}"
    )
    # sign-offs: three survey departments (the task's own and the next two), two 或签 roles of the department
    slot = f"(({n} - 1) % 3)"
    task = f"(({n} - 1) / 3 + 1)"
    survey_task = (
        f"((({task} - 1) / 2) * {STEPS} + CASE WHEN ({task} - 1) % 2 = 0 THEN {SURVEY_STEPS[0] + 1}"
        f" ELSE {SURVEY_STEPS[1] + 1} END)"
    )
    participant = f"10 + (CAST(substr(t.department, 2) AS INTEGER) - 10 + {slot}) % {DEPARTMENTS}"
    statements.append(
        "INSERT INTO signoffs (task_id, position, kind, party, signed_by, signed_at, outcome, opinion)"
        f" SELECT t.id, {slot}, 'department', 'd' || {d.text(participant)},"
        " CASE WHEN t.state = 'completed' THEN t.completed_by END, t.completed_at,"
        " CASE WHEN t.state = 'completed' THEN 'approve' END, NULL"
        f" FROM {d.numbers(cases * 2 * 3)} JOIN tasks t ON t.id = {survey_task}"
    )
    either_task = (
        f"((({task} - 1) / 2) * {STEPS} + CASE WHEN ({task} - 1) % 2 = 0 THEN {EITHER_STEPS[0] + 1}"
        f" ELSE {EITHER_STEPS[1] + 1} END)"
    )
    slot2 = f"(({n} - 1) % 2)"
    task2 = f"(({n} - 1) / 2 + 1)"
    statements.append(
        "INSERT INTO signoffs (task_id, position, kind, party, signed_by, signed_at, outcome, opinion)"
        f" SELECT t.id, {slot2}, 'role', t.department || CASE WHEN {slot2} = 0 THEN '_sign_a' ELSE '_sign_b' END,"
        f" CASE WHEN t.state = 'completed' AND {slot2} = 0 THEN t.completed_by END,"
        f" CASE WHEN t.state = 'completed' AND {slot2} = 0 THEN t.completed_at END,"
        f" CASE WHEN t.state = 'completed' AND {slot2} = 0 THEN 'approve' END, NULL"
        f" FROM {d.numbers(cases * 2 * 2)} JOIN tasks t ON t.id = {either_task.replace(task, task2)}"
    )
    statements.append(
        "INSERT INTO events (case_id, task_id, step_id, kind, actor, at, from_state, to_state, edge_from, edge_to,"
        " data) SELECT t.case_id, t.id, t.step_id, CASE WHEN t.state = 'completed' THEN 'task_completed'"
        " ELSE 'task_ready' END, t.completed_by, COALESCE(t.completed_at, t.ready_at), NULL, t.state,"
        " NULL, NULL, NULL FROM tasks t"
    )
    statements.append(
        "INSERT INTO alerts (subject, kind, case_id, task_id, department, recipient_role, message, raised_at)"
        " SELECT 'task:' || "
        + d.text("t.id")
        + ", CASE WHEN t.sla_state = 'overdue' THEN 'overdue' ELSE 'warning' END,"
        " t.case_id, t.id, t.department, NULL, '预警', COALESCE(t.warn_at, t.ready_at) FROM tasks t"
        " WHERE t.sla_state = 'overdue' OR (t.state = 'completed' AND t.id % 20 = 0)"
    )
    statements.append(
        "INSERT INTO evaluations (case_id, level, channel, comment, rater, at, rectification_task)"
        " SELECT c.id, 1 + c.id % 5, 'pc', NULL, 'applicant', c.closed_at, NULL FROM cases c"
        " WHERE c.state = 'completed' AND c.id % 2 = 0"
    )
    return statements


_INDEXES = {
    "postgresql": (
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        " AND tablename IN ('tasks', 'cases', 'signoffs', 'events', 'alerts', 'evaluations') AND indexname LIKE 'ix%'"
    ),
    "sqlite": (
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND name LIKE 'ix%'"
        " AND tbl_name IN ('tasks', 'cases', 'signoffs', 'events', 'alerts', 'evaluations')"
    ),
}


def _reference_rows(d: _Dialect) -> list[str]:
    departments = ", ".join(
        f"('d{10 + k}', '测试部门{10 + k}', NULL, 'd{10 + k}_supervisor')" for k in range(DEPARTMENTS)
    )
    users = ", ".join(f"('u{k}', '办理人{k}')" for k in range(997))
    members = ", ".join(f"('u{k}', 'd{10 + k % DEPARTMENTS}', 'handler')" for k in range(997))
    # the queue's user also holds the department's first 或签 role
    members += f", ('{QUEUE_USER}', '{QUEUE_DEPARTMENT}', '{QUEUE_DEPARTMENT}_sign_a')"
    now = d.at("-600000")
    versions = ", ".join(
        f"('bench-def-{k}', 1, '基准事项{k}', '{_definition_source(k)}', 'hash{k}', {now})" for k in range(DEFINITIONS)
    )
    return [
        f"INSERT INTO departments (code, name, parent, supervisor_role) VALUES {departments}",
        f"INSERT INTO users (id, name) VALUES {users}",
        f"INSERT INTO memberships (user_id, department, role) VALUES {members}",
        f"INSERT INTO definition_versions (key, version, name, source, content_hash, published_at) VALUES {versions}",
    ]


def _load(run: Callable[[str], list[Any]], d: _Dialect, cases: int) -> None:
    if run("SELECT COUNT(*) FROM cases")[0][0]:
        raise SystemExit("the target already holds cases; fill an empty, migrated database")
    for sql in _reference_rows(d):
        run(sql)
    indexes = run(_INDEXES["postgresql" if d.postgres else "sqlite"])
    for name, _sql in indexes:
        run(f"DROP INDEX {name}")
    for sql in _tables_sql(d, cases):
        run(sql)
    for _name, sql in indexes:
        run(sql)


def fill(db: Engine, cases: int) -> None:
    """Load ``cases`` cases (ten tasks each) into an empty migrated database."""
    postgres = db.dialect.name == "postgresql"
    d = _Dialect(postgres, REFERENCE_NOW)
    if postgres:
        with db.begin() as conn:
            _load(lambda sql: _rows(conn.exec_driver_sql(sql.replace("%", "%%"))), d, cases)
            for table in ("cases", "tasks", "signoffs", "events", "alerts", "evaluations"):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
                )
        with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
        return
    raw = db.raw_connection()
    try:
        cursor = raw.cursor()
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "temp_store = MEMORY", "cache_size = -262144"):
            # another connection may hold the file (a test's engine): then the load runs in WAL mode
            with contextlib.suppress(sqlite3.OperationalError):
                cursor.execute(f"PRAGMA {pragma}")
        cursor.execute("BEGIN IMMEDIATE")
        _load(lambda sql: cursor.execute(sql).fetchall(), d, cases)
        cursor.execute("COMMIT")
        cursor.execute("ANALYZE")
        cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        raw.close()


def _rows(result: Any) -> list[Any]:
    return list(result) if result.returns_rows else []


# ----------------------------------------------------------------------------------------------
# timing


def _median_ms(call: Callable[[int], Any], repeats: int) -> float:
    """Median ms of ``call(i)``; a call returns its own duration (the read inside its open transaction)."""
    call(0)  # warm: statement caches, definition names
    return round(statistics.median(call(i) for i in range(repeats)), 2)


def measure(db: Engine, cases: int, repeats: int) -> dict[str, float]:
    calendar = BusinessCalendar()
    now = REFERENCE_NOW
    rng = random.Random(7)
    live_from = cases - cases // LIVE_SHARE
    any_cases = [rng.randint(1, cases) for _ in range(repeats + 1)]
    live_cases = [rng.randint(live_from + 1, cases) for _ in range(repeats + 1)]

    def within(work: Callable[[Any, int], Any]) -> Callable[[int], float]:
        """Time the read inside a reading() transaction opened for it (opening one is timed apart: the
        caller opens one per request, whatever it reads)."""

        def call(i: int) -> float:
            with reading(db) as conn:
                started = time.perf_counter()
                work(conn, i)
                return (time.perf_counter() - started) * 1000

        return call

    def open_only(i: int) -> float:
        started = time.perf_counter()
        with reading(db) as conn:
            conn.exec_driver_sql("SELECT 1").all()
        return (time.perf_counter() - started) * 1000

    reads: dict[str, Callable[[int], Any]] = {
        "queue_page": within(
            lambda c, i: read.queue(c, department=QUEUE_DEPARTMENT, user=QUEUE_USER, now=now, calendar=calendar)
        ),
        "queue_next_page": within(
            lambda c, i: read.queue(
                c, department=QUEUE_DEPARTMENT, user=QUEUE_USER, now=now, calendar=calendar, cursor=_second
            )
        ),
        "queue_filtered": within(
            lambda c, i: read.queue(
                c,
                department=QUEUE_DEPARTMENT,
                now=now,
                calendar=calendar,
                filters=read.TaskFilter(sla_state="overdue"),
            )
        ),
        "claimed": within(lambda c, i: read.claimed(c, f"u{i % 997}", now=now, calendar=calendar)),
        "done": within(lambda c, i: read.done(c, f"u{i % 997}")),
        "case_detail": within(lambda c, i: read.case_detail(c, any_cases[i], now=now, calendar=calendar)),
        "case_path": within(
            lambda c, i: read.case_path(
                c, live_cases[i], now=now, calendar=calendar, step_ids=[f"step{k}" for k in range(STEPS)]
            )
        ),
        "search_newest": within(lambda c, i: read.search_cases(c, now=now, calendar=calendar)),
        "search_applicant": within(
            lambda c, i: read.search_cases(
                c, read.CaseFilter(applicant=f"申请人{any_cases[i] % 20000}"), now=now, calendar=calendar
            )
        ),
        "search_number": within(
            lambda c, i: read.search_cases(
                c,
                read.CaseFilter(number_prefix=f"TB2026-R{1000000000 + any_cases[i]}"[:-2]),
                now=now,
                calendar=calendar,
            )
        ),
        "progress": within(
            lambda c, i: read.progress(c, f"TB2026-R{1000000000 + any_cases[i]}", f"9131{100000000 + any_cases[i]}")
        ),
        "dashboard": within(lambda c, i: read.dashboard(c, *period)),
    }
    period = (now - timedelta(days=30), now)
    plain = within(lambda c, i: read.dashboard(c, *period))
    with reading(db) as conn:
        summarized = read.summarized_through(conn) is not None
    if not summarized:  # before the summary of closed days exists: the plain statements over the period
        figures_plain = _median_ms(plain, 3)
        print(f"  {'dashboard_plain':18} {figures_plain:9.2f} ms (no summary yet)", flush=True)
        started = time.perf_counter()
        with db.begin() as conn:
            days = read.refresh_work_summary(conn, now)
        print(f"  refresh_work_summary: {days} days in {time.perf_counter() - started:.1f} s", flush=True)
    with reading(db) as conn:
        first = read.queue(conn, department=QUEUE_DEPARTMENT, user=QUEUE_USER, now=now, calendar=calendar)
    global _second
    _second = first.next
    figures = {} if summarized else {"dashboard_plain": figures_plain}
    figures["open_reading"] = _median_ms(open_only, repeats)
    print(f"  {'open_reading':18} {figures['open_reading']:9.2f} ms (reading() with one SELECT 1)", flush=True)
    for name, call in reads.items():
        figures[name] = _median_ms(call, repeats if name != "dashboard" else max(5, repeats // 4))
        print(f"  {name:18} {figures[name]:9.2f} ms", flush=True)
    with reading(db) as conn:
        board = read.dashboard(conn, now - timedelta(days=30), now)
        completed = sum(d.work.completed for d in board.departments)
        print(f"  (dashboard period: {completed} completed tasks; first queue page {len(first)} items)")
    return figures


_second: str | None = None


def run(name: str, url: str, cases: int, repeats: int) -> dict[str, float]:
    db = connect(url)
    try:
        upgrade(db)
        db.dispose()
        started = time.perf_counter()
        with db.connect() as conn:
            present = conn.exec_driver_sql("SELECT COUNT(*) FROM cases").scalar()
        if present == cases:
            print(f"{name}: reusing {cases:,} cases", flush=True)
        else:
            fill(db, cases)
        built = time.perf_counter() - started
        print(f"{name}: built {cases:,} cases / {cases * STEPS:,} tasks in {built:.1f} s", flush=True)
        figures = measure(db, cases, repeats)
        figures["build_s"] = round(built, 1)
        return figures
    finally:
        db.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=41)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--sqlite-file", help="build the SQLite side in this file and keep it (reused if filled)")
    parser.add_argument("--postgres-url", help="an existing PostgreSQL database to fill and keep (reused if filled)")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, float]] = {}
    if args.only in (None, "sqlite") and args.sqlite_file:
        results["sqlite"] = run("sqlite", f"sqlite:///{args.sqlite_file}", args.cases, args.repeats)
    elif args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as folder:
            results["sqlite"] = run("sqlite", f"sqlite:///{folder}/read.sqlite", args.cases, args.repeats)
    if args.only in (None, "postgresql") and args.postgres_url:
        results["postgresql"] = run("postgresql", args.postgres_url, args.cases, args.repeats)
    elif args.only in (None, "postgresql"):
        with scratch_postgres("tongban_bench_read", durable=False) as url:
            results["postgresql"] = run("postgresql", url, args.cases, args.repeats)
    summary: dict[str, Any] = {"cases": args.cases, "tasks": args.cases * STEPS}
    for key in ("queue_page", "case_detail", "dashboard"):
        summary[f"{key}_ms"] = max(figures[key] for figures in results.values())
    summary.update(results)
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
