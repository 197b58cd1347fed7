"""The clock: suspend_case / resume_case (特别程序), return (补正 after acceptance) and
extend_case (延长审批). Due times are exact values on the business calendar (09:00–17:00 working
window; the test clock starts Mon 2026-03-02 10:00 Asia/Shanghai; early March 2026 has no holidays)."""

from __future__ import annotations

import pytest

from orchestrator.definition import load_definition
from orchestrator.engine import InvalidData, NotAllowed
from orchestrator.engine.publish import store_definition

from .conftest import fixture_path
from .helpers import (
    KAIBAN_APPLICANT,
    accepted_kaiban,
    at,
    case_row,
    events,
    notifications,
    open_tasks,
    refused,
    reject,
    rows_of,
    submit_survey,
    task_row,
)

# ----------------------------------------------------------------------------------------------
# suspend / resume (特别程序)


def test_suspension_over_a_weekend_moves_every_due_time_out_by_the_working_time_stopped(engine, clock):
    case_id = submit_survey(engine)
    engine.accept_case(case_id, "zwfw1")  # Mon 10:00, promised 5d
    survey = open_tasks(engine, case_id)["survey"]
    engine.claim_task(survey, "zjj1")
    case = case_row(engine, case_id)
    assert (case["due_at"], case["warn_at"]) == (at(9, 17), at(6, 13, 15))
    assert task_row(engine, survey)["due_at"] == at(3, 17)

    clock.set(at(4, 16))  # Wed 16:00
    suspension_id = engine.suspend_case(case_id, "zjj1", "expert_review", "消防专家论证", expected="5d")
    case = case_row(engine, case_id)
    assert (case["state"], case["sla_state"]) == ("suspended", "paused")
    assert task_row(engine, survey)["sla_state"] == "paused"
    assert [(e["from_state"], e["to_state"]) for e in events(engine, case_id, "suspend")] == [
        ("in_progress", "suspended")
    ]
    assert events(engine, case_id, "clock_stopped")[0]["data"] == {
        "kind": "expert_review",
        "reason": "消防专家论证",
        "expected": "5d",
    }
    (told,) = notifications(engine, case_id, "case_suspended")  # Art. 45: told in writing, with the time
    assert told["recipient_user"] == "91310000MA1K000002" and "专家评审" in told["message"]
    assert "预计 5 个工作日" in told["message"]
    with refused(engine, NotAllowed, "办理 (work) is not allowed", "is suspended"):
        engine.complete_task(survey, "zjj1", "approve", "同意")

    clock.set(at(9, 10))  # next Mon 10:00: Wed 1h + Thu 8h + Fri 8h + Mon 1h = 18 working hours stopped
    engine.resume_case(case_id, "zjj1", "专家论证通过")
    case = case_row(engine, case_id)
    assert (case["state"], case["sla_state"]) == ("in_progress", "on_track")
    assert case["due_at"] == at(12, 11)  # Mon 03-09 17:00 + 18h
    assert case["warn_at"] == at(10, 15, 15)  # Fri 03-06 13:15 + 18h
    task = task_row(engine, survey)
    assert (task["due_at"], task["sla_state"]) == (at(6, 11), "on_track")  # Tue 03-03 17:00 + 18h
    (suspension,) = rows_of(engine, "suspensions", case_id)
    assert suspension["id"] == suspension_id
    assert (suspension["kind"], suspension["started_at"], suspension["ended_at"], suspension["result"]) == (
        "expert_review",
        at(4, 16),
        at(9, 10),
        "专家论证通过",
    )
    (resumed,) = events(engine, case_id, "clock_resumed")
    assert (resumed["from_state"], resumed["to_state"]) == ("suspended", "in_progress")
    assert resumed["data"]["stopped_minutes"] == 18 * 60


def test_a_suspension_outside_working_hours_stops_no_working_time(engine, clock):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    engine.claim_task(licence, "scjg1")
    clock.set(at(2, 18))  # Mon 18:00, after hours
    engine.suspend_case(case_id, "scjg1", "site_check", "夜间现场核查", "1d")
    clock.set(at(3, 8, 30))  # Tue 08:30, before hours
    engine.resume_case(case_id, "scjg1", "核查完毕")
    assert case_row(engine, case_id)["due_at"] == at(3, 17)
    assert task_row(engine, licence)["due_at"] == at(2, 14)
    assert events(engine, case_id, "clock_resumed")[0]["data"]["stopped_minutes"] == 0


