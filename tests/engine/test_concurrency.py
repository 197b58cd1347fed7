"""Two OS processes complete the same tasks: no lost update, no double completion.

The test prepares 30 kaiban-mini cases whose three parallel branches (seal, invoice, social) are
ready, then starts two processes (``spawn``: each builds its own Engine and connection pool) that
wait on a barrier and race over the same tasks, the one front to back, the other back to front, so
they meet inside each case. On even cases each process claims a branch and then completes it; on
odd cases both complete it straight from the department queue. In a second round both race to
complete each case's single issue (join) task — one with ``complete_task``, one with
``issue_certificates``.

Every attempt must either succeed or be refused with Conflict or NotAllowed (no other error, no
deadlock, no timeout); every task is completed exactly once and by the process that was told it won;
each case's join fires exactly once, after all its branches, and the case ends completed once, with
exactly one ``task_completed`` event per completed task.

It runs on PostgreSQL (row lock on the case, required in CI) and on SQLite (two processes on one WAL
file, writers serialized by ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from orchestrator.calendar import BusinessCalendar
from orchestrator.engine import Conflict, Engine, NotAllowed
from orchestrator.store import connect
from orchestrator.store.models import Case, Certificate, Event, Task

CASES = 30
BRANCHES = {"seal": "gaj", "invoice": "swj", "social": "rsj"}
TIMEOUT = 180


def _race(name: str, url: str, start: str, wall0: float, plan: list, issue_via: str, barrier: Any, out: Any) -> None:
    """One racing process: its own engine on the shared database, a clock shared through wall time."""
    results: list[tuple[str, int, str, str, str]] = []
    try:
        base = datetime.fromisoformat(start)
        db = connect(url)
        engine = Engine(db, BusinessCalendar(), lambda: base + timedelta(seconds=time.time() - wall0))

        def attempt(op: str, task_id: int, actor: str) -> None:
            try:
                if op == "claim":
                    engine.claim_task(task_id, actor)
                elif op == "issue":
                    engine.issue_certificates(task_id, actor)
                else:
                    engine.complete_task(task_id, actor, "approve", "同意")
                results.append((op, task_id, actor, "ok", ""))
            except (Conflict, NotAllowed) as exc:
                results.append((op, task_id, actor, type(exc).__name__, exc.message))
            except Exception as exc:  # reported, and fails the test
                results.append((op, task_id, actor, "error", f"{type(exc).__name__}: {exc}"))

        # SQLite's busy handler sleeps and retries instead of queueing: without a breath between
        # transactions, the process holding the write lock would take it again every time
        pause = 0.005 if url.startswith("sqlite") else 0.0
        for round_ in plan:  # one case per round: both start on it together
            barrier.wait(timeout=TIMEOUT)
            for op, task_id, actor in round_:
                attempt(op, task_id, actor)
                time.sleep(pause)
        barrier.wait(timeout=TIMEOUT)  # every branch is done: each case's join is ready now
        with db.connect() as conn:
            issues = conn.execute(
                select(Task.id).where(Task.step_id == "issue", Task.state == "ready").order_by(Task.id)
            ).scalars()
            issue_ids = list(issues)
        barrier.wait(timeout=TIMEOUT)
        for task_id in issue_ids:
            attempt(issue_via, task_id, "zwfw1" if issue_via == "complete" else "zwfw2")
            time.sleep(pause)
        engine.close()
        db.dispose()
        out.put((name, results, None))
    except BaseException:
        out.put((name, results, traceback.format_exc()))


def _prepare(engine: Engine) -> list[dict[str, int]]:
    """30 accepted kaiban-mini cases with the business licence done: three branches ready in each."""
    cases = []
    for n in range(CASES):
        case_id = engine.submit_case(
            "kaiban-mini",
            {"id": f"9131000{n:04d}", "name": f"公司{n}"},
            {"company_name": f"并发{n}号公司", "needs_seal": True, "employees": 3},
            ["id_card", "lease"],
        )
        engine.accept_case(case_id, "zwfw1")
        with engine.db.connect() as conn:
            licence = conn.execute(select(Task.id).where(Task.case_id == case_id, Task.step_id == "licence")).scalar()
        engine.complete_task(licence, "scjg1")
        with engine.db.connect() as conn:
            ready = dict(
                conn.execute(select(Task.step_id, Task.id).where(Task.case_id == case_id, Task.state == "ready")).all()
            )
        assert set(ready) == set(BRANCHES)
        cases.append({"case": case_id, **ready})
    return cases


def _plan(cases: list[dict[str, int]], member: str, reverse: bool) -> list[list[tuple[str, int, str]]]:
    """One round per case: claim (even cases) and complete each branch, in file or reverse order."""
    plan = []
    for index, case in enumerate(cases):
        steps = list(BRANCHES)[::-1] if reverse else list(BRANCHES)
        round_ = []
        for step in steps:
            actor = f"{BRANCHES[step]}{member}"
            if index % 2 == 0:
                round_.append(("claim", case[step], actor))
            round_.append(("complete", case[step], actor))
        plan.append(round_)
    return plan


def test_two_processes_complete_the_same_tasks(engine, clock):
    cases = _prepare(engine)
    url = engine.db.url.render_as_string(hide_password=False)
    engine.db.dispose()  # the racers open their own connections
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(2), context.Queue()
    start, wall0 = clock.advance(minutes=5).isoformat(), time.time()
    racers = {
        "A": context.Process(
            target=_race, args=("A", url, start, wall0, _plan(cases, "1", False), "complete", barrier, out)
        ),
        "B": context.Process(
            target=_race, args=("B", url, start, wall0, _plan(cases, "2", True), "issue", barrier, out)
        ),
    }
    for process in racers.values():
        process.start()
    reports: dict[str, list] = {}
    try:
        for _ in racers:
            name, results, failure = out.get(timeout=TIMEOUT)
            assert failure is None, f"racer {name} failed:\n{failure}"
            reports[name] = results
    finally:
        for process in racers.values():
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
    assert all(p.exitcode == 0 for p in racers.values())

    # every attempt succeeded or was refused clearly ------------------------------------------------
    attempts = [(name, *r) for name, results in reports.items() for r in results]
    errors = [a for a in attempts if a[4] == "error"]
    assert not errors, errors
    assert len(attempts) == 2 * (sum(map(len, _plan(cases, "1", False))) + CASES)
    completions: dict[int, list[str]] = defaultdict(list)
    claims: dict[int, list[str]] = defaultdict(list)
    for _name, op, task_id, actor, result, _message in attempts:
        if result == "ok":
            (claims if op == "claim" else completions)[task_id].append(actor)

    # what the database says -------------------------------------------------------------------------
    case_ids = [c["case"] for c in cases]
    with engine.db.connect() as conn:
        tasks = [dict(r) for r in conn.execute(select(Task.__table__).where(Task.case_id.in_(case_ids))).mappings()]
        events = [dict(r) for r in conn.execute(select(Event.__table__).where(Event.case_id.in_(case_ids))).mappings()]
        rows = conn.execute(select(Case.id, Case.state, Case.outcome).where(Case.id.in_(case_ids))).all()
        certificates = conn.execute(select(Certificate.case_id).where(Certificate.case_id.in_(case_ids))).scalars()
        certificates = Counter(certificates)
    by_id = {t["id"]: t for t in tasks}
    completed_events = Counter(e["task_id"] for e in events if e["kind"] == "task_completed")
    for task in tasks:
        assert completed_events[task["id"]] == (1 if task["state"] == "completed" else 0), task
    race_tasks = [c[s] for c in cases for s in BRANCHES]
    issues = [t for t in tasks if t["step_id"] == "issue"]
    for task_id in race_tasks + [t["id"] for t in issues]:
        task = by_id[task_id]
        assert task["state"] == "completed", task
        assert len(completions[task_id]) == 1, f"task {task_id} completed by {completions[task_id]}"
        assert task["completed_by"] == completions[task_id][0], "the winner is the one the database records"
    for index, case in enumerate(cases):
        if index % 2 == 0:
            for step in BRANCHES:
                assert len(claims[case[step]]) == 1, f"task {case[step]} claimed by {claims[case[step]]}"
                assert claims[case[step]] == completions[case[step]], "only the claimer completes"

    # each join fired once, after all its branches; no branch was lost ----------------------------------
    mixed = 0
    for case in cases:
        joins = [t for t in issues if t["case_id"] == case["case"]]
        assert len(joins) == 1, f"case {case['case']}: the join fired {len(joins)} times"
        branches = [by_id[case[s]] for s in BRANCHES]
        assert joins[0]["ready_at"] >= max(b["completed_at"] for b in branches)
        ready_events = [e for e in events if e["task_id"] == joins[0]["id"] and e["kind"] == "task_ready"]
        assert len(ready_events) == 1
        winners = {completions[case[s]][0][-1] for s in BRANCHES}
        mixed += len(winners) > 1
    assert mixed, "in no case did the two processes complete branches of the same case: nothing raced"
    assert all(state == "completed" and outcome == "approved" for _, state, outcome in rows), rows
    finals = Counter(e["case_id"] for e in events if e["task_id"] is None and e["to_state"] == "completed")
    assert all(finals[c] == 1 for c in case_ids), finals
    winners_by_case = {by_id[t]["case_id"]: completions[t][0] for t in (i["id"] for i in issues)}
    for case_id, winner in winners_by_case.items():
        assert certificates[case_id] == (1 if winner == "zwfw2" else 0), "certificates only from the winner"
    assert set(Counter(name for name, op, *_ in attempts if op != "claim")) == {"A", "B"}
