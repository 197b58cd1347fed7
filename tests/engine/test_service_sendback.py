"""退回 (send_back: to an earlier step, which its previous completer redoes) and 撤回 (take_back: undo
my own completion while the next steps are untouched). relay-mini: accept → first → second (two-level
review chain) → third → finish, with `side` after first in parallel."""

from __future__ import annotations

from orchestrator.engine import InvalidData, NotAllowed

from .helpers import (
    accepted_kaiban,
    accepted_relay,
    case_row,
    events,
    notifications,
    open_tasks,
    refused,
    reject,
    report_tasks,
    signoffs,
    surveyed,
    task_row,
    tasks_of,
)


def through_second(engine, case_id: int) -> None:
    """first by scjg1, second by gaj1 (承办) and gaj2 (批准)."""
    engine.complete_task(open_tasks(engine, case_id)["first"], "scjg1", "approve", "初审同意")
    second = open_tasks(engine, case_id)["second"]
    engine.complete_task(second, "gaj1", "approve", "承办同意")
    engine.complete_task(second, "gaj2", "approve", "批准")


def latest(engine, case_id: int) -> dict[str, dict]:
    """The newest task of each step."""
    return {t["step_id"]: t for t in tasks_of(engine, case_id)}


# ----------------------------------------------------------------------------------------------
# send_back (退回)


def test_send_back_reopens_the_previous_step_for_its_previous_completer(engine, clock):
    case_id = accepted_relay(engine)
    through_second(engine, case_id)
    third = open_tasks(engine, case_id)["third"]
    engine.claim_task(third, "swj1")
    clock.advance(hours=1)
    new_id = engine.send_back(third, "swj1", "复审意见与材料不符")
    new = task_row(engine, new_id)
    assert (new["step_id"], new["state"], new["assignee"]) == ("second", "claimed", "gaj2")
    assert new["due_at"] == clock.now.replace(hour=15)  # a fresh 0.5d limit from now (11:00 + 4h)
    assert [s["signed_at"] for s in signoffs(engine, new_id)] == [None, None]  # the chain starts over
    old_third = task_row(engine, third)
    assert (old_third["state"], old_third["superseded"]) == ("cancelled", True)
    assert open_tasks(engine, case_id) == {"second": new_id, "side": open_tasks(engine, case_id)["side"]}
    (sent,) = events(engine, case_id, "sent_back")
    assert (sent["actor"], sent["edge_from"], sent["edge_to"]) == ("swj1", "third", "second")
    assert sent["data"]["reason"] == "复审意见与材料不符" and sent["data"]["new_task"] == new_id
    (told,) = notifications(engine, case_id, "task_sent_back")
    assert (told["recipient_user"], told["task_id"]) == ("gaj2", new_id)
    assert "复审意见与材料不符" in told["message"]

    # redone: the chain again, then third gets a new task
    engine.complete_task(new_id, "gaj1", "approve", "承办同意")
    engine.complete_task(new_id, "gaj2", "approve", "批准")
    new_third = open_tasks(engine, case_id)["third"]
    assert new_third != third


def test_send_back_to_an_earlier_step_redoes_the_steps_in_between_and_leaves_other_branches(engine):
    case_id = accepted_relay(engine)
    through_second(engine, case_id)
    side = open_tasks(engine, case_id)["side"]
    engine.complete_task(side, "rsj1", "approve", "备案完成")
    before = latest(engine, case_id)
    third = open_tasks(engine, case_id)["third"]
    new_first = engine.send_back(third, "swj2", "初审认定的经营范围有误", to_step="first")
    after = latest(engine, case_id)
    assert (after["first"]["id"], after["first"]["assignee"], after["first"]["state"]) == (
        new_first,
        "scjg1",
        "claimed",
    )
    assert task_row(engine, before["first"]["id"])["superseded"] is True
    second = task_row(engine, before["second"]["id"])
    assert (second["state"], second["superseded"]) == ("completed", True)  # in between: to be redone
    assert after["side"] == before["side"]  # the other branch is untouched
    assert sorted(events(engine, case_id, "sent_back")[0]["data"]["redo"]) == ["first", "second", "third"]

    engine.complete_task(new_first, "scjg1", "approve", "更正后同意")
    assert set(open_tasks(engine, case_id)) == {"second"}  # side is done already and is not redone
    through = open_tasks(engine, case_id)["second"]
    engine.complete_task(through, "gaj3", "approve", "承办同意")
    engine.complete_task(through, "gaj_boss", "approve", "批准")
    engine.complete_task(open_tasks(engine, case_id)["third"], "swj1")
    assert set(open_tasks(engine, case_id)) == {"finish"}
    engine.issue_certificates(open_tasks(engine, case_id)["finish"], "zwfw1")
    assert case_row(engine, case_id)["outcome"] == "approved"  # superseded work does not count


