"""An expression that the form's values make too costly at run time behaves like one that cannot be
evaluated (docs/engine.md): a `when` counts as false and the step is skipped with the reason; an
`auto` rule becomes a refusal with the note. Before the bounds, such an expression held the case's
lock (SQLite: the database's write lock) for as long as it took; bench/expressions.py measures what
the bounded ones cost."""

from __future__ import annotations

from orchestrator.definition import load_definition
from orchestrator.engine.publish import store_definition

from .helpers import case_row, events, open_tasks, step_states, tasks_of

SIX_NAMES = "+".join(["company_name"] * 6)  # 12,000 characters from a 2,000-character name
TWENTY_AMOUNTS = "*".join(["amount"] * 20)  # 1,240 bits from a 62-bit amount
COSTLY = f"""\
key: costly
name: 代价测试一件事
limits: {{promised: 2d, statutory: 5d}}
form:
  - {{key: company_name, label: 企业名称, type: text, required: true}}
  - {{key: amount, label: 金额, type: int, required: true}}
steps:
  - {{id: accept, kind: acceptance, name: 受理, department: zwfw, limit: 1h}}
  - {{id: check, kind: auto, name: 秒批, department: rsj, after: [accept], limit: 1h, rule: "{TWENTY_AMOUNTS} > 0"}}
  - {{id: seal, kind: approval, name: 刻章, department: gaj, after: [check], when: "len({SIX_NAMES}) > 0", limit: 2h}}
  - {{id: review, kind: approval, name: 复核, department: scjg, after: [check], limit: 2h}}
  - {{id: issue, kind: issue, name: 出件, department: zwfw, after: [seal, review], limit: 1h}}
remedy: 如不服本决定，可在收到之日起六十日内申请行政复议，或者六个月内提起行政诉讼。
"""
APPLICANT = {"id": "91310000MA1K000009", "name": "丙公司"}


def publish_costly(engine, departments, clock) -> None:
    definition = load_definition("costly.yaml", departments, text=COSTLY)  # it passes validation
    with engine.db.begin() as tx:
        store_definition(tx, definition, COSTLY, clock())


def test_a_when_past_the_bounds_counts_as_false(engine, departments, clock):
    publish_costly(engine, departments, clock)
    ordinary = engine.submit_case("costly", APPLICANT, {"company_name": "丙公司", "amount": 3})
    engine.accept_case(ordinary, "zwfw1")
    assert set(open_tasks(engine, ordinary)) == {"seal", "review"}  # the condition holds for a short name

    long_name = engine.submit_case("costly", APPLICANT, {"company_name": "丙" * 2000, "amount": 3})
    engine.accept_case(long_name, "zwfw1")
    assert step_states(engine, long_name)["seal"] == "skipped"
    assert set(open_tasks(engine, long_name)) == {"review"}  # the case goes on
    (skipped,) = [e for e in events(engine, long_name, "task_skipped") if e["step_id"] == "seal"]
    assert skipped["data"]["reason"].startswith("when_error")
    assert "builds a value of 12,000 items, more than 10,000" in skipped["data"]["reason"]


def test_an_auto_rule_past_the_bounds_refuses_nobody_and_becomes_an_incident_for_a_person(engine, departments, clock):
    """A rule the applicant's values make too costly cannot be decided: it is not read as a refusal
    (nobody is refused by an expression's cost); the step waits, a worker's attempt fails with the bound
    in its note, the last attempt raises an incident, and the supervisor hands the step to a person."""
    from orchestrator.engine.commands.auto import RunPolicy

    publish_costly(engine, departments, clock)
    case_id = engine.submit_case("costly", APPLICANT, {"company_name": "丙公司", "amount": 2**62})
    engine.accept_case(case_id, "zwfw1")
    (check,) = [t for t in tasks_of(engine, case_id) if t["step_id"] == "check"]
    assert (check["state"], check["outcome"]) == ("ready", None)
    assert engine.run_auto_task(check["id"], policy=RunPolicy(max_attempts=1)) == "incident"
    (incident,) = engine.open_incidents("rsj")
    assert incident.task_id == check["id"] and "builds a number of more than 1024 bits" in incident.error
    engine.hand_over(check["id"], "rsj_boss", "规则无法自动判定，转人工")
    (check,) = [t for t in tasks_of(engine, case_id) if t["step_id"] == "check"]
    assert check["state"] == "ready" and case_row(engine, case_id)["state"] == "accepted"
