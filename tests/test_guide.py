"""The 办事指南 derived from the shipped definitions: labels by their stated rules, materials with 容缺,
steps in the order they run, limits in working days; what a definition does not say stays unsaid."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from orchestrator.definition.validator import check_paths, load_definition
from orchestrator.guide import JIUJIN, LABEL_RULES, MASHANG, WANGSHANG, YICI, labels, readable, service_guide

from .conftest import DEFINITIONS


@dataclass(frozen=True)
class Centre:
    code: str
    name: str
    level: str


CENTRES = [Centre("city", "市民中心", "city"), Centre("futian", "福田区政务服务中心", "district")]


@pytest.fixture(scope="module")
def shipped():
    checked = check_paths([DEFINITIONS])
    assert not [p for c in checked for p in c.problems]
    return {c.definition.key: (c.definition, c.departments) for c in checked}


def guide_of(shipped, key, centres=CENTRES):
    definition, departments = shipped[key]
    return service_guide(definition, departments, centres, version=3)


# label name → applies, for each shipped definition (with a district centre, so 就近办 holds everywhere)
EXPECTED = {
    "kaiban-qiye": {MASHANG: True, WANGSHANG: True, JIUJIN: True, YICI: True},  # promised 1d
    "gongcheng-shigong-xuke": {MASHANG: False, WANGSHANG: True, JIUJIN: True, YICI: False},  # 联合踏勘
    "laonianren-youdaizheng": {MASHANG: False, WANGSHANG: True, JIUJIN: True, YICI: True},  # manual fallback
    "ershoufang-guohu": {MASHANG: False, WANGSHANG: True, JIUJIN: True, YICI: True},
    "tuixiu": {MASHANG: False, WANGSHANG: True, JIUJIN: True, YICI: True},
    "xinshenger-chusheng": {MASHANG: False, WANGSHANG: True, JIUJIN: True, YICI: True},
}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_the_labels_of_the_shipped_definitions_follow_their_rules(shipped, key):
    guide = guide_of(shipped, key)
    assert {label.name: label.applies for label in guide.labels} == EXPECTED[key]
    for label in guide.labels:
        assert label.rule == LABEL_RULES[label.name] and label.why


def test_each_label_says_why_for_this_definition(shipped):
    kaiban = guide_of(shipped, "kaiban-qiye")
    assert kaiban.label(MASHANG).why == "承诺时限 1工作日，不超过 1 个工作日。"
    assert kaiban.label(JIUJIN).why == "全市通办：可在福田区政务服务中心的综合窗口办理。"
    gongcheng = guide_of(shipped, "gongcheng-shigong-xuke")
    assert gongcheng.label(YICI).why == "联合踏勘（现场勘验）须申请人在现场配合。"
    assert gongcheng.label(MASHANG).why.startswith("承诺时限 18工作日，超过 1 个工作日；联合踏勘（现场勘验）、")
    laonianren = guide_of(shipped, "laonianren-youdaizheng")
    assert "人工审核" in laonianren.label(MASHANG).why
    assert laonianren.online_accept and laonianren.instant_approval  # 网上申报自动受理, 秒批


def test_nearby_needs_a_district_or_community_centre(shipped):
    city_only = guide_of(shipped, "kaiban-qiye", [Centre("city", "市民中心", "city")])
    assert not city_only.label(JIUJIN).applies
    assert not guide_of(shipped, "kaiban-qiye", []).label(JIUJIN).applies
    community = guide_of(shipped, "kaiban-qiye", [Centre("c1", "莲花街道便民服务中心", "community")])
    assert community.label(JIUJIN).applies
    assert [c.level_label for c in guide_of(shipped, "kaiban-qiye").centres] == ["市级", "区级"]


def test_the_materials_say_which_may_be_deferred_and_where_they_come_from(shipped):
    guide = guide_of(shipped, "kaiban-qiye")
    assert [(m.label, m.required, m.deferrable, m.source_label) for m in guide.materials] == [
        ("法定代表人身份证明", True, False, "部门共享获取，免提交"),
        ("公司章程（可用标准化章程）", True, False, "申请人提供"),
        ("股东主体资格证明", True, False, "申请人提供"),
        ("住所使用证明（租赁合同或产权证明）", True, True, "申请人提供"),
        ("刻章经办人身份证明", False, True, "部门共享获取，免提交"),
        ("银行开户意愿书", False, True, "申请人提供"),
    ]
    assert [m.key for m in guide.deferrable] == ["lease", "seal_agent_id", "bank_intent"]
    gongcheng = guide_of(shipped, "gongcheng-shigong-xuke")
    assert {m.key for m in gongcheng.deferrable} == {"funding_pledge", "safety_measures"}
    assert gongcheng.materials[-1].source_label == "第三方机构出具"


def test_limits_in_working_days(shipped):
    kaiban = guide_of(shipped, "kaiban-qiye")
    assert (kaiban.promised, kaiban.promised_days, kaiban.statutory, kaiban.statutory_days) == (
        "1工作日",
        1.0,
        "8.5工作日",
        8.5,
    )
    gongcheng = guide_of(shipped, "gongcheng-shigong-xuke")
    assert (gongcheng.promised_days, gongcheng.statutory_days) == (18.0, 45.0)
    laonianren = guide_of(shipped, "laonianren-youdaizheng")
    assert (laonianren.promised, laonianren.statutory, laonianren.statutory_days) == ("5工作日", None, None)
    assert kaiban.case_kind_label == "承诺件"


def test_steps_run_in_stages_with_their_departments(shipped):
    guide = guide_of(shipped, "kaiban-qiye")
    assert [[s.id for s in stage.steps] for stage in guide.stages] == [
        ["accept"],
        ["licence"],
        ["seal", "invoice", "social", "medical", "housing_fund", "bank"],
        ["issue"],
    ]
    assert [stage.parallel for stage in guide.stages] == [False, False, True, False]
    licence = guide.stages[1].steps[0]
    assert (licence.department_name, licence.lead, licence.limit) == ("市场监督管理局", True, "4工作小时")
    seal = guide.stages[2].steps[0]
    assert (seal.department_name, seal.condition) == ("公安局", "是否刻制公章")
    assert guide.stages[2].steps[2].condition == "参保职工人数 > 0"
    assert [(d.code, d.lead) for d in guide.departments][:2] == [("zwfw", False), ("scjg", True)]
    assert guide.certificates[0] == ("营业执照（含电子营业执照）", "市场监督管理局")
    assert guide.delivery == ("窗口领取", "免费邮寄", "电子证照在线送达")
    assert guide.services[0] == "企业设立登记（营业执照核发）" and "统一出件（开办企业大礼包）" not in guide.services

    survey = guide_of(shipped, "gongcheng-shigong-xuke").stages[1].steps[0]
    assert survey.kind == "survey" and len(survey.participants) == 4
    tuixiu = guide_of(shipped, "tuixiu")
    appraisal = next(s for stage in tuixiu.stages for s in stage.steps if s.id == "disability_appraisal")
    assert appraisal.limit is None  # 劳动能力鉴定: Art. 45, not counted


def test_who_and_fees_come_from_the_definition_or_are_unstated(shipped):
    kaiban = guide_of(shipped, "kaiban-qiye")
    assert kaiban.who == "在本市申请设立登记的有限责任公司、股份有限公司、个人独资企业和合伙企业"
    assert kaiban.fees is None  # not stated: never guessed (no "不收费" unless the definition says so)
    assert guide_of(shipped, "tuixiu").who is None
    assert all(guide_of(shipped, key).fees is None for key in EXPECTED)
    assert kaiban.remedy.startswith("如不服本决定")
    assert kaiban.covers is None and kaiban.summary.startswith("企业设立登记")


def test_a_guide_block_and_in_person_materials_change_the_guide(shipped, departments):
    text = (DEFINITIONS.parent / "tests" / "fixtures" / "kaiban-mini.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "  - {key: lease, label: 住所使用证明, required: true, deferrable: true}",
        "  - {key: lease, label: 住所使用证明, required: true, deferrable: true, in_person: true}",
    )
    text += "guide: {covers: 一次办好开办企业的五件事, who: 本市新设企业, fees: 不收费}\n"
    definition = load_definition("kaiban-mini.yaml", departments, text=text)
    guide = service_guide(definition, departments, CENTRES)
    assert (guide.covers, guide.who, guide.fees) == ("一次办好开办企业的五件事", "本市新设企业", "不收费")
    assert not guide.label(WANGSHANG).applies
    assert guide.label(WANGSHANG).why == "须到窗口出示原件或本人到场核验：住所使用证明。"
    assert guide.label(YICI).applies  # presented at the one visit

    window_only = load_definition(
        "kaiban-mini.yaml", departments, text=text.replace("delivery: [window, mail]", "delivery: [window]")
    )
    assert [label.applies for label in labels(window_only, CENTRES)] == [True, False, True, False]
    instant = load_definition(
        "kaiban-mini.yaml",
        departments,
        text=text.replace("case_kind: promised", "case_kind: instant").replace("promised: 1d, ", ""),
    )
    assert service_guide(instant).label(MASHANG).why == "即办件：当场办结。"


def test_conditions_read_in_words(shipped):
    definition = shipped["kaiban-qiye"][0]
    assert readable("employees >= 1 and company_type not in ['a', 'b']", definition) == (
        "参保职工人数 ≥ 1 且 企业类型 不属于 ['a', 'b']"
    )
    assert readable("not needs_seal or bank_name is not None", definition) == "非 是否刻制公章 或 预约开户银行 不是 空"
    assert readable("company_name == 'and'", definition) == "企业名称（自主申报） = 'and'"