def test_send_back_refusals(engine):
    case_id = accepted_relay(engine)
    through_second(engine, case_id)
    third = open_tasks(engine, case_id)["third"]
    with refused(engine, InvalidData, "退回 needs a reason"):
        engine.send_back(third, "swj1", " ")
    with refused(
        engine, InvalidData, "cannot send back to 'side'", "choose an earlier department step", "first, second"
    ):
        engine.send_back(third, "swj1", "退回", to_step="side")
    with refused(engine, InvalidData, "cannot send back to 'accept'"):
        engine.send_back(third, "swj1", "退回", to_step="accept")
    with refused(engine, InvalidData, "cannot send back to 'nowhere'"):
        engine.send_back(third, "swj1", "退回", to_step="nowhere")
    with refused(engine, NotAllowed, "gaj1 is not a member of department swj"):
        engine.send_back(third, "gaj1", "退回")
    engine.claim_task(third, "swj1")
    with refused(engine, NotAllowed, f"task {third} is claimed by swj1; only they may send it back"):
        engine.send_back(third, "swj2", "退回")
    engine.complete_task(third, "swj1")
    with refused(engine, NotAllowed, "退回 (send_back) is not allowed", "is completed"):
        engine.send_back(third, "swj1", "退回")


def test_a_skipped_step_cannot_be_sent_back_to(engine):
    case_id = accepted_kaiban(engine, form={"needs_seal": False})
    engine.complete_task(open_tasks(engine, case_id)["licence"], "scjg1")
    for step, user in (("invoice", "swj1"), ("social", "rsj1")):
        engine.complete_task(open_tasks(engine, case_id)[step], user)
    issue = open_tasks(engine, case_id)["issue"]
    with refused(engine, NotAllowed, "step seal has not been completed in this case"):
        engine.send_back(issue, "zwfw1", "请重新刻章", to_step="seal")
    # by default the step goes back to the predecessor completed last
    back = engine.send_back(issue, "zwfw1", "社保登记信息有误")
    assert task_row(engine, back)["step_id"] == "social"


def test_send_back_is_refused_while_the_case_is_suspended(engine):
    case_id = accepted_relay(engine)
    through_second(engine, case_id)
    third = open_tasks(engine, case_id)["third"]
    engine.suspend_case(case_id, "swj1", "hearing", "申请人要求听证", "10d")
    with refused(engine, NotAllowed, "办理 (work) is not allowed", "is suspended"):
        engine.send_back(third, "swj1", "退回")


# ----------------------------------------------------------------------------------------------
# take_back (撤回)


def test_take_back_reopens_my_task_while_the_next_steps_are_untouched(engine, clock):
    case_id = accepted_relay(engine)
    first = open_tasks(engine, case_id)["first"]
    engine.complete_task(first, "scjg1", "approve", "初审同意")
    made = open_tasks(engine, case_id)
    assert set(made) == {"second", "side"}
    clock.advance(minutes=15)
    reopened = engine.take_back(first, "scjg1")
    task = task_row(engine, reopened)
    assert (task["step_id"], task["state"], task["assignee"]) == ("first", "claimed", "scjg1")
    assert open_tasks(engine, case_id) == {"first": reopened}
    for step in ("second", "side"):
        row = task_row(engine, made[step])
        assert (row["state"], row["superseded"]) == ("cancelled", True)
    assert task_row(engine, first)["superseded"] is True
    assert {e["task_id"] for e in events(engine, case_id, "task_cancelled")} == set(made.values())
    (taken,) = events(engine, case_id, "taken_back")
    assert (taken["actor"], taken["task_id"], taken["data"]) == ("scjg1", first, {"new_task": reopened})

    engine.complete_task(reopened, "scjg1", "approve", "重新审查后同意")
    again = open_tasks(engine, case_id)
    assert set(again) == {"second", "side"} and not set(again.values()) & set(made.values())


