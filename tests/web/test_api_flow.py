"""A 开办企业 case from the window to the applicant's rating, over HTTP only (kaiban-mini)."""

from __future__ import annotations

from .api_support import APPLICANT, Api, application


def test_a_case_from_the_window_to_the_evaluation(client, clock):
    api = Api(client)
    submitted = api.ok(api.post("zwfw1", "/api/cases", application(), headers={"Idempotency-Key": "flow-1"}), 201)
    number = submitted["number"]
    assert submitted["state"] == "submitted" and submitted["applicant_id"] == APPLICANT["id"]  # a window sees it

    accepted = api.ok(api.post("zwfw1", f"/api/cases/{number}/accept", {"opinion": "材料齐全，予以受理"}))
    assert accepted["case"]["state"] in ("accepted", "in_progress") and accepted["case"]["due_at"]

    # scjg's licence first (lead), then gaj, swj and rsj in parallel, each claimed and completed by its staff
    licence = api.open_task(number, "licence")
    queue = api.ok(api.get("scjg2", "/api/tasks"))
    assert [i["task_id"] for i in queue["items"]] == [licence] and queue["items"][0]["applicant_id"].count("*") == 8
    detail = api.ok(api.get("scjg2", f"/api/tasks/{licence}"))
    assert "claim" in [a["name"] for a in detail["actions"]] and detail["form"]["company_name"]
    api.ok(api.post("scjg2", f"/api/tasks/{licence}/claim"))
    assert [i["task_id"] for i in api.ok(api.get("scjg2", "/api/tasks?scope=claimed"))["items"]] == [licence]
    done = api.ok(api.post("scjg2", f"/api/tasks/{licence}/complete", {"outcome": "approve", "opinion": "准予登记"}))
    assert done["task"]["state"] == "completed" and done["task"]["outcome"] == "approve"
    assert api.ok(api.get("scjg2", "/api/tasks?scope=done"))["items"][0]["task_id"] == licence

    for step, user in (("seal", "gaj1"), ("invoice", "swj1"), ("social", "rsj1")):
        api.work(number, step, user)
    issue = api.open_task(number, "issue")
    api.ok(api.post("zwfw2", f"/api/tasks/{issue}/claim"))
    issued = api.ok(api.post("zwfw2", f"/api/tasks/{issue}/issue", {"delivery": "window"}))
    assert issued["certificates"] == [f"{number}-BUSINESS_LICENCE"]
    assert issued["case"]["state"] == "completed"

    case = api.ok(api.get("zwfw1", f"/api/cases/{number}"))
    assert [c["name"] for c in case["certificates"]] == ["营业执照"]
    assert {t["step_id"] for t in case["tasks"] if t["state"] == "completed"} == {
        "accept",
        "licence",
        "seal",
        "invoice",
        "social",
        "issue",
    }
    assert case["timeline"][0]["kind"] == "submitted" and case["timeline"][-1]["kind"] == "complete"
    assert "evaluate" not in [a["name"] for a in case["actions"]]  # the applicant's, not the window's

    progress = client.get(f"/api/progress/{number}", params={"id_number": APPLICANT["id"]})
    shown = api.ok(progress)
    assert shown["state"] == "completed" and shown["can_rate"] and len(shown["done"]) == 6
    staff = ("zwfw1", "zwfw2", "scjg2", "gaj1", "swj1", "rsj1", "办理人")
    assert not [who for who in staff if who in progress.text]  # departments and steps, never a person

    rated = api.ok(
        api.post(
            "zwfw1",
            f"/api/cases/{number}/evaluate",
            {"applicant_id": APPLICANT["id"], "level": 1, "channel": "hall", "comment": "一次办好"},
        )
    )
    assert rated["created_id"]
    again = api.ok(client.get(f"/api/progress/{number}", params={"id_number": APPLICANT["id"]}))
    assert not again["can_rate"]
    case = api.ok(api.get("manager", f"/api/cases/{number}"))
    assert case["evaluation"]["level"] == 1 and case["evaluation"]["rater"] == "110101********1234"
    assert case["applicant"]["id"] == "110101********1234" and case["applicant"]["phone"] == "138****5678"
    assert case["actions"] == []  # a manager reads, and changes nothing
