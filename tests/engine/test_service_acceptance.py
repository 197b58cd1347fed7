"""Application and 综合受理: submit_case, accept_case (容缺受理), refuse_case (不予受理),
request_supplement / supply_materials (一次性告知补正 before acceptance)."""

from __future__ import annotations

import pytest

from orchestrator.engine import InvalidData, NotAllowed, NotFound

from .helpers import (
    KAIBAN_APPLICANT,
    KAIBAN_FORM,
    alerts,
    at,
    case_row,
    edges,
    events,
    notifications,
    open_tasks,
    refused,
    row_counts,
    rows_of,
    submit_kaiban,
    task_row,
    tasks_of,
)

# ----------------------------------------------------------------------------------------------
# submit_case


def test_submit_creates_a_submitted_case_with_an_acceptance_task_for_the_window(engine):
    case_id = submit_kaiban(engine)
    case = case_row(engine, case_id)
    assert case["state"] == "submitted"
    assert case["definition_key"] == "kaiban-mini" and case["definition_version"] == 1
    assert case["number"].startswith("TB20260302-")
    assert case["form"] == KAIBAN_FORM
    assert case["materials"] == ["id_card", "lease"]
    assert case["due_at"] is None and case["accepted_at"] is None  # the clock starts at acceptance
    (task,) = tasks_of(engine, case_id)
    assert (task["step_id"], task["state"], task["department"]) == ("accept", "ready", "zwfw")
    assert task["due_at"] == at(2, 11)  # the 1h limit of the acceptance step
    assert [e["kind"] for e in events(engine, case_id)] == ["submitted", "task_ready"]
    assert events(engine, case_id, "submitted")[0]["actor"] == KAIBAN_APPLICANT["id"]
    (ready,) = notifications(engine, case_id, "task_ready")
    assert ready["recipient_department"] == "zwfw"


def test_submit_fills_defaults_and_leaves_optional_fields_empty(engine):
    case_id = engine.submit_case("kaiban-mini", KAIBAN_APPLICANT, {"company_name": "丙公司"}, ["id_card", "lease"])
    assert case_row(engine, case_id)["form"] == {"company_name": "丙公司", "needs_seal": True, "employees": None}


def test_a_repeated_idempotency_key_returns_the_same_case(engine):
    first = submit_kaiban(engine, idempotency_key="portal-42")
    again = submit_kaiban(engine, idempotency_key="portal-42", form={"company_name": "别的公司"})
    assert again == first
    assert row_counts(engine)["cases"] == 1
    assert case_row(engine, first)["form"]["company_name"] == "甲公司"
    other = submit_kaiban(engine, idempotency_key="portal-43")
    assert other != first


def test_form_errors_list_every_problem(engine):
    bad = {"needs_seal": "yes", "employees": -1, "colour": "red"}  # and company_name is missing
    with refused(engine, InvalidData, "the form has problems") as info:
        engine.submit_case("kaiban-mini", KAIBAN_APPLICANT, bad, ["id_card"])
    problems = info.value.problems
    assert len(problems) == 4, problems
    text = " | ".join(problems)
    assert "unknown form field 'colour'" in text
    assert "company_name (企业名称) is required" in text
    assert "needs_seal (是否刻制公章): expected true or false" in text
    assert "employees (参保职工人数): -1 is below the minimum 0" in text


@pytest.mark.parametrize(
    ("key", "applicant", "materials", "error", "words"),
    [
        ("kaiban-none", KAIBAN_APPLICANT, ["id_card"], NotFound, ["no published definition 'kaiban-none'", "mini"]),
        ("kaiban-mini", {"id": "X1"}, ["id_card"], InvalidData, ["applicant needs an id", "and a name"]),
        ("kaiban-mini", KAIBAN_APPLICANT, ["id_card", "pass"], InvalidData, ["'pass' is no material of kaiban-mini"]),
    ],
)  # fmt: skip
def test_submit_refuses_what_it_cannot_file(engine, key, applicant, materials, error, words):
    with refused(engine, error, *words):
        engine.submit_case(key, applicant, KAIBAN_FORM, materials)


# ----------------------------------------------------------------------------------------------
# accept_case


