"""``/api/tasks``: the queues (scopes, filters, paging), one task with its actions, and every task action:
签收, 放回, 办理, 签署, 转办, 改派, 委派, 加签, 退回, 撤回, 出件, the leader's decision on a refusal, 催办."""

from __future__ import annotations

import pytest

from .api_support import APPLICANT, Api


@pytest.fixture
def api(client):
    return Api(client)


def _ids(page):
    return [i["task_id"] for i in page["items"]]


# ---------------------------------------------------------------------------------------------------
# queues


def test_the_queues_of_a_handler_mine_department_claimed_done(api, clock):
    numbers = []
    for _ in range(3):
        numbers.append(api.accepted())
        clock.advance(minutes=5)
    licences = [api.open_task(n, "licence") for n in numbers]
    mine = api.ok(api.get("scjg1", "/api/tasks"))
    assert _ids(mine) == licences and mine["next"] is None  # earliest due first
    item = mine["items"][0]
    assert item["source"] == "pool" and item["step_name"] == "营业执照核发" and item["sla_state"] == "on_track"
    assert item["applicant_id"] == "110101********1234" and item["remaining_minutes"] > 0
    assert _ids(api.ok(api.get("scjg1", "/api/tasks", params={"scope": "department"}))) == licences
    assert _ids(api.ok(api.get("manager", "/api/tasks", params={"scope": "department", "department": "scjg"})))
    assert api.ok(api.get("manager", "/api/tasks"))["items"] == []  # a manager holds no queue

    first = api.ok(api.get("scjg1", "/api/tasks", params={"limit": 2}))
    rest = api.ok(api.get("scjg1", "/api/tasks", params={"limit": 2, "cursor": first["next"]}))
    assert _ids(first) + _ids(rest) == licences and rest["next"] is None

    api.ok(api.post("scjg1", f"/api/tasks/{licences[1]}/claim"))
    assert _ids(api.ok(api.get("scjg1", "/api/tasks", params={"scope": "claimed"}))) == [licences[1]]
    assert _ids(api.ok(api.get("scjg2", "/api/tasks"))) == [licences[0], licences[2]]
    api.ok(api.post("scjg1", f"/api/tasks/{licences[1]}/complete", {"outcome": "approve", "opinion": "准予"}))
    done = api.ok(api.get("scjg1", "/api/tasks", params={"scope": "done"}))
    assert _ids(done) == [licences[1]] and done["items"][0]["what"] == "completed"
    assert done["items"][0]["outcome"] == "approve" and done["items"][0]["state"] == "completed"

    by_number = api.ok(api.get("scjg2", "/api/tasks", params={"number": numbers[2]}))
    assert _ids(by_number) == [licences[2]]
    assert _ids(api.ok(api.get("scjg2", "/api/tasks", params={"step": "seal"}))) == []
    assert _ids(api.ok(api.get("gaj1", "/api/tasks", params={"step": "seal"}))) == [api.open_task(numbers[1], "seal")]
    assert _ids(api.ok(api.get("scjg2", "/api/tasks", params={"definition": "kaiban-mini"}))) == [
        licences[0],
        licences[2],
    ]
    assert _ids(api.ok(api.get("scjg2", "/api/tasks", params={"sla_state": "overdue"}))) == []


@pytest.mark.parametrize(
    ("user", "params", "status"),
    [
        ("scjg1", {"scope": "department", "department": "gaj"}, 403),
        ("scjg1", {"scope": "everything"}, 422),
        ("scjg1", {"scope": "done", "step": "licence"}, 422),
        ("scjg1", {"cursor": "u:not-a-number"}, 422),
        ("scjg1", {"cursor": "t:2026-03-02T10:00:00:5"}, 422),
        ("scjg1", {"cursor": "u:99999999999999999999"}, 422),
        ("scjg1", {"scope": "done", "cursor": "nonsense"}, 422),
        ("scjg1", {"limit": 1000}, 422),
        ("scjg1", {"step": "Bad Step"}, 422),
        ("manager", {"scope": "department"}, 422),
        ("designer", {}, 403),
    ],
)
def test_bad_queue_requests(api, user, params, status):
    answer = api.get(user, "/api/tasks", params=params)
    assert answer.status_code == status, answer.text
    assert answer.json()["message"]


# ---------------------------------------------------------------------------------------------------
# one task


