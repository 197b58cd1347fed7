"""Application and 综合受理: submit_case, accept_case (容缺受理), refuse_case (不予受理),
request_supplement / supply_materials (一次性告知补正 before acceptance)."""

from __future__ import annotations

import shutil

import pytest

from orchestrator.definition.validator import parse_definition
from orchestrator.engine import Conflict, InvalidData, NotAllowed, NotFound
from orchestrator.engine.publish import publish_paths, store_definition

from .conftest import fixture_path
from .helpers import (
    KAIBAN_APPLICANT,
    KAIBAN_FORM,
    alerts,
    at,
    case_row,
    confirm_refusal,
    edges,
    events,
    notifications,
    open_tasks,
    refuse_case,
    refused,
    report_tasks,
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


def test_refuse_goes_to_the_leader_first_and_then_closes_the_case_with_reason_and_remedy(engine, clock):
    case_id = submit_kaiban(engine)
    accept_task = open_tasks(engine, case_id)["accept"]
    clock.advance(minutes=20)
    engine.refuse_case(case_id, "zwfw1", "经营范围属于禁止类", "可在六十日内申请行政复议或六个月内提起行政诉讼")
    # 不予审批报告制: proposed, not yet decided; the applicant is told nothing yet
    case = case_row(engine, case_id)
    assert (case["state"], case["outcome"]) == ("submitted", None)
    assert task_row(engine, accept_task)["waiting"] == "leader"
    (report,) = report_tasks(engine, case_id)
    assert (report["department"], report["kind"], report["due_at"]) == ("zwfw", "report", at(3, 17))  # 1 working day
    (alert,) = alerts(engine, case_id)  # 否定报备 to the window's supervisor, before the decision
    assert alert["kind"] == "negative_decision"
    assert alert["subject"] == f"task:{report['id']}"
    assert (alert["department"], alert["recipient_role"]) == ("zwfw", "zwfw_supervisor")
    assert "经营范围属于禁止类" in alert["message"]
    (asked,) = notifications(engine, case_id, "negative_report")
    assert asked["recipient_role"] == "zwfw_supervisor"
    assert notifications(engine, case_id, "case_not_accepted") == []
    (proposal,) = rows_of(engine, "negative_reports", case_id)
    assert (proposal["kind"], proposal["task_id"], proposal["proposed_by"]) == ("not_accepted", accept_task, "zwfw1")
    assert proposal["decision"] is None

    clock.advance(minutes=40)
    engine.confirm_refusal(report["id"], "zwfw_boss", "同意不予受理")
    case = case_row(engine, case_id)
    assert (case["state"], case["outcome"]) == ("not_accepted", "not_accepted")
    assert case["reason"] == "经营范围属于禁止类"
    assert case["remedy"].startswith("可在六十日内申请行政复议")
    assert case["closed_at"] == at(2, 11)
    task = task_row(engine, accept_task)
    assert (task["state"], task["outcome"], task["completed_by"]) == ("completed", "reject", "zwfw1")
    assert open_tasks(engine, case_id) == {}
    (decided,) = rows_of(engine, "negative_reports", case_id)
    assert (decided["decision"], decided["decided_by"], decided["decided_at"]) == ("confirmed", "zwfw_boss", at(2, 11))
    (told,) = notifications(engine, case_id, "case_not_accepted")
    assert told["recipient_user"] == KAIBAN_APPLICANT["id"]
    assert "经营范围属于禁止类" in told["message"] and "行政复议" in told["message"]
    refusal = events(engine, case_id, "refuse")
    assert [(e["from_state"], e["to_state"], e["actor"]) for e in refusal] == [
        ("submitted", "not_accepted", "zwfw_boss")
    ]


def test_a_refusal_without_a_remedy_takes_the_definitions(engine):
    case_id = submit_kaiban(engine)
    refuse_case(engine, case_id, reason="材料虚假")
    case = case_row(engine, case_id)
    assert case["state"] == "not_accepted" and case["remedy"].startswith("如不服本决定")
    (told,) = notifications(engine, case_id, "case_not_accepted")
    assert "材料虚假" in told["message"] and "行政复议" in told["message"]


@pytest.mark.parametrize("reason", ["", "  ", None])
def test_refuse_needs_a_reason(engine, reason):
    case_id = submit_kaiban(engine)
    with refused(engine, InvalidData, "needs a written reason and the remedy"):
        engine.refuse_case(case_id, "zwfw1", reason, "可申请行政复议")


def test_a_refusal_without_a_remedy_is_refused_when_the_definition_has_none(engine, clock):
    """A version published before `remedy:` was required: the person must give the remedy."""
    text = fixture_path("kaiban-mini.yaml").read_text(encoding="utf-8")
    old = "\n".join(line for line in text.splitlines() if not line.startswith("remedy:")) + "\n"
    with engine.db.begin() as tx:
        store_definition(tx, parse_definition(old), old, clock())
    case_id = submit_kaiban(engine)
    assert case_row(engine, case_id)["definition_version"] == 2
    with refused(engine, InvalidData, "不予受理 needs the remedy", "行政许可法 Art. 38"):
        engine.refuse_case(case_id, "zwfw1", "材料虚假")
    engine.refuse_case(case_id, "zwfw1", "材料虚假", "可在六十日内申请行政复议")
    confirm_refusal(engine, case_id)
    assert case_row(engine, case_id)["remedy"] == "可在六十日内申请行政复议"


def test_the_leader_sends_a_refusal_back_and_the_window_decides_again(engine, clock):
    case_id = submit_kaiban(engine)
    accept_task = open_tasks(engine, case_id)["accept"]
    engine.refuse_case(case_id, "zwfw1", "经营范围存疑")
    (report,) = report_tasks(engine, case_id)
    with refused(engine, NotAllowed, "refusal (不予受理) waiting for the leader's decision"):
        engine.accept_case(case_id, "zwfw2")
    assert "accept" not in engine.available_actions("zwfw2", case_id=case_id)
    with refused(engine, NotAllowed, "only the leader (zwfw_supervisor) of zwfw decides"):
        engine.send_back_refusal(report["id"], "zwfw2", "理由不足")
    with refused(engine, InvalidData, "needs the leader's opinion"):
        engine.send_back_refusal(report["id"], "zwfw_boss", " ")
    task_actions = {a.name for a in engine.available_actions("zwfw_boss", task_id=report["id"]).actions
                    if a.subject == "task"}  # fmt: skip
    assert task_actions == {"confirm_refusal", "send_back_refusal", "urge_task"}
    engine.send_back_refusal(report["id"], "zwfw_boss", "经营范围可以登记，理由不足")
    assert task_row(engine, report["id"])["state"] == "completed"
    assert task_row(engine, accept_task)["waiting"] is None
    (decided,) = rows_of(engine, "negative_reports", case_id)
    assert (decided["decision"], decided["opinion"]) == ("sent_back", "经营范围可以登记，理由不足")
    (back,) = notifications(engine, case_id, "refusal_sent_back")
    assert back["recipient_user"] == "zwfw1" and "理由不足" in back["message"]
    assert notifications(engine, case_id, "case_not_accepted") == []
    engine.accept_case(case_id, "zwfw1")
    assert case_row(engine, case_id)["state"] == "accepted"
    with refused(engine, Conflict, "decided already by zwfw_boss"):
        engine.confirm_refusal(report["id"], "zwfw_boss")


def test_the_proposer_does_not_confirm_their_own_refusal(engine):
    engine.add_user("zwfw_boss2", "窗口副主任", [("zwfw", "handler"), ("zwfw", "zwfw_supervisor")])
    case_id = submit_kaiban(engine)
    engine.refuse_case(case_id, "zwfw_boss2", "不符合条件")
    (report,) = report_tasks(engine, case_id)
    with refused(engine, NotAllowed, "zwfw_boss2 proposed this refusal"):
        engine.confirm_refusal(report["id"], "zwfw_boss2")
    assert "confirm_refusal" not in engine.available_actions("zwfw_boss2", task_id=report["id"])
    engine.confirm_refusal(report["id"], "zwfw_boss")
    assert case_row(engine, case_id)["state"] == "not_accepted"


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
    refuse_case(engine, case_id, reason="申请人放弃补正", remedy="可申请行政复议")
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


# ----------------------------------------------------------------------------------------------
# 行政许可法 Art. 32: a 补正 notice within 5 working days of receipt, else accepted from the receipt


def test_a_notice_after_five_working_days_is_refused_and_acceptance_counts_from_receipt(engine, clock):
    case_id = submit_kaiban(engine, materials=["lease"])  # Mon 03-02 10:00, the 身份证明 missing
    clock.set(at(9, 17))  # the 5th working day after receipt, at closing time: still in time
    assert "request_supplement" in engine.available_actions("zwfw1", case_id=case_id)
    clock.set(at(10, 9))
    with refused(engine, NotAllowed, "too late for a 补正 notice", "by 2026-03-09 17:00", "Art. 32",
                 "counts as accepted from its receipt"):  # fmt: skip
        engine.request_supplement(case_id, "zwfw1", ["id_card"], "请补交身份证明")
    assert "request_supplement" not in engine.available_actions("zwfw1", case_id=case_id)
    engine.accept_case(case_id, "zwfw1")  # accepted as it is: the law says it already was
    case = case_row(engine, case_id)
    assert (case["state"], case["accepted_at"]) == ("accepted", at(2, 10))
    assert case["due_at"] == at(3, 17)  # promised 1d counted from the receipt: already past
    (deemed,) = events(engine, case_id, "deemed_accepted")
    assert deemed["data"]["received_at"] == at(2, 10).isoformat()
    assert deemed["data"]["missing"] == ["id_card"]
    (told,) = notifications(engine, case_id, "case_accepted")
    assert "自收到申请材料之日" in told["message"] and "2026-03-02" in told["message"]
    engine.sweep()
    assert case_row(engine, case_id)["sla_state"] == "overdue"


def test_an_acceptance_in_time_counts_from_now(engine, clock):
    case_id = submit_kaiban(engine)
    clock.set(at(9, 16))
    engine.accept_case(case_id, "zwfw1")
    case = case_row(engine, case_id)
    assert (case["accepted_at"], case["due_at"]) == (at(9, 16), at(10, 17))
    assert events(engine, case_id, "deemed_accepted") == []


def test_the_five_days_run_again_from_the_arrival_of_the_supplied_materials(engine, clock):
    case_id = submit_kaiban(engine, materials=[])
    engine.request_supplement(case_id, "zwfw1", ["id_card", "lease"], "请补交身份证明和住所使用证明")
    clock.set(at(4, 10))  # Wed
    engine.supply_materials(case_id, KAIBAN_APPLICANT["id"], ["id_card", "lease"])
    accept = task_row(engine, open_tasks(engine, case_id)["accept"])
    assert accept["ready_at"] == at(4, 10)
    clock.set(at(11, 17, 1))  # past Wed 03-11 17:00, 5 working days after the materials came
    engine.accept_case(case_id, "zwfw1")
    case = case_row(engine, case_id)
    assert (case["accepted_at"], case["due_at"]) == (at(4, 10), at(5, 17))


def test_the_acceptance_task_is_due_by_the_art_32_deadline_at_the_latest(engine, clock, tmp_path):
    """A window step without a limit of its own: its task is due when the 5 working days end, so the
    SLA sweep raises its yellow card before the notice would come too late, and its red card after."""
    folder = tmp_path / "intake"
    folder.mkdir()
    shutil.copy(fixture_path("departments.yaml"), folder / "departments.yaml")
    (folder / "intake-demo.yaml").write_text(INTAKE, encoding="utf-8")
    assert not [p for r in publish_paths(engine.db, [folder], clock()) for p in r.problems]
    case_id = engine.submit_case("intake-demo", KAIBAN_APPLICANT, {}, [])
    accept = task_row(engine, open_tasks(engine, case_id)["accept"])
    assert (accept["due_at"], accept["warn_at"]) == (at(9, 17), at(6, 13, 15))
    clock.set(at(6, 13, 15))
    engine.sweep()
    (yellow,) = alerts(engine, case_id, "warning")
    assert yellow["task_id"] == accept["id"] and "综合受理" in yellow["message"]
    clock.set(at(9, 17))
    engine.sweep()
    (red,) = alerts(engine, case_id, "overdue")
    assert (red["task_id"], red["recipient_role"]) == (accept["id"], "zwfw_supervisor")
    # kaiban-mini's window has 1h of its own: the earlier limit counts
    kaiban = open_tasks(engine, submit_kaiban(engine))["accept"]
    assert task_row(engine, kaiban)["due_at"] == at(10, 10)


INTAKE = """key: intake-demo
name: 受理期限测试
limits: {promised: 5d}
remedy: 可在六十日内申请行政复议，或者六个月内提起行政诉讼。
steps:
  - {id: accept, kind: acceptance, name: 综合受理, department: zwfw}
  - {id: review, kind: approval, name: 审查, department: scjg, after: [accept]}
"""