def test_accept_starts_the_clock_and_releases_the_first_department_step(engine, clock):
    case_id = submit_kaiban(engine)
    clock.advance(minutes=30)
    engine.accept_case(case_id, "zwfw2", opinion="材料齐全")
    case = case_row(engine, case_id)
    assert case["state"] == "accepted"
    assert case["accepted_at"] == at(2, 10, 30)
    assert case["due_at"] == at(3, 17)  # promised 1d: end of the first working day after acceptance
    assert case["sla_state"] == "on_track"
    accept = tasks_of(engine, case_id)[0]
    assert (accept["state"], accept["outcome"], accept["completed_by"], accept["opinion"]) == (
        "completed",
        "approve",
        "zwfw2",
        "材料齐全",
    )
    assert open_tasks(engine, case_id).keys() == {"licence"}
    assert task_row(engine, open_tasks(engine, case_id)["licence"])["due_at"] == at(2, 14, 30)  # 0.5d = 4h
    assert ("accept", "licence") in edges(engine, case_id)
    accepted = events(engine, case_id, "accept")
    assert [(e["from_state"], e["to_state"], e["actor"]) for e in accepted] == [("submitted", "accepted", "zwfw2")]
    (told,) = notifications(engine, case_id, "case_accepted")
    assert told["recipient_user"] == KAIBAN_APPLICANT["id"]


def test_accept_with_deferred_material_sets_the_supply_deadline(engine):
    case_id = submit_kaiban(engine, materials=["id_card"])
    engine.accept_case(case_id, "zwfw1", deferred=["lease"], deferred_limit="4h")
    case = case_row(engine, case_id)
    assert case["state"] == "accepted"
    assert case["deferred"] == ["lease"]
    assert case["deferred_due_at"] == at(2, 14)
    # the applicant brings the lease later: it is no longer owed
    engine.supply_materials(case_id, KAIBAN_APPLICANT["id"], ["lease"])
    case = case_row(engine, case_id)
    assert case["deferred"] == [] and case["deferred_due_at"] is None
    assert case["materials"] == ["id_card", "lease"]
    assert case["state"] == "accepted"
    assert events(engine, case_id, "materials_supplied")[0]["data"] == {"materials": ["lease"]}


def test_the_deferred_limit_may_equal_the_promised_limit_but_not_exceed_it(engine):
    case_id = submit_kaiban(engine, materials=["id_card"])
    with refused(engine, InvalidData, "supply deadline 1.5d may not exceed the promised limit 1d"):
        engine.accept_case(case_id, "zwfw1", deferred=["lease"], deferred_limit="1.5d")
    with refused(engine, InvalidData, "needs deferred_limit"):
        engine.accept_case(case_id, "zwfw1", deferred=["lease"])
    with refused(engine, InvalidData, "deferred_limit: bad limit '2 days'"):
        engine.accept_case(case_id, "zwfw1", deferred=["lease"], deferred_limit="2 days")
    engine.accept_case(case_id, "zwfw1", deferred=["lease"], deferred_limit="1d")
    assert case_row(engine, case_id)["deferred_due_at"] == at(3, 17)


def test_accept_refuses_when_a_material_that_cannot_be_deferred_is_missing(engine):
    case_id = submit_kaiban(engine, materials=["lease"])
    with refused(
        engine, InvalidData, "cannot accept", "'id_card' (法定代表人身份证明) is missing and may not be deferred"
    ):
        engine.accept_case(case_id, "zwfw1", deferred=["id_card"], deferred_limit="1d")
    with refused(engine, InvalidData, "'id_card' (法定代表人身份证明) is missing"):
        engine.accept_case(case_id, "zwfw1")


def test_accept_refuses_a_missing_deferrable_material_that_was_not_deferred(engine):
    case_id = submit_kaiban(engine, materials=["id_card"])
    with refused(engine, InvalidData, "'lease' (住所使用证明) is missing and may not be deferred"):
        engine.accept_case(case_id, "zwfw1")


def test_accept_refuses_deferring_a_material_that_is_not_missing(engine):
    case_id = submit_kaiban(engine)
    with refused(engine, InvalidData, "'lease' is no missing material of this case"):
        engine.accept_case(case_id, "zwfw1", deferred=["lease"], deferred_limit="1d")


