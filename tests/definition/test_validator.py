"""Each refusal the validator promises, with the exact message and the line it points at."""

from __future__ import annotations

import textwrap

import pytest

from orchestrator.definition import SourceError, load_definition

HEAD = """\
key: t
name: 测试一件事
limits: {promised: 2d, statutory: 20d}
form:
  - {key: needs_seal, label: 是否刻制公章, type: bool}
  - {key: employees, label: 参保职工人数, type: int, min: 0}
steps:
"""  # the first step is on line 8


TAIL = "remedy: 如不服本决定，可在收到之日起六十日内申请行政复议，或者六个月内提起行政诉讼。\n"  # after the steps


def problems(departments, steps: str, head: str = HEAD, tail: str = TAIL) -> list[str]:
    text = head + textwrap.dedent(steps) + tail
    problems.text = text  # type: ignore[attr-defined]  # read by at()
    try:
        load_definition("t.yaml", departments, text=text)
    except SourceError as exc:
        return [str(p) for p in exc.problems]
    return []


def at(line: int, token: str, occurrence: int = 1) -> str:
    """``t.yaml:LINE:COLUMN`` of the n-th ``token`` on that line of the last text checked."""
    text = problems.text.splitlines()[line - 1]  # type: ignore[attr-defined]
    column = -1
    for _ in range(occurrence):
        column = text.index(token, column + 1)
    return f"t.yaml:{line}:{column + 1}"


GOOD = """\
- {id: accept, kind: acceptance, name: 受理, department: zwfw, limit: 1h}
- {id: licence, kind: approval, name: 执照, department: scjg, after: [accept], limit: 4h}
- {id: issue, kind: issue, name: 出件, department: zwfw, after: [licence], limit: 1h}
"""


def test_a_valid_definition_loads(departments):
    assert problems(departments, GOOD) == []


def test_yaml_syntax_error_points_at_the_line(departments):
    assert problems(departments, GOOD + "- {id: broken, kind: approval\n", tail="") == [
        "t.yaml:12:1: YAML syntax error: the {…} opened at line 11, column 3 is not closed here: put ',' between "
        "its entries, close it with '}', and quote a value that contains , [ ] { } or ': '"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # libyaml: "did not find expected '-' indicator"
            "form:\n  - key: a\n    label: b\n   type: int\n",
            "t.yaml:4:4: YAML syntax error: line 4 does not line up with the list that starts at line 2: its items "
            "start with '-' in column 3 and their keys in column 5, this line in column 4. Indent it like the line "
            "it belongs with (spaces only), or start a new item with '- '",
        ),
        (  # libyaml: "did not find expected key"
            "steps:\n  - a: 1\n    b: 2\n - c: 3\n",
            "t.yaml:4:2: YAML syntax error: this list item is not lined up with the one at line 2: that '-' is in "
            "column 3, this one in column 2 (spaces only)",
        ),
        (
            "limits:\n  promised: 1d\n statutory: 2d\n",
            "t.yaml:3:2: YAML syntax error: line 3 does not line up with the mapping that starts at line 1: its keys "
            "start in column 1, this line in column 2. Line it up (spaces only)",
        ),
        (  # libyaml: "mapping values are not allowed in this context"
            "key: x\nname: 甲: 乙\n",
            "t.yaml:2:8: YAML syntax error: a ':' that cannot start a value here: put a value that contains ': ' in "
            'quotes (name: "甲: 乙"), or, if this line holds a key, line it up with the keys above it',
        ),
        (
            "key: x\nname: y\n  limits: 3\n",
            "t.yaml:3:9: YAML syntax error: a ':' that cannot start a value here: put a value that contains ': ' in "
            'quotes (name: "甲: 乙"), or, if this line holds a key, line it up with the keys above it (line 3 starts '
            "in column 3, line 2 in column 1)",
        ),
        (  # libyaml: "found character '\t' that cannot start any token"
            "key: x\n\tname: y\n",
            "t.yaml:2:1: YAML syntax error: a tab character: YAML indents with spaces only; "
            "replace the tab with spaces",
        ),
        (
            'key: x\nname: "甲\n',
            "t.yaml:2:7: YAML syntax error: a quoted text is never closed: add the closing quote",
        ),
    ],
)
def test_yaml_syntax_errors_are_said_in_plain_words_with_the_line_and_column(text, expected):
    with pytest.raises(SourceError) as error:
        load_definition("t.yaml", {}, text=text)
    assert [str(p) for p in error.value.problems] == [expected]


