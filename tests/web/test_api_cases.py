"""``/api/cases``: submitting (idempotency, channels, who may), bad applications, the list (filters,
paging, visibility, masking), one case, its flowchart, and every case action."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from orchestrator.store.models import Case
from web.accounts import add_account, audit_entries, case_views

from ..engine.test_performance import run_week
from .api_support import APPLICANT, Api, application
from .conftest import PASSWORD


@pytest.fixture
def api(client):
    return Api(client)


@pytest.fixture
def portal(engine):
    """An account without any role: the online portal's."""
    add_account(engine, "portal", "一网通办门户", PASSWORD)
    return "portal"


# ---------------------------------------------------------------------------------------------------
# submitting


def test_a_submission_is_201_with_its_location_and_a_replay_200_with_the_same_case(api, engine):
    first = api.post("zwfw1", "/api/cases", application(), headers={"Idempotency-Key": "a3f1-77"})
    created = api.ok(first, 201)
    assert first.headers["Location"] == f"/api/cases/{created['number']}"
    assert created["state"] == "submitted" and created["definition_name"] == "开办企业一件事"
    again = api.post("zwfw1", "/api/cases", application(), headers={"Idempotency-Key": "a3f1-77"})
    assert api.ok(again, 200)["number"] == created["number"]
    assert again.headers["Location"] == first.headers["Location"]
    same = application(  # the same application written differently: the default given, the materials reordered
        form={"employees": 3, "company_name": "深圳市通办科技有限公司"}, materials=["lease", "id_card", "lease"]
    )
    assert api.ok(api.post("zwfw1", "/api/cases", same, headers={"Idempotency-Key": "a3f1-77"}))["id"] == created["id"]
    with engine.db.connect() as conn:
        assert conn.execute(select(Case.id)).all() == [(created["id"],)]
        channel, centre = conn.execute(select(Case.channel, Case.centre)).one()
    assert (channel, centre) == ("window", "city")  # zwfw1's service centre
    assert any(e.action == "case_submitted" and e.user_id == "zwfw1" for e in audit_entries(engine.db))


def test_the_same_key_with_another_body_is_409_and_keys_are_each_clients_own(api, engine):
    number = api.ok(api.post("zwfw1", "/api/cases", application(), headers={"Idempotency-Key": "k1"}), 201)["number"]
    other = application(form={"company_name": "另一家公司", "employees": 0})
    refused = api.post("zwfw1", "/api/cases", other, headers={"Idempotency-Key": "k1"})
    assert refused.status_code == 409 and refused.json()["error"] == "conflict"
    elsewhere = api.ok(api.post("zwfw2", "/api/cases", application(), headers={"Idempotency-Key": "k1"}), 201)
    assert elsewhere["number"] != number  # another window's k1 is another key
    without = api.ok(api.post("zwfw1", "/api/cases", application()), 201)
    assert without["number"] not in (number, elsewhere["number"])
    with engine.db.connect() as conn:
        assert len(conn.execute(select(Case.id)).all()) == 3


@pytest.mark.parametrize("key", ["x" * 65, "has space", "", "tab\tkey"])
def test_a_bad_idempotency_key_is_422(api, key):
    answer = api.post("zwfw1", "/api/cases", application(), headers={"Idempotency-Key": key})
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_data"


def test_a_window_submits_at_its_centre_and_a_portal_account_online(api, engine, portal):
    assert api.post("zwfw2", "/api/cases", application(channel="online")).status_code == 422
    assert api.post(portal, "/api/cases", application(channel="window")).status_code == 422
    number = api.ok(api.post(portal, "/api/cases", application(channel="online")), 201)["number"]
    api.ok(api.post("zwfw2", "/api/cases", application()), 201)
    with engine.db.connect() as conn:
        rows = conn.execute(select(Case.number, Case.channel, Case.centre).order_by(Case.id)).all()
    assert [(r.channel, r.centre) for r in rows] == [("online", None), ("window", "district")]
    assert rows[0].number == number
    listed = api.ok(api.get("zwfw1", "/api/cases"))["items"]
    assert [(c["channel"], c["centre"]) for c in listed] == [("window", "district"), ("online", None)]
    assert api.get(portal, f"/api/cases/{number}").status_code == 403  # a portal reads progress, not cases


@pytest.mark.parametrize("user", ["scjg1", "scjg_boss", "manager", "designer", "admin"])
def test_only_windows_and_portal_accounts_submit(api, user):
    answer = api.post(user, "/api/cases", application())
    assert answer.status_code == 403 and answer.json()["error"] == "forbidden"