@pytest.mark.parametrize(
    ("kind", "reason", "expected", "words"),
    [
        ("picnic", "x", "1d", ["unknown suspension kind 'picnic'", "expert_review", "hearing"]),
        ("supplement", "x", "1d", ["补正 is a task's return"]),
        ("hearing", " ", "1d", ["特别程序 needs a reason"]),
        ("hearing", "听证", "two weeks", ["expected: bad limit 'two weeks'"]),
        ("hearing", "听证", None, ["特别程序 needs expected", "行政许可法 Art. 45"]),
        ("expert_review", "专家评审", " ", ["特别程序 needs expected"]),
    ],
)
def test_suspend_refuses_bad_input(engine, kind, reason, expected, words):
    case_id = accepted_kaiban(engine)
    with refused(engine, InvalidData, *words):
        engine.suspend_case(case_id, "scjg1", kind, reason, expected)


def test_only_staff_working_the_case_suspend_and_resume_it_and_only_once(engine):
    case_id = accepted_kaiban(engine)
    with refused(engine, NotAllowed, "gaj1 works no open task of case", "may not suspend the case"):
        engine.suspend_case(case_id, "gaj1", "hearing", "听证", "5d")
    with refused(engine, NotAllowed, "特别程序结束（恢复计时） (resume) is not allowed", "is accepted"):
        engine.resume_case(case_id, "scjg1")
    engine.suspend_case(case_id, "scjg1", "hearing", "听证", "20n")
    (told,) = notifications(engine, case_id, "case_suspended")
    assert "听证" in told["message"] and "预计 20 日" in told["message"]
    with refused(engine, NotAllowed, "特别程序（挂起） (suspend) is not allowed", "is suspended"):
        engine.suspend_case(case_id, "scjg2", "testing", "检测", "3d")
    with refused(engine, NotAllowed, "gaj1 works no open task of case", "may not resume the case"):
        engine.resume_case(case_id, "gaj1")
    engine.resume_case(case_id, "scjg2", "听证结束")
    assert case_row(engine, case_id)["state"] == "in_progress"


# ----------------------------------------------------------------------------------------------
# return (补正 after acceptance): the clock stops until the applicant supplies


def test_a_return_suspends_the_case_until_the_applicant_supplies(engine, clock):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    clock.set(at(2, 11))
    engine.complete_task(licence, "scjg1", "return", "住所使用证明已过期，请补正", missing=["lease"])
    case = case_row(engine, case_id)
    assert (case["state"], case["sla_state"]) == ("suspended", "paused")
    task = task_row(engine, licence)
    assert (task["state"], task["assignee"], task["waiting"]) == ("claimed", "scjg1", "applicant")
    (notice,) = rows_of(engine, "supplements", case_id)
    assert (notice["task_id"], notice["missing"], notice["requested_by"]) == (licence, ["lease"], "scjg1")
    (suspension,) = rows_of(engine, "suspensions", case_id)
    assert (suspension["kind"], suspension["reason"]) == ("supplement", "住所使用证明已过期，请补正")
    (told,) = notifications(engine, case_id, "supplement_requested")
    assert told["recipient_user"] == KAIBAN_APPLICANT["id"] and "住所使用证明已过期" in told["message"]
    with refused(engine, NotAllowed, "waits for the applicant's 补正 materials; it resumes when they arrive"):
        engine.resume_case(case_id, "scjg1", "等不及了")
    with refused(engine, NotAllowed, "is suspended"):
        engine.complete_task(licence, "scjg1", "approve", "同意")
    with refused(engine, InvalidData, "'lease' is still missing"):
        engine.supply_materials(case_id, KAIBAN_APPLICANT["id"], ["id_card"])

    clock.set(at(3, 10))  # Tue 10:00: Mon 11–17 (6h) + Tue 9–10 (1h) stopped
    engine.supply_materials(case_id, KAIBAN_APPLICANT["id"], ["lease"])
    case = case_row(engine, case_id)
    assert (case["state"], case["sla_state"]) == ("in_progress", "on_track")
    assert case["due_at"] == at(4, 16)  # Tue 03-03 17:00 + 7h
    task = task_row(engine, licence)
    assert (task["state"], task["assignee"], task["waiting"]) == ("claimed", "scjg1", None)
    assert task["due_at"] == at(3, 13)  # Mon 14:00 + 7h
    assert rows_of(engine, "supplements", case_id)[0]["supplied_at"] == at(3, 10)
    assert rows_of(engine, "suspensions", case_id)[0]["ended_at"] == at(3, 10)
    assert events(engine, case_id, "clock_resumed")[0]["actor"] == KAIBAN_APPLICANT["id"]
    engine.complete_task(licence, "scjg1", "approve", "准予登记")
    assert set(open_tasks(engine, case_id)) == {"seal", "invoice", "social"}


