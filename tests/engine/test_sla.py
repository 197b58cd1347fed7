"""The SLA sweep (黄牌 / 红牌, notifications, escalation) and the indexed read queries, on both backends.

kaiban-mini, accepted Mon 2026-03-02 10:00 (working window 09:00–17:00, warning share 0.25):
the licence step (scjg, 0.5d = 4 working hours) is due Mon 14:00 and warns at Mon 13:00; the case
(promised 1d) is due Tue 17:00 and warns at Tue 13:15 (75 % of its 15 working hours).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from orchestrator.calendar import TZ
from orchestrator.engine import publish_paths
from orchestrator.engine.queries import department_queue, open_tasks_due_before
from orchestrator.engine.sla import SweepResult, sweep
from orchestrator.store import reading
from orchestrator.store.models import Alert, Case, Notification, Task

from ..conftest import ROOT
from .conftest import START, fixture_path

NOTHING = SweepResult()
TASKS, CASES, ALERTS, NOTIFICATIONS = Task.__table__, Case.__table__, Alert.__table__, Notification.__table__


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in March 2026, Beijing time (2 = Monday)."""
    return datetime(2026, 3, day, hour, minute, tzinfo=TZ)


def open_case(engine, **form: Any) -> int:
    values = {"company_name": "甲公司", "needs_seal": True, "employees": 2, **form}
    case_id = engine.submit_case("kaiban-mini", {"id": "A1", "name": "张三"}, values, ["id_card", "lease"])
    engine.accept_case(case_id, "zwfw1")
    return case_id


def rows(engine, query: sa.Select) -> list[dict[str, Any]]:
    """Typed rows (aware datetimes on SQLite too: the model's column types convert them)."""
    with reading(engine.db) as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def task(engine, case_id: int, step: str) -> dict[str, Any]:
    query = sa.select(TASKS).where(TASKS.c.case_id == case_id, TASKS.c.step_id == step).order_by(TASKS.c.id.desc())
    return rows(engine, query)[0]


def case_row(engine, case_id: int) -> dict[str, Any]:
    return rows(engine, sa.select(CASES).where(CASES.c.id == case_id))[0]


