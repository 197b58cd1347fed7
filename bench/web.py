"""The web under load: uvicorn with 2 workers on PostgreSQL holding 1,000,000 tasks, measured over HTTP.

    python bench/web.py                 # 100,000 cases × 10 tasks (1,000,000), a fresh database, dropped after
    python bench/web.py --quick         # 20,000 tasks: a smoke run
    python bench/web.py --skip-load     # the page timings only, no completions from 20 clients
    python bench/web.py --postgres-url postgresql://…/db   # fill this database and keep it (reused if filled)

Steps:

1. a scratch database on the test server ($TONGBAN_TEST_POSTGRES_URL, default postgres@127.0.0.1:5432)
   filled by bench/read.py's ``fill`` (rows made by the database itself; 20 departments d10…d29, 997
   handlers u0…u996), then a log-in for each of those people (one password, hashed once);
2. claimable work for the completion phase made by running the engine in this process (untimed): for
   each of the 20 clients, fresh cases of the fill's definitions submitted and accepted, so that each
   client's person holds none yet and has ``--per-client`` ready tasks of their own department, whose
   completion is a real transition (the next step becomes ready in another department);
3. ``uvicorn web.serve:app --factory --workers 2`` (what ``tongban serve --workers 2 --no-jobs`` runs),
   access log off, with TONGBAN_DATABASE_URL set;
4. with httpx, one client at a time: the first page of the department queue of u5 (department d15, about
   2,500 open tasks at full size) — the page ``/tasks`` and the API ``GET /api/tasks?scope=department``,
   whichever exist — and a task's page (``/tasks/{id}``, ``GET /api/tasks/{id}``) over random open
   tasks of d15; each URL warmed, then ``--repeats`` requests; p50 and p95 in ms;
5. 20 clients at once (asyncio, one keep-alive connection each, each a different person logged in with
   ``POST /api/session``): ``POST /api/tasks/{id}/claim`` then ``POST /api/tasks/{id}/complete`` with
   ``{"outcome": "approve", "opinion": "同意"}`` for each of their tasks. completions/s = completed tasks /
   the phase's wall time (claims included); p50/p95 of each call.

The machine is shared: run it more than once and take the medians. The last line is one JSON object with
``queue_p50_ms``, ``task_page_p50_ms`` (the page if it exists, else the API), ``dashboard_p50_ms`` (a manager's
``/dashboard``), ``api_completions_per_s``,
``api_complete_p95_ms``, the other figures, ``tasks`` and ``workers``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
# this file is bench/web.py: with bench/ on the path first, `import web` would find it, not the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select, text  # noqa: E402

from orchestrator.calendar import BusinessCalendar  # noqa: E402
from orchestrator.engine import Engine  # noqa: E402
from orchestrator.store import connect, upgrade  # noqa: E402
from orchestrator.store.db import scratch_postgres  # noqa: E402
from web.accounts import open_accounts  # noqa: E402  (before bench/ joins the path again)

sys.path.append(str(BENCH))
from read import DEFINITIONS, DEPARTMENTS, QUEUE_DEPARTMENT, QUEUE_USER, STEPS, fill  # noqa: E402

PASSWORD = "bench-password"
PEOPLE = 997  # the fill's handlers u0…u996, u_k in department d(10 + k % 20)
CLIENTS = 20
WORKERS = 2
CALENDAR = ROOT / "definitions" / "calendar.yaml"
COMPLETE_BODY = {"outcome": "approve", "opinion": "同意"}


# ---------------------------------------------------------------------------------------------------
# the data


def first_step_department(definition: int) -> str:
    """Where bench-def-k's first step after acceptance (step1) works (bench/read.py's arithmetic)."""
    return f"d{10 + (definition * 3 + 1 * 7) % DEPARTMENTS}"


def members_of(department: str) -> list[str]:
    offset = int(department[1:]) - 10
    return [f"u{k}" for k in range(PEOPLE) if k % DEPARTMENTS == offset]


def clients_and_definitions(clients: int) -> list[tuple[str, int]]:
    """(person, definition) per client: clients spread over the definitions, each a different person
    of the department where their definition's step1 works (and not the queue's user)."""
    chosen: list[tuple[str, int]] = []
    taken: set[str] = {QUEUE_USER}
    for i in range(clients):
        definition = i % DEFINITIONS
        person = next(p for p in members_of(first_step_department(definition)) if p not in taken)
        taken.add(person)
        chosen.append((person, definition))
    return chosen


def load(db: Any, cases: int) -> None:
    with db.connect() as conn:
        present = conn.execute(text("SELECT COUNT(*) FROM cases")).scalar_one()
    if present:
        print(f"reusing the {present:,} cases already there", flush=True)
        return
    started = time.perf_counter()
    fill(db, cases)
    print(f"filled {cases:,} cases / {cases * STEPS:,} tasks in {time.perf_counter() - started:.0f} s", flush=True)


MANAGER = "bench-manager"  # 效能监察: reads every department's figures


def open_logins(db: Any) -> None:
    from orchestrator.store.models import User

    with db.begin() as conn:  # the manager belongs to no department: a user row and an account
        if not conn.execute(select(User.id).where(User.id == MANAGER)).first():
            conn.execute(insert(User).values(id=MANAGER, name="效能监察员"))
    accounts = [(f"u{k}", [], None) for k in range(PEOPLE)] + [(MANAGER, ["manager"], None)]
    opened = open_accounts(db, accounts, PASSWORD, "bench")
    if opened:
        print(f"opened {opened} accounts", flush=True)


def make_work(db: Any, clients: list[tuple[str, int]], per_client: int) -> dict[str, list[int]]:
    """``per_client`` ready step1 tasks for each client's person: fresh cases submitted and accepted by
    the engine (as a window and the acceptance department would), none claimed."""
    engine = Engine(db, BusinessCalendar.from_file(CALENDAR))
    acceptor = members_of("d10")[0]  # step0 (综合受理) of every bench definition works in d10
    started = time.perf_counter()
    work: dict[str, list[int]] = {}
    try:
        for n in range(per_client):
            for person, definition in clients:
                case_id = engine.submit_case(
                    f"bench-def-{definition}", {"id": f"9131BENCH{n:05d}{person}", "name": "基准申请人"}, {}, []
                )
                engine.accept_case(case_id, acceptor)
                work.setdefault(person, []).append(case_id)
    finally:
        engine.close()
    with db.connect() as conn:
        for person, case_ids in work.items():
            rows = conn.execute(
                text("SELECT id FROM tasks WHERE step_id = 'step1' AND state = 'ready' AND case_id = ANY(:ids)"),
                {"ids": case_ids},
            ).scalars()
            work[person] = sorted(rows)
    made = sum(len(v) for v in work.values())
    print(f"made {made} ready tasks for {len(work)} clients in {time.perf_counter() - started:.0f} s", flush=True)
    return work


def sample_tasks(db: Any, count: int, seed: int = 7) -> list[int]:
    """Open tasks of the queue's department, at random: the task pages to open."""
    with db.connect() as conn:
        ids = list(
            conn.execute(
                text("SELECT id FROM tasks WHERE department = :d AND state IN ('ready', 'claimed') ORDER BY id"),
                {"d": QUEUE_DEPARTMENT},
            ).scalars()
        )
    random.Random(seed).shuffle(ids)
    return ids[:count]


