"""Benchmark of the managers' dashboard (效能监察, web/pages/dashboard.py) at 1,000,000 tasks.

    python bench/dashboard.py --sqlite-file /tmp/read.sqlite --postgres-url postgresql+psycopg://…/db

Uses the data of bench/read.py (``fill``: 100,000 cases × 10 tasks around ``REFERENCE_NOW``; a database
already filled by it is reused), adds what the dashboard reads that bench/read.py leaves out — half the
applications online, most window ones at a centre, a 补正 round for every 7th case, a certificate for
every case 办结 (a third collected at a window), a proposed refusal waiting for its leader for every
500th live case — then times, in process, each page as a manager asks for it over HTTP (FastAPI's
TestClient: routing, the reads, the templates; the period is the 30 days before ``REFERENCE_NOW``), and
each read alone. Prints the median ms per page and the last line as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from make_open_tasks import REFERENCE_NOW  # noqa: E402
from read import fill  # noqa: E402
from sqlalchemy import Engine as Database  # noqa: E402

from orchestrator.calendar import TZ, BusinessCalendar  # noqa: E402
from orchestrator.engine import Engine, read  # noqa: E402
from orchestrator.engine.read import performance  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402
from orchestrator.store import connect, upgrade  # noqa: E402
from orchestrator.store.db import reading  # noqa: E402

PASSWORD = "bench-password-1"
# the 30 days up to now (tasks of live cases completed, hardly a case closed: the newest fifth of bench/read.py's
# cases are live) and 30 days ending 80 days ago (cases closing every day: ratings, visits, branch shares)
PERIODS = {
    "recent": (REFERENCE_NOW - timedelta(days=29), REFERENCE_NOW),
    "closing": (REFERENCE_NOW - timedelta(days=109), REFERENCE_NOW - timedelta(days=80)),
}
PAGES = (
    "/dashboard",
    "/dashboard/live",
    "/dashboard/alerts",
    "/dashboard/heatmap/bench-def-3",
    "/dashboard/ratings",
    "/dashboard/targets",
    "/dashboard/tasks?department=d15&sla=overdue",
    "/dashboard/steps.csv",
)


def enrich(db: Database) -> None:
    """The rows bench/read.py does not make (once)."""
    with db.begin() as conn:
        if conn.exec_driver_sql("SELECT COUNT(*) FROM certificates").scalar():
            return
        live_from = conn.exec_driver_sql("SELECT MIN(id) FROM cases WHERE state IN ('in_progress', 'suspended')")
        first_live = live_from.scalar()
        for statement in (
            "UPDATE cases SET channel = CASE WHEN id % 2 = 0 THEN 'online' ELSE 'window' END,"
            " centre = CASE WHEN id % 2 = 1 AND id % 10 <> 3 THEN 'city' ELSE NULL END",
            "INSERT INTO supplements (case_id, task_id, missing, notice, requested_by, requested_at, supplied_at)"
            " SELECT id, NULL, '[\"lease\"]', '请补交', 'u1', submitted_at, submitted_at FROM cases WHERE id % 7 = 0",
            "INSERT INTO certificates (case_id, key, name, issuer, number, electronic, delivery, tracking_number,"
            " issued_at) SELECT id, 'licence', '许可证', 'd10', 'CERT-' || id, TRUE,"
            " CASE WHEN id % 3 = 0 THEN 'window' WHEN id % 3 = 1 THEN 'mail' ELSE 'online' END, NULL, closed_at"
            " FROM cases WHERE state = 'completed'",
            "INSERT INTO negative_reports (case_id, task_id, report_task_id, slot_id, kind, department, reason, remedy,"
            " proposed_by, proposed_at, decision, decided_by, decided_at, opinion)"
            f" SELECT c.id, t.id, -c.id, NULL, 'rejected', t.department, '不符合条件', NULL, 'u1', t.ready_at, NULL,"
            f" NULL, NULL, NULL FROM cases c JOIN tasks t ON t.case_id = c.id AND t.step_id = 'step8'"
            f" WHERE c.id >= {first_live} AND c.id % 500 = 0",
        ):
            conn.exec_driver_sql(statement.replace("%", "%%") if db.dialect.name == "postgresql" else statement)
    if db.dialect.name == "postgresql":
        with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with db.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def manager(db: Database) -> None:
    from web.accounts import open_accounts

    engine = Engine(db, BusinessCalendar(), lambda: REFERENCE_NOW)
    with db.connect() as conn:
        present = conn.exec_driver_sql("SELECT COUNT(*) FROM accounts WHERE user_id = 'manager'").scalar()
    if not present:
        engine.add_user("manager", "效能监察员", [])
        open_accounts(db, [("manager", ["manager"], None)], PASSWORD, "bench")
    engine.close()


def median_ms(call: Any, repeats: int) -> float:
    call()  # warm: caches, the heat map's drawing
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def measure(db: Database, repeats: int) -> dict[str, float]:
    from fastapi.testclient import TestClient

    from web.app import create_app

    engine = Engine(db, BusinessCalendar(), lambda: REFERENCE_NOW)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), secret_key="bench-secret", calendar_file="none")
        with TestClient(create_app(settings, engine=engine)) as client:
            answer = client.post("/login", data={"username": "manager", "password": PASSWORD}, follow_redirects=False)
            assert answer.status_code == 303, answer.text
            for label, (first, last) in PERIODS.items():
                period = f"start={first.date()}&end={last.date()}"
                for page in PAGES:
                    url = f"{page}{'&' if '?' in page else '?'}{period}"

                    def get(url: str = url) -> None:
                        answer = client.get(url)
                        assert answer.status_code == 200, (url, answer.status_code, answer.text[:300])

                    name = f"{page} [{label}]"
                    figures[name] = median_ms(get, repeats)
                    print(f"  {name:58} {figures[name]:8.1f} ms", flush=True)
    for label, (first, last) in PERIODS.items():
        figures.update(measure_reads(db, engine, label, first, last + timedelta(days=1), repeats))
    engine.close()
    return figures


def measure_reads(db: Database, engine: Engine, label: str, start: Any, end: Any, repeats: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    reads = {
        "read.dashboard": lambda c: read.dashboard(c, start, end),
        "live_counts": lambda c: performance.live_counts(c),
        "weekly_trends": lambda c: performance.weekly_trends(c, now=REFERENCE_NOW, weeks=12),
        "cards(overdue)": lambda c: performance.cards(c, "overdue", now=REFERENCE_NOW, calendar=engine.calendar),
        "cards(warning)": lambda c: performance.cards(c, "warning", now=REFERENCE_NOW, calendar=engine.calendar),
        "pending_refusals": lambda c: performance.pending_refusals(c, now=REFERENCE_NOW, calendar=engine.calendar),
        "step_heat": lambda c: performance.step_heat(c, "bench-def-3", start, end),
        "ratings": lambda c: performance.ratings(c, start, end),
        "bad_ratings": lambda c: performance.bad_ratings(c, start, end),
        "plan_targets": lambda c: performance.plan_targets(c, start, end),
    }
    for name, work in reads.items():

        def call(work: Any = work) -> None:
            with reading(db) as conn:
                work(conn)

        figures[f"{name} [{label}]"] = median_ms(call, repeats)
        print(f"  {name + ' [' + label + ']':58} {figures[f'{name} [{label}]']:8.1f} ms", flush=True)
    with reading(db) as conn:
        heat = performance.step_heat(conn, "bench-def-3", start, end)
        plan = performance.plan_targets(conn, start, end)
        board = read.dashboard(conn, start, end)
    completed = sum(d.work.completed for d in board.departments)
    print(
        f"  ({label}: {completed:,} tasks completed, {plan.closed:,} cases closed, {plan.submitted:,} submitted;"
        f" bench-def-3: {heat.closed_cases:,} closed)",
        flush=True,
    )
    return figures


def run(name: str, url: str, cases: int, repeats: int) -> dict[str, float]:
    db = connect(url)
    try:
        upgrade(db)
        with db.connect() as conn:
            present = conn.exec_driver_sql("SELECT COUNT(*) FROM cases").scalar()
        if present != cases:
            fill(db, cases)
        with db.begin() as conn:
            read.refresh_work_summary(conn, REFERENCE_NOW)
        enrich(db)
        manager(db)
        with db.connect() as conn:
            tasks = conn.exec_driver_sql("SELECT COUNT(*) FROM tasks").scalar()
        print(f"{name}: {tasks:,} tasks; now {REFERENCE_NOW.astimezone(TZ):%Y-%m-%d %H:%M}")
        return measure(db, repeats)
    finally:
        db.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--sqlite-file", help="a SQLite file bench/read.py filled (or to fill and keep)")
    parser.add_argument("--postgres-url", help="a PostgreSQL database bench/read.py filled (or to fill and keep)")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    if args.sqlite_file:
        results["sqlite"] = run("sqlite", f"sqlite:///{args.sqlite_file}", args.cases, args.repeats)
    if args.postgres_url:
        results["postgresql"] = run("postgresql", args.postgres_url, args.cases, args.repeats)
    if not results:
        parser.error("give --sqlite-file and/or --postgres-url (kept: filling takes a minute)")
    pages = [f"{p} [{label}]" for p in PAGES for label in PERIODS]
    summary = {"tasks": args.cases * 10, "slowest_page_ms": max(max(f[p] for p in pages) for f in results.values())}
    print(json.dumps({**summary, **results}, ensure_ascii=False))


if __name__ == "__main__":
    main()
