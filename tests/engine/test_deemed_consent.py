"""逾期视为同意: a department silent past its limit is deemed to consent only where the step says so;
the rule is the actor, the history says why, the department is told and its supervisor alerted."""

from __future__ import annotations

import pytest

from orchestrator.engine import NotAllowed
from orchestrator.engine.rules import DEEMED_CONSENT

from .helpers import alerts, at, case_row, events, notifications, open_tasks, refused, signoffs, task_row

APPLICANT = {"id": "91310000MA1K000009", "name": "丙公司"}


@pytest.fixture
def case_id(engine):
    case_id = engine.submit_case("consent-mini", APPLICANT, {"name": "丙公司"}, ["id_card"])
    engine.accept_case(case_id, "zwfw1")  # Mon 03-02 10:00: both reviews due Tue 03-03 17:00
    return case_id


def test_only_the_step_that_says_so_is_deemed_to_consent_after_its_limit(engine, clock, case_id):
    tasks = open_tasks(engine, case_id)
    clock.set(at(3, 16, 59))
    assert engine.deem_consent_overdue() == []  # not yet past the limit
    clock.set(at(3, 17, 1))
    assert engine.deem_consent_overdue() == [tasks["police"]]
    police = task_row(engine, tasks["police"])
    assert (police["state"], police["outcome"], police["completed_by"]) == ("completed", "approve", DEEMED_CONSENT)
    assert "逾期未答复" in police["opinion"] and "视为同意" in police["opinion"]
    assert police["signoffs_open"] == 0 and all(s["signed_by"] is None for s in signoffs(engine, tasks["police"]))
    assert task_row(engine, tasks["tax"])["state"] == "ready"  # 税务 must answer: no deemed consent
    (event,) = events(engine, case_id, "deemed_consent")
    assert (event["actor"], event["task_id"], event["data"]["rule"]) == (
        DEEMED_CONSENT,
        tasks["police"],
        "deemed_consent",
    )
    told = notifications(engine, case_id, "deemed_consent")
    assert [(n["recipient_department"], n["task_id"]) for n in told] == [("gaj", tasks["police"])]
    (alert,) = alerts(engine, case_id, "deemed_consent")
    assert (alert["department"], alert["recipient_role"]) == ("gaj", "gaj_supervisor")
    assert engine.deem_consent_overdue() == []  # once
    engine.complete_task(tasks["tax"], "swj1", "approve", "同意")
    assert set(open_tasks(engine, case_id)) == {"issue"}


def test_a_claimed_task_is_deemed_to_consent_and_its_holder_told(engine, clock, case_id):
    police = open_tasks(engine, case_id)["police"]
    engine.claim_task(police, "gaj1")
    engine.complete_task(police, "gaj1", "approve", "承办同意")  # one level of two signed
    clock.set(at(4, 9, 0))
    assert engine.deem_consent_overdue() == [police]
    assert task_row(engine, police)["assignee"] == "gaj1"
    users = [n["recipient_user"] for n in notifications(engine, case_id, "deemed_consent")]
    assert "gaj1" in users


def test_a_suspended_case_is_not_deemed_to_consent(engine, clock, case_id):
    engine.suspend_case(case_id, "gaj1", "expert_review", "需专家论证", "5d")
    clock.set(at(5, 9, 0))
    assert engine.deem_consent_overdue() == []
    assert case_row(engine, case_id)["state"] == "suspended"


def test_nobody_but_the_rule_may_deem_consent(engine, clock, case_id):
    from orchestrator.engine.commands import consent

    police = open_tasks(engine, case_id)["police"]
    assert "deemed_consent" not in engine.available_actions("gaj_boss", task_id=police)
    clock.set(at(4, 9, 0))
    assert "deemed_consent" in engine.available_actions(DEEMED_CONSENT, task_id=police)
    tax = open_tasks(engine, case_id)["tax"]
    with refused(engine, NotAllowed, "does not deem a silent department to consent"):
        engine.core.run(consent.deem_consent, tax)
