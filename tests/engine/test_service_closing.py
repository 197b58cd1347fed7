"""Closing a case: withdraw_case (撤回申请, applicant only), terminate_lapsed_deferrals (容缺 materials
not supplied by their deadline: 终止办理), issue_certificates (证照发放 / 出件:
numbers, delivery allowed by the step, mail needs a tracking number; completes the case) and
evaluate_case (好差评: once, whatever the outcome; 不满意 or worse opens a rectification task with a
working-day due time)."""

from __future__ import annotations

import pytest

from orchestrator.definition.validator import load_definition, load_departments
from orchestrator.engine import Conflict, InvalidData, NotAllowed
from orchestrator.engine.publish import store_definition

from ..conftest import FIXTURES
from .helpers import (
    KAIBAN_APPLICANT,
    accepted_kaiban,
    alerts,
    at,
    case_row,
    events,
    notifications,
    open_tasks,
    refuse_case,
    refused,
    reject,
    rows_of,
    step_states,
    submit_kaiban,
    task_row,
)


def at_issue(engine, **kwargs) -> tuple[int, int]:
    """(case id, issue task id) of a kaiban-mini case whose departments have all approved."""
    case_id = accepted_kaiban(engine, **kwargs)
    engine.complete_task(open_tasks(engine, case_id)["licence"], "scjg1")
    for step, user in (("seal", "gaj1"), ("invoice", "swj1"), ("social", "rsj1")):
        engine.complete_task(open_tasks(engine, case_id)[step], user)
    return case_id, open_tasks(engine, case_id)["issue"]


def completed_case(engine, clock) -> int:
    case_id, issue = at_issue(engine)
    engine.issue_certificates(issue, "zwfw1")
    clock.set(at(3, 11))
    return case_id


# ----------------------------------------------------------------------------------------------
# withdraw_case


def test_the_applicant_withdraws_and_every_open_task_is_cancelled(engine, clock):
    case_id = accepted_kaiban(engine)
    engine.complete_task(open_tasks(engine, case_id)["licence"], "scjg1")
    before = open_tasks(engine, case_id)
    clock.advance(hours=1)
    engine.withdraw_case(case_id, KAIBAN_APPLICANT["id"], "不再开办")
    case = case_row(engine, case_id)
    assert (case["state"], case["outcome"], case["reason"], case["closed_at"]) == (
        "withdrawn",
        "withdrawn",
        "不再开办",
        at(2, 11),
    )
    assert open_tasks(engine, case_id) == {}
    assert {task_row(engine, t)["state"] for t in before.values()} == {"cancelled"}
    cancelled = events(engine, case_id, "task_cancelled")
    assert {e["task_id"] for e in cancelled} == set(before.values())
    assert all(e["actor"] == KAIBAN_APPLICANT["id"] and e["data"] == {"why": "withdrawn"} for e in cancelled)
    assert [(e["from_state"], e["to_state"]) for e in events(engine, case_id, "withdraw")] == [
        ("in_progress", "withdrawn")
    ]


def test_a_submitted_case_may_be_withdrawn_too(engine):
    case_id = submit_kaiban(engine)
    engine.withdraw_case(case_id, KAIBAN_APPLICANT["id"])
    case = case_row(engine, case_id)
    assert (case["state"], case["reason"]) == ("withdrawn", None)
    assert step_states(engine, case_id) == {"accept": "cancelled"}


def test_withdrawing_a_suspended_case_ends_its_suspension(engine, clock):
    case_id = accepted_kaiban(engine)
    engine.suspend_case(case_id, "scjg1", "hearing", "听证", "10d")
    clock.advance(hours=2)
    engine.withdraw_case(case_id, KAIBAN_APPLICANT["id"], "放弃")
    (suspension,) = rows_of(engine, "suspensions", case_id)
    assert (suspension["ended_at"], suspension["result"]) == (at(2, 12), "撤回申请")


def test_only_the_applicant_withdraws_and_only_an_open_case(engine, clock):
    case_id = accepted_kaiban(engine)
    with refused(engine, NotAllowed, "only the applicant may withdraw"):
        engine.withdraw_case(case_id, "zwfw1")
    engine.withdraw_case(case_id, KAIBAN_APPLICANT["id"])
    with refused(engine, NotAllowed, "撤回申请 (withdraw) is not allowed", "is withdrawn"):
        engine.withdraw_case(case_id, KAIBAN_APPLICANT["id"])
    done = completed_case(engine, clock)
    with refused(engine, NotAllowed, "撤回申请 (withdraw) is not allowed", "is completed"):
        engine.withdraw_case(done, KAIBAN_APPLICANT["id"])


