"""Sign-offs on one task: the joint survey (every participant department), the review chain (each
level in order, by different people), 会签 (sign: all), 或签 (sign: any) and 加签 (add_signer)."""

from __future__ import annotations

from orchestrator.engine import Conflict, InvalidData, NotAllowed, NotFound

from .helpers import (
    accepted_kaiban,
    accepted_relay,
    add_countersigners,
    case_row,
    confirm_refusal,
    events,
    notifications,
    open_tasks,
    refused,
    reject,
    report_tasks,
    signoffs,
    step_states,
    submit_survey,
    surveyed,
    task_row,
)

# ----------------------------------------------------------------------------------------------
# the joint survey (联合踏勘)


def test_a_survey_completes_when_every_participant_department_has_signed(engine, clock):
    case_id = submit_survey(engine)
    engine.accept_case(case_id, "zwfw1")
    survey = open_tasks(engine, case_id)["survey"]
    assert [(s["kind"], s["party"]) for s in signoffs(engine, survey)] == [
        ("department", "zjj"),
        ("department", "xf"),
        ("department", "gaj"),
    ]
    assert task_row(engine, survey)["signoffs_open"] == 3

    engine.complete_task(survey, "xf2", "approve", "消防通道满足要求")
    assert task_row(engine, survey)["signoffs_open"] == 2
    assert case_row(engine, case_id)["state"] == "in_progress"  # a signature is department work
    with refused(
        engine, NotAllowed, "xf1 is in none of the survey departments still to sign", "(zjj, gaj)", "signed: xf"
    ):
        engine.complete_task(survey, "xf1", "approve", "再签一次")
    with refused(engine, NotAllowed, "rsj1 is in none of the survey departments still to sign"):
        engine.complete_task(survey, "rsj1", "approve", "路过")
    with refused(engine, NotAllowed, "gaj1 is not a member of department zjj"):  # 补正 is the organiser's call
        engine.complete_task(survey, "gaj1", "return", "请补充")
    engine.complete_task(survey, "gaj1", "approve", "治安条件满足")
    assert set(open_tasks(engine, case_id)) == {"survey"}

    clock.advance(hours=2)
    engine.complete_task(survey, "zjj3", "approve", "同意")
    task = task_row(engine, survey)
    assert (task["state"], task["completed_by"], task["signoffs_open"]) == ("completed", "zjj3", 0)
    signed = {s["party"]: s["signed_by"] for s in signoffs(engine, survey)}
    assert signed == {"zjj": "zjj3", "xf": "xf2", "gaj": "gaj1"}
    assert [e["data"]["party"] for e in events(engine, case_id, "signed")] == ["xf", "gaj", "zjj"]
    assert set(open_tasks(engine, case_id)) == {"chain", "fire", "police", "drainage"}


def test_one_participant_refusing_decides_the_survey_and_the_case(engine):
    case_id = submit_survey(engine)
    engine.accept_case(case_id, "zwfw1")
    survey = open_tasks(engine, case_id)["survey"]
    engine.complete_task(survey, "zjj1", "approve", "同意")
    engine.complete_task(survey, "xf1", "reject", "消防车道宽度不足")
    (report,) = report_tasks(engine, case_id)  # the refusing participant's leader decides
    assert report["department"] == "xf"
    assert task_row(engine, survey)["waiting"] == "leader"
    with refused(engine, NotAllowed, "waiting for its leader's decision"):
        engine.complete_task(survey, "gaj1", "approve", "同意")
    engine.confirm_refusal(report["id"], "xf_boss")
    task = task_row(engine, survey)
    assert (task["state"], task["outcome"], task["completed_by"]) == ("completed", "reject", "xf1")
    assert {s["party"]: s["outcome"] for s in signoffs(engine, survey)} == {"zjj": "approve", "xf": "reject",
                                                                              "gaj": None}  # fmt: skip
    case = case_row(engine, case_id)
    assert (case["state"], case["reason"]) == ("rejected", "消防车道宽度不足")


# ----------------------------------------------------------------------------------------------
# the review chain (承办 → 审核 → 批准)