def laughs(levels: int) -> str:
    """The billion-laughs document: each line nine aliases of the one before (1.8 KB at nine levels)."""
    lines = ["key: t", "name: x", 'tags: &a0 ["ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha"]']
    lines += [f"summary{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_aliases_that_expand_past_the_bound_are_refused_at_their_line():
    """Nine such lines took minutes to validate (every expanded value was walked)."""
    with pytest.raises(SourceError) as error:
        load_definition("t.yaml", {}, text=laughs(9))
    (problem,) = error.value.problems
    assert (problem.line, problem.column) == (7, 16)
    assert "aliases expand this document to more than 10,000 extra values (*a3 here stands for 7,381)" in str(problem)


def test_a_few_aliases_are_still_fine(departments):
    text = HEAD.replace("form:\n", "form:\n  - &flag {key: needs_bank, label: 银行开户, type: bool}\n") + GOOD + TAIL
    definition = load_definition("t.yaml", departments, text=text.replace("limit: 4h}", "limit: &short 4h}"))
    assert definition.fields_by_key["needs_bank"].type == "bool"


def test_unknown_key_suggests_the_right_one(departments):
    found = problems(departments, GOOD.replace("limit: 4h}", "limt: 4h}"))
    assert found == [f"{at(9, 'limt')}: step 'licence': unknown key 'limt' (did you mean 'limit'?)"]


def test_the_guide_block_is_optional_and_checked_like_the_rest(departments):
    guide = "guide: {covers: 一次办好, who: 本市企业, fees: 不收费}\n"
    definition = load_definition("t.yaml", departments, text=HEAD + GOOD + TAIL + guide)
    assert (definition.guide.covers, definition.guide.who, definition.guide.fees) == ("一次办好", "本市企业", "不收费")
    assert load_definition("t.yaml", departments, text=HEAD + GOOD + TAIL).guide.fees is None  # unstated
    assert problems(departments, GOOD, tail=TAIL + "guide: {who: 本市企业, fee: 不收费}\n") == [
        f"{at(12, 'fee:')}: guide: unknown key 'fee' (did you mean 'fees'?)"
    ]
    empty = '""'
    assert problems(departments, GOOD, tail=TAIL + "guide: {who: " + empty + "}\n") == [
        f"{at(12, empty)}: guide.who: String should have at least 1 character"
    ]


def test_a_material_may_need_presenting_in_person(departments):
    materials = "materials:\n  - {key: lease, label: 租赁合同, in_person: true}\n  - {key: photo, label: 照片}\n"
    text = HEAD.replace("steps:\n", materials + "steps:\n") + GOOD + TAIL
    definition = load_definition("t.yaml", departments, text=text)
    assert [m.in_person for m in definition.materials] == [True, False]


def test_missing_key_and_wrong_type(departments):
    steps = GOOD.replace("name: 执照, ", "").replace("after: [accept]", "after: accept")
    assert problems(departments, steps) == [
        "t.yaml:9:3: step 'licence': missing required key 'name'",
        f"{at(9, 'accept,')}: step 'licence': after: Input should be a valid list",
    ]


def test_duplicate_step_id(departments):
    steps = GOOD + "- {id: licence, kind: approval, name: 又一个, department: scjg, after: [accept]}\n"
    assert problems(departments, steps) == [
        f"{at(11, 'licence')}: duplicate step id 'licence' (first defined at line 9)"
    ]


def test_after_naming_an_unknown_step(departments):
    steps = GOOD.replace("after: [licence]", "after: [licnce]")
    assert problems(departments, steps) == [
        f"{at(10, 'licnce')}: step 'issue': after names unknown step 'licnce' (did you mean 'licence'?)"
    ]


def test_cycle_names_the_steps_on_it(departments):
    steps = """\
    - {id: accept, kind: acceptance, name: 受理, department: zwfw}
    - {id: a, kind: approval, name: A, department: scjg, after: [accept, c]}
    - {id: b, kind: approval, name: B, department: gaj, after: [a]}
    - {id: c, kind: approval, name: C, department: swj, after: [b]}
    """
    assert problems(departments, steps) == [
        f"{at(9, '[accept, c]')}: cycle: a → b → c → a; a step may only wait for steps that come before it",
    ]


def test_unreachable_steps(departments):
    steps = """\
    - {id: accept, kind: acceptance, name: 受理, department: zwfw}
    - {id: a, kind: approval, name: A, department: scjg, after: [accept]}
    - {id: b, kind: approval, name: B, department: gaj, after: [c]}
    - {id: c, kind: approval, name: C, department: swj, after: [b]}
    - {id: d, kind: approval, name: D, department: swj, after: [c]}
    """
    assert problems(departments, steps) == [
        f"{at(10, 'b')}: step 'b' is unreachable from the acceptance step 'accept' (it is on a cycle)",
        f"{at(10, '[c]')}: cycle: b → c → b; a step may only wait for steps that come before it",
        f"{at(11, 'c')}: step 'c' is unreachable from the acceptance step 'accept' (it is on a cycle)",
        f"{at(12, 'd', 2)}: step 'd' is unreachable from the acceptance step 'accept'",
    ]


def test_no_acceptance_step(departments):
    steps = GOOD.replace("kind: acceptance", "kind: approval")
    assert problems(departments, steps) == [
        "t.yaml:7:1: no acceptance step: every process starts with one step of kind acceptance (综合受理)"
    ]


def test_more_than_one_entry_step(departments):
    steps = GOOD + "- {id: orphan, kind: approval, name: 孤立, department: gaj}\n"
    assert problems(departments, steps) == [
        f"{at(11, 'orphan')}: step 'orphan' is unreachable from the acceptance step 'accept'",
        f"{at(11, 'orphan')}: step 'orphan': more than one entry step (accept, orphan); only the acceptance step "
        "may have no `after`",
    ]


def test_more_than_one_acceptance_step(departments):
    steps = GOOD + "- {id: again, kind: acceptance, name: 再受理, department: zwfw, after: [accept]}\n"
    assert problems(departments, steps) == [
        f"{at(11, 'acceptance')}: step 'again': more than one acceptance step (first is 'accept'); a process has "
        "exactly one"
    ]


def test_unknown_department_and_participant(departments):
    steps = """\
    - {id: accept, kind: acceptance, name: 受理, department: zwfv}
    - {id: survey, kind: survey, name: 联合踏勘, department: zjj, after: [accept], participants: [zjj, xff]}
    """
    assert problems(departments, steps) == [
        f"{at(8, 'zwfv')}: step 'accept': unknown department 'zwfv' (did you mean 'zwfw'?); departments are "
        "listed in departments.yaml",
        f"{at(9, 'xff')}: step 'survey': unknown participant department 'xff' (did you mean 'xf'?)",
    ]


def test_when_that_does_not_parse(departments):
    steps = GOOD.replace("after: [accept],", "after: [accept], when: 'employees >',")
    assert problems(departments, steps) == [
        f"{at(9, chr(39) + 'employees')}: step 'licence': when: expression 'employees >' does not parse: invalid syntax"
    ]


def test_when_and_rule_naming_unknown_fields(departments):
    steps = GOOD.replace("after: [accept],", "after: [accept], when: need_seal,") + (
        "- {id: robot, kind: auto, name: 秒批, department: scjg, after: [accept], rule: employes > 0}\n"
    )
    assert problems(departments, steps) == [
        f"{at(9, 'need_seal')}: step 'licence': when names 'need_seal', which is no form field (did you mean "
        "'needs_seal'?)",
        f"{at(11, 'employes')}: step 'robot': rule names 'employes', which is no form field (did you mean "
        "'employees'?)",
    ]


def test_bad_limit_string(departments):
    steps = GOOD.replace("limit: 4h", "limit: 4 hours")
    assert problems(departments, steps) == [
        f"{at(9, '4 hours')}: step 'licence': limit: bad limit '4 hours': write a positive number and a unit, "
        "d = working days, h = working hours, n = natural days (e.g. 1d, 0.5d, 4h, 7n)"
    ]


def test_promised_limit_above_statutory(departments):
    head = HEAD.replace("{promised: 2d, statutory: 20d}", "{promised: 25d, statutory: 20d}")
    assert problems(departments, GOOD, head) == [
        f"{at(3, '25d')}: promised limit 25d is above the statutory limit 20d (承诺时限 must not exceed 法定时限)"
    ]


def test_critical_path_that_cannot_fit_the_promise(departments):
    steps = GOOD.replace("limit: 4h", "limit: 2d") + (
        "- {id: seal, kind: approval, name: 刻章, department: gaj, after: [accept], limit: 1h}\n"
    )
    steps = steps.replace("after: [licence]", "after: [licence, seal]")
    assert problems(departments, steps) == [
        f"{at(3, '2d')}: the step limits on the path accept → licence → issue add up to 2.25d, more than the "
        "promised case limit 2d: shorten those steps or raise the promise"
    ]


def test_critical_path_counts_natural_days_as_five_sevenths(departments):
    steps = GOOD.replace("limit: 4h", "limit: 2n")  # 2n ≈ 1.43d, plus 2h: fits 2d
    assert problems(departments, steps) == []


def test_issue_step_must_be_last(departments):
    steps = GOOD + "- {id: tell, kind: notify, name: 通知, department: zwfw, after: [issue]}\n"
    assert problems(departments, steps) == [
        f"{at(10, 'issue')}: issue step 'issue' must be last on every path, but 'tell' comes after it"
    ]


def test_certificate_issuer_must_take_part(departments):
    steps = GOOD.replace(
        "after: [licence], limit: 1h}",
        "after: [licence], limit: 1h, certificates: [{key: lic, name: 营业执照, issuer: swj}]}",
    )
    assert problems(departments, steps) == [
        f"{at(10, 'swj')}: step 'issue': certificate 'lic' issuer 'swj' is no department of this process"
    ]


def test_every_problem_is_reported_not_only_the_first(departments):
    steps = """\
    - {id: accept, kind: acceptance, name: 受理, department: zwfw, limit: 1h}
    - {id: licence, kind: aproval, name: 执照, department: scjg, after: [accept]}
    - {id: seal, kind: approval, name: 刻章, department: gja, after: [licence, licnse], when: need_seal, limit: 2x}
    - {id: issue, kind: issue, name: 出件, department: zwfw, after: [seal], colour: red}
    """
    found = problems(departments, steps)
    assert [p.split(": ", 1)[0] for p in found] == [
        "t.yaml:9:3",  # unknown kind
        at(10, "gja"),
        at(10, "licnse"),
        at(10, "need_seal"),
        at(10, "2x"),
        at(11, "colour"),
    ]


def test_key_must_match_the_file_name(departments):
    with pytest.raises(SourceError) as caught:
        load_definition("other.yaml", departments, text=HEAD + GOOD + TAIL)
    assert [str(p) for p in caught.value.problems] == [
        "other.yaml:1:6: key 't' does not match the file name other.yaml: name the file t.yaml or change the key"
    ]


def test_every_definition_states_the_remedy_of_a_refusal(departments):
    """行政许可法 Art. 38: a refusal (不予受理 at intake, 不予许可 after review) tells the applicant where to
    seek 行政复议 or 行政诉讼; every process can refuse, so every definition names the remedy."""
    assert problems(departments, GOOD, tail="") == [
        "t.yaml:1:6: no remedy: a refusal (不予受理, 不予许可) must tell the applicant where to apply for 行政复议 or "
        "bring 行政诉讼 (行政许可法 Art. 38); add e.g. remedy: 如不服本决定，可在收到之日起六十日内向某某市人民政府申请"
        "行政复议，或者在六个月内向某某区人民法院提起行政诉讼。"
    ]
    blank = problems(departments, GOOD, tail='remedy: "  "\n')
    assert [p.split(": no remedy")[0] for p in blank] == [at(11, "remedy")]
    assert problems(departments, GOOD, tail="remedy: [行政复议]\n") == [
        f"{at(11, '[')}: remedy: Input should be a valid string"
    ]


def test_promised_case_needs_a_promised_limit(departments):
    head = HEAD.replace("limits: {promised: 2d, statutory: 20d}\n", "")
    assert problems(departments, GOOD, head) == [
        "t.yaml:1:6: a promised case (承诺件) needs limits.promised: the working-day limit promised to the applicant"
    ]
    assert (
        problems(departments, GOOD, head.replace("name: 测试一件事\n", "name: 测试一件事\ncase_kind: instant\n")) == []
    )


def test_auto_result_field_must_be_a_bool_field(departments):
    steps = GOOD + (
        "- {id: robot, kind: auto, name: 秒批, department: scjg, after: [accept], rule: employees > 0,"
        " result_field: employees}\n"
    )
    assert problems(departments, steps) == [
        f"{at(11, 'employees', 2)}: step 'robot': result_field 'employees' must be a bool field, not int"
    ]


def test_countersign_needs_two_signers(departments):
    steps = GOOD.replace("limit: 4h}", "limit: 4h, sign: all, signers: [chief]}")
    assert problems(departments, steps) == ["t.yaml:9:3: step 'licence': sign: all needs at least two signers (roles)"]


def test_roles_must_be_roles_of_the_steps_department(departments):
    """A role nobody can hold leaves a countersign unsigned forever: the designer hears of it at once."""
    steps = GOOD.replace(
        "department: scjg, after: [accept], limit: 4h}",
        "department: gaj, after: [accept], limit: 4h, role: gaj_supervisor, sign: any, signers: [duty_a, dutyb]}",
    ).replace("department: zwfw, after: [licence]", "department: zwfw, role: clerk, after: [licence]")
    assert problems(departments, steps) == [
        f"{at(9, 'dutyb')}: step 'licence': 'dutyb' is no role of department 'gaj' (did you mean 'duty_b'?); "
        "add it to the department's roles in departments.yaml",
        f"{at(10, 'clerk')}: step 'issue': 'clerk' is no role of department 'zwfw'; "
        "add it to the department's roles in departments.yaml",
    ]


def test_unsafe_expression_is_refused(departments):
    steps = GOOD.replace("after: [accept],", 'after: [accept], when: "needs_seal.__class__",')
    assert problems(departments, steps) == [
        f"{at(9, chr(34) + 'needs_seal')}: step 'licence': when: expression 'needs_seal.__class__': Attribute is not "
        "allowed; use field names, constants, comparisons, and/or/not, arithmetic, lists and len, abs, min, max, "
        "int, float, str, round"
    ]


def test_condition_comparing_text_with_a_number_is_refused(departments):
    head = HEAD.replace(
        "  - {key: employees", "  - {key: company_name, label: 企业名称, type: text}\n  - {key: employees"
    )
    steps = GOOD.replace("after: [accept],", "after: [accept], when: company_name > 5,")
    found = problems(departments, steps, head)
    assert len(found) == 1
    assert found[0].startswith(f"{at(10, 'company_name')}: step 'licence': when 'company_name > 5' mixes types:")


def test_a_broken_step_still_counts_as_a_department_of_the_process(departments):
    steps = GOOD.replace("limit: 4h}", "limit: 4h, sign: all}").replace(
        "after: [licence], limit: 1h}",
        "after: [licence], limit: 1h, certificates: [{key: lic, name: 执照, issuer: scjg}]}",
    )
    assert problems(departments, steps) == ["t.yaml:9:3: step 'licence': sign: all needs at least two signers (roles)"]


def test_a_bad_promised_limit_is_reported_once(departments):
    head = HEAD.replace("{promised: 2d, statutory: 20d}", "{promised: 2x, statutory: 20d}")
    found = problems(departments, GOOD, head)
    assert len(found) == 1 and "bad limit '2x'" in found[0]


def test_unquoted_date_default_is_accepted(departments):
    head = HEAD.replace(
        "  - {key: employees", "  - {key: start, label: 开工日期, type: date, default: 2026-01-01}\n  - {key: employees"
    )
    assert problems(departments, GOOD, head) == []


def test_a_key_given_twice_is_refused(departments):
    steps = GOOD.replace("limit: 4h}", "limit: 4h, limit: 2h}")
    assert problems(departments, steps) == [
        f"{at(9, 'limit', 2)}: key 'limit' is given twice in this mapping (first at line 9); keep one"
    ]


def test_yes_and_no_stay_text_as_in_yaml_1_2(departments):
    head = HEAD.replace(
        "  - {key: employees", "  - {key: answer, label: 是否, type: choice, options: [yes, no]}\n  - {key: employees"
    )
    assert problems(departments, GOOD, head) == []


def test_limits_returns_counts_the_returns_for_supplement_a_case_may_have(departments):
    def head(returns: int) -> str:
        return HEAD.replace("statutory: 20d}", f"statutory: 20d, returns: {returns}}}")

    assert problems(departments, GOOD, head(2)) == []
    assert problems(departments, GOOD, head(-1)) == [
        f"{at(3, '-1')}: limits.returns: Input should be greater than or equal to 0"
    ]


MAX_LENGTH_HEAD = HEAD.replace(
    "form:\n", "form:\n  - {key: company_name, label: 企业名称, type: text, max_length: 50, default: 甲公司}\n"
)


def test_max_length_tightens_a_text_field(departments):
    from orchestrator.engine import InvalidData
    from orchestrator.engine.forms import check_form

    assert problems(departments, GOOD, MAX_LENGTH_HEAD) == []
    definition = load_definition("t.yaml", departments, text=MAX_LENGTH_HEAD + GOOD + TAIL)
    assert check_form(definition, {"company_name": "乙" * 50})["company_name"] == "乙" * 50
    with pytest.raises(InvalidData, match=r"company_name .企业名称.: 51 characters, more than the 50 allowed"):
        check_form(definition, {"company_name": "乙" * 51})


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("{key: n, label: 数量, type: int, max_length: 5}", "max_length only applies to text fields"),
        ("{key: n, label: 名称, max_length: 2001}", "max_length: Input should be less than or equal to 2000"),
        ("{key: n, label: 名称, max_length: 2, default: 甲乙丙}", "default is longer than the 2 characters allowed"),
        ("{key: n, label: 面积, type: number, max: .nan}", "max: Input should be a finite number"),
        ("{key: n, label: 面积, type: number, default: .inf}", "default inf is not a valid number"),
    ],
)
def test_a_form_field_refuses_limits_it_cannot_have(departments, field, message):
    head = HEAD.replace("form:\n", f"form:\n  - {field}\n")
    found = problems(departments, GOOD, head)
    assert len(found) == 1 and found[0].startswith("t.yaml:5:") and message in found[0], found


