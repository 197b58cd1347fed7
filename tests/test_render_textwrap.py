"""Wrapping Chinese labels: the line-breaking rules (禁则), whole words, balanced lines."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.textwrap_zh import NBSP, NO_END, NO_START, text_width, units, violations, wrap


@pytest.mark.parametrize(
    ("text", "width"),
    [
        ("企业设立登记（营业执照核发）", 14),
        ("建筑工程施工许可证核发（含质量安全监督登记）", 14),
        ("城镇污水排入排水管网许可（施工临时排水）", 12),
        ("营业执照（含电子营业执照）、印章备案回执及首套印章、税务UKey及首批发票", 20),
        ("契税、个人所得税等税费核定与缴纳", 12),
        ("人工审核（非本市户籍、比对不一致、补换领等）", 16),
        ("他说：“好。”然后走了……——再见！", 6),
    ],
)
def test_no_line_starts_with_closing_or_ends_with_opening_punctuation(text, width):
    lines = wrap(text, width)
    assert violations(lines) == []
    assert "".join(lines) == text
    for line in lines:
        assert line[0] not in NO_START and line[-1] not in NO_END


def test_a_closing_bracket_never_stands_alone():
    # the examples: a lone ） or 发） on its own line
    for width in range(6, 30):
        lines = wrap("企业设立登记（营业执照核发）", width)
        widths = [text_width(line) for line in lines]
        assert not {"）", "发）"} & set(lines)
        assert min(widths) >= max(widths) / 3, lines


def test_latin_words_numbers_and_comparisons_are_not_split():
    assert "UKey" in "|".join(wrap("发票申领及税务UKey发放", 8))
    assert any("0.5工作日" in line or "0.5" in line for line in wrap("限时 0.5工作日", 6))
    for width in range(4, 20):
        joined = "|".join(wrap("若 参保职工人数 > 0", width))
        assert "> 0" in joined and "|>" not in joined and ">|" not in joined
    assert units("数 > 0")[-1].endswith("> 0")


def test_pairs_of_dashes_and_ellipses_stay_together():
    assert "|".join(wrap("等等……还有——以及", 4)).count("……") == 1


def test_known_words_are_kept_whole():
    assert wrap("审管联动推送质量安全监督机构", 14) == ["审管联动推送", "质量安全", "监督机构"]
    assert wrap("住房公积金单位缴存登记", 12) == ["住房公积金", "单位缴存登记"]
    assert wrap("人力资源和社会保障局", 12) == ["人力资源和", "社会保障局"]


def test_a_field_label_to_keep_is_split_only_when_it_must_be():
    assert wrap("若 同步办理供水过户", 14, keep=["同步办理供水过户"]) == ["若 同步办理", "供水过户"]


def test_a_no_break_space_holds_and_comes_out_as_a_space():
    lines = wrap(f"若{NBSP}参保职工人数 > 0", 16)
    assert lines[0].startswith("若 参保") and all(NBSP not in line for line in lines)


def test_lines_are_balanced_and_as_few_as_fit():
    assert wrap("企业设立登记（营业执照核发）", 18) == ["企业设立登记", "（营业执照核发）"]
    assert wrap("统一出件", 18) == ["统一出件"]
    lines = wrap("设计审查结果汇总并抄告施工许可并联部门", 20)
    widths = [text_width(line) for line in lines]
    assert len(lines) == 2 and max(widths) - min(widths) <= 4


def test_a_piece_wider_than_the_line_stands_alone():
    assert wrap("gongcheng-shigong-xuke", 8) == ["gongcheng-shigong-xuke"]
    assert wrap("", 8) == []


CHARS = "审批许可证登记核发企业住房建设工程公积金社会保障局" + "（）、，。：；？！“”《》" + "AUKey0.5 "


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=CHARS, min_size=1, max_size=40), width=st.integers(min_value=4, max_value=30))
def test_any_text_wraps_by_the_rules_and_loses_nothing(text, width):
    lines = wrap(text, width)
    assert violations(lines) == [] or _forced(text)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    for line in lines:
        # wider than the line only where one unbreakable piece is
        assert text_width(line) <= width or len(units(line)) == 1
    for word in re.findall(r"[A-Za-z0-9.]+", text):  # Latin words and numbers are never split
        assert any(word in line for line in lines)


def _forced(text: str) -> bool:
    """The text itself starts with closing or ends with opening punctuation: no wrapping helps."""
    stripped = text.strip(" ")
    return bool(stripped) and (stripped[0] in NO_START or stripped[-1] in NO_END)