def test_no_token_is_401(client):
    answer = client.post("/api/cases", json=application())
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("changes", "status", "words"),
    [
        ({"definition": "no-such-thing"}, 404, "no published definition"),
        ({"definition": "Bad Key"}, 422, "definition"),
        ({"form": {"company_name": "", "employees": "three", "colour": "red"}}, 422, "company_name"),
        ({"form": {"company_name": "甲", "employees": 2**70}}, 422, "employees"),
        ({"form": {"company_name": "甲", "employees": -1}}, 422, "minimum"),
        ({"materials": ["id_card", "passport"]}, 422, "passport"),
        ({"applicant": {"id": "1"}}, 422, "name"),
        ({"applicant": {"id": "1", "name": "张\x00三"}}, 422, "name"),
        ({"applicant": {"id": "1", "name": "张三", "email": "x@example.org"}}, 422, "email"),
        ({"materials": "id_card"}, 422, "materials"),
        ({"extra": 1}, 422, "extra"),
    ],
)
def test_a_bad_application_says_what_is_wrong_and_writes_nothing(api, engine, changes, status, words):
    answer = api.post("zwfw1", "/api/cases", application(**changes))
    assert answer.status_code == status, answer.text
    assert words in answer.text
    body = answer.json()
    assert set(body) == {"error", "message", "details"}
    with engine.db.connect() as conn:
        assert conn.execute(select(Case.id)).first() is None


def test_every_form_problem_is_listed_at_once(api):
    answer = api.post("zwfw1", "/api/cases", application(form={"employees": "many", "colour": "red"}))
    assert answer.status_code == 422
    details = " ".join(answer.json()["details"])
    assert "company_name" in details and "employees" in details and "colour" in details