# ----------------------------------------------------------------------------------------------
# terminate_lapsed_deferrals


def deferred_case(engine) -> int:
    """A kaiban-mini case accepted at 10:00 under 容缺: the lease is owed by 14:00."""
    case_id = submit_kaiban(engine, materials=["id_card"])
    engine.accept_case(case_id, "zwfw1", deferred=["lease"], deferred_limit="4h")
    return case_id


def test_容缺_materials_not_supplied_by_their_deadline_terminate_the_case(engine, clock):
    case_id = deferred_case(engine)
    engine.claim_task(open_tasks(engine, case_id)["licence"], "scjg1")
    clock.set(at(2, 14))
    assert engine.terminate_lapsed_deferrals() == []  # the deadline itself is still in time
    clock.set(at(2, 14, 1))
    assert engine.terminate_lapsed_deferrals() == [case_id]
    case = case_row(engine, case_id)
    assert (case["state"], case["outcome"], case["closed_at"]) == ("terminated", "terminated", at(2, 14, 1))
    assert case["reason"] == "容缺受理的材料逾期未补齐：住所使用证明（补齐期限 2026-03-02 14:00）"
    assert open_tasks(engine, case_id) == {}
    assert step_states(engine, case_id) == {"accept": "completed", "licence": "cancelled"}
    (cancelled,) = events(engine, case_id, "task_cancelled")
    assert (cancelled["actor"], cancelled["from_state"], cancelled["data"]) == (
        "system",
        "claimed",
        {"why": "deferral_lapsed"},
    )
    assert [(e["from_state"], e["to_state"], e["actor"]) for e in events(engine, case_id, "terminate")] == [
        ("in_progress", "terminated", "system")
    ]
    (told,) = notifications(engine, case_id, "case_terminated")
    assert told["recipient_user"] == KAIBAN_APPLICANT["id"] and "已终止办理" in told["message"]
    (reported,) = alerts(engine, case_id, "negative_decision")  # 否定报备 to the window that accepted
    assert reported["department"] == "zwfw" and "终止办理" in reported["message"]
    assert engine.terminate_lapsed_deferrals() == []  # once
    with refused(engine, NotAllowed, "is terminated; it takes no more materials"):
        engine.supply_materials(case_id, KAIBAN_APPLICANT["id"], ["lease"])
    with refused(engine, NotAllowed, "撤回申请 (withdraw) is not allowed", "is terminated"):
        engine.withdraw_case(case_id, KAIBAN_APPLICANT["id"])


def test_materials_supplied_in_time_stop_the_timer(engine, clock):
    case_id = deferred_case(engine)
    clock.set(at(2, 13, 59))
    engine.supply_materials(case_id, KAIBAN_APPLICANT["id"], ["lease"])
    clock.set(at(5, 10))
    assert engine.terminate_lapsed_deferrals() == []
    assert case_row(engine, case_id)["state"] == "accepted"


def test_a_late_supply_is_refused_and_the_timer_still_terminates(engine, clock):
    case_id = deferred_case(engine)
    clock.set(at(2, 15))
    with refused(engine, NotAllowed, "容缺 supply deadline 2026-03-02 14:00 has passed", "to be terminated"):
        engine.supply_materials(case_id, KAIBAN_APPLICANT["id"], ["lease"])
    assert engine.terminate_lapsed_deferrals() == [case_id]


def test_a_suspension_does_not_stop_the_applicants_deadline_and_ends_with_the_case(engine, clock):
    case_id = deferred_case(engine)
    engine.suspend_case(case_id, "scjg1", "hearing", "听证", "10d")
    clock.set(at(3, 10))
    assert engine.terminate_lapsed_deferrals() == [case_id]
    assert case_row(engine, case_id)["state"] == "terminated"
    (suspension,) = rows_of(engine, "suspensions", case_id)
    assert (suspension["ended_at"], suspension["result"]) == (at(3, 10), "终止办理")
    assert [(e["from_state"], e["to_state"]) for e in events(engine, case_id, "terminate")] == [
        ("suspended", "terminated")
    ]


def test_closed_cases_are_never_terminated(engine, clock):
    withdrawn = deferred_case(engine)
    engine.withdraw_case(withdrawn, KAIBAN_APPLICANT["id"])
    clock.set(at(3, 10))
    assert engine.terminate_lapsed_deferrals() == []
    assert case_row(engine, withdrawn)["state"] == "withdrawn"


# ----------------------------------------------------------------------------------------------
# issue_certificates