def test_a_task_with_its_case_and_the_actions_to_show(api, engine):
    number = api.accepted()
    licence = api.open_task(number, "licence")
    shown = api.ok(api.get("scjg1", f"/api/tasks/{licence}"))
    assert shown["task"]["id"] == licence and shown["case"]["number"] == number
    assert shown["applicant"]["id"] == APPLICANT["id"] and shown["form"]["company_name"] == "深圳市通办科技有限公司"
    task_actions = [a["name"] for a in shown["actions"] if a["subject"] == "task"]
    assert task_actions == ["claim", "approve", "reject", "return", "urge_task"]
    api.ok(api.post("scjg1", f"/api/tasks/{licence}/claim"))
    others = {a["name"] for a in api.ok(api.get("scjg2", f"/api/tasks/{licence}"))["actions"] if a["subject"] == "task"}
    assert "claim" not in others and "approve" not in others  # scjg1 holds it now
    held = {a["name"] for a in api.ok(api.get("scjg1", f"/api/tasks/{licence}"))["actions"]}
    assert {"release", "transfer", "delegate", "add_signer", "approve"} <= held
    assert api.get("gaj1", f"/api/tasks/{licence}").status_code == 404
    managed = api.ok(api.get("manager", f"/api/tasks/{licence}"))
    assert managed["actions"] == [] and managed["applicant"]["id"] == "110101********1234"
    assert api.get("designer", f"/api/tasks/{licence}").status_code == 403


@pytest.mark.parametrize(("task", "status"), [("0", 422), ("-1", 422), ("9" * 30, 422), ("x", 422), ("999999", 404)])
def test_an_odd_or_unknown_task_id(api, task, status):
    assert api.get("scjg1", f"/api/tasks/{task}").status_code == status
    assert api.post("scjg1", f"/api/tasks/{task}/claim").status_code == status


# ---------------------------------------------------------------------------------------------------
# the work


def test_claim_release_transfer_delegate_and_reassign(api):
    number = api.accepted()
    licence = api.open_task(number, "licence")
    api.ok(api.post("scjg1", f"/api/tasks/{licence}/claim"))
    again = api.post("scjg2", f"/api/tasks/{licence}/claim")
    assert again.status_code == 409 and again.json()["error"] in ("not_allowed", "conflict")
    released = api.ok(api.post("scjg1", f"/api/tasks/{licence}/release"))
    assert released["task"]["state"] == "ready" and released["task"]["assignee"] is None
    api.ok(api.post("scjg1", f"/api/tasks/{licence}/claim"))
    assert api.post("scjg1", f"/api/tasks/{licence}/transfer", {"to_user": ""}).status_code == 422
    moved = api.ok(api.post("scjg1", f"/api/tasks/{licence}/transfer", {"to_user": "scjg2", "reason": "出差"}))
    assert moved["task"]["assignee"] == "scjg2"
    assert api.post("scjg1", f"/api/tasks/{licence}/transfer", {"to_user": "scjg3"}).status_code == 409
    delegated = api.ok(api.post("scjg2", f"/api/tasks/{licence}/delegate", {"to_user": "scjg3", "note": "请代办"}))
    assert delegated["task"]["assignee"] == "scjg3" and delegated["task"]["delegated_by"] == "scjg2"
    back = api.ok(api.post("scjg3", f"/api/tasks/{licence}/complete", {"outcome": "approve", "opinion": "已审"}))
    assert back["task"]["state"] == "claimed" and back["task"]["assignee"] == "scjg2"  # 委派 comes back
    assert api.post("scjg1", f"/api/tasks/{licence}/reassign", {"to_user": "scjg1"}).status_code == 409
    reassigned = api.ok(api.post("scjg_boss", f"/api/tasks/{licence}/reassign", {"to_user": "scjg1", "reason": "均衡"}))
    assert reassigned["task"]["assignee"] == "scjg1"


def test_an_added_signer_of_another_department_sees_and_signs_the_task(api):
    number = api.accepted()
    licence = api.open_task(number, "licence")
    assert api.post("scjg1", f"/api/tasks/{licence}/sign").status_code == 409  # nothing to sign
    api.ok(api.post("scjg1", f"/api/tasks/{licence}/claim"))
    added = api.ok(api.post("scjg1", f"/api/tasks/{licence}/add-signer", {"signer": "gaj1", "note": "请会签"}))
    assert added["task"]["signoffs_open"] == 1
    owed = api.ok(api.get("gaj1", "/api/tasks"))["items"]
    assert [(i["task_id"], i["can_sign"], i["signature"]) for i in owed] == [(licence, True, "user:gaj1")]
    assert api.ok(api.get("gaj1", f"/api/tasks/{licence}"))["task"]["id"] == licence
    early = api.post("scjg1", f"/api/tasks/{licence}/complete", {"outcome": "approve", "opinion": "同意"})
    assert early.status_code == 409 and "gaj1" in early.json()["message"]
    signed = api.ok(api.post("gaj1", f"/api/tasks/{licence}/sign", {"outcome": "approve", "opinion": "无异议"}))
    assert signed["task"]["signoffs_open"] == 0 and signed["task"]["state"] == "claimed"
    done = api.ok(api.post("scjg1", f"/api/tasks/{licence}/complete", {"outcome": "approve", "opinion": "同意"}))
    assert done["task"]["state"] == "completed"


