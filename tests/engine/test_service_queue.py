"""The department queue: claim_task (签收), release_task, reassign_task (改派, supervisor only),
transfer_task (转办), delegate_task (委派) and urge (催办/督办)."""

from __future__ import annotations

import pytest

from orchestrator.engine import InvalidData, NotAllowed, NotFound

from .helpers import (
    accepted_kaiban,
    at,
    case_row,
    events,
    notifications,
    open_tasks,
    refused,
    rows_of,
    task_row,
)


@pytest.fixture
def licence(engine):
    """(case id, task id) of an accepted kaiban-mini case whose licence task (scjg) is ready."""
    case_id = accepted_kaiban(engine)
    return case_id, open_tasks(engine, case_id)["licence"]


# ----------------------------------------------------------------------------------------------
# claim / release


def test_claim_takes_the_task_and_starts_the_departments_work(engine, clock, licence):
    case_id, task_id = licence
    clock.advance(minutes=5)
    engine.claim_task(task_id, "scjg2")
    task = task_row(engine, task_id)
    assert (task["state"], task["assignee"], task["claimed_at"]) == ("claimed", "scjg2", at(2, 10, 5))
    assert case_row(engine, case_id)["state"] == "in_progress"
    (claimed,) = events(engine, case_id, "claimed")
    assert (claimed["task_id"], claimed["actor"], claimed["from_state"], claimed["to_state"]) == (
        task_id,
        "scjg2",
        "ready",
        "claimed",
    )
    (started,) = events(engine, case_id, "start_work")
    assert (started["from_state"], started["to_state"]) == ("accepted", "in_progress")


def test_claim_is_for_members_of_the_department_and_only_once(engine, licence):
    _, task_id = licence
    with refused(engine, NotAllowed, "gaj1 is not a member of department scjg", "claim"):
        engine.claim_task(task_id, "gaj1")
    engine.claim_task(task_id, "scjg1")
    with refused(engine, NotAllowed, "签收 (claim) is not allowed", f"task {task_id} is claimed"):
        engine.claim_task(task_id, "scjg2")


def test_release_puts_the_task_back_in_the_queue(engine, licence):
    case_id, task_id = licence
    engine.claim_task(task_id, "scjg1")
    with refused(engine, NotAllowed, "claimed by scjg1; only they may release it"):
        engine.release_task(task_id, "scjg2")
    engine.release_task(task_id, "scjg1")
    task = task_row(engine, task_id)
    assert (task["state"], task["assignee"], task["claimed_at"]) == ("ready", None, None)
    assert [(e["from_state"], e["to_state"]) for e in events(engine, case_id, "released")] == [("claimed", "ready")]
    with refused(engine, NotAllowed, "退回待办池 (release) is not allowed", "is ready"):
        engine.release_task(task_id, "scjg1")
    engine.claim_task(task_id, "scjg2")  # anyone of the department may take it now
    assert task_row(engine, task_id)["assignee"] == "scjg2"


# ----------------------------------------------------------------------------------------------
# reassign (改派)


def test_the_supervisor_reassigns_a_claimed_task(engine, licence):
    case_id, task_id = licence
    engine.claim_task(task_id, "scjg1")
    engine.reassign_task(task_id, "scjg_boss", "scjg3", "scjg1 休假")
    task = task_row(engine, task_id)
    assert (task["state"], task["assignee"]) == ("claimed", "scjg3")
    (moved,) = events(engine, case_id, "reassigned")
    assert moved["actor"] == "scjg_boss" and moved["data"] == {"to": "scjg3", "reason": "scjg1 休假"}
    (told,) = notifications(engine, case_id, "task_assigned")
    assert told["recipient_user"] == "scjg3" and told["task_id"] == task_id
    engine.complete_task(task_id, "scjg3")
    assert task_row(engine, task_id)["completed_by"] == "scjg3"


def test_the_supervisor_may_assign_a_ready_task(engine, licence):
    _, task_id = licence
    engine.reassign_task(task_id, "scjg_boss", "scjg2")
    task = task_row(engine, task_id)
    assert (task["state"], task["assignee"]) == ("claimed", "scjg2")


def test_reassign_is_for_the_departments_supervisor_to_a_member(engine, licence):
    _, task_id = licence
    engine.claim_task(task_id, "scjg1")
    with refused(engine, NotAllowed, "only the supervisor (scjg_supervisor) of scjg may reassign"):
        engine.reassign_task(task_id, "scjg2", "scjg3")
    with refused(engine, NotAllowed, "only the supervisor (scjg_supervisor) of scjg may reassign"):
        engine.reassign_task(task_id, "gaj_boss", "scjg3")
    with refused(engine, NotAllowed, "gaj1 is not a member of department scjg", "receive its tasks"):
        engine.reassign_task(task_id, "scjg_boss", "gaj1")
    engine.complete_task(task_id, "scjg1")
    with refused(engine, NotAllowed, "改派 (reassign) is not allowed", "is completed"):
        engine.reassign_task(task_id, "scjg_boss", "scjg3")


