"""Flowcharts: swimlanes per department, gateways for parallel blocks, same input → same bytes."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from orchestrator.definition import load_definition
from orchestrator.render import STATE_COLOURS, StepOverlay, flowchart, render

from .conftest import FIXTURES


@pytest.fixture(scope="module")
def kaiban(departments):
    return load_definition(FIXTURES / "kaiban-mini.yaml", departments)


def test_one_lane_per_department_with_the_lead_marked(kaiban, departments):
    source = flowchart(kaiban, departments).source
    assert source.count("subgraph cluster_") == 5
    assert "★ 牵头 · 市场监督管理局（scjg）" in source  # the lane's title (in full as its tooltip)
    # left to right or top to bottom, whichever fits the width limit (tests/test_render_charts.py)
    assert "rankdir=LR" in flowchart(kaiban, departments, direction="LR").source


def test_parallel_blocks_are_drawn_as_fork_and_join_gateways(kaiban, departments):
    source = flowchart(kaiban, departments).source
    assert "fork__licence" in source and 'xlabel="并联"' in source
    assert "join__issue" in source and 'xlabel="汇聚"' in source
    # the three parallel steps hang off the one fork (a conditional one through its condition's tag)
    for step in ("seal", "invoice", "social"):
        assert f"fork__licence -> {step}" in source or f"fork__licence -> when__{step}" in source


def test_conditions_are_written_on_edges_with_form_labels(kaiban, departments):
    source = flowchart(kaiban, departments).source
    assert 'label="若 是否刻制公章"' in source
    assert "若 参保职工人数 > 0" in source


def test_limits_under_step_names(kaiban, departments):
    assert "限时 0.5工作日" in flowchart(kaiban, departments).source


def test_same_input_same_bytes(kaiban, departments):
    assert render(kaiban, departments, "svg") == render(kaiban, departments, "svg")
    assert render(kaiban, departments, "png") == render(kaiban, departments, "png")


def test_overlay_colours_a_live_case(kaiban, departments):
    overlay = {"licence": StepOverlay("completed"), "invoice": StepOverlay("overdue", note="逾期 0.5 工作日")}
    source = flowchart(kaiban, departments, overlay, taken=[("accept", "licence")]).source
    assert STATE_COLOURS["completed"] in source
    assert STATE_COLOURS["overdue"] in source and "逾期 0.5 工作日" in source
    assert "penwidth=2.6" in source  # the path taken is drawn bold


def test_heat_map_colour_wins_over_state(kaiban, departments):
    source = flowchart(kaiban, departments, {"seal": StepOverlay("ready", color="#ff0000")}).source
    assert "#ff0000" in source


def test_unknown_format_is_refused(kaiban, departments):
    with pytest.raises(ValueError, match="unknown format 'gif'"):
        render(kaiban, departments, "gif")  # type: ignore[arg-type]


def test_chinese_text_uses_an_installed_cjk_font(kaiban, departments):
    svg = render(kaiban, departments, "svg").decode()
    assert 'font-family="Noto Sans CJK SC"' in svg
    if shutil.which("fc-match") is None:
        pytest.fail("fontconfig is missing: install graphviz and fonts-noto-cjk (make test does)")
    matched = subprocess.run(["fc-match", "Noto Sans CJK SC"], capture_output=True, text=True).stdout
    assert "CJK" in matched, f"no CJK font installed (fc-match gave {matched!r}); apt-get install fonts-noto-cjk"