QUOTE = '"'


def test_a_condition_that_repeats_text_is_refused_with_its_line(departments):
    head = HEAD.replace("form:\n", "form:\n  - {key: company_name, label: 企业名称, type: text}\n")
    found = problems(departments, GOOD.replace("limit: 4h}", 'limit: 4h, when: "len(company_name * 3) > 0"}'), head)
    assert found == [
        f"{at(10, QUOTE + 'len(')}: step 'licence': when 'len(company_name * 3) > 0' cannot be evaluated: "
        "repeating text or a list with * is not allowed"
    ]


def test_a_when_of_3000_chained_terms_is_a_problem_with_its_line(departments):
    chain = " + ".join(["employees"] * 3000)
    found = problems(departments, GOOD.replace("limit: 4h}", f'limit: 4h, when: "{chain} > 0"}}'))
    assert len(found) == 1
    where = at(9, QUOTE + "employees")
    assert found[0].startswith(f"{where}: step 'licence': when: expression of 36,001 characters")


def test_an_issue_step_behind_conditional_steps_only_is_a_warning(departments):
    """It passed validation, and most simulated applicants then got nothing: when `needs_seal` is
    false, `seal` is skipped, and the issue step with it (dead-path elimination)."""
    from orchestrator.definition.validator import check_definition

    steps = """\
    - {id: accept, kind: acceptance, name: 受理, department: zwfw, limit: 1h}
    - {id: licence, kind: approval, name: 执照, department: scjg, after: [accept], limit: 4h}
    - {id: seal, kind: approval, name: 刻章, department: gaj, after: [licence], when: needs_seal, limit: 2h}
    - {id: social, kind: approval, name: 社保, department: rsj, after: [licence], when: employees > 0, limit: 2h}
    - {id: bundle, kind: notify, name: 汇总, department: zwfw, after: [seal, social]}
    - {id: issue, kind: issue, name: 出件, department: zwfw, after: [bundle], limit: 1h}
    """
    text = HEAD + textwrap.dedent(steps) + TAIL
    definition, warnings = check_definition("t.yaml", departments, text=text)  # valid: nothing refused
    assert definition.key == "t"
    assert [str(w) for w in warnings] == [
        "t.yaml:13:63: warning: issue step 'issue' waits only on steps that may be skipped: seal (when: needs_seal), "
        "social (when: employees > 0). When their conditions are false it is skipped too and the applicant gets "
        "nothing; add a step that always runs to its `after` (kaiban-qiye.yaml's issue waits for licence as well)"
    ]
    fixed = text.replace("after: [bundle]", "after: [bundle, licence]")
    assert check_definition("t.yaml", departments, text=fixed)[1] == []


