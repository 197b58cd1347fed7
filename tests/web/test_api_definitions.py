"""``/api/definitions``: the published 一件事, one definition's form, materials, steps and limits, and its
flowchart."""

from __future__ import annotations

import pytest

from .api_support import Api


@pytest.fixture
def api(client):
    return Api(client)


def test_the_published_definitions_at_their_newest_version(api):
    listed = {d["key"]: d for d in api.ok(api.get("designer", "/api/definitions"))}
    assert {"kaiban-mini", "survey-mini"} <= set(listed)
    kaiban = listed["kaiban-mini"]
    assert kaiban["name"] == "开办企业一件事" and kaiban["version"] == 1 and kaiban["case_kind"] == "promised"
    assert kaiban["limits"]["promised"] == "1d" and kaiban["limits"]["statutory"] == "8.5d"
    assert kaiban["departments"] == ["zwfw", "scjg", "gaj", "swj", "rsj"]


def test_one_definition_lists_what_an_application_needs(api):
    shown = api.ok(api.get("zwfw1", "/api/definitions/kaiban-mini"))
    assert shown["version"] == shown["latest_version"] == 1
    assert [f["key"] for f in shown["form"]] == ["company_name", "needs_seal", "employees"]
    assert shown["form"][0] == {
        "key": "company_name",
        "label": "企业名称",
        "type": "text",
        "required": True,
        "default": None,
        "min": None,
        "max": None,
        "options": None,
        "max_length": None,
        "help": None,
    }
    assert [(m["key"], m["deferrable"]) for m in shown["materials"]] == [("id_card", False), ("lease", True)]
    steps = {s["id"]: s for s in shown["steps"]}
    assert steps["seal"]["when"] == "needs_seal" and steps["seal"]["limit"] == "2h"
    assert steps["issue"]["certificates"] == [
        {"key": "business_licence", "name": "营业执照", "issuer": "scjg", "steps": []}
    ]
    assert shown["departments"]["scjg"] == "市场监督管理局" and "行政复议" in shown["remedy"]
    assert api.ok(api.get("zwfw1", "/api/definitions/kaiban-mini", params={"version": 1}))["version"] == 1


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("no-such-thing", {}, 404),
        ("kaiban-mini", {"version": 2}, 404),
        ("kaiban-mini", {"version": 0}, 422),
        ("kaiban-mini", {"version": 2**40}, 422),
        ("kaiban-mini", {"version": "one"}, 422),
        ("Kaiban Mini", {}, 422),
        ("k" * 65, {}, 422),
    ],
)
def test_an_unknown_or_bad_definition(api, path, params, status):
    answer = api.get("zwfw1", f"/api/definitions/{path}", params=params)
    assert answer.status_code == status and answer.json()["error"]
    assert api.get("zwfw1", f"/api/definitions/{path}/flowchart.svg", params=params).status_code == status


def test_the_flowchart_is_svg_and_every_definition_read_needs_a_log_in(api, client):
    answer = api.get("designer", "/api/definitions/survey-mini/flowchart.svg")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/svg+xml"
    assert "<svg" in answer.text and "联合踏勘" in answer.text
    for url in ("/api/definitions", "/api/definitions/kaiban-mini", "/api/definitions/kaiban-mini/flowchart.svg"):
        assert client.get(url).status_code == 401