def test_a_return_needs_the_missing_materials_and_a_reason(engine):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    with refused(engine, InvalidData, "lists the missing materials"):
        engine.complete_task(licence, "scjg1", "return", "请补正")
    with refused(engine, InvalidData, "'deed' is no material of kaiban-mini"):
        engine.complete_task(licence, "scjg1", "return", "请补正", missing=["deed"])
    with refused(engine, NotAllowed, "gaj1 is not a member of department scjg"):
        engine.complete_task(licence, "gaj1", "return", "请补正", missing=["lease"])


def _return_and_supply(engine, task_id: int, actor: str = "scjg1") -> None:
    case_id = task_row(engine, task_id)["case_id"]
    engine.complete_task(task_id, actor, "return", "请补正住所使用证明", missing=["lease"])
    engine.supply_materials(case_id, KAIBAN_APPLICANT["id"], ["lease"])


def test_a_case_is_returned_for_supplement_once_unless_the_definition_allows_more(engine, clock):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    _return_and_supply(engine, licence)
    with refused(engine, NotAllowed, "returned to the applicant for 补正 1 time(s)", "limits.returns: 1"):
        engine.complete_task(licence, "scjg1", "return", "再次补正", missing=["id_card"])
    assert "return" not in engine.available_actions("scjg1", task_id=licence)
    engine.complete_task(licence, "scjg1", "approve", "准予登记")
    seal = open_tasks(engine, case_id)["seal"]  # once per case, not per step
    with refused(engine, NotAllowed, "limits.returns: 1"):
        engine.complete_task(seal, "gaj1", "return", "请补正", missing=["id_card"])
    (pause,) = rows_of(engine, "suspensions", case_id)  # the return showed as a pause of the clock
    assert (pause["kind"], pause["ended_at"] is not None) == ("supplement", True)


def test_limits_returns_allows_more_returns(engine, clock, departments):
    text = fixture_path("kaiban-mini.yaml").read_text(encoding="utf-8")
    text = text.replace("warning: 0.25}", "warning: 0.25, returns: 2}")
    definition = load_definition(fixture_path("kaiban-mini.yaml"), departments, text=text)
    assert definition.limits.returns == 2
    with engine.db.begin() as tx:
        store_definition(tx, definition, text, clock())
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    _return_and_supply(engine, licence)
    clock.advance(minutes=30)
    _return_and_supply(engine, licence)
    pauses = rows_of(engine, "suspensions", case_id)
    assert [p["kind"] for p in pauses] == ["supplement", "supplement"]
    with refused(engine, NotAllowed, "2 time(s)", "limits.returns: 2"):
        engine.complete_task(licence, "scjg1", "return", "第三次补正", missing=["lease"])


# ----------------------------------------------------------------------------------------------
# extend (延长审批: statutory 8.5d + 15d legal extension for joint handling, promised 1d)


def test_an_extension_moves_the_due_time_and_is_granted_once_per_case(engine, clock):
    case_id = accepted_kaiban(engine)
    engine.claim_task(open_tasks(engine, case_id)["licence"], "scjg1")
    clock.set(at(3, 9))
    engine.extend_case(case_id, "scjg1", "10d", "scjg_boss", "需征求规划部门意见")
    case = case_row(engine, case_id)
    assert case["due_at"] == at(17, 17)  # Tue 03-03 + 10 working days
    assert case["warn_at"] == at(17, 13, 15)  # the yellow card keeps its lead: Tue 03-03 13:15 + 80 working hours
    assert case["sla_state"] == "on_track"
    (extension,) = rows_of(engine, "extensions", case_id)
    assert (extension["amount"], extension["approver"], extension["at"]) == ("10d", "scjg_boss", at(3, 9))
    assert events(engine, case_id, "extended")[0]["data"] == {
        "amount": "10d",
        "approver": "scjg_boss",
        "reason": "需征求规划部门意见",
    }
    (told,) = notifications(engine, case_id, "case_extended")
    assert told["recipient_user"] == KAIBAN_APPLICANT["id"] and "10工作日" in told["message"]
    # 行政许可法 Art. 42: an extension is granted once, even one that would stay within the cap
    with refused(engine, NotAllowed, "延长审批 is granted once per case", "Art. 42", "extended by 10d on 2026-03-03"):
        engine.extend_case(case_id, "scjg1", "1d", "scjg_boss", "专家意见分歧")
    assert "extend" not in engine.available_actions("scjg1", case_id=case_id)