def test_each_level_of_the_review_chain_is_signed_in_order_by_a_different_person(engine):
    case_id = surveyed(engine)
    chain = open_tasks(engine, case_id)["chain"]
    assert [s["party"] for s in signoffs(engine, chain)] == ["承办", "审核", "批准"]
    engine.complete_task(chain, "zjj2", "approve", "拟同意")
    with refused(engine, NotAllowed, "zjj2 already signed a level of this review chain", "next level (审核)"):
        engine.complete_task(chain, "zjj2", "approve", "同意")
    with refused(engine, NotAllowed, "xf1 is not a member of department zjj"):
        engine.complete_task(chain, "xf1", "approve", "同意")
    engine.complete_task(chain, "zjj1", "approve", "审核同意")
    assert task_row(engine, chain)["state"] == "ready"  # the 批准 level is still open
    assert "instant" not in step_states(engine, case_id)
    engine.complete_task(chain, "zjj_boss", "approve", "批准")
    levels = [(s["party"], s["signed_by"], s["opinion"]) for s in signoffs(engine, chain)]
    assert levels == [("承办", "zjj2", "拟同意"), ("审核", "zjj1", "审核同意"), ("批准", "zjj_boss", "批准")]
    task = task_row(engine, chain)
    assert (task["state"], task["completed_by"], task["opinion"]) == ("completed", "zjj_boss", "批准")
    assert step_states(engine, case_id)["instant"] == "completed"


def test_a_refusal_at_any_level_rejects_the_case(engine):
    case_id = surveyed(engine)
    chain = open_tasks(engine, case_id)["chain"]
    engine.complete_task(chain, "zjj1", "approve", "拟同意")
    engine.complete_task(chain, "zjj2", "reject", "容积率超出规划条件")
    assert signoffs(engine, chain)[1]["signed_at"] is None  # signed when the leader confirms
    confirm_refusal(engine, case_id)
    assert signoffs(engine, chain)[1]["signed_by"] == "zjj2"
    case = case_row(engine, case_id)
    assert (case["state"], case["reason"]) == ("rejected", "容积率超出规划条件")
    assert signoffs(engine, chain)[2]["signed_at"] is None  # 批准 never signed
    assert open_tasks(engine, case_id) == {}


# ----------------------------------------------------------------------------------------------
# 会签 (sign: all) and 或签 (sign: any)


def test_sign_all_needs_every_countersign_role(engine):
    case_id = surveyed(engine)
    add_countersigners(engine)
    fire = open_tasks(engine, case_id)["fire"]
    assert [(s["kind"], s["party"]) for s in signoffs(engine, fire)] == [
        ("role", "fire_reviewer"),
        ("role", "arch_reviewer"),
    ]
    with refused(
        engine, NotAllowed, "xf1 holds none of the countersign roles still to sign (fire_reviewer, arch_reviewer)"
    ):
        engine.complete_task(fire, "xf1", "approve", "同意")
    engine.complete_task(fire, "xf_arch", "approve", "建筑专业同意")
    assert task_row(engine, fire)["state"] == "ready"
    with refused(engine, NotAllowed, "xf_arch holds none of the countersign roles still to sign (fire_reviewer)"):
        engine.complete_task(fire, "xf_arch", "approve", "再签")
    engine.complete_task(fire, "xf_fire", "approve", "消防专业同意")
    task = task_row(engine, fire)
    assert (task["state"], task["outcome"], task["completed_by"]) == ("completed", "approve", "xf_fire")


def test_sign_any_completes_with_the_first_countersignature(engine):
    case_id = surveyed(engine)
    add_countersigners(engine)
    police = open_tasks(engine, case_id)["police"]
    assert task_row(engine, police)["signoffs_open"] == 1
    with refused(engine, NotAllowed, "gaj2 holds none of the countersign roles still to sign (duty_a, duty_b)"):
        engine.complete_task(police, "gaj2", "approve", "同意")
    engine.complete_task(police, "gaj_b", "approve", "同意")
    task = task_row(engine, police)
    assert (task["state"], task["completed_by"]) == ("completed", "gaj_b")
    assert [s["signed_by"] for s in signoffs(engine, police)] == [None, "gaj_b"]
    with refused(engine, Conflict, "already completed by gaj_b"):
        engine.complete_task(police, "gaj_a", "approve", "同意")


# ----------------------------------------------------------------------------------------------
# 加签 (add_signer)


