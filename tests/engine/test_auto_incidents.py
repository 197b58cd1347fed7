"""Automatic steps left for workers: shared-data look-ups, failed attempts with backoff, incidents and
what a supervisor does with them (retry, hand to a person); 网上申报自动受理 and 在线签发 (auto_accept,
auto_issue). On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.engine import Conflict, Engine, NotAllowed
from orchestrator.engine.commands.auto import RunPolicy
from orchestrator.engine.lookups import LookupFailed, Sources, load_records

from .helpers import (
    AUTO_APPLICANT,
    alerts,
    case_row,
    events,
    notifications,
    open_tasks,
    refused,
    rows_of,
    step_states,
    task_row,
)

ID = "310101195001011234"
POLICY = RunPolicy(max_attempts=3, backoff_s=60, backoff_cap_s=600, lease_s=30)


class SwitchableSource:
    """A shared-data source that can be down (what a real 数据共享 interface does now and then)."""

    def __init__(self, records: dict[str, dict]) -> None:
        self.records = records
        self.down = False
        self.asked = 0

    def fetch(self, source: str, key: str) -> dict | None:
        self.asked += 1
        if self.down:
            raise LookupFailed(f"{source}: connection refused")
        return self.records.get(key)


@pytest.fixture
def worker(engine):
    return Engine(engine.db, engine.calendar, engine.clock, auto_inline=False)


def submit(engine: Engine, age: int | None = 70, materials: tuple[str, ...] = ("id_card", "photo")) -> int:
    form = {"id_number": ID} if age is None else {"id_number": ID, "age": age}
    return engine.submit_case("lookup-mini", AUTO_APPLICANT, form, list(materials))


def test_an_application_with_every_required_material_is_accepted_by_the_system(engine):
    case_id = submit(engine)
    case = case_row(engine, case_id)
    assert case["state"] == "accepted" and case["due_at"] is not None
    accept = [e for e in events(engine, case_id) if e["kind"] == "accept"]
    assert [(e["actor"], e["to_state"]) for e in accept] == [("system", "accepted")]
    assert set(open_tasks(engine, case_id)) == {"check"}  # it reads shared data: left for a worker


def test_an_application_missing_a_required_material_waits_at_the_window(engine):
    case_id = submit(engine, materials=())
    assert case_row(engine, case_id)["state"] == "submitted"
    assert set(open_tasks(engine, case_id)) == {"accept"}


def test_a_look_up_fills_the_form_and_the_case_runs_to_its_e_certificate_without_a_person(engine, worker):
    load_records(engine.db, "hukou", [(ID, {"local": True, "extra": "ignored"})], engine.clock())
    case_id = submit(engine)
    assert worker.run_auto_tasks() == 1
    case = case_row(engine, case_id)
    assert (case["state"], case["outcome"]) == ("completed", "approved")
    assert case["form"]["local"] is True and case["form"]["ok"] is True
    assert step_states(engine, case_id) == {"accept": "completed", "check": "completed", "review": "skipped",
                                            "issue": "completed"}  # fmt: skip
    certificates = rows_of(engine, "certificates", case_id)
    assert [(c["key"], c["delivery"], c["electronic"]) for c in certificates] == [("card", "online", True)]
    (lookup,) = events(engine, case_id, "lookups")
    assert lookup["data"] == {"lookups": [{"source": "hukou", "key": "id_number", "found": True, "filled": ["local"]}]}
    people = {e["actor"] for e in events(engine, case_id) if e["actor"]}
    assert people <= {"system", AUTO_APPLICANT["id"]}


def test_no_record_leaves_the_form_as_it_is_and_the_rule_sends_the_case_to_a_person(engine, worker):
    case_id = submit(engine)
    assert worker.run_auto_tasks() == 1
    assert case_row(engine, case_id)["form"]["local"] is False
    assert set(open_tasks(engine, case_id)) == {"review"}
    (lookup,) = events(engine, case_id, "lookups")
    assert lookup["data"]["lookups"][0]["found"] is False


def test_a_record_with_a_value_the_field_does_not_take_is_a_failed_look_up(engine, worker):
    load_records(engine.db, "hukou", [(ID, {"local": "yes"})], engine.clock())
    case_id = submit(engine)
    batch = worker.run_auto_batch(policy=POLICY)
    assert (batch.decided, batch.failed) == (0, 1)
    (attempt,) = rows_of(engine, "auto_attempts")
    assert "local" in attempt["last_error"] and attempt["attempts"] == 1
    assert set(open_tasks(engine, case_id)) == {"check"}


def test_a_source_that_is_down_is_retried_with_backoff_then_raises_one_incident(engine, worker, clock):
    source = SwitchableSource({ID: {"local": True}})
    source.down = True
    sources = Sources(engine.db, {"hukou": source})
    case_id = submit(engine)
    check = open_tasks(engine, case_id)["check"]
    assert worker.run_auto_batch(sources=sources, policy=POLICY).failed == 1
    assert worker.run_auto_batch(sources=sources, policy=POLICY).attempts == 0  # backing off: 60 s
    clock.advance(seconds=59)
    assert worker.run_auto_batch(sources=sources, policy=POLICY).attempts == 0
    clock.advance(seconds=2)
    assert worker.run_auto_batch(sources=sources, policy=POLICY).failed == 1
    clock.advance(seconds=119)  # the second wait is twice as long
    assert worker.run_auto_batch(sources=sources, policy=POLICY).attempts == 0
    clock.advance(seconds=2)
    third = worker.run_auto_batch(sources=sources, policy=POLICY)
    assert (third.failed, third.incidents) == (1, 1)
    assert source.asked == 3
    (incident,) = rows_of(engine, "incidents", case_id)
    assert (incident["task_id"], incident["kind"], incident["attempts"], incident["state"]) == (
        check,
        "lookup",
        3,
        "open",
    )
    assert "connection refused" in incident["error"]
    (alert,) = alerts(engine, case_id, "incident")
    assert (alert["department"], alert["recipient_role"]) == ("rsj", "rsj_supervisor")
    assert len(notifications(engine, case_id, "incident")) == 1
    assert [e["data"]["attempt"] for e in events(engine, case_id, "auto_attempt_failed")] == [1, 2]
    clock.advance(days=3)  # nothing is retried forever: an incident waits for its supervisor
    assert worker.run_auto_batch(sources=sources, policy=POLICY).attempts == 0
    assert task_row(engine, check)["state"] == "ready"
    assert [i.task_id for i in worker.open_incidents("rsj")] == [check]


def incident(worker: Engine, sources: Sources, clock) -> None:
    for _ in range(POLICY.max_attempts):
        worker.run_auto_batch(sources=sources, policy=POLICY)
        clock.advance(hours=1)


def test_the_supervisor_retries_an_incident_and_the_step_is_decided_once(engine, worker, clock):
    source = SwitchableSource({ID: {"local": True}})
    source.down = True
    sources = Sources(engine.db, {"hukou": source})
    case_id = submit(engine)
    check = open_tasks(engine, case_id)["check"]
    incident(worker, sources, clock)
    assert {"retry_incident", "hand_over"} <= set(worker.available_actions("rsj_boss", task_id=check).names)
    assert not {"retry_incident", "hand_over"} & set(worker.available_actions("rsj1", task_id=check).names)
    with refused(engine, NotAllowed, "only the supervisor (rsj_supervisor) of rsj may retry it"):
        worker.retry_incident(check, "rsj1")
    source.down = False
    worker.retry_incident(check, "rsj_boss", "数据共享平台已恢复")
    (closed,) = rows_of(engine, "incidents", case_id)
    assert (closed["state"], closed["closed_by"], closed["note"]) == ("retried", "rsj_boss", "数据共享平台已恢复")
    assert worker.run_auto_batch(sources=sources, policy=POLICY).decided == 1
    assert case_row(engine, case_id)["state"] == "completed"
    assert rows_of(engine, "auto_attempts") == []
    completions = [e for e in events(engine, case_id, "task_completed") if e["task_id"] == check]
    assert len(completions) == 1
    with refused(engine, NotAllowed, "case"):
        worker.retry_incident(check, "rsj_boss")


def test_a_rule_that_cannot_be_evaluated_is_no_refusal_but_an_incident_after_its_retries(engine, worker, clock):
    load_records(engine.db, "hukou", [(ID, {"local": True})], engine.clock())
    case_id = submit(engine, age=None)  # `age >= 60` on an empty age raises
    check = open_tasks(engine, case_id)["check"]
    incident(worker, Sources(engine.db), clock)
    (row,) = rows_of(engine, "incidents", case_id)
    assert row["kind"] == "rule" and "age >= 60" in row["error"]
    assert task_row(engine, check)["state"] == "ready" and task_row(engine, check)["outcome"] is None
    worker.retry_incident(check, "rsj_boss", "再试一次")
    assert worker.run_auto_batch(policy=POLICY).failed == 1  # tried again, fails again: attempt 1 of a new round
    assert rows_of(engine, "auto_attempts")[0]["attempts"] == 1


def test_the_supervisor_hands_an_incident_to_a_person_who_works_it_from_the_queue(engine, worker, clock):
    case_id = submit(engine, age=None)
    check = open_tasks(engine, case_id)["check"]
    incident(worker, Sources(engine.db), clock)
    with refused(engine, NotAllowed, "automatic step"):
        engine.claim_task(check, "rsj1")
    worker.hand_over(check, "rsj_boss", "年龄缺失，请人工核实")
    task = task_row(engine, check)
    assert (task["kind"], task["state"]) == ("approval", "ready")
    assert rows_of(engine, "incidents", case_id)[0]["state"] == "handed_over"
    assert rows_of(engine, "auto_attempts") == []
    assert worker.run_auto_batch(policy=POLICY).attempts == 0  # no worker runs it any more
    assert any("转人工办理" in n["message"] for n in notifications(engine, case_id, "task_ready"))
    engine.claim_task(check, "rsj1")
    engine.complete_task(check, "rsj1", "approve", "核实户籍，年满60周岁")
    assert step_states(engine, case_id)["check"] == "completed"
    assert "review" in open_tasks(engine, case_id)  # the rule's result field was never written: reviewed


def test_a_rule_that_cannot_be_evaluated_inline_waits_for_a_worker_instead_of_refusing(engine):
    case_id = engine.submit_case("auto-mini", AUTO_APPLICANT, {"age": 70}, ["id_card"])
    engine.accept_case(case_id, "zwfw1")  # decided inline: the rule could be evaluated
    assert set(open_tasks(engine, case_id)) == {"review"}
    assert step_states(engine, case_id)["check"] == "completed"


def test_run_auto_task_refuses_an_open_incident_and_a_decided_task(engine, worker, clock):
    case_id = submit(engine, age=None)
    check = open_tasks(engine, case_id)["check"]
    incident(worker, Sources(engine.db), clock)
    with refused(engine, NotAllowed, "open incident"):
        worker.run_auto_task(check, policy=POLICY)
    worker.hand_over(check, "rsj_boss")
    with refused(engine, Conflict, "no waiting auto task"):
        worker.run_auto_task(check, policy=POLICY)


def test_an_incident_of_a_withdrawn_case_is_closed_by_the_next_run(engine, worker, clock):
    case_id = submit(engine, age=None)
    incident(worker, Sources(engine.db), clock)
    engine.withdraw_case(case_id, AUTO_APPLICANT["id"])
    assert worker.close_stale_incidents() == 1
    (row,) = rows_of(engine, "incidents", case_id)
    assert (row["state"], row["closed_by"]) == ("closed", "system")
    assert rows_of(engine, "auto_attempts") == []


def test_a_worker_whose_lease_lapsed_decides_nothing(engine, worker, clock):
    """The look-up outlived the lease; another worker took the task over: the first one's result is dropped."""
    from orchestrator.engine.commands import auto

    load_records(engine.db, "hukou", [(ID, {"local": True})], engine.clock())
    case_id = submit(engine)
    first = worker.core.run(auto.run_next_auto, POLICY)
    assert isinstance(first, auto.Lease)
    assert worker.core.run(auto.run_next_auto, POLICY) is None  # held: nobody else picks it
    clock.advance(seconds=POLICY.lease_s + 1)
    second = worker.core.run(auto.run_next_auto, POLICY)
    assert isinstance(second, auto.Lease) and second.token != first.token
    sources = Sources(engine.db)
    assert auto.finish_with_lookups(worker.core, first, sources, POLICY) == "lost"
    assert set(open_tasks(engine, case_id)) == {"check"}
    assert auto.finish_with_lookups(worker.core, second, sources, POLICY) == "decided"
    assert case_row(engine, case_id)["state"] == "completed"


def test_auto_issue_waits_for_a_person_while_deferred_materials_are_owed(engine, worker):
    load_records(engine.db, "hukou", [(ID, {"local": True})], engine.clock())
    case_id = submit(engine, materials=("id_card",))  # the photo is missing: the window decides
    assert case_row(engine, case_id)["state"] == "submitted"
    engine.accept_case(case_id, "zwfw1", deferred=["photo"], deferred_limit="1d")  # 容缺受理
    assert worker.run_auto_tasks() == 1
    assert set(open_tasks(engine, case_id)) == {"issue"}  # no e-certificate while materials are owed
    assert rows_of(engine, "certificates", case_id) == []
    engine.supply_materials(case_id, AUTO_APPLICANT["id"], ["photo"])
    engine.issue_certificates(open_tasks(engine, case_id)["issue"], "rsj1", "online")
    assert case_row(engine, case_id)["state"] == "completed"


def test_backoff_grows_and_is_capped():
    policy = RunPolicy(backoff_s=30, backoff_cap_s=100)
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [timedelta(seconds=s) for s in (30, 60, 100, 100)]