def test_one_extension_beyond_the_cap_is_refused_whole(engine):
    case_id = accepted_kaiban(engine)
    with refused(engine, InvalidData, "extension 23d exceeds the statutory cap", "8.5d + 15d"):
        engine.extend_case(case_id, "scjg1", "23d", "scjg_boss", "复杂")
    engine.extend_case(case_id, "scjg1", "22.5d", "scjg_boss", "复杂")  # 1 + 22.5 = 8.5 + 15 (joint handling)


def test_an_extension_while_suspended_keeps_the_clock_paused(engine, clock):
    case_id = accepted_kaiban(engine)
    engine.suspend_case(case_id, "scjg1", "hearing", "听证", "10d")
    engine.extend_case(case_id, "scjg1", "1d", "scjg_boss", "听证后需复核")
    case = case_row(engine, case_id)
    assert (case["state"], case["sla_state"], case["due_at"]) == ("suspended", "paused", at(4, 17))


@pytest.mark.parametrize(
    ("actor", "amount", "approver", "reason", "error", "words"),
    [
        ("scjg1", "ten days", "scjg_boss", "复杂", InvalidData, ["amount: bad limit 'ten days'"]),
        ("scjg1", "1d", "", "复杂", InvalidData, ["needs the approver (负责人) and a reason"]),
        ("scjg1", "1d", "scjg_boss", " ", InvalidData, ["needs the approver (负责人) and a reason"]),
        ("rsj1", "1d", "rsj_boss", "复杂", NotAllowed, ["rsj1 works no open task of case", "extend the case"]),
    ],
)
def test_extend_refuses_bad_input(engine, actor, amount, approver, reason, error, words):
    case_id = accepted_kaiban(engine)
    with refused(engine, error, *words):
        engine.extend_case(case_id, actor, amount, approver, reason)


def test_a_case_not_yet_accepted_or_closed_cannot_be_extended(engine):
    case_id = accepted_kaiban(engine)
    reject(engine, open_tasks(engine, case_id)["licence"], "scjg1", "名称不合规")
    with refused(engine, NotAllowed, "延长审批 (extend) is not allowed", "is rejected"):
        engine.extend_case(case_id, "scjg1", "1d", "scjg_boss", "复杂")


def test_a_suspension_across_national_day_stops_only_the_working_hours_in_it(engine, clock):
    """国庆 2026: 10-01…10-07 off, Sat 10-10 a make-up workday. A suspension from Wed 09-30 11:00 to
    Thu 10-08 10:00 stops 6h (09-30) + 0 (the holiday) + 1h (10-08) = 7 working hours."""
    clock.set(at(30, 10, month=9))  # Wed 09-30 10:00
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    engine.claim_task(licence, "scjg1")
    assert case_row(engine, case_id)["due_at"] == at(8, 17, month=10)  # 1d: the first working day after
    assert task_row(engine, licence)["due_at"] == at(30, 14, month=9)  # 0.5d = 4 working hours

    clock.set(at(30, 11, month=9))
    engine.suspend_case(case_id, "scjg1", "hearing", "申请人要求听证", "5d")
    clock.set(at(8, 10, month=10))
    engine.resume_case(case_id, "scjg1", "听证结束")
    (resumed,) = events(engine, case_id, "clock_resumed")
    assert resumed["data"]["stopped_minutes"] == 7 * 60
    assert task_row(engine, licence)["due_at"] == at(8, 13, month=10)  # 3h left on 09-30, then 4h on 10-08
    assert case_row(engine, case_id)["due_at"] == at(9, 16, month=10)  # 10-08 17:00 + 7h = Fri 10-09 16:00
    clock.set(at(8, 13, 30, month=10))  # past the moved due time: the sweep turns the licence red
    engine.sweep()
    assert task_row(engine, licence)["sla_state"] == "overdue"
