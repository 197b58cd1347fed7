"""Every shipped definition's flowchart as a manager sees it: within the width limit, wrapped by the
rules, lanes that read as lanes, conditions and conditional certificates shown, the live case and
heat map drawn the same way."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache

import pytest

from orchestrator.definition import load_definition, load_departments
from orchestrator.render import (
    STATE_COLOURS,
    WIDTH_LIMIT_PT,
    StepOverlay,
    certificate_condition,
    choose_layout,
    flowchart,
    render,
    wrapped_texts,
)
from orchestrator.textwrap_zh import NO_END, NO_START, text_width, units, violations

from .conftest import DEFINITIONS

SHIPPED = sorted(p.stem for p in DEFINITIONS.glob("*.yaml") if p.stem not in ("departments", "calendar"))
SVG = "{http://www.w3.org/2000/svg}"


@cache
def departments():
    return load_departments(DEFINITIONS / "departments.yaml")


@cache
def definition(key):
    return load_definition(DEFINITIONS / f"{key}.yaml", departments())


@dataclass(frozen=True)
class Box:
    left: float
    top: float
    right: float
    bottom: float


@cache
def drawn(key: str, **options) -> tuple[ET.Element, str]:
    svg = render(definition(key), departments(), "svg", **options).decode("utf-8")
    return ET.fromstring(svg), svg


def boxes(root: ET.Element, css_class: str) -> dict[str, Box]:
    """Bounding boxes of the SVG's nodes or clusters by their graphviz name."""
    found = {}
    for group in root.iter(f"{SVG}g"):
        if group.get("class") != css_class:
            continue
        name = group.find(f"{SVG}title").text
        points = [
            (float(x), float(y))
            for shape in group.iter()
            if shape.tag in (f"{SVG}polygon", f"{SVG}path")
            for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", shape.get("points") or shape.get("d") or "")
        ]
        if points:
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            found[name] = Box(min(xs), min(ys), max(xs), max(ys))
    return found