def test_issuing_by_mail_records_the_certificates_and_completes_the_case(engine, clock):
    case_id, issue = at_issue(engine)
    clock.advance(hours=2)
    numbers = engine.issue_certificates(
        issue, "zwfw2", "mail", numbers={"business_licence": "91310000MA1K4AB12X"}, tracking_number="SF1234567890"
    )
    assert numbers == ["91310000MA1K4AB12X"]
    (certificate,) = rows_of(engine, "certificates", case_id)
    assert (certificate["key"], certificate["name"], certificate["issuer"]) == ("business_licence", "营业执照", "scjg")
    assert (certificate["delivery"], certificate["tracking_number"], certificate["electronic"]) == (
        "mail",
        "SF1234567890",
        True,
    )
    assert certificate["issued_at"] == at(2, 12)
    case = case_row(engine, case_id)
    assert (case["state"], case["outcome"], case["closed_at"]) == ("completed", "approved", at(2, 12))
    task = task_row(engine, issue)
    assert (task["state"], task["completed_by"]) == ("completed", "zwfw2")
    assert events(engine, case_id, "certificates_issued")[0]["data"] == {
        "numbers": ["91310000MA1K4AB12X"],
        "delivery": "mail",
    }
    assert [(e["from_state"], e["to_state"]) for e in events(engine, case_id, "complete")] == [
        ("in_progress", "completed")
    ]
    (told,) = notifications(engine, case_id, "case_completed")
    assert told["recipient_user"] == KAIBAN_APPLICANT["id"]


def publish_with_annex(engine, clock) -> None:
    """cert-mini: kaiban-mini whose 市场监管 also reviews a conditional 执照附页 (when employees > 10),
    the 附页 a certificate of its own produced by that step alone."""
    text = (FIXTURES / "kaiban-mini.yaml").read_text(encoding="utf-8").replace("key: kaiban-mini", "key: cert-mini")
    text = text.replace(
        "  - {id: issue, kind: issue, name: 统一出件, department: zwfw, after: [seal, invoice, social], limit: 1h,\n"
        "     certificates: [{key: business_licence, name: 营业执照, issuer: scjg}], delivery: [window, mail]}",
        "  - {id: annex, kind: approval, name: 执照附页审核, department: scjg, after: [licence],\n"
        "     when: employees > 10, limit: 2h}\n"
        "  - {id: issue, kind: issue, name: 统一出件, department: zwfw, after: [seal, invoice, social, annex],\n"
        "     limit: 1h, delivery: [window, mail], certificates: [\n"
        "       {key: business_licence, name: 营业执照, issuer: scjg},\n"
        "       {key: annex_page, name: 执照附页, issuer: scjg, steps: [annex]}]}",
    )
    assert "annex_page" in text
    departments = load_departments(FIXTURES / "departments.yaml")
    definition = load_definition(FIXTURES / "cert-mini.yaml", departments, text=text)
    with engine.db.begin() as conn:
        store_definition(conn, definition, text, clock())


@pytest.mark.parametrize(("employees", "issued"), [(2, ["business_licence"]), (20, ["business_licence", "annex_page"])])
def test_a_certificate_goes_out_only_if_its_own_step_ran_though_its_issuer_approved_another(
    engine, clock, employees, issued
):
    publish_with_annex(engine, clock)
    form = {"company_name": "甲公司", "needs_seal": False, "employees": employees}
    case_id = engine.submit_case("cert-mini", KAIBAN_APPLICANT, form, ["id_card", "lease"])
    engine.accept_case(case_id, "zwfw1")
    engine.complete_task(open_tasks(engine, case_id)["licence"], "scjg1")
    for step, user in (("invoice", "swj1"), ("social", "rsj1"), ("annex", "scjg2")):
        if step in open_tasks(engine, case_id):
            engine.complete_task(open_tasks(engine, case_id)[step], user)
    assert step_states(engine, case_id)["annex"] == ("completed" if employees > 10 else "skipped")
    engine.issue_certificates(open_tasks(engine, case_id)["issue"], "zwfw1")
    assert [c["key"] for c in rows_of(engine, "certificates", case_id)] == issued


def test_without_given_numbers_the_case_number_makes_one(engine):
    case_id, issue = at_issue(engine)
    (number,) = engine.issue_certificates(issue, "zwfw1", electronic=False)
    assert number == f"{case_row(engine, case_id)['number']}-BUSINESS_LICENCE"
    assert rows_of(engine, "certificates", case_id)[0]["electronic"] is False