def test_a_joint_survey_is_signed_by_each_participant(api):
    number = api.submit(
        definition="survey-mini",
        form={"project_name": "产业园一期", "floor_area": 800},
        materials=["site_plan", "drawings"],
    )
    api.ok(api.post("zwfw1", f"/api/cases/{number}/accept", {}))
    survey = api.open_task(number, "survey")
    assert api.ok(api.get("xf1", f"/api/tasks/{survey}"))["task"]["kind"] == "survey"  # a participant sees it
    assert [c["number"] for c in api.ok(api.get("xf1", "/api/cases"))["items"]] == [number]  # and its case
    assert api.ok(api.get("swj1", "/api/cases"))["items"] == []
    assert [i["signature"] for i in api.ok(api.get("xf1", "/api/tasks"))["items"]] == ["department:xf"]
    assert api.post("swj1", f"/api/tasks/{survey}/sign").status_code == 404
    for user in ("xf1", "gaj1"):
        signed = api.ok(api.post(user, f"/api/tasks/{survey}/sign", {"opinion": "现场符合要求"}))
        assert signed["task"]["state"] != "completed"
    last = api.ok(api.post("zjj1", f"/api/tasks/{survey}/sign", {"opinion": "现场符合要求"}))
    assert last["task"]["state"] == "completed" and last["case"]["state"] == "in_progress"
    assert [s["signed_by"] for s in last["task"]["signoffs"]] == ["zjj1", "xf1", "gaj1"]
    assert api.ok(api.get("xf1", "/api/tasks", params={"scope": "done"}))["items"][0]["what"] == "signed"


def test_a_rejection_waits_for_the_leader_who_confirms_or_sends_it_back(api, client):
    number = api.accepted()
    licence = api.open_task(number, "licence")
    api.ok(api.post("scjg1", f"/api/tasks/{licence}/claim"))
    no_reason = api.post("scjg1", f"/api/tasks/{licence}/complete", {"outcome": "reject"})
    assert no_reason.status_code == 422 and "opinion" in no_reason.json()["message"]
    proposed = api.ok(api.post("scjg1", f"/api/tasks/{licence}/complete", {"outcome": "reject", "opinion": "名称重复"}))
    assert proposed["case"]["state"] == "in_progress" and proposed["task"]["state"] == "claimed"
    report = api.open_task(number, "__negative_report__")
    sent_back = api.ok(api.post("scjg_boss", f"/api/tasks/{report}/send-back-refusal", {"opinion": "名称可用"}))
    assert sent_back["task"]["state"] == "completed"
    api.ok(api.post("scjg1", f"/api/tasks/{licence}/complete", {"outcome": "reject", "opinion": "确有重名"}))
    report = api.open_task(number, "__negative_report__")
    assert api.post("scjg_boss", f"/api/tasks/{report}/send-back-refusal", {}).status_code == 422
    confirmed = api.ok(api.post("scjg_boss", f"/api/tasks/{report}/confirm-refusal", {"opinion": "同意不予许可"}))
    assert confirmed["case"]["state"] == "rejected"
    shown = api.ok(client.get(f"/api/progress/{number}", params={"id_number": APPLICANT["id"]}))
    assert shown["outcome"] == "rejected" and shown["reason"] == "确有重名"


def test_a_return_for_materials_stops_the_clock_until_they_arrive(api):
    number = api.accepted()
    licence = api.open_task(number, "licence")
    api.ok(api.post("scjg1", f"/api/tasks/{licence}/claim"))
    returned = api.ok(
        api.post(
            "scjg1",
            f"/api/tasks/{licence}/complete",
            {"outcome": "return", "opinion": "请补交章程", "missing": ["lease"]},
        )
    )
    assert returned["case"]["state"] == "suspended" and returned["task"]["waiting"] == "applicant"
    supplied = api.ok(
        api.post("zwfw1", f"/api/cases/{number}/supply", {"applicant_id": APPLICANT["id"], "materials": ["lease"]})
    )
    assert supplied["case"]["state"] == "in_progress"


