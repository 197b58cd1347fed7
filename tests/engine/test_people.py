"""People: add_user only adds roles; set_memberships sets them exactly, checks each against the
department's roles (departments.yaml), records the change, and leaves the tasks a person still holds in
a department they left with the department, for its supervisor to reassign (改派)."""

from __future__ import annotations

from orchestrator.engine import InvalidData, NotAllowed, NotFound

from .helpers import accepted_kaiban, at, notifications, open_tasks, refused, rows_of, task_row


def memberships(engine, user: str) -> list[tuple[str, str]]:
    return sorted((r["department"], r["role"]) for r in rows_of(engine, "memberships") if r["user_id"] == user)


def test_add_user_only_adds_roles(engine):
    engine.add_user("li", "李雷", [("scjg", "handler")])
    engine.add_user("li", "李雷", [("gaj", "handler")])
    assert memberships(engine, "li") == [("gaj", "handler"), ("scjg", "handler")]


def test_set_memberships_sets_them_exactly_and_records_the_change(engine, clock):
    engine.add_user("li", "李雷", [("scjg", "handler"), ("gaj", "handler")])
    clock.set(at(3, 9))
    assert engine.set_memberships("li", "李雷", [("gaj", "handler"), ("gaj", "duty_a")], "admin-wang") == []
    assert memberships(engine, "li") == [("gaj", "duty_a"), ("gaj", "handler")]
    (change,) = rows_of(engine, "membership_changes")
    assert (change["user_id"], change["actor"], change["at"]) == ("li", "admin-wang", at(3, 9))
    assert change["before"] == [["gaj", "handler"], ["scjg", "handler"]]
    assert change["after"] == [["gaj", "duty_a"], ["gaj", "handler"]]
    engine.set_memberships("li", "李雷", [("gaj", "duty_a"), ("gaj", "handler")], "admin-wang")  # no change
    assert len(rows_of(engine, "membership_changes")) == 1
    engine.set_memberships("li", "李雷", [], "admin-wang")  # leaves every department
    assert memberships(engine, "li") == []
    assert engine.staff("li").memberships == [] and len(engine.staff("li").changes) == 2


def test_set_memberships_refuses_unknown_departments_and_roles_they_do_not_have(engine):
    engine.add_user("li", "李雷", [("scjg", "handler")])
    with refused(engine, InvalidData, "'scjq' is not a published department (did you mean 'scjg'?)",
                 "'fire_reviewer' is no role of gaj", "duty_a, duty_b, gaj_supervisor, handler"):  # fmt: skip
        engine.set_memberships("li", "李雷", [("scjq", "handler"), ("gaj", "fire_reviewer")], "admin")
    with refused(engine, InvalidData, "who makes the change"):
        engine.set_memberships("li", "李雷", [("gaj", "handler")], " ")
    assert memberships(engine, "li") == [("scjg", "handler")]
    engine.set_memberships("li", "李雷", [("xf", "fire_reviewer"), ("scjg", "scjg_supervisor")], "admin")
    assert memberships(engine, "li") == [("scjg", "scjg_supervisor"), ("xf", "fire_reviewer")]


def test_a_removed_member_no_longer_works_the_tasks_they_hold_and_the_department_reassigns_them(engine):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    engine.claim_task(licence, "scjg1")
    held = engine.set_memberships("scjg1", "scjg 办理人 1", [("swj", "handler")], "admin")
    assert held == [licence]
    task = task_row(engine, licence)
    assert (task["state"], task["assignee"], task["department"]) == ("claimed", "scjg1", "scjg")  # still visible
    (told,) = notifications(engine, case_id, "member_left")
    assert (told["recipient_department"], told["recipient_role"]) == ("scjg", "scjg_supervisor")
    assert f"任务 {licence}" in told["message"] and "改派" in told["message"]
    with refused(engine, NotAllowed, "scjg1 is not a member of department scjg"):
        engine.complete_task(licence, "scjg1", "approve", "同意")
    assert "approve" not in engine.available_actions("scjg1", task_id=licence)
    assert [t.id for t in engine.staff("scjg1").held] == [licence]
    engine.reassign_task(licence, "scjg_boss", "scjg2", "原承办人已调离")
    engine.complete_task(licence, "scjg2", "approve", "同意")
    assert task_row(engine, licence)["completed_by"] == "scjg2"


def test_staff_of_an_unknown_user_is_not_found(engine):
    with refused(engine, NotFound, "user nobody does not exist"):
        engine.staff("nobody")