def test_only_window_staff_accept_and_only_once(engine):
    case_id = submit_kaiban(engine)
    with refused(engine, NotAllowed, "scjg1 is not a member of department zwfw", "accept applications"):
        engine.accept_case(case_id, "scjg1")
    engine.accept_case(case_id, "zwfw1")
    with refused(engine, NotAllowed, "受理 (accept) is not allowed", "is accepted", "must be one of: submitted"):
        engine.accept_case(case_id, "zwfw2")
    with refused(engine, NotFound, "case 999999 does not exist"):
        engine.accept_case(999999, "zwfw1")


def test_the_acceptance_step_is_not_worked_with_complete_task(engine):
    case_id = submit_kaiban(engine)
    with refused(engine, NotAllowed, "accept_case, refuse_case or request_supplement"):
        engine.complete_task(open_tasks(engine, case_id)["accept"], "zwfw1")


# ----------------------------------------------------------------------------------------------
# refuse_case


def test_refuse_closes_the_case_with_reason_and_remedy_and_reports_it(engine, clock):
    case_id = submit_kaiban(engine)
    accept_task = open_tasks(engine, case_id)["accept"]
    clock.advance(minutes=20)
    engine.refuse_case(case_id, "zwfw1", "经营范围属于禁止类", "可在六十日内申请行政复议或六个月内提起行政诉讼")
    case = case_row(engine, case_id)
    assert (case["state"], case["outcome"]) == ("not_accepted", "not_accepted")
    assert case["reason"] == "经营范围属于禁止类"
    assert case["remedy"].startswith("可在六十日内申请行政复议")
    assert case["closed_at"] == at(2, 10, 20)
    task = task_row(engine, accept_task)
    assert (task["state"], task["outcome"], task["completed_by"]) == ("completed", "reject", "zwfw1")
    assert open_tasks(engine, case_id) == {}
    (alert,) = alerts(engine, case_id)  # 否定报备 to the window's supervisor
    assert alert["kind"] == "negative_decision"
    assert alert["subject"] == f"task:{accept_task}"
    assert (alert["department"], alert["recipient_role"]) == ("zwfw", "zwfw_supervisor")
    assert "经营范围属于禁止类" in alert["message"]
    (report,) = notifications(engine, case_id, "negative_decision")
    assert report["recipient_role"] == "zwfw_supervisor"
    (told,) = notifications(engine, case_id, "case_not_accepted")
    assert told["recipient_user"] == KAIBAN_APPLICANT["id"]
    assert "经营范围属于禁止类" in told["message"] and "行政复议" in told["message"]
    refusal = events(engine, case_id, "refuse")
    assert [(e["from_state"], e["to_state"]) for e in refusal] == [("submitted", "not_accepted")]


@pytest.mark.parametrize(("reason", "remedy"), [("", "可申请行政复议"), ("材料虚假", "  "), (None, None)])
def test_refuse_needs_a_reason_and_a_remedy(engine, reason, remedy):
    case_id = submit_kaiban(engine)
    with refused(engine, InvalidData, "needs a written reason and the remedy"):
        engine.refuse_case(case_id, "zwfw1", reason, remedy)


def test_refuse_is_for_window_staff_before_acceptance_only(engine):
    case_id = submit_kaiban(engine)
    with refused(engine, NotAllowed, "gaj1 is not a member of department zwfw"):
        engine.refuse_case(case_id, "gaj1", "不符合条件", "可申请行政复议")
    engine.accept_case(case_id, "zwfw1")
    with refused(engine, NotAllowed, "不予受理 (refuse) is not allowed", "is accepted"):
        engine.refuse_case(case_id, "zwfw1", "不符合条件", "可申请行政复议")


# ----------------------------------------------------------------------------------------------
# request_supplement / supply_materials (一次性告知)