def edge_points(root: ET.Element) -> dict[str, list[tuple[float, float]]]:
    result = {}
    for group in root.iter(f"{SVG}g"):
        if group.get("class") == "edge":
            path = group.find(f"{SVG}path")
            result[group.find(f"{SVG}title").text] = [
                (float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", path.get("d"))
            ]
    return result


@pytest.mark.parametrize("key", SHIPPED)
def test_no_chart_is_wider_than_the_limit(key):
    root, _ = drawn(key)
    width = float(root.get("width").removesuffix("pt"))
    view_box = [float(v) for v in root.get("viewBox").split()]
    assert width <= WIDTH_LIMIT_PT and view_box[2] <= WIDTH_LIMIT_PT, f"{key}: {width}pt wide"


def test_the_construction_permit_is_drawn_top_to_bottom():
    # 施工许可 was 3,421 px wide left to right; its long chain now runs down the page
    assert choose_layout(definition("gongcheng-shigong-xuke"), departments()).rankdir == "TB"
    width, _ = re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', drawn("gongcheng-shigong-xuke")[1]).groups()
    left_to_right = render(definition("gongcheng-shigong-xuke"), departments(), "svg", direction="LR").decode()
    assert float(re.search(r'<svg width="([\d.]+)pt"', left_to_right)[1]) > WIDTH_LIMIT_PT >= float(width)


@pytest.mark.parametrize("key", SHIPPED)
@pytest.mark.parametrize("direction", ["auto", "LR", "TB"])
def test_every_wrapped_text_keeps_the_line_breaking_rules_and_is_balanced(key, direction):
    texts = wrapped_texts(definition(key), departments(), direction=direction)
    assert texts
    for wrapped in texts:
        lines = list(wrapped.lines)
        assert violations(lines) == [], wrapped
        assert "".join(lines).replace(" ", "") == wrapped.text.replace(" ", "").replace("\u00a0", "")
        widths = [text_width(line) for line in lines]
        for line, width in zip(lines, widths, strict=True):
            assert width <= wrapped.columns or len(units(line)) == 1, wrapped
        if len(lines) > 1:  # balanced: no short tail such as a lone 发）
            assert min(widths) >= max(widths) / 3, wrapped


@pytest.mark.parametrize("key", SHIPPED)
def test_no_drawn_line_starts_with_closing_or_ends_with_opening_punctuation(key):
    root, _ = drawn(key)
    lines = [("".join(t.itertext())).strip() for t in root.iter(f"{SVG}text")]
    assert lines
    for line in lines:
        if line:
            assert line[0] not in NO_START and line[-1] not in NO_END, line


@pytest.mark.parametrize("key", SHIPPED)
def test_departments_are_swimlanes_with_title_bars_in_one_row(key):
    root, _ = drawn(key)
    d = definition(key)
    lanes = {code: box for name, box in boxes(root, "cluster").items() for code in [name.split("_", 3)[-1]]}
    nodes = boxes(root, "node")
    owners = {step.department for step in d.steps}
    assert set(lanes) == owners
    across = "rankdir=TB" in flowchart(d, departments()).source
    titles = {code: nodes[f"lane__{code}"] for code in owners}
    # every lane as long as the chart; the title bars the same size, in one row at its start
    lengths = {round(b.bottom - b.top) if across else round(b.right - b.left) for b in lanes.values()}
    assert max(lengths) - min(lengths) <= 1, lengths
    starts = {round(b.top) if across else round(b.left) for b in titles.values()}
    assert max(starts) - min(starts) <= 1
    sizes = {(round(b.right - b.left), round(b.bottom - b.top)) for b in titles.values()}
    assert len(sizes) == 1, sizes
    # each lane holds its title and its department's steps, and no two lanes overlap
    for step in d.steps:
        lane, box = lanes[step.department], nodes[step.id]
        assert lane.left <= box.left and box.right <= lane.right and lane.top <= box.top and box.bottom <= lane.bottom
    ordered = sorted(lanes.values(), key=lambda b: b.left if across else b.top)
    for first, second in itertools.pairwise(ordered):
        assert (first.right <= second.left) if across else (first.bottom <= second.top)


@pytest.mark.parametrize("key", SHIPPED)
def test_no_edge_runs_through_a_lane_title(key):
    root, _ = drawn(key)
    across = choose_layout(definition(key), departments()).rankdir == "TB"
    nodes = boxes(root, "node")
    titles = [box for name, box in nodes.items() if name.startswith("lane__")]
    end = max(b.bottom for b in titles) if across else max(b.right for b in titles)
    for name, points in edge_points(root).items():
        for x, y in points:
            assert (y >= end) if across else (x >= end), f"{key}: edge {name} enters the title row"


@pytest.mark.parametrize("key", SHIPPED)
def test_conditions_are_tags_in_the_steps_lane_not_edge_labels(key):
    d = definition(key)
    source = flowchart(d, departments()).source
    edges = [line for line in source.splitlines() if " -> " in line]
    assert not [e for e in edges if re.search(r"\blabel=", e)], "an edge label can be crossed; use a tag node"
    root, _ = drawn(key)
    nodes = boxes(root, "node")
    for step in d.steps:
        if step.when is None:
            continue
        tag = f"when__{step.id}"
        assert re.search(rf"\t{tag} -> {step.id} \[", source)
        assert f"-> {tag} [arrowhead=none" in source  # the tag reads as a label on the line into the step
        # no other node overlaps the tag
        for name, box in nodes.items():
            if name != tag:
                other = nodes[tag]
                apart = (
                    box.right <= other.left
                    or other.right <= box.left
                    or box.bottom <= other.top
                    or other.bottom <= box.top
                )
                assert apart, f"{name} overlaps {tag}"


def test_conditional_certificates_are_dashed_with_their_condition():
    kaiban = definition("kaiban-qiye")
    issue = kaiban.steps_by_id["issue"]
    conditions = {c.key: certificate_condition(kaiban, c) for c in issue.certificates}
    assert conditions == {"business_licence": None, "seal_record": "是否刻制公章", "tax_ukey": "是否申领发票及税务UKey"}
    source = flowchart(kaiban, departments()).source
    assert re.search(r'<td border="1" style="dashed"[^>]*>[^<]*<font[^>]*>印章备案回执', source)
    assert re.search(r'<td border="1" color="#78909c"><font[^>]*>营业执照', source)

    gongcheng = definition("gongcheng-shigong-xuke")
    issued = {c.key: certificate_condition(gongcheng, c) for c in gongcheng.steps_by_id["issue"].certificates}
    assert issued["construction_permit"] is None and issued["planning_permit"] is None
    assert issued["fire_design_opinion"] == "是否属于特殊建设工程（需消防设计审查）"
    assert issued["air_defence_approval"] == "是否配建防空地下室"
    assert issued["waste_approval"] == "是否产生需外运处置的建筑垃圾"


def test_a_certificate_whose_issuer_has_an_unconditional_step_is_always_issued():
    elder = definition("laonianren-youdaizheng")  # 秒批 runs always; the card is issued after it or after review
    assert [certificate_condition(elder, c) for c in elder.steps_by_id["issue"].certificates] == [None]


@pytest.mark.parametrize("key", ["kaiban-qiye", "gongcheng-shigong-xuke"])
def test_a_live_case_is_drawn_like_its_definition(key):
    d = definition(key)
    overlay = {s.id: StepOverlay("done") for s in d.steps[:3]}
    overlay[d.steps[3].id] = StepOverlay("overdue", note="逾期 1.5 工作日")
    taken = [(s.after[0], s.id) for s in d.steps[1:4]]
    plain = flowchart(d, departments())
    live = flowchart(d, departments(), overlay, taken)
    assert re.search(r"rankdir=(\w+)", plain.source)[1] == re.search(r"rankdir=(\w+)", live.source)[1]
    assert STATE_COLOURS["overdue"] in live.source and "逾期 1.5 工作日" in live.source
    assert "penwidth=2.6" in live.source
    root = ET.fromstring(live.pipe(format="svg"))
    plain_root, _ = drawn(key)
    across = "rankdir=TB" in plain.source

    def lane_order(svg_root):
        titles = {n: b for n, b in boxes(svg_root, "node").items() if n.startswith("lane__")}
        return sorted(titles, key=lambda n: titles[n].left if across else titles[n].top)

    assert lane_order(root) == lane_order(plain_root)


def test_heat_map_colours_and_labels_steps():
    d = definition("kaiban-qiye")
    heat = {"licence": ("#e53935", "平均 0.8 工作日"), "seal": ("#fff176", None)}
    source = flowchart(d, departments(), {"licence": StepOverlay("done")}, heat=heat).source
    assert "#e53935" in source and "平均 0.8 工作日" in source and "#fff176" in source
    assert STATE_COLOURS["done"] not in source  # the heat colour wins


@pytest.mark.parametrize("direction", ["LR", "TB"])
def test_direction_can_be_chosen(direction):
    source = flowchart(definition("tuixiu"), departments(), direction=direction).source
    assert f"rankdir={direction}" in source