def test_an_oversized_or_broken_body_is_refused_as_json(api, web_settings):
    big = api.post(
        "zwfw1",
        "/api/cases",
        content=b'{"form": "' + b"x" * web_settings.max_body_bytes + b'"}',
        headers={"content-type": "application/json"},
    )
    assert big.status_code == 413 and big.json()["error"] == "too_large"
    broken = api.post("zwfw1", "/api/cases", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 422 and broken.json()["error"] == "invalid_data"


# ---------------------------------------------------------------------------------------------------
# the list and one case


def test_the_list_pages_newest_first_filters_and_masks(api, clock):
    numbers = []
    for n in range(3):
        numbers.append(api.submit(applicant={"id": f"91440300MA5F{n:06d}", "name": f"公司{n}"}))
        clock.advance(minutes=1)
    api.ok(api.post("zwfw1", f"/api/cases/{numbers[0]}/accept", {}))
    first = api.ok(api.get("zwfw1", "/api/cases", params={"limit": 2}))
    assert [c["number"] for c in first["items"]] == numbers[:0:-1] and first["next"]
    second = api.ok(api.get("zwfw1", "/api/cases", params={"limit": 2, "cursor": first["next"]}))
    assert [c["number"] for c in second["items"]] == [numbers[0]] and second["next"] is None

    def found(**params):
        return [c["number"] for c in api.ok(api.get("manager", "/api/cases", params=params))["items"]]

    assert found(state="submitted") == numbers[:0:-1]
    assert found(state="accepted", definition="kaiban-mini") == [numbers[0]]
    assert found(number=numbers[1]) == [numbers[1]]
    assert found(applicant="公司2") == [numbers[2]] == found(applicant="91440300MA5F000002")
    assert found(definition="survey-mini") == []
    assert found(submitted_from="2026-03-02T10:01:00+08:00") == numbers[:0:-1]
    assert found(submitted_to="2026-03-02T02:01:00Z") == [numbers[0]]

    person = api.submit(applicant=dict(APPLICANT))
    listed = api.ok(api.get("zwfw1", "/api/cases", params={"number": person}))["items"][0]
    assert listed["applicant_id"] == "110101********1234"  # lists are masked, even for a window


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "garbage"},
        {"cursor": "2026-03-02T02:00:00+00:00|99999999999999999999|"},
        {"cursor": "2026-03-02T02:00:00|5|"},
        {"cursor": "0001-01-01T00:00:00+14:00|5|"},
        {"limit": 0},
        {"limit": 501},
        {"limit": 10**30},
        {"state": "lost"},
        {"sla_state": "purple"},
        {"submitted_from": "2026-03-02T10:00:00"},
        {"submitted_from": "0001-01-01T00:00:00+14:00"},
        {"number": "TB\x00"},
        {"applicant": "x" * 201},
        {"live": "maybe"},
        {"channel": "fax"},
        {"visits": -1},
        {"max_visits": 100},
        {"done_from": "2026-03-02T10:00:00"},
        {"rated_to": "9999-12-31T23:59:59-14:00"},
        {"department": "nowhere"},
        {"rated_department": "Bad!"},
        {"step": "nowhere"},
        {"step": "licence", "definition": "survey-mini"},
    ],
)
def test_bad_list_parameters_are_422(api, params):
    answer = api.get("manager", "/api/cases", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_data"


def test_the_list_takes_the_dashboards_filters(api, engine, clock):
    week = run_week(engine, clock)
    m = week.monday
    with engine.db.connect() as conn:
        number = dict(conn.execute(select(Case.id, Case.number)).all())

    def found(**params) -> set[int]:
        items = api.ok(api.get("manager", "/api/cases", params=params))["items"]
        by_number = {n: case_id for case_id, n in number.items()}
        return {by_number[c["number"]] for c in items}

    monday = {"from": "2026-03-02T00:00:00+08:00", "to": "2026-03-03T00:00:00+08:00"}
    assert found(live=True) == {week.f} and found(channel="online") == {m.b, week.f}
    assert found(channel="window", at_centre=True) == {m.a, m.d, m.e}
    assert found(closed_from=monday["from"], closed_to=monday["to"]) == {m.a, m.b, m.e}
    assert found(department="scjg", done_from=monday["from"], done_to=monday["to"]) == {m.a, m.b, m.e}
    assert found(department="gaj", step="licence") == set() and found(step="__negative_report__") == {m.d}
    assert found(rated_department="gaj") == {m.a, m.e}
    assert found(rated_from=monday["to"], definition="kaiban-mini") == {m.d}
    assert found(visits=3) == {m.e} and found(max_visits=0) == {m.b, week.f}


def test_staff_see_the_cases_their_departments_work_on_and_another_departments_is_404(api, engine):
    number = api.accepted()
    untouched = api.submit()
    assert [c["number"] for c in api.ok(api.get("scjg1", "/api/cases"))["items"]] == [number]
    assert api.ok(api.get("gaj1", "/api/cases"))["items"] == []  # gaj's step comes after the licence
    for user in ("gaj1", "gaj_boss"):
        assert api.get(user, f"/api/cases/{number}").status_code == 404
        assert api.get(user, f"/api/cases/{number}/flowchart.svg").status_code == 404
    assert api.get("scjg1", f"/api/cases/{untouched}").status_code == 404
    shown = api.ok(api.get("scjg1", f"/api/cases/{number}"))
    assert shown["applicant"]["id"] == APPLICANT["id"] and shown["case"]["applicant_id"] == APPLICANT["id"]
    assert {"suspend", "extend"} <= {a["name"] for a in shown["actions"]}
    case_id = shown["case"]["id"]
    assert api.get("gaj1", f"/api/cases/{case_id}").status_code == 404  # by id, the same rule
    assert api.ok(api.get("zwfw2", f"/api/cases/{case_id}"))["case"]["number"] == number  # 全市通办
    managed = api.ok(api.get("admin", f"/api/cases/{number}"))
    assert managed["applicant"]["id"] == "110101********1234" and managed["applicant"]["phone"] == "138****5678"
    assert managed["timeline"][0]["actor"] == "110101********1234"  # the applicant submitted it
    newest = case_views(engine.db, case_id)[0]
    assert (newest.user_id, newest.page) == ("admin", "api:case")


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("99999999999999999999999", 404),
        ("9223372036854775807", 404),
        ("0", 404),
        ("TB20260302-NOSUCHCASE", 404),
        ("x" * 41, 422),
        ("TB%00", 422),
        ("a.b", 422),
    ],
)
def test_an_unknown_or_odd_case_number_is_404_or_422(api, path, status):
    assert api.get("manager", f"/api/cases/{path}").status_code == status
    assert api.post("zwfw1", f"/api/cases/{path}/accept", {}).status_code == status


def test_the_live_flowchart_is_svg(api):
    number = api.accepted()
    answer = api.get("scjg1", f"/api/cases/{number}/flowchart.svg")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/svg+xml"
    assert answer.text.lstrip().startswith("<?xml") and "<svg" in answer.text and "营业执照核发" in answer.text


# ---------------------------------------------------------------------------------------------------
# the window


