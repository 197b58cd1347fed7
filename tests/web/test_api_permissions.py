"""Who may do what through the API: every role, in the case's own department and in another one.

A kaiban-mini case is accepted, so its open task is scjg's licence. Another department's case or task
is 404 (nobody learns it exists); a role that may not use an endpoint at all is 403.
"""

from __future__ import annotations

import pytest

from .api_support import Api, application

# user: (case read, case listed, task read, claim, case urge, submit)
MATRIX = {
    "scjg1": (200, True, 200, 200, 200, 403),  # staff, own department
    "gaj1": (404, False, 404, 404, 404, 403),  # staff, another department
    "scjg_boss": (200, True, 200, 200, 200, 403),  # supervisor, own department
    "gaj_boss": (404, False, 404, 404, 404, 403),  # supervisor, another department
    "zwfw1": (200, True, 404, 404, 200, 201),  # window: every case (全市通办), its own department's tasks
    "manager": (200, True, 200, 403, 403, 403),  # reads everything, changes nothing
    "admin": (200, True, 200, 403, 403, 403),
    "designer": (403, None, 403, 403, 403, 403),  # no case access
}


@pytest.mark.parametrize("user", list(MATRIX))
def test_the_permission_matrix(client, user):
    api = Api(client)
    case_read, listed, task_read, claim, urge, submit = MATRIX[user]
    number = api.accepted()
    licence = api.open_task(number, "licence")

    assert api.get(user, f"/api/cases/{number}").status_code == case_read
    assert api.get(user, f"/api/cases/{number}/flowchart.svg").status_code == case_read
    cases = api.get(user, "/api/cases")
    if listed is None:
        assert cases.status_code == 403
    else:
        assert (number in [c["number"] for c in api.ok(cases)["items"]]) is listed
    assert api.get(user, f"/api/tasks/{licence}").status_code == task_read
    assert api.get(user, "/api/alerts").status_code == (403 if user == "designer" else 200)
    assert api.get(user, "/api/tasks").status_code == (403 if user == "designer" else 200)
    assert api.get(user, "/api/definitions").status_code == 200  # every account reads the 办事指南
    assert api.post(user, f"/api/cases/{number}/urge", {"message": "请尽快办理"}).status_code == urge
    assert api.post(user, f"/api/tasks/{licence}/claim").status_code == claim
    assert api.post(user, "/api/cases", application()).status_code == submit


def test_a_person_of_two_departments_sees_both(client, engine):
    engine.add_user("scjg1", "scjg 办理人 1", [("gaj", "handler")])  # now in scjg and gaj
    api = Api(client)
    number = api.accepted()
    licence = api.work(number, "licence", "scjg1")
    seal = api.open_task(number, "seal")
    assert api.get("scjg1", f"/api/tasks/{seal}").status_code == 200
    assert seal in [i["task_id"] for i in api.ok(api.get("scjg1", "/api/tasks"))["items"]]
    assert api.get("gaj1", f"/api/cases/{number}").status_code == 200  # gaj works on the case now
    assert api.get("gaj1", f"/api/tasks/{licence}").status_code == 404  # but scjg's task is scjg's
