"""The keys of what runs by itself: an auto step's look-ups, 逾期视为同意, 网上申报自动受理 and 在线签发 —
each checked with the exact message and the position it points at; all off unless a step says so."""

from __future__ import annotations

from orchestrator.definition import load_definition

from .test_validator import HEAD, TAIL, at, problems

LOOKUP_HEAD = HEAD.replace(
    "steps:\n",
    "  - {key: id_number, label: 身份证号, type: text}\n  - {key: local, label: 本市户籍, type: bool}\nsteps:\n",
)  # the first step is on line 10


def test_look_ups_name_form_fields_and_fill_each_field_once(departments):
    found = problems(
        departments,
        """\
        - {id: accept, kind: acceptance, name: 受理, department: zwfw, limit: 1h, auto_accept: true}
        - id: robot
          kind: auto
          name: 秒批
          department: scjg
          after: [accept]
          lookups:
            - {source: hukou, key: id_numbr, fill: [local]}
            - {source: credit, key: id_number, fill: [locl, id_number, local]}
          rule: local and employees > 0
        - {id: issue, kind: issue, name: 出件, department: scjg, after: [robot], limit: 1h,
           certificates: [{key: card, name: 证, issuer: scjg}], delivery: [online], auto_issue: true}
        """,
        head=LOOKUP_HEAD,
    )
    assert found == [
        f"{at(17, 'id_numbr')}: step 'robot': look-up key 'id_numbr' is no form field (did you mean 'id_number'?)",
        f"{at(18, 'locl')}: step 'robot': look-up fills 'locl', which is no form field (did you mean 'local'?)",
        f"{at(18, 'id_number', 2)}: step 'robot': a look-up cannot fill its own key 'id_number'",
        f"{at(18, 'local')}: step 'robot': 'local' is filled by look-up 1 already; one field takes one source",
    ]


def test_an_unknown_look_up_key_is_refused_with_a_suggestion(departments):
    found = problems(
        departments,
        """\
        - {id: accept, kind: acceptance, name: 受理, department: zwfw, limit: 1h}
        - {id: robot, kind: auto, name: 秒批, department: scjg, after: [accept], rule: local,
           lookups: [{source: hukou, key: id_number, fills: [local]}]}
        """,
        head=LOOKUP_HEAD,
    )
    assert found == [
        f"{at(12, '{source')}: step 'robot': lookups.0: missing required key 'fill'",
        f"{at(12, 'fills')}: step 'robot': lookups.0: unknown key 'fills' (did you mean 'fill'?)",
    ]


def test_deemed_consent_needs_a_limit_and_auto_issue_online_delivery(departments):
    found = problems(
        departments,
        """\
        - {id: accept, kind: acceptance, name: 受理, department: zwfw, limit: 1h}
        - {id: licence, kind: approval, name: 执照, department: scjg, after: [accept], deemed_consent: true}
        - {id: issue, kind: issue, name: 出件, department: zwfw, after: [licence], limit: 1h, auto_issue: true}
        """,
    )
    assert found == [
        f"{at(9, 'true')}: step 'licence': deemed_consent (逾期视为同意) needs a limit: the department is deemed to "
        "consent when the limit has passed",
        f"{at(10, 'true')}: step 'issue': auto_issue issues e-certificates online; add online to its delivery",
    ]


def test_the_keys_are_off_unless_a_step_says_so(departments):
    text = HEAD + (
        "- {id: accept, kind: acceptance, name: 受理, department: zwfw, limit: 1h}\n"
        "- {id: licence, kind: approval, name: 执照, department: scjg, after: [accept], limit: 4h}\n"
        "- {id: robot, kind: auto, name: 秒批, department: scjg, after: [licence], rule: needs_seal}\n"
        "- {id: issue, kind: issue, name: 出件, department: zwfw, after: [robot], limit: 1h, delivery: [online]}\n"
        + TAIL
    )
    definition = load_definition("t.yaml", departments, text=text)
    steps = definition.steps_by_id
    assert steps["accept"].auto_accept is False
    assert steps["licence"].deemed_consent is False
    assert steps["robot"].lookups == []
    assert steps["issue"].auto_issue is False


def test_the_keys_belong_to_their_step_kinds(departments):
    found = problems(
        departments,
        """\
        - {id: accept, kind: acceptance, name: 受理, department: zwfw, limit: 1h, deemed_consent: true}
        - {id: licence, kind: approval, name: 执照, department: scjg, after: [accept], limit: 4h, auto_accept: true}
        - {id: issue, kind: issue, name: 出件, department: zwfw, after: [licence], limit: 1h}
        """,
    )
    assert found == [
        f"{at(8, 'deemed_consent')}: step 'accept': unknown key 'deemed_consent'",
        f"{at(9, 'auto_accept')}: step 'licence': unknown key 'auto_accept'",
    ]