def test_one_notice_lists_every_missing_material_and_the_clock_waits(engine, clock):
    case_id = submit_kaiban(engine, materials=[])
    accept_task = open_tasks(engine, case_id)["accept"]
    with refused(engine, InvalidData, "the 补正 notice is incomplete", "'lease' is missing too", "一次性告知"):
        engine.request_supplement(case_id, "zwfw1", ["id_card"], "请补交法定代表人身份证明")
    notice_id = engine.request_supplement(case_id, "zwfw1", ["lease", "id_card"], "请补交身份证明和住所使用证明")
    (notice,) = rows_of(engine, "supplements", case_id)
    assert notice["id"] == notice_id
    assert notice["missing"] == ["id_card", "lease"]
    assert notice["task_id"] == accept_task and notice["supplied_at"] is None
    case = case_row(engine, case_id)
    assert case["state"] == "submitted" and case["due_at"] is None
    assert task_row(engine, accept_task)["outcome"] == "return"
    assert open_tasks(engine, case_id) == {}
    (told,) = notifications(engine, case_id, "supplement_requested")
    assert told["recipient_user"] == KAIBAN_APPLICANT["id"] and "住所使用证明" in told["message"]
    assert events(engine, case_id, "supplement_requested")[0]["data"] == {"missing": ["id_card", "lease"]}
    with refused(engine, NotAllowed, "waiting for the applicant's 补正 materials"):
        engine.accept_case(case_id, "zwfw1")
    with refused(engine, NotAllowed, "already has a 补正 notice out"):
        engine.request_supplement(case_id, "zwfw1", ["id_card", "lease"], "再次告知")

    # a day later the applicant brings everything; acceptance starts the clock only then
    clock.set(at(3, 10))
    engine.supply_materials(case_id, KAIBAN_APPLICANT["id"], ["id_card", "lease"])
    assert rows_of(engine, "supplements", case_id)[0]["supplied_at"] == at(3, 10)
    case = case_row(engine, case_id)
    assert case["materials"] == ["id_card", "lease"] and case["due_at"] is None
    new_accept = open_tasks(engine, case_id)["accept"]
    assert new_accept != accept_task
    assert task_row(engine, new_accept)["due_at"] == at(3, 11)
    engine.accept_case(case_id, "zwfw1")
    assert case_row(engine, case_id)["due_at"] == at(4, 17)


def test_supply_must_bring_everything_the_notice_asked_for(engine):
    case_id = submit_kaiban(engine, materials=[])
    engine.request_supplement(case_id, "zwfw1", ["id_card", "lease"], "请补交")
    with refused(engine, InvalidData, "the 补正 notice asked for more", "'lease' is still missing"):
        engine.supply_materials(case_id, KAIBAN_APPLICANT["id"], ["id_card"])
    with refused(engine, NotAllowed, "only the applicant may supply materials"):
        engine.supply_materials(case_id, "zwfw1", ["id_card", "lease"])
    with refused(engine, InvalidData, "'photo' is no material of kaiban-mini"):
        engine.supply_materials(case_id, KAIBAN_APPLICANT["id"], ["id_card", "lease", "photo"])


def test_a_supplement_notice_needs_materials_and_text(engine):
    case_id = submit_kaiban(engine, materials=["id_card"])
    with refused(engine, InvalidData, "lists the missing materials and says what to supply"):
        engine.request_supplement(case_id, "zwfw1", [], "请补交")
    with refused(engine, InvalidData, "lists the missing materials and says what to supply"):
        engine.request_supplement(case_id, "zwfw1", ["lease"], " ")
    with refused(engine, InvalidData, "'deed' is no material of kaiban-mini"):
        engine.request_supplement(case_id, "zwfw1", ["lease", "deed"], "请补交")
    with refused(engine, NotAllowed, "swj1 is not a member of department zwfw", "request 补正"):
        engine.request_supplement(case_id, "swj1", ["lease"], "请补交")


def test_supply_is_refused_when_nothing_is_owed(engine):
    case_id = submit_kaiban(engine)
    with refused(engine, NotAllowed, "is not waiting for materials"):
        engine.supply_materials(case_id, KAIBAN_APPLICANT["id"], ["lease"])


def test_a_case_refused_while_its_notice_is_out_takes_no_more_materials(engine):
    case_id = submit_kaiban(engine, materials=["id_card"])
    engine.request_supplement(case_id, "zwfw1", ["lease"], "请补交住所使用证明")
    engine.refuse_case(case_id, "zwfw1", "申请人放弃补正", "可申请行政复议")
    assert case_row(engine, case_id)["state"] == "not_accepted"
    with refused(engine, NotAllowed, "not_accepted"):
        engine.supply_materials(case_id, KAIBAN_APPLICANT["id"], ["lease"])


def test_refusals_of_an_unknown_case_or_task_are_not_found(engine):
    with refused(engine, NotFound, "case 424242 does not exist"):
        engine.supply_materials(424242, "x", [])
    with refused(engine, NotFound, "task 424242 does not exist"):
        engine.claim_task(424242, "scjg1")
    with refused(engine, NotFound, "task 424242 does not exist"):
        engine.complete_task(424242, "scjg1")