@pytest.mark.parametrize(
    ("delivery", "kwargs", "words"),
    [
        ("online", {}, ["delivery 'online': this step delivers by window, mail"]),
        ("mail", {}, ["mail delivery (免费邮寄) needs the tracking number"]),
        ("window", {"numbers": {"seal_record": "X1"}}, ["'seal_record' is not issued by step issue"]),
    ],
)
def test_issue_refuses_bad_delivery_and_unknown_certificates(engine, delivery, kwargs, words):
    _, issue = at_issue(engine)
    with refused(engine, InvalidData, *words):
        engine.issue_certificates(issue, "zwfw1", delivery, **kwargs)


def test_issue_is_for_the_issue_step_by_its_department(engine):
    case_id, issue = at_issue(engine)
    licence = next(t for t in rows_of(engine, "tasks", case_id) if t["step_id"] == "licence")
    with refused(engine, NotAllowed, "办理完成 (complete) is not allowed", "is completed"):
        engine.issue_certificates(licence["id"], "scjg1")
    with refused(engine, NotAllowed, "scjg1 is not a member of department zwfw"):
        engine.issue_certificates(issue, "scjg1")
    engine.claim_task(issue, "zwfw1")
    with refused(engine, NotAllowed, "claimed by zwfw1; only they may issue its certificates"):
        engine.issue_certificates(issue, "zwfw2")


def test_an_approval_task_is_not_issued(engine):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    with refused(engine, NotAllowed, f"task {licence} (营业执照核发) is no issue (出件) step"):
        engine.issue_certificates(licence, "scjg1")


def test_a_certificate_number_in_use_is_a_conflict_and_nothing_is_written(engine):
    _, first_issue = at_issue(engine)
    engine.issue_certificates(first_issue, "zwfw1", numbers={"business_licence": "LIC-001"})
    second_case, second_issue = at_issue(engine)
    with refused(engine, Conflict, "certificate number is already in use"):
        engine.issue_certificates(second_issue, "zwfw1", numbers={"business_licence": "LIC-001"})
    assert case_row(engine, second_case)["state"] == "in_progress"
    engine.issue_certificates(second_issue, "zwfw1", numbers={"business_licence": "LIC-002"})
    assert case_row(engine, second_case)["state"] == "completed"


# ----------------------------------------------------------------------------------------------
# evaluate_case (好差评)


def test_a_good_evaluation_is_recorded_once(engine, clock):
    case_id = completed_case(engine, clock)
    evaluation_id = engine.evaluate_case(case_id, KAIBAN_APPLICANT["id"], 1, "mobile", "一次办好")
    (evaluation,) = rows_of(engine, "evaluations", case_id)
    assert evaluation["id"] == evaluation_id
    assert (evaluation["level"], evaluation["channel"], evaluation["comment"], evaluation["rectification_task"]) == (
        1,
        "mobile",
        "一次办好",
        None,
    )
    assert evaluation["at"] == at(3, 11)
    assert events(engine, case_id, "evaluated")[0]["data"] == {"level": 1, "channel": "mobile"}
    with refused(engine, Conflict, "has been rated already (一事一评)"):
        engine.evaluate_case(case_id, KAIBAN_APPLICANT["id"], 5, "pc", "改主意了")


def test_a_bad_evaluation_opens_a_rectification_task_with_a_working_day_due_time(engine, clock):
    case_id = completed_case(engine, clock)  # Tue 03-03 11:00
    engine.evaluate_case(case_id, KAIBAN_APPLICANT["id"], 4, "pc", "窗口态度差")
    (evaluation,) = rows_of(engine, "evaluations", case_id)
    task = task_row(engine, evaluation["rectification_task"])
    assert (task["step_id"], task["kind"], task["department"], task["state"]) == (
        "__rectification__",
        "rectification",
        "zwfw",
        "ready",
    )
    assert task["name"] == "差评整改：不满意" and task["opinion"] == "窗口态度差"
    assert task["due_at"] == at(10, 17)  # 5 working days after Tue 03-03
    (told,) = notifications(engine, case_id, "rectification")
    assert (told["recipient_department"], told["recipient_role"]) == ("zwfw", "zwfw_supervisor")
    assert case_row(engine, case_id)["state"] == "completed"  # the case stays closed

    with refused(engine, InvalidData, "差评整改 needs the rectification result"):
        engine.complete_task(task["id"], "zwfw1", "approve", "")
    with refused(engine, NotAllowed, "scjg1 is not a member of department zwfw"):
        engine.complete_task(task["id"], "scjg1", "approve", "已整改")
    engine.complete_task(task["id"], "zwfw_boss", "approve", "已约谈窗口人员并回访申请人")
    done = task_row(engine, task["id"])
    assert (done["state"], done["completed_by"], done["opinion"]) == (
        "completed",
        "zwfw_boss",
        "已约谈窗口人员并回访申请人",
    )