def test_take_back_is_too_late_once_a_next_step_is_claimed(engine):
    case_id = accepted_relay(engine)
    first = open_tasks(engine, case_id)["first"]
    engine.complete_task(first, "scjg1")
    engine.claim_task(open_tasks(engine, case_id)["side"], "rsj1")
    with refused(engine, NotAllowed, "too late to take back", "旁路备案 (claimed)"):
        engine.take_back(first, "scjg1")


def test_take_back_is_too_late_once_a_next_step_has_a_signature(engine):
    case_id = accepted_relay(engine)
    first = open_tasks(engine, case_id)["first"]
    engine.complete_task(first, "scjg1")
    engine.complete_task(open_tasks(engine, case_id)["second"], "gaj1", "approve", "承办同意")
    assert task_row(engine, open_tasks(engine, case_id)["second"])["state"] == "ready"  # signed, not claimed
    with refused(engine, NotAllowed, "too late to take back", "signatures"):
        engine.take_back(first, "scjg1")


def test_take_back_refusals(engine):
    case_id = accepted_relay(engine)
    accept = tasks_of(engine, case_id)[0]["id"]
    first = open_tasks(engine, case_id)["first"]
    with refused(engine, NotAllowed, "撤回 (take_back) is not allowed", "is ready"):
        engine.take_back(first, "scjg1")
    engine.complete_task(first, "scjg1")
    with refused(engine, NotAllowed, f"only scjg1, who completed task {first}, may take it back"):
        engine.take_back(first, "scjg2")
    with refused(engine, NotAllowed, f"task {accept} can no longer be taken back"):
        engine.take_back(accept, "zwfw1")
    engine.take_back(first, "scjg1")
    with refused(engine, NotAllowed, f"task {first} can no longer be taken back"):
        engine.take_back(first, "scjg1")


def test_a_closed_case_cannot_be_taken_back(engine):
    case_id = accepted_relay(engine)
    first = open_tasks(engine, case_id)["first"]
    engine.complete_task(first, "scjg1")
    reject(engine, open_tasks(engine, case_id)["side"], "rsj1", "不予备案")
    with refused(engine, NotAllowed, "is rejected; a closed case cannot be taken back"):
        engine.take_back(first, "scjg1")


def test_send_back_to_an_automatic_step_is_refused(engine):
    case_id = engine.submit_case("auto-mini", {"id": "A-auto", "name": "李四"}, {"age": 70}, ["id_card"])
    engine.accept_case(case_id, "zwfw1")
    review = open_tasks(engine, case_id)["review"]  # the 秒批 step decided itself
    engine.claim_task(review, "rsj1")
    with refused(engine, InvalidData, "cannot send back to 'check': it is an automatic step"):
        engine.send_back(review, "rsj1", "重新核验", to_step="check")


def test_a_refusal_sent_back_and_then_approved_can_still_be_taken_back(engine):
    case_id = accepted_relay(engine)
    first = open_tasks(engine, case_id)["first"]
    engine.complete_task(first, "scjg1", "reject", "初审不通过")
    (report,) = report_tasks(engine, case_id)
    engine.send_back_refusal(report["id"], "scjg_boss", "材料齐全，请重审")
    engine.complete_task(first, "scjg1", "approve", "同意")
    engine.take_back(first, "scjg1")  # the decided report is history, not a next step that started
    assert task_row(engine, first)["superseded"]


def test_a_confirmed_refusal_is_not_taken_back(engine):
    case_id = surveyed(engine)
    drainage = open_tasks(engine, case_id)["drainage"]  # on_reject: continue
    reject(engine, drainage, "swj1", "管网容量不足")
    with refused(engine, NotAllowed, "was refused with its leader's confirmation; it cannot be taken back"):
        engine.take_back(drainage, "swj1")
    assert "take_back" not in engine.available_actions("swj1", task_id=drainage)