def alerts(engine, subject: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(ALERTS).where(ALERTS.c.kind.in_(["warning", "overdue"])).order_by(ALERTS.c.id)
    if subject is not None:
        query = query.where(ALERTS.c.subject == subject)
    return rows(engine, query)


def sla_notifications(engine) -> list[dict[str, Any]]:
    return rows(engine, sa.select(NOTIFICATIONS).where(NOTIFICATIONS.c.kind.like("sla%")).order_by(NOTIFICATIONS.c.id))


UNTIMED = """
key: {key}
name: 即办测试
case_kind: {kind}
{limits}
remedy: 可在六十日内申请行政复议，或者六个月内提起行政诉讼。
steps:
  - {{id: accept, kind: acceptance, name: 综合受理, department: zwfw}}
  - {{id: review, kind: approval, name: 材料审核, department: scjg, after: [accept]}}
"""


def publish_untimed(engine, clock, tmp_path) -> None:
    """Two definitions whose steps have no limit: an instant case (即办件) and a promised one."""
    folder = tmp_path / "untimed"
    folder.mkdir()
    shutil.copy(fixture_path("departments.yaml"), folder / "departments.yaml")
    (folder / "instant-demo.yaml").write_text(UNTIMED.format(key="instant-demo", kind="instant", limits=""))
    (folder / "promised-demo.yaml").write_text(
        UNTIMED.format(key="promised-demo", kind="promised", limits="limits: {promised: 1d}")
    )
    results = publish_paths(engine.db, [folder], clock())
    assert not [p for r in results for p in r.problems]


# ----------------------------------------------------------------------------------------------
# tasks: yellow, red, escalation


def test_a_task_turns_yellow_then_red_as_the_clock_moves(engine, clock):
    case_id = open_case(engine)
    number = case_row(engine, case_id)["number"]
    licence = task(engine, case_id, "licence")
    assert (licence["warn_at"], licence["due_at"], licence["sla_state"]) == (at(2, 13), at(2, 14), "on_track")

    clock.set(at(2, 12, 59))
    assert engine.sweep() == NOTHING

    clock.set(at(2, 13))  # warn_at <= now
    assert engine.sweep() == SweepResult(tasks_warning=1, alerts=1, notifications=1)
    assert task(engine, case_id, "licence")["sla_state"] == "warning"
    [yellow] = alerts(engine)
    assert (yellow["subject"], yellow["kind"], yellow["task_id"], yellow["case_id"]) == (
        f"task:{licence['id']}",
        "warning",
        licence["id"],
        case_id,
    )
    assert (yellow["department"], yellow["recipient_role"], yellow["raised_at"]) == ("scjg", None, at(2, 13))
    assert "黄牌" in yellow["message"] and number in yellow["message"] and "营业执照核发" in yellow["message"]
    assert "2026-03-02 14:00" in yellow["message"]  # the due time, in Beijing time
    [note] = sla_notifications(engine)
    assert (note["kind"], note["recipient_department"], note["recipient_user"], note["task_id"]) == (
        "sla_warning",
        "scjg",
        None,
        licence["id"],
    )

    clock.set(at(2, 14))  # due_at <= now
    assert engine.sweep() == SweepResult(tasks_overdue=1, alerts=1, notifications=1, escalations=1)
    assert task(engine, case_id, "licence")["sla_state"] == "overdue"
    red = alerts(engine)[-1]
    assert (red["kind"], red["department"], red["recipient_role"]) == ("overdue", "scjg", "scjg_supervisor")
    assert "红牌" in red["message"] and number in red["message"] and "营业执照核发" in red["message"]
    owner, escalation = sla_notifications(engine)[1:]
    assert (owner["kind"], owner["recipient_department"]) == ("sla_overdue", "scjg")
    assert (escalation["kind"], escalation["recipient_department"], escalation["recipient_role"]) == (
        "sla_escalation",
        "scjg",
        "scjg_supervisor",
    )
    assert number in escalation["message"] and "市场监督管理局" in escalation["message"]
    assert case_row(engine, case_id)["sla_state"] == "on_track"  # the case warns only on Tuesday


def test_a_second_sweep_at_the_same_time_changes_nothing(engine, clock):
    open_case(engine)
    clock.set(at(2, 14))
    first = sweep(engine.db, clock())
    assert first.changed == 1 and first.escalations == 1
    before = (len(alerts(engine)), len(sla_notifications(engine)))
    assert sweep(engine.db, clock()) == NOTHING
    assert engine.sweep() == NOTHING
    assert (len(alerts(engine)), len(sla_notifications(engine))) == before


def test_a_claimed_task_notifies_its_assignee_and_may_skip_the_yellow_card(engine, clock):
    case_id = open_case(engine)
    licence = task(engine, case_id, "licence")
    engine.claim_task(licence["id"], "scjg1")
    clock.set(at(2, 15))  # past warn_at and due_at: straight to red
    assert engine.sweep() == SweepResult(tasks_overdue=1, alerts=1, notifications=1, escalations=1)
    assert [a["kind"] for a in alerts(engine, f"task:{licence['id']}")] == ["overdue"]
    owner, escalation = sla_notifications(engine)
    assert (owner["recipient_user"], owner["recipient_department"], owner["kind"]) == ("scjg1", None, "sla_overdue")
    assert escalation["recipient_role"] == "scjg_supervisor"


def test_an_overdue_task_escalates_to_its_departments_supervisor_role(engine, clock):
    with engine.db.begin() as conn:
        conn.execute(sa.text("UPDATE departments SET supervisor_role = 'scjg_chief' WHERE code = 'scjg'"))
    case_id = open_case(engine)
    clock.set(at(2, 14))
    assert engine.sweep().escalations == 1
    [escalation] = [n for n in sla_notifications(engine) if n["kind"] == "sla_escalation"]
    assert (escalation["recipient_role"], escalation["recipient_department"]) == ("scjg_chief", "scjg")
    assert escalation["task_id"] == task(engine, case_id, "licence")["id"]
    assert alerts(engine)[-1]["recipient_role"] == "scjg_chief"


def test_completed_tasks_are_not_swept(engine, clock):
    case_id = open_case(engine)
    licence = task(engine, case_id, "licence")
    clock.set(at(2, 11))
    engine.complete_task(licence["id"], "scjg1")
    clock.set(at(2, 14))
    engine.sweep()
    assert alerts(engine, f"task:{licence['id']}") == []
    assert task(engine, case_id, "licence")["sla_state"] == "on_track"  # as it was when completed


# ----------------------------------------------------------------------------------------------
# the clock stops: suspension


def test_a_suspended_case_is_not_swept_until_it_resumes_with_moved_due_times(engine, clock):
    case_id = open_case(engine)
    licence_id = task(engine, case_id, "licence")["id"]
    clock.set(at(2, 10, 30))
    engine.suspend_case(case_id, "scjg1", "expert_review", "组织专家评审", "5d")
    assert task(engine, case_id, "licence")["sla_state"] == "paused"
    assert case_row(engine, case_id)["sla_state"] == "paused"

    clock.set(at(3, 17))  # past the old due times of the task (Mon 14:00) and the case (Tue 17:00)
    assert engine.sweep() == NOTHING
    assert alerts(engine) == []

    clock.set(at(4, 10))  # Wed: the clock stood still for 6.5 h + 8 h + 1 h = 15.5 working hours
    engine.resume_case(case_id, "scjg1", "评审通过")
    licence = task(engine, case_id, "licence")
    assert (licence["warn_at"], licence["due_at"], licence["sla_state"]) == (at(4, 12, 30), at(4, 13, 30), "on_track")
    case = case_row(engine, case_id)
    assert (case["warn_at"], case["due_at"], case["sla_state"]) == (at(5, 12, 45), at(5, 16, 30), "on_track")
    assert engine.sweep() == NOTHING

    clock.set(at(4, 12, 30))
    assert engine.sweep() == SweepResult(tasks_warning=1, alerts=1, notifications=1)
    clock.set(at(4, 13, 30))
    assert engine.sweep() == SweepResult(tasks_overdue=1, alerts=1, notifications=1, escalations=1)
    assert [a["kind"] for a in alerts(engine, f"task:{licence_id}")] == ["warning", "overdue"]
    clock.set(at(5, 12, 45))
    assert engine.sweep() == SweepResult(cases_warning=1, alerts=1, notifications=1)


def test_a_card_is_raised_once_even_when_the_task_turns_yellow_again(engine, clock):
    case_id = open_case(engine)
    licence_id = task(engine, case_id, "licence")["id"]
    clock.set(at(2, 13))
    assert engine.sweep().tasks_warning == 1
    clock.set(at(2, 13, 10))
    engine.suspend_case(case_id, "scjg1", "hearing", "听证", "10d")
    clock.set(at(2, 15, 10))
    engine.resume_case(case_id, "scjg1")  # 2 h stopped: due 16:00, warn 15:00, back on track
    assert task(engine, case_id, "licence")["sla_state"] == "on_track"
    clock.set(at(2, 15, 30))
    # a new state change: the owner hears of it again, but the yellow card exists already
    assert engine.sweep() == SweepResult(tasks_warning=1, alerts=0, notifications=1)
    assert [a["kind"] for a in alerts(engine, f"task:{licence_id}")] == ["warning"]
    assert [n["kind"] for n in sla_notifications(engine)] == ["sla_warning", "sla_warning"]


# ----------------------------------------------------------------------------------------------
# cases


def test_a_case_turns_yellow_then_red(engine, clock):
    case_id = open_case(engine)
    case = case_row(engine, case_id)
    assert (case["warn_at"], case["due_at"]) == (at(3, 13, 15), at(3, 17))

    clock.set(at(3, 13, 15))
    result = engine.sweep()
    assert (result.cases_warning, result.cases_overdue) == (1, 0)
    assert case_row(engine, case_id)["sla_state"] == "warning"
    [yellow] = alerts(engine, f"case:{case_id}")
    # a case's cards go to its acceptance department (the department of its first task: 综合受理)
    assert (yellow["kind"], yellow["task_id"], yellow["department"], yellow["recipient_role"]) == (
        "warning",
        None,
        "zwfw",
        None,
    )
    assert case["number"] in yellow["message"] and "承诺时限" in yellow["message"]
    [note] = [n for n in sla_notifications(engine) if n["task_id"] is None]
    assert (note["kind"], note["recipient_department"], note["case_id"]) == ("sla_warning", "zwfw", case_id)

    clock.set(at(3, 17))
    result = engine.sweep()
    assert (result.cases_warning, result.cases_overdue) == (0, 1)
    red = alerts(engine, f"case:{case_id}")[-1]
    assert (red["kind"], red["department"], red["recipient_role"]) == ("overdue", "zwfw", "zwfw_supervisor")
    case_notes = [n["kind"] for n in sla_notifications(engine) if n["task_id"] is None]
    assert case_notes == ["sla_warning", "sla_overdue"]  # escalation notifications are for tasks
    assert engine.sweep() == NOTHING


# ----------------------------------------------------------------------------------------------
# untimed work never alerts


def test_untimed_tasks_never_alert(engine, clock, tmp_path):
    publish_untimed(engine, clock, tmp_path)
    instant = engine.submit_case("instant-demo", {"id": "B1", "name": "李四"}, {})
    engine.accept_case(instant, "zwfw1")
    promised = engine.submit_case("promised-demo", {"id": "B2", "name": "王五"}, {})
    engine.accept_case(promised, "zwfw1")
    for case_id in (instant, promised):
        review = task(engine, case_id, "review")
        assert (review["due_at"], review["sla_state"]) == (None, None)
    assert case_row(engine, instant)["sla_state"] is None

    clock.set(START + timedelta(days=60))
    result = engine.sweep()
    assert (result.tasks_warning, result.tasks_overdue) == (0, 0)
    assert result == SweepResult(cases_overdue=1, alerts=1, notifications=1)  # the promised case only
    assert [a["subject"] for a in alerts(engine)] == [f"case:{promised}"]
    assert engine.sweep() == NOTHING


def test_two_sweeps_at_once_raise_each_card_once(engine, clock):
    for _ in range(3):
        open_case(engine)
    clock.set(at(2, 14))
    barrier = threading.Barrier(2)

    def run() -> SweepResult:
        barrier.wait()
        return sweep(engine.db, clock())

    with ThreadPoolExecutor(2) as pool:
        results = [f.result() for f in [pool.submit(run), pool.submit(run)]]
    assert sorted(r.tasks_overdue for r in results) == [0, 3]
    assert sum(r.escalations for r in results) == 3
    assert len(alerts(engine)) == 3 and len(sla_notifications(engine)) == 6


def test_sweep_wants_an_aware_time(engine):
    with pytest.raises(ValueError):
        sweep(engine.db, datetime(2026, 3, 2, 10))


# ----------------------------------------------------------------------------------------------
# the read queries


def test_department_queue_and_open_tasks_due_before(engine, clock, tmp_path):
    publish_untimed(engine, clock, tmp_path)
    cases = []
    for minute in (0, 30, 60):  # licence due 14:00, 14:30, 15:00
        clock.set(START + timedelta(minutes=minute))
        cases.append(open_case(engine))
    untimed = engine.submit_case("instant-demo", {"id": "B1", "name": "李四"}, {})
    engine.accept_case(untimed, "zwfw1")
    first, second, third = (task(engine, c, "licence")["id"] for c in cases)
    engine.claim_task(second, "scjg1")
    untimed_review = task(engine, untimed, "review")["id"]
    number = case_row(engine, cases[0])["number"]

    with reading(engine.db) as conn:
        queue = department_queue(conn, "scjg")
        assert [r["id"] for r in queue] == [first, third, untimed_review]  # ready only; untimed last
        assert queue[0]["case_number"] == number
        assert queue[0]["due_at"] == at(2, 14)
        assert [r["id"] for r in department_queue(conn, "scjg", limit=1)] == [first]
        assert department_queue(conn, "gaj") == []
        due = open_tasks_due_before(conn, at(2, 14, 45))
        assert [(r["id"], r["state"]) for r in due] == [(first, "ready"), (second, "claimed")]
        assert [r["id"] for r in open_tasks_due_before(conn, at(2, 14, 45), limit=1)] == [first]


# ----------------------------------------------------------------------------------------------
# query plans: the statements read the indexes they were written for


def _bench_module(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def captured(db: sa.Engine) -> Iterator[list[tuple[str, Any]]]:
    """The statements (and parameters) sent to the driver inside the block."""
    seen: list[tuple[str, Any]] = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    sa.event.listen(db, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        sa.event.remove(db, "before_cursor_execute", listener)


def plan(conn: sa.Connection, statement: str, parameters: Any) -> str:
    if conn.dialect.name == "sqlite":
        return "\n".join(r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
    return "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters))


def reads_index(text: str, index: str, *, bitmap: bool = False) -> bool:
    forms = [r"USING (COVERING )?INDEX", r"Index (Only )?Scan using"] + ([r"Bitmap Index Scan on"] if bitmap else [])
    return any(re.search(rf"{form} {index}\b", text) for form in forms)


@pytest.fixture
def loaded(db):
    """20,000 open tasks in 2,000 cases (bench/make_open_tasks.py), statistics as a load leaves them."""
    bench = _bench_module("make_open_tasks")
    counts = bench.fill(db, tasks=20_000, per_case=10)
    assert counts["open_tasks"] == 20_000
    return db, bench.REFERENCE_NOW, counts


def test_queue_queries_read_their_indexes(loaded):
    db, now, _ = loaded
    with captured(db) as seen, reading(db) as conn:
        assert len(department_queue(conn, "d12", limit=50)) == 50
        assert open_tasks_due_before(conn, now, limit=1000)
    queue = next(s for s in seen if "department" in s[0] and "tasks.state =" in s[0])
    due = next(s for s in seen if "tasks.due_at <" in s[0])
    with reading(db) as conn:
        due_plan = plan(conn, *due)
        if db.dialect.name == "postgresql":
            # at 20,000 rows a sequential scan and the index cost about the same, and which one PostgreSQL
            # picks moved with the table's dead rows from earlier tests; what matters is that the index
            # serves the filter and the order (PostgreSQL then sorts only ties of due_at by id, incrementally)
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        queue_plan = plan(conn, *queue)
    assert reads_index(queue_plan, "ix_tasks_queue"), queue_plan
    # PostgreSQL, by its statistics, reads these ~2 % of the rows with a bitmap scan of the same index
    assert reads_index(due_plan, "ix_tasks_open_due", bitmap=True), due_plan
    if db.dialect.name == "sqlite":
        # read in index order: no sort step
        assert "TEMP B-TREE" not in queue_plan and "TEMP B-TREE" not in due_plan, (queue_plan, due_plan)


def test_the_sweep_finds_its_rows_through_the_partial_indexes(loaded):
    db, now, counts = loaded
    with captured(db) as seen:
        result = sweep(db, now)
    assert (result.tasks_warning, result.tasks_overdue) == (counts["tasks_warning"], counts["tasks_overdue"])
    assert (result.cases_warning, result.cases_overdue) == (counts["cases_warning"], counts["cases_overdue"])
    assert result.alerts == result.changed == result.notifications
    assert result.escalations == result.tasks_overdue
    assert sweep(db, now) == NOTHING

    create = next(s for s in seen if s[0].startswith("CREATE TEMPORARY TABLE"))
    collects = [s for s in seen if "INSERT INTO sla_changes" in s[0]]
    expected = ["ix_cases_open_warn", "ix_cases_open_due", "ix_tasks_open_warn", "ix_tasks_open_due"]
    assert len(collects) == len(expected)
    with db.connect() as conn:
        conn.exec_driver_sql(create[0])  # EXPLAIN needs the temporary table; rolled back below
        plans = [plan(conn, *statement) for statement in collects]
        conn.rollback()
    for index, text in zip(expected, plans, strict=True):
        assert reads_index(text, index, bitmap=True), (index, text)