def count_tasks(db: Any) -> int:
    with db.connect() as conn:
        return conn.execute(text("SELECT COUNT(*) FROM tasks")).scalar_one()


# ---------------------------------------------------------------------------------------------------
# the server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(url: str, workers: int) -> Iterator[str]:
    """uvicorn with ``workers`` processes on ``url``; yields its base URL, stops it afterwards."""
    port = _free_port()
    env = {
        **os.environ,
        "TONGBAN_DATABASE_URL": url,
        "TONGBAN_HOME": str(ROOT),
        "TONGBAN_SECRET_KEY": "bench-secret-key-bench-secret-key",
        "TONGBAN_WEB_JOBS": "0",  # --no-jobs: the benchmark measures requests, not the scheduler
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    command = [sys.executable, "-m", "uvicorn", "web.serve:app", "--factory", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise SystemExit(f"uvicorn stopped with status {server.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/login", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("uvicorn did not answer within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)


def log_in(client: httpx.Client, user: str) -> dict[str, str]:
    answer = client.post("/api/session", json={"username": user, "password": PASSWORD})
    if answer.status_code != 201:
        raise SystemExit(f"log-in of {user} refused: {answer.status_code} {answer.text[:200]}")
    return {"Authorization": f"Bearer {answer.json()['token']}"}


# ---------------------------------------------------------------------------------------------------
# timing


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def figures(name: str, times_ms: list[float]) -> dict[str, float]:
    p50, p95 = statistics.median(times_ms), percentile(times_ms, 0.95)
    print(f"  {name:34} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms   ({len(times_ms)} requests)", flush=True)
    return {"p50": round(p50, 1), "p95": round(p95, 1)}


def timed_gets(client: httpx.Client, paths: list[str], repeats: int, warm: int = 5) -> list[float]:
    """ms of each GET (sequential, one keep-alive connection); every answer must be a 200."""
    for path in paths[:warm]:
        client.get(path)
    times = []
    for i in range(repeats):
        path = paths[i % len(paths)]
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"GET {path}: {answer.status_code} {answer.text[:300]}")
    return times


def exists(client: httpx.Client, path: str) -> bool:
    answer = client.get(path)
    if answer.status_code == 200:
        return True
    if answer.status_code in (404, 405):
        return False
    raise SystemExit(f"GET {path}: {answer.status_code} {answer.text[:300]}")


def measure_reads(base: str, tasks: list[int], repeats: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with httpx.Client(base_url=base, timeout=60) as client:
        client.headers.update(log_in(client, QUEUE_USER))
        queue = {"page": "/tasks", "api": "/api/tasks?scope=department"}
        task = {"page": "/tasks/{}", "api": "/api/tasks/{}"}
        for kind in ("page", "api"):
            if exists(client, queue[kind]):
                results[f"queue_{kind}"] = figures(f"queue ({queue[kind]})", timed_gets(client, [queue[kind]], repeats))
            if exists(client, task[kind].format(tasks[0])):
                paths = [task[kind].format(t) for t in tasks]
                results[f"task_{kind}"] = figures(f"task ({task[kind]})", timed_gets(client, paths, repeats))
    if "queue_page" not in results and "queue_api" not in results:
        raise SystemExit("neither /tasks nor GET /api/tasks?scope=department answers: is the API merged?")
    with httpx.Client(base_url=base, timeout=60) as client:
        client.headers.update(log_in(client, MANAGER))
        results["dashboard"] = figures("dashboard (/dashboard)", timed_gets(client, ["/dashboard"], repeats))
    return results


class BenchError(Exception):
    """A request the benchmark needs was refused: the run stops with it."""


async def _work(client: httpx.AsyncClient, task_ids: list[int], claims: list[float], completes: list[float]) -> int:
    for task_id in task_ids:
        for path, body, into in (("claim", {}, claims), ("complete", COMPLETE_BODY, completes)):
            started = time.perf_counter()
            answer = await client.post(f"/api/tasks/{task_id}/{path}", json=body)
            into.append((time.perf_counter() - started) * 1000)
            if not answer.is_success:
                raise BenchError(f"{path} task {task_id}: {answer.status_code} {answer.text[:300]}")
    return len(task_ids)


async def _completions(base: str, work: dict[str, list[int]]) -> tuple[int, float, list[float], list[float]]:
    claims: list[float] = []
    completes: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for person in work:
            clients[person] = await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=120))

        async def open_session(person: str) -> None:
            answer = await clients[person].post("/api/session", json={"username": person, "password": PASSWORD})
            if answer.status_code != 201:
                raise BenchError(f"log-in of {person} refused: {answer.status_code} {answer.text[:200]}")
            clients[person].headers["Authorization"] = f"Bearer {answer.json()['token']}"

        await asyncio.gather(*(open_session(person) for person in work))  # all logged in before the clock starts
        started = time.perf_counter()
        done = await asyncio.gather(*(_work(clients[p], ids, claims, completes) for p, ids in work.items()))
        seconds = time.perf_counter() - started
    return sum(done), seconds, claims, completes


def measure_completions(base: str, work: dict[str, list[int]]) -> dict[str, Any]:
    try:
        done, seconds, claims, completes = asyncio.run(_completions(base, work))
    except BenchError as exc:
        raise SystemExit(f"the completion phase stopped: {exc}") from None
    rate = done / seconds
    print(f"  completions: {done} by {len(work)} clients in {seconds:.1f} s = {rate:.1f}/s", flush=True)
    return {
        "completions": done,
        "completions_per_s": round(rate, 1),
        "claim": figures("claim (POST /api/tasks/{id}/claim)", claims),
        "complete": figures("complete (POST /api/tasks/{id}/complete)", completes),
    }


# ---------------------------------------------------------------------------------------------------


def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    cases = args.tasks // STEPS
    db = connect(url)
    try:
        upgrade(db)
        load(db, cases)
        open_logins(db)
        clients = clients_and_definitions(CLIENTS)
        work = {} if args.skip_load else make_work(db, clients, args.per_client)
        sample = sample_tasks(db, 200)
        tasks = count_tasks(db)
    finally:
        db.dispose()
    if not sample:
        raise SystemExit(f"no open task in {QUEUE_DEPARTMENT}: the fill is too small")
    summary: dict[str, Any] = {"tasks": tasks, "workers": WORKERS, "clients": CLIENTS}
    print(f"uvicorn, {WORKERS} workers, {tasks:,} tasks:", flush=True)
    with serving(url, WORKERS) as base:
        reads = measure_reads(base, sample, args.repeats)
        load_figures = None if args.skip_load else measure_completions(base, work)
    queue = reads.get("queue_page") or reads["queue_api"]
    task = reads.get("task_page") or reads.get("task_api")
    summary.update(
        queue_p50_ms=queue["p50"],
        queue_p95_ms=queue["p95"],
        queue_measured="/tasks" if "queue_page" in reads else "/api/tasks?scope=department",
        task_page_p50_ms=task["p50"] if task else None,
        task_page_p95_ms=task["p95"] if task else None,
        task_measured=("/tasks/{id}" if "task_page" in reads else "/api/tasks/{id}") if task else None,
    )
    summary.update(dashboard_p50_ms=reads["dashboard"]["p50"], dashboard_p95_ms=reads["dashboard"]["p95"])
    for key in ("queue_api", "task_api"):
        if key in reads:
            summary[f"{key}_p50_ms"] = reads[key]["p50"]
    if load_figures:
        summary.update(
            api_completions_per_s=load_figures["completions_per_s"],
            api_complete_p50_ms=load_figures["complete"]["p50"],
            api_complete_p95_ms=load_figures["complete"]["p95"],
            api_claim_p95_ms=load_figures["claim"]["p95"],
            completions=load_figures["completions"],
        )
    else:
        summary.update(api_completions_per_s=None, api_complete_p95_ms=None)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks to fill (ten a case)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20,000 tasks, fewer requests")
    parser.add_argument("--skip-load", action="store_true", help="time the pages only: no completion load")
    parser.add_argument("--repeats", type=int, help="timed requests per URL (default 200, quick 20)")
    parser.add_argument("--per-client", type=int, help="tasks each of the 20 clients completes (default 100, quick 5)")
    parser.add_argument("--postgres-url", help="fill (or reuse) and keep this database instead of a scratch one")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks = min(args.tasks, 20_000)
    args.repeats = args.repeats or (20 if args.quick else 200)
    args.per_client = args.per_client or (5 if args.quick else 100)
    if args.tasks < STEPS * 100:
        parser.error("--tasks: at least 1,000")
    if args.postgres_url:
        summary = run(args.postgres_url, args)
    else:
        with scratch_postgres("tongban_bench_web") as url:
            summary = run(url, args)
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