def test_send_back_and_take_back(api):
    number = api.accepted()
    licence = api.work(number, "licence", "scjg1")
    seal = api.open_task(number, "seal")
    taken = api.ok(api.post("scjg1", f"/api/tasks/{licence}/take-back"))
    assert taken["task"]["state"] in ("ready", "claimed") and taken["created_id"] == taken["task"]["id"]
    assert api.get("gaj1", f"/api/tasks/{seal}").status_code in (200, 404)
    api.ok(api.post("scjg1", f"/api/tasks/{taken['created_id']}/complete", {"outcome": "approve", "opinion": "好"}))
    seal = api.open_task(number, "seal")
    api.ok(api.post("gaj1", f"/api/tasks/{seal}/claim"))
    assert api.post("gaj1", f"/api/tasks/{seal}/send-back", {"reason": ""}).status_code == 422
    assert api.post("gaj1", f"/api/tasks/{seal}/send-back", {"reason": "x", "to_step": "nowhere"}).status_code in (
        409,
        422,
    )
    sent = api.ok(api.post("gaj1", f"/api/tasks/{seal}/send-back", {"reason": "名称与营业执照不一致"}))
    assert sent["task"]["state"] == "cancelled" and sent["created_id"]
    assert api.ok(api.get("scjg1", f"/api/tasks/{sent['created_id']}"))["task"]["step_id"] == "licence"


def test_issuing_the_certificates(api):
    number = api.accepted(form={"company_name": "甲公司", "needs_seal": False, "employees": 0})
    api.work(number, "licence", "scjg1")
    api.work(number, "invoice", "swj1")
    issue = api.open_task(number, "issue")
    assert api.post("zwfw1", f"/api/tasks/{issue}/issue", {"delivery": "mail"}).status_code == 422  # tracking no.
    assert api.post("zwfw1", f"/api/tasks/{issue}/issue", {"delivery": "drone"}).status_code == 422
    assert api.post("scjg1", f"/api/tasks/{issue}/issue", {}).status_code == 404
    issued = api.ok(
        api.post(
            "zwfw1",
            f"/api/tasks/{issue}/issue",
            {"delivery": "mail", "tracking_number": "SF1234567890", "numbers": {"business_licence": "91440300X"}},
        )
    )
    assert issued["certificates"] == ["91440300X"] and issued["case"]["state"] == "completed"
    again = api.post("zwfw1", f"/api/tasks/{issue}/issue", {})
    assert again.status_code == 409


def test_urging_a_task(api):
    number = api.accepted()
    licence = api.open_task(number, "licence")
    urged = api.ok(api.post("scjg_boss", f"/api/tasks/{licence}/urge", {"message": "今天办结", "level": "supervise"}))
    assert urged["created_id"]
    assert api.post("scjg_boss", f"/api/tasks/{licence}/urge", {"message": "x", "level": "shout"}).status_code == 422


@pytest.mark.parametrize("user", ["manager", "admin", "designer"])
def test_managers_admins_and_designers_change_nothing(api, user):
    number = api.accepted()
    licence = api.open_task(number, "licence")
    for action, body in [("claim", None), ("complete", {"outcome": "approve"}), ("urge", {"message": "快"})]:
        answer = api.post(user, f"/api/tasks/{licence}/{action}", body)
        assert answer.status_code == 403 and answer.json()["error"] == "forbidden"
    suspension = {"kind": "hearing", "reason": "听证", "expected": "1d"}
    assert api.post(user, f"/api/cases/{number}/suspend", suspension).status_code == 403


def test_another_departments_task_is_404_for_every_action(api):
    number = api.accepted()
    licence = api.open_task(number, "licence")
    for action, body in [
        ("claim", None),
        ("release", None),
        ("complete", {"outcome": "approve"}),
        ("sign", None),
        ("transfer", {"to_user": "gaj2"}),
        ("delegate", {"to_user": "gaj2"}),
        ("reassign", {"to_user": "gaj2"}),
        ("add-signer", {"signer": "gaj2"}),
        ("send-back", {"reason": "x"}),
        ("take-back", None),
        ("issue", None),
        ("confirm-refusal", None),
        ("send-back-refusal", {"opinion": "x"}),
        ("urge", {"message": "x"}),
        ("retry-incident", None),
        ("hand-over", None),
    ]:
        answer = api.post("gaj_boss", f"/api/tasks/{licence}/{action}", body)
        assert answer.status_code == 404, (action, answer.text)
