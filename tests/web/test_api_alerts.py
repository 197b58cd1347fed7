"""``/api/alerts``: 黄牌 and 红牌 of the viewer's departments (managers: all), newest first, paged."""

from __future__ import annotations

import pytest

from .api_support import Api


@pytest.fixture
def api(client):
    return Api(client)


def _kinds(page):
    return [(a["kind"], a["step_id"], a["department"]) for a in page["items"]]


def test_yellow_and_red_cards_for_the_departments_that_hold_the_work(api, engine, clock):
    number = api.accepted()
    clock.advance(hours=3, minutes=30)  # 0.5d licence: under a quarter left
    engine.sweep()
    yellow = api.ok(api.get("scjg1", "/api/alerts"))
    assert _kinds(yellow) == [("warning", "licence", "scjg")]
    alert = yellow["items"][0]
    assert alert["case_number"] == number and alert["label"] == "预警（黄牌）" and alert["open"]
    assert alert["sla_state"] == "warning" and alert["definition_name"] == "开办企业一件事"
    assert api.ok(api.get("gaj1", "/api/alerts"))["items"] == []

    clock.advance(days=2)
    engine.sweep()
    red = api.ok(api.get("scjg_boss", "/api/alerts"))
    assert _kinds(red) == [("overdue", "licence", "scjg"), ("warning", "licence", "scjg")]
    everything = api.ok(api.get("manager", "/api/alerts"))
    assert ("overdue", None, "zwfw") in _kinds(everything)  # the case's own red card: the acceptance department
    assert ("overdue", None, "zwfw") in _kinds(api.ok(api.get("zwfw1", "/api/alerts")))
    assert _kinds(api.ok(api.get("manager", "/api/alerts", params={"kind": "warning"}))) == [
        ("warning", "licence", "scjg")
    ]
    assert api.ok(api.get("manager", "/api/alerts", params={"department": "gaj"}))["items"] == []

    first = api.ok(api.get("manager", "/api/alerts", params={"limit": 1}))
    second = api.ok(api.get("manager", "/api/alerts", params={"limit": 1, "cursor": first["next"]}))
    assert first["next"] and second["items"] and second["items"][0]["id"] != first["items"][0]["id"]

    api.work(number, "licence", "scjg1")
    assert api.ok(api.get("scjg1", "/api/alerts", params={"open": True}))["items"] == []
    assert len(api.ok(api.get("scjg1", "/api/alerts"))["items"]) == 2  # the record stays


@pytest.mark.parametrize(
    ("user", "params", "status"),
    [
        ("scjg1", {"department": "gaj"}, 403),
        ("scjg1", {"kind": "purple"}, 422),
        ("scjg1", {"cursor": "not|a|cursor"}, 422),
        ("scjg1", {"limit": 0}, 422),
        ("designer", {}, 403),
    ],
)
def test_bad_alert_requests(api, user, params, status):
    assert api.get(user, "/api/alerts", params=params).status_code == status