def test_accepting_twice_is_409_and_accepting_someone_elses_submission_is_404(api):
    number = api.submit()
    assert api.post("scjg1", f"/api/cases/{number}/accept", {}).status_code == 404
    accepted = api.ok(api.post("zwfw1", f"/api/cases/{number}/accept"))  # no body: the defaults
    assert accepted["case"]["state"] == "accepted"
    again = api.post("zwfw1", f"/api/cases/{number}/accept", {})
    assert again.status_code == 409 and again.json()["error"] == "not_allowed"


def test_accepting_with_deferred_materials_and_a_supply_deadline(api):
    number = api.submit(materials=["id_card"])
    refused = api.post("zwfw1", f"/api/cases/{number}/accept", {"deferred": ["lease"], "deferred_limit": "forever"})
    assert refused.status_code == 422
    shown = api.ok(api.post("zwfw1", f"/api/cases/{number}/accept", {"deferred": ["lease"], "deferred_limit": "1d"}))
    case = api.ok(api.get("zwfw1", f"/api/cases/{number}"))
    assert shown["case"]["state"] == "accepted" and case["deferred"] == ["lease"] and case["deferred_due_at"]
    supplied = api.ok(
        api.post("zwfw1", f"/api/cases/{number}/supply", {"applicant_id": APPLICANT["id"], "materials": ["lease"]})
    )
    assert supplied["case"]["state"] == "accepted"
    assert api.ok(api.get("zwfw1", f"/api/cases/{number}"))["deferred"] == []


def test_a_refusal_takes_effect_when_the_leader_confirms_it(api, client):
    number = api.submit()
    assert api.post("zwfw1", f"/api/cases/{number}/refuse", {"reason": ""}).status_code == 422
    proposed = api.ok(api.post("zwfw1", f"/api/cases/{number}/refuse", {"reason": "申请人不具备主体资格"}))
    assert proposed["case"]["state"] == "submitted"  # not yet: 不予审批报告制
    case = api.ok(api.get("zwfw_boss", f"/api/cases/{number}"))
    report = next(t for t in case["tasks"] if t["step_id"] == "__negative_report__")
    task = api.ok(api.get("zwfw_boss", f"/api/tasks/{report['id']}"))
    assert {"confirm_refusal", "send_back_refusal"} <= {a["name"] for a in task["actions"]}
    assert api.post("zwfw1", f"/api/tasks/{report['id']}/confirm-refusal", {}).status_code == 409  # the proposer
    confirmed = api.ok(api.post("zwfw_boss", f"/api/tasks/{report['id']}/confirm-refusal", {"opinion": "同意"}))
    assert confirmed["case"]["state"] == "not_accepted"
    shown = api.ok(client.get(f"/api/progress/{number}", params={"id_number": APPLICANT["id"]}))
    assert shown["reason"] == "申请人不具备主体资格" and shown["can_rate"]


def test_one_supplement_notice_then_the_materials_then_acceptance(api, portal):
    number = api.submit(materials=["id_card"])
    assert api.post("zwfw1", f"/api/cases/{number}/supplement", {"missing": [], "notice": "x"}).status_code == 422
    notice = api.ok(
        api.post("zwfw1", f"/api/cases/{number}/supplement", {"missing": ["lease"], "notice": "请补交住所使用证明"})
    )
    assert notice["created_id"] and notice["case"]["state"] == "submitted"
    assert api.post("zwfw1", f"/api/cases/{number}/accept", {}).status_code == 409  # waiting for the materials
    wrong = api.post(portal, f"/api/cases/{number}/supply", {"applicant_id": "someone else", "materials": ["lease"]})
    assert wrong.status_code == 404
    api.ok(api.post(portal, f"/api/cases/{number}/supply", {"applicant_id": APPLICANT["id"], "materials": ["lease"]}))
    assert api.ok(api.post("zwfw1", f"/api/cases/{number}/accept", {}))["case"]["state"] == "accepted"


# ---------------------------------------------------------------------------------------------------
# the clock