def test_an_added_signer_must_sign_before_the_task_completes(engine):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    engine.claim_task(licence, "scjg1")
    engine.add_signer(licence, "scjg1", "scjg_boss", "涉及名称争议，请负责人会签")
    (slot,) = signoffs(engine, licence)
    assert (slot["kind"], slot["party"], slot["signed_at"]) == ("user", "scjg_boss", None)
    assert task_row(engine, licence)["signoffs_open"] == 1
    (asked,) = notifications(engine, case_id, "signature_requested")
    assert asked["recipient_user"] == "scjg_boss"
    assert events(engine, case_id, "signer_added")[0]["data"] == {
        "signer": "scjg_boss",
        "note": "涉及名称争议，请负责人会签",
    }
    with refused(engine, NotAllowed, "waits for 加签 signatures from scjg_boss"):
        engine.complete_task(licence, "scjg1", "approve", "同意")
    with refused(engine, NotAllowed, "scjg2 has no signature to give"):
        engine.complete_task(licence, "scjg2", "approve", "同意")

    engine.complete_task(licence, "scjg_boss", "approve", "同意使用该名称")
    task = task_row(engine, licence)
    assert (task["state"], task["assignee"], task["signoffs_open"]) == ("claimed", "scjg1", 0)
    assert signoffs(engine, licence)[0]["signed_by"] == "scjg_boss"
    engine.complete_task(licence, "scjg1", "approve", "准予登记")
    assert task_row(engine, licence)["completed_by"] == "scjg1"
    assert set(open_tasks(engine, case_id)) == {"seal", "invoice", "social"}


def test_an_added_signer_who_refuses_decides_the_task(engine):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    engine.claim_task(licence, "scjg1")
    engine.add_signer(licence, "scjg1", "scjg3")
    reject(engine, licence, "scjg3", "名称与驰名商标冲突")
    assert case_row(engine, case_id)["state"] == "rejected"


def test_an_added_signer_is_also_needed_on_a_review_chain(engine):
    case_id = accepted_relay(engine)
    engine.complete_task(open_tasks(engine, case_id)["first"], "scjg1")
    second = open_tasks(engine, case_id)["second"]
    engine.claim_task(second, "gaj1")
    engine.add_signer(second, "gaj1", "gaj_boss")
    engine.complete_task(second, "gaj1", "approve", "承办同意")
    engine.complete_task(second, "gaj2", "approve", "批准")
    assert task_row(engine, second)["state"] == "claimed"  # both levels signed, 加签 still open
    engine.complete_task(second, "gaj_boss", "approve", "同意")
    assert task_row(engine, second)["state"] == "completed"
    assert set(open_tasks(engine, case_id)) == {"third", "side"}


def test_an_added_signer_is_also_needed_on_a_sign_any_task(engine):
    case_id = surveyed(engine)
    add_countersigners(engine)
    police = open_tasks(engine, case_id)["police"]
    engine.claim_task(police, "gaj1")
    engine.add_signer(police, "gaj1", "gaj_boss")
    engine.complete_task(police, "gaj_a", "approve", "同意")
    assert task_row(engine, police)["state"] == "claimed"  # 或签 done, 加签 still open
    with refused(engine, NotAllowed, "gaj_b has no signature to give"):
        engine.complete_task(police, "gaj_b", "approve", "同意")
    engine.complete_task(police, "gaj_boss", "approve", "同意")
    assert task_row(engine, police)["state"] == "completed"


def test_add_signer_refusals(engine):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    with refused(engine, NotAllowed, "claimed by nobody; only they may add a signer"):
        engine.add_signer(licence, "scjg1", "scjg2")
    engine.claim_task(licence, "scjg1")
    with refused(engine, NotAllowed, "claimed by scjg1; only they may add a signer"):
        engine.add_signer(licence, "scjg2", "scjg3")
    with refused(engine, NotFound, "user ghost does not exist"):
        engine.add_signer(licence, "scjg1", "ghost")
    engine.add_signer(licence, "scjg1", "scjg2")
    with refused(engine, Conflict, "scjg2 already has a pending signature"):
        engine.add_signer(licence, "scjg1", "scjg2")
    with refused(engine, InvalidData, "不予许可 needs a written opinion"):
        engine.complete_task(licence, "scjg2", "reject", "")