# ----------------------------------------------------------------------------------------------
# transfer (转办)


def test_transfer_hands_my_task_to_a_colleague(engine, licence):
    case_id, task_id = licence
    engine.claim_task(task_id, "scjg1")
    engine.transfer_task(task_id, "scjg1", "scjg2", "属于二科业务")
    task = task_row(engine, task_id)
    assert (task["state"], task["assignee"]) == ("claimed", "scjg2")
    assert events(engine, case_id, "transferred")[0]["data"] == {"to": "scjg2", "reason": "属于二科业务"}
    assert notifications(engine, case_id, "task_assigned")[0]["recipient_user"] == "scjg2"
    with refused(engine, NotAllowed, "claimed by scjg2; only they may complete it"):
        engine.complete_task(task_id, "scjg1")
    engine.complete_task(task_id, "scjg2")
    assert task_row(engine, task_id)["completed_by"] == "scjg2"


def test_transfer_refusals(engine, licence):
    _, task_id = licence
    with refused(engine, NotAllowed, "转办 (transfer) is not allowed", "is ready"):
        engine.transfer_task(task_id, "scjg1", "scjg2")
    engine.claim_task(task_id, "scjg1")
    with refused(engine, NotAllowed, "claimed by scjg1; only they may transfer it"):
        engine.transfer_task(task_id, "scjg2", "scjg3")
    with refused(engine, NotAllowed, "swj1 is not a member of department scjg"):
        engine.transfer_task(task_id, "scjg1", "swj1")


# ----------------------------------------------------------------------------------------------
# delegate (委派)


def test_a_delegates_completion_returns_to_the_owner_who_then_completes(engine, clock, licence):
    case_id, task_id = licence
    engine.claim_task(task_id, "scjg1")
    engine.delegate_task(task_id, "scjg1", "scjg2", "请先核对名称")
    task = task_row(engine, task_id)
    assert (task["assignee"], task["delegated_by"]) == ("scjg2", "scjg1")
    assert notifications(engine, case_id, "task_delegated")[0]["recipient_user"] == "scjg2"
    with refused(engine, NotAllowed, "claimed by scjg2; only they may complete it"):
        engine.complete_task(task_id, "scjg1")
    with refused(engine, NotAllowed, "already delegated by scjg1"):
        engine.delegate_task(task_id, "scjg2", "scjg3")

    clock.advance(minutes=30)
    engine.complete_task(task_id, "scjg2", "approve", "名称核对无误")
    task = task_row(engine, task_id)
    assert (task["state"], task["assignee"], task["delegated_by"]) == ("claimed", "scjg1", None)
    assert task["opinion"] == "名称核对无误"
    assert open_tasks(engine, case_id) == {"licence": task_id}  # nothing moved on yet
    (back,) = events(engine, case_id, "delegation_returned")
    assert back["actor"] == "scjg2" and back["data"] == {"outcome": "approve", "opinion": "名称核对无误"}
    assert notifications(engine, case_id, "task_returned")[0]["recipient_user"] == "scjg1"

    engine.complete_task(task_id, "scjg1", "approve", "同意核发")
    task = task_row(engine, task_id)
    assert (task["state"], task["completed_by"], task["opinion"]) == ("completed", "scjg1", "同意核发")
    assert set(open_tasks(engine, case_id)) == {"seal", "invoice", "social"}


def test_delegate_refusals(engine, licence):
    _, task_id = licence
    with refused(engine, NotAllowed, "委派 (delegate) is not allowed", "is ready"):
        engine.delegate_task(task_id, "scjg1", "scjg2")
    engine.claim_task(task_id, "scjg1")
    with refused(engine, NotAllowed, "claimed by scjg1; only they may delegate it"):
        engine.delegate_task(task_id, "scjg2", "scjg3")
    with refused(engine, NotFound, "user nobody does not exist"):
        engine.delegate_task(task_id, "scjg1", "nobody")


def test_a_delegate_may_neither_release_nor_transfer_the_task(engine, licence):
    """委派 keeps the task the owner's: the delegate works it and it comes back to the owner."""
    _, task_id = licence
    engine.claim_task(task_id, "scjg1")
    engine.delegate_task(task_id, "scjg1", "scjg2")
    with refused(engine, NotAllowed, "delegated by scjg1 (委派)", "may not put it back in the queue"):
        engine.release_task(task_id, "scjg1")
    with refused(engine, NotAllowed, "delegated by scjg1 (委派)", "may not put it back in the queue"):
        engine.release_task(task_id, "scjg2")
    with refused(engine, NotAllowed, "delegated by scjg1 (委派)", "may not transfer it"):
        engine.transfer_task(task_id, "scjg2", "scjg3")
    engine.complete_task(task_id, "scjg2", "approve", "已核对")
    task = task_row(engine, task_id)
    assert (task["state"], task["assignee"], task["delegated_by"]) == ("claimed", "scjg1", None)