@pytest.mark.parametrize(
    ("rater", "level", "channel", "error", "words"),
    [
        (KAIBAN_APPLICANT["id"], 6, "pc", InvalidData, ["level is 1 非常满意", "5 非常不满意"]),
        (KAIBAN_APPLICANT["id"], 0, "pc", InvalidData, ["level is 1 非常满意"]),
        (KAIBAN_APPLICANT["id"], 2, "fax", InvalidData, ["channel 'fax': use one of pc, mobile"]),
        ("zwfw1", 1, "pc", NotAllowed, ["only the applicant rates the service"]),
    ],
)
def test_evaluate_refuses_bad_input(engine, clock, rater, level, channel, error, words):
    case_id = completed_case(engine, clock)
    with refused(engine, error, *words):
        engine.evaluate_case(case_id, rater, level, channel)


def test_an_open_case_is_not_evaluated_yet(engine):
    case_id = accepted_kaiban(engine)
    with refused(engine, NotAllowed, "好差评 (evaluate) is not allowed", "is accepted", "completed, not_accepted"):
        engine.evaluate_case(case_id, KAIBAN_APPLICANT["id"], 2)
    assert "evaluate" not in engine.available_actions(KAIBAN_APPLICANT["id"], case_id=case_id)


def _not_accepted(engine, clock) -> int:
    case_id = submit_kaiban(engine)
    refuse_case(engine, case_id, reason="经营范围属于禁止类")
    return case_id


def _rejected(engine, clock) -> int:
    case_id = accepted_kaiban(engine)
    reject(engine, open_tasks(engine, case_id)["licence"], "scjg1", "名称不合规")
    return case_id


def _terminated(engine, clock) -> int:
    case_id = submit_kaiban(engine, materials=["id_card"])
    engine.accept_case(case_id, "zwfw1", deferred=["lease"], deferred_limit="1h")
    clock.advance(hours=2)
    assert engine.terminate_lapsed_deferrals() == [case_id]
    return case_id


def _withdrawn(engine, clock) -> int:
    case_id = accepted_kaiban(engine)
    engine.withdraw_case(case_id, KAIBAN_APPLICANT["id"], "不办了")
    return case_id


@pytest.mark.parametrize(
    ("close", "state"),
    [
        (_not_accepted, "not_accepted"),
        (_rejected, "rejected"),
        (_terminated, "terminated"),
        (_withdrawn, "withdrawn"),
        (completed_case, "completed"),
    ],
)
def test_every_applicant_rates_the_service_whatever_the_outcome(engine, clock, close, state):
    case_id = close(engine, clock)
    assert case_row(engine, case_id)["state"] == state
    assert "evaluate" in engine.available_actions(KAIBAN_APPLICANT["id"], case_id=case_id)
    engine.evaluate_case(case_id, KAIBAN_APPLICANT["id"], 5, "pc", "结果不满意")
    (evaluation,) = rows_of(engine, "evaluations", case_id)
    assert evaluation["level"] == 5 and evaluation["rectification_task"] is not None  # 差评 is followed up
    assert task_row(engine, evaluation["rectification_task"])["state"] == "ready"
    with refused(engine, Conflict, "has been rated already (一事一评)"):
        engine.evaluate_case(case_id, KAIBAN_APPLICANT["id"], 1)
    assert case_row(engine, case_id)["state"] == state


def test_certificates_wait_for_materials_still_owed_after_a_deficiency_acceptance(engine):
    """容缺受理: the work goes on, but nothing is issued until the deferred material arrives."""
    case_id = submit_kaiban(engine, materials=["id_card"])
    engine.accept_case(case_id, "zwfw1", deferred=["lease"], deferred_limit="1d")
    engine.complete_task(open_tasks(engine, case_id)["licence"], "scjg1")
    for step, user in (("seal", "gaj1"), ("invoice", "swj1"), ("social", "rsj1")):
        engine.complete_task(open_tasks(engine, case_id)[step], user)
    issue = open_tasks(engine, case_id)["issue"]
    with refused(engine, NotAllowed, "容缺 materials are still owed (lease)"):
        engine.issue_certificates(issue, "zwfw1")
    engine.supply_materials(case_id, KAIBAN_APPLICANT["id"], ["lease"])
    assert case_row(engine, case_id)["deferred"] == []
    engine.issue_certificates(issue, "zwfw1")
    assert case_row(engine, case_id)["state"] == "completed"
