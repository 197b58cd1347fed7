"""``/api/progress``: 办理进度 for the applicant, without logging in, only with the number AND the id."""

from __future__ import annotations

import pytest

from .api_support import APPLICANT, Api


@pytest.fixture
def api(client):
    return Api(client)


def test_progress_needs_the_number_and_the_applicants_id_and_names_no_staff(api, client):
    number = api.accepted()
    api.work(number, "licence", "scjg2")
    answer = client.get(f"/api/progress/{number}", params={"id_number": APPLICANT["id"]})
    shown = api.ok(answer)
    assert shown["number"] == number and shown["state"] == "in_progress" and shown["due_at"]
    assert [s["name"] for s in shown["done"]] == ["综合受理", "营业执照核发"]
    assert {s["department_name"] for s in shown["current"]} == {"公安局", "税务局", "人力资源和社会保障局"}
    assert not shown["can_rate"] and shown["materials_owed"] == []
    assert "scjg2" not in answer.text and "zwfw1" not in answer.text and "办理人" not in answer.text

    wrong = client.get(f"/api/progress/{number}", params={"id_number": "110101199003079999"})
    unknown = client.get("/api/progress/TB20260302-0000000000", params={"id_number": APPLICANT["id"]})
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json() == unknown.json()  # nobody learns which numbers exist


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("TB1", {}),
        ("TB1", {"id_number": ""}),
        ("TB1", {"id_number": "x" * 65}),
        ("TB1", {"id_number": "1\x002"}),
        ("TB%001", {"id_number": "1"}),
        ("T" * 41, {"id_number": "1"}),
    ],
)
def test_bad_progress_queries_are_422(client, path, params):
    answer = client.get(f"/api/progress/{path}", params=params)
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_data"


def test_owed_materials_and_the_rating_are_shown(api, client):
    number = api.submit(materials=["id_card"])
    api.ok(api.post("zwfw1", f"/api/cases/{number}/accept", {"deferred": ["lease"], "deferred_limit": "1d"}))
    shown = api.ok(client.get(f"/api/progress/{number}", params={"id_number": APPLICANT["id"]}))
    assert shown["materials_owed"] == ["lease"]


def test_guessing_identities_for_one_case_number_is_stopped_like_on_the_page(api, client):
    from web.pages.progress import MAX_FAILURES_PER_NUMBER

    number = api.accepted()
    for guess in range(MAX_FAILURES_PER_NUMBER):
        wrong = client.get(f"/api/progress/{number}", params={"id_number": f"11010119900307{guess:04d}"})
        assert wrong.status_code == 404
    stopped = client.get(f"/api/progress/{number}", params={"id_number": APPLICANT["id"]})
    assert stopped.status_code == 429 and int(stopped.headers["Retry-After"]) > 0
    assert stopped.json()["error"] == "too_many_attempts"