# ----------------------------------------------------------------------------------------------
# urge (催办 / 督办)


def test_urging_a_queued_task_notifies_its_department_with_a_due_time(engine, clock, licence):
    case_id, task_id = licence
    clock.advance(hours=1)
    urge_id = engine.urge("scjg_boss", "请尽快核发执照", task_id=task_id, within="2h")
    (urge,) = rows_of(engine, "urges", case_id)
    assert urge["id"] == urge_id
    assert (urge["task_id"], urge["level"], urge["by"], urge["message"]) == (
        task_id,
        "urge",
        "scjg_boss",
        "请尽快核发执照",
    )
    assert urge["due_at"] == at(2, 13) and urge["created_at"] == at(2, 11)
    (told,) = notifications(engine, case_id, "urge")
    assert (told["recipient_user"], told["recipient_department"]) == (None, "scjg")
    assert "催办" in told["message"] and "请尽快核发执照" in told["message"]
    assert events(engine, case_id, "urge")[0]["actor"] == "scjg_boss"


def test_supervising_a_claimed_task_notifies_its_assignee(engine, clock, licence):
    case_id, task_id = licence
    engine.claim_task(task_id, "scjg1")
    clock.set(at(2, 16))
    engine.urge("zwfw_boss", "已临近承诺时限", task_id=task_id, level="supervise", within="1d")
    (urge,) = rows_of(engine, "urges", case_id)
    assert urge["level"] == "supervise" and urge["due_at"] == at(3, 17)
    (told,) = notifications(engine, case_id, "supervise")
    assert (told["recipient_user"], told["recipient_department"]) == ("scjg1", None)
    assert "督办" in told["message"]


def test_urging_a_case_notifies_whoever_holds_its_open_tasks(engine, licence):
    case_id, task_id = licence
    engine.complete_task(task_id, "scjg1")
    engine.claim_task(open_tasks(engine, case_id)["invoice"], "swj2")
    engine.urge("zwfw_boss", "请各部门加快办理", case_id=case_id, level="supervise")
    (urge,) = rows_of(engine, "urges", case_id)
    assert (urge["task_id"], urge["due_at"], urge["level"]) == (None, None, "supervise")
    told = {(n["recipient_user"], n["recipient_department"]) for n in notifications(engine, case_id, "supervise")}
    assert told == {("swj2", None), (None, "gaj"), (None, "rsj")}


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"level": "shout"}, InvalidData, ["level is urge (催办) or supervise (督办)"]),
        ({"case_id": 1}, InvalidData, ["exactly one of task_id and case_id"]),
        ({"within": "soon"}, InvalidData, ["within: bad limit 'soon'"]),
        ({"message": " "}, InvalidData, ["an urge needs a message"]),
        ({"actor": "stranger"}, NotAllowed, ["stranger is no registered user"]),
    ],
)
def test_urge_refusals(engine, licence, kwargs, error, words):
    _, task_id = licence
    kwargs = {"actor": "scjg_boss", "message": "请加快", "task_id": task_id, **kwargs}
    with refused(engine, error, *words):
        engine.urge(kwargs.pop("actor"), kwargs.pop("message"), **kwargs)


def test_a_completed_task_cannot_be_urged(engine, licence):
    _, task_id = licence
    engine.complete_task(task_id, "scjg1")
    with refused(engine, NotAllowed, "催办/督办 (urge) is not allowed", "is completed"):
        engine.urge("scjg_boss", "请加快", task_id=task_id)


# ----------------------------------------------------------------------------------------------
# people (add_user)


def test_add_user_registers_roles_and_refuses_unknown_departments(engine, licence):
    _, task_id = licence
    with refused(engine, InvalidData, "unknown departments", "'tax' is not a published department"):
        engine.add_user("new1", "新人", [("scjg", "handler"), ("tax", "handler")])
    engine.add_user("new1", "新人", [("scjg", "handler")])
    engine.add_user("new1", "新人（已转正）", [("scjg", "scjg_supervisor")])  # re-adding adds the role
    (user,) = [u for u in rows_of(engine, "users") if u["id"] == "new1"]
    assert user["name"] == "新人（已转正）"
    roles = {(m["department"], m["role"]) for m in rows_of(engine, "memberships") if m["user_id"] == "new1"}
    assert roles == {("scjg", "handler"), ("scjg", "scjg_supervisor")}
    engine.reassign_task(task_id, "new1", "new1")  # now the supervisor, and a member
    assert task_row(engine, task_id)["assignee"] == "new1"