def test_suspend_resume_and_extend_once(api):
    number = api.accepted()
    body = {"kind": "expert_review", "reason": "组织专家评审", "expected": "5d"}
    assert api.post("gaj1", f"/api/cases/{number}/suspend", body).status_code == 404  # no gaj work yet
    assert api.post("scjg1", f"/api/cases/{number}/suspend", {**body, "kind": "supplement"}).status_code == 422
    assert api.post("scjg1", f"/api/cases/{number}/suspend", {**body, "expected": "99999d"}).status_code == 422
    suspended = api.ok(api.post("scjg1", f"/api/cases/{number}/suspend", body))
    assert suspended["case"]["state"] == "suspended" and suspended["created_id"]
    assert suspended["case"]["sla_state"] == "paused"
    resumed = api.ok(api.post("scjg1", f"/api/cases/{number}/resume", {"result": "专家同意"}))
    assert resumed["case"]["state"] == "in_progress"
    assert api.post("scjg1", f"/api/cases/{number}/resume").status_code == 409  # not suspended

    extension = {"amount": "2d", "approver": "scjg_boss", "reason": "情况复杂，需延长审批"}
    assert api.post("scjg1", f"/api/cases/{number}/extend", {**extension, "approver": ""}).status_code == 422
    before = resumed["case"]["due_at"]
    extended = api.ok(api.post("scjg1", f"/api/cases/{number}/extend", extension))
    assert extended["case"]["due_at"] > before
    again = api.post("scjg1", f"/api/cases/{number}/extend", extension)
    assert again.status_code == 409 and "once" in again.json()["message"]


def test_urging_a_case(api):
    number = api.accepted()
    assert api.post("scjg1", f"/api/cases/{number}/urge", {"message": ""}).status_code == 422
    urged = api.ok(api.post("zwfw1", f"/api/cases/{number}/urge", {"message": "请加快办理", "within": "2h"}))
    case = api.ok(api.get("zwfw1", f"/api/cases/{number}"))
    assert [u["id"] for u in case["urges"]] == [urged["created_id"]] and case["urges"][0]["due_at"]


# ---------------------------------------------------------------------------------------------------
# the applicant


def test_the_applicant_withdraws_through_the_portal(api, portal):
    number = api.accepted()
    assert api.post("scjg1", f"/api/cases/{number}/withdraw", {"applicant_id": APPLICANT["id"]}).status_code == 403
    wrong = api.post(portal, f"/api/cases/{number}/withdraw", {"applicant_id": "110101199003079999"})
    assert wrong.status_code == 404 and "applicant" in wrong.json()["message"]
    withdrawn = api.ok(api.post(portal, f"/api/cases/{number}/withdraw", {"applicant_id": APPLICANT["id"]}))
    assert withdrawn["case"]["state"] == "withdrawn" and withdrawn["case"]["applicant_id"] == "110101********1234"
    again = api.post(portal, f"/api/cases/{number}/withdraw", {"applicant_id": APPLICANT["id"]})
    assert again.status_code == 409


def test_an_evaluation_waits_for_the_end_and_is_given_once(api, portal):
    number = api.accepted()
    rating = {"applicant_id": APPLICANT["id"], "level": 4, "channel": "mobile", "comment": "等太久"}
    assert api.post(portal, f"/api/cases/{number}/evaluate", rating).status_code == 409  # still open
    assert api.post(portal, f"/api/cases/{number}/evaluate", {**rating, "level": 6}).status_code == 422
    assert api.post(portal, f"/api/cases/{number}/evaluate", {**rating, "channel": "fax"}).status_code == 422
    api.ok(api.post(portal, f"/api/cases/{number}/withdraw", {"applicant_id": APPLICANT["id"], "reason": "不办了"}))
    rated = api.ok(api.post(portal, f"/api/cases/{number}/evaluate", rating))
    case = api.ok(api.get("zwfw1", f"/api/cases/{number}"))
    assert case["evaluation"]["id"] == rated["created_id"] and case["evaluation"]["rectification_task"]
    again = api.post(portal, f"/api/cases/{number}/evaluate", rating)
    assert again.status_code == 409 and again.json()["error"] == "conflict"


# ---------------------------------------------------------------------------------------------------
# a busy database


def test_a_busy_database_is_503_with_retry_after_and_nothing_half_done(api, engine, monkeypatch):
    from orchestrator.engine.errors import Busy

    number = api.submit()

    def busy(*_args, **_kwargs):
        raise Busy("the database is busy (lock timeout); nothing was written", retry_after=2.4)

    monkeypatch.setattr(engine, "accept_case", busy)
    answer = api.post("zwfw1", f"/api/cases/{number}/accept", {})
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "2"
    assert answer.json()["error"] == "busy" and "nothing was written" in answer.json()["message"]
    monkeypatch.undo()
    assert api.ok(api.post("zwfw1", f"/api/cases/{number}/accept", {}))["case"]["state"] == "accepted"