CERTIFICATE_STEPS = """\
- {id: accept, kind: acceptance, name: 受理, department: zwfw, limit: 1h}
- {id: licence, kind: approval, name: 执照, department: scjg, after: [accept], limit: 4h}
- {id: annex, kind: approval, name: 附页, department: scjg, after: [licence], when: employees > 10, limit: 2h}
- {id: issue, kind: issue, name: 出件, department: zwfw, after: [licence, annex], limit: 1h,
   certificates: [{key: annex_page, name: 执照附页, issuer: scjg}]}
"""


def test_a_certificate_whose_issuer_decides_a_conditional_and_an_unconditional_step_is_a_warning(departments):
    """The engine issues it whenever its issuer approved any of its steps: here whenever `licence` ran,
    though the 附页 comes from `annex`, skipped for small companies. `steps` says where it comes from."""
    from orchestrator.definition.validator import check_definition

    text = HEAD + CERTIFICATE_STEPS + TAIL
    definition, warnings = check_definition("t.yaml", departments, text=text)
    assert [w.message for w in warnings] == [
        "certificate 'annex_page' goes out whenever 'scjg' approves any of its steps (licence, annex), one of "
        "which always runs, though annex may be skipped; if it comes from those, say so with steps: [annex]"
    ]
    assert [s.id for s in definition.producing_steps(definition.steps_by_id["issue"].certificates[0])] == [
        "licence",
        "annex",
    ]
    fixed = text.replace("issuer: scjg}", "issuer: scjg, steps: [annex]}")
    definition, warnings = check_definition("t.yaml", departments, text=fixed)
    assert warnings == []
    assert [s.id for s in definition.producing_steps(definition.steps_by_id["issue"].certificates[0])] == ["annex"]


def test_a_certificate_naming_a_step_its_issuer_does_not_decide_is_refused_at_the_line(departments):
    text = HEAD + CERTIFICATE_STEPS.replace("issuer: scjg}", "issuer: scjg, steps: [anex, accept]}") + TAIL
    with pytest.raises(SourceError) as raised:
        load_definition("t.yaml", departments, text=text)
    assert [str(p).split(": ", 1)[1] for p in raised.value.problems] == [
        "certificate 'annex_page' names step 'anex', which is no step 'scjg' decides (did you mean 'annex'?)",
        "certificate 'annex_page' names step 'accept', which is no step 'scjg' decides",
    ]
