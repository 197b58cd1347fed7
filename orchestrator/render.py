"""Flowcharts of definitions (graphviz): one swimlane per department, parallel blocks as gateways.

The same drawing serves a live case and a heat map: pass an overlay of per-step states, colours
and notes (or a ``heat`` map of colours and labels), and the edges a case really took.

Layout. Each department is a lane (a graphviz cluster) with a title bar, in order of first
appearance, every lane as long as the chart. A chart is drawn left to right (lanes are rows) or top
to bottom (lanes are columns), whichever fits :data:`WIDTH_LIMIT_PT` and prints larger on one A4
page; both are laid out and measured (graphviz ``dot``), and the measurements are cached, so a live
case chart costs one layout. Conditions are small tags on the edge into the conditional step (nodes
of their own, so nothing crosses them); a certificate that only a conditional step produces is drawn
dashed, with its condition.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Collection, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import graphviz

from .definition.model import Certificate, Definition, Department, Step
from .textwrap_zh import NBSP, wrap

Format = Literal["svg", "png", "dot"]
FORMATS: tuple[Format, ...] = ("svg", "png", "dot")
Direction = Literal["auto", "LR", "TB"]
FONT = "Noto Sans CJK SC"
PNG_DPI = 110

# The widest a chart may be, in points (1/72 inch, the unit of the SVG's width). A4 landscape
# printed with 10 mm margins has 277 mm = 785 pt across; a 1100 pt chart prints at 71 %, where step
# names (12 pt) are 8.6 pt and the smallest text (9 pt) 6.4 pt, still readable on paper. On a
# screen 1100 pt is 1467 CSS pixels: the whole width shows at 100 % on a 1920-pixel display.
WIDTH_LIMIT_PT = 1100
A4_PRINTABLE_PT = (785, 539)  # 277 × 190 mm: A4 landscape less 10 mm margins

KIND_LABELS = {
    "acceptance": "综合受理",
    "survey": "联合踏勘",
    "approval": "审批",
    "auto": "自动（秒批）",
    "issue": "出件",
    "notify": "通知",
}
KIND_SHAPES = {
    "acceptance": ("cds", "filled"),
    "survey": ("box", "filled"),  # with a double frame: every listed department signs
    "approval": ("box", "rounded,filled"),
    "auto": ("component", "filled"),
    "issue": ("note", "filled"),
    "notify": ("box", "rounded,filled,diagonals"),
}
# Fill colours by task state or SLA state (待办 blue, 已办 green, 预警 yellow, 逾期 red).
STATE_COLOURS = {
    "ready": "#bbdefb",
    "claimed": "#90caf9",
    "completed": "#c8e6c9",
    "skipped": "#f5f5f5",
    "cancelled": "#e0e0e0",
    "rejected": "#ffcdd2",
    "returned": "#ffe0b2",
    "on_track": "#c8e6c9",
    "warning": "#fff59d",
    "overdue": "#ef9a9a",
    # a case's path (engine.read.case_path)
    "done": "#c8e6c9",
    "running": "#90caf9",
    "waiting": "#ffe0b2",
    "not_reached": "#ffffff",
}
STATE_LABELS = {
    "ready": "待办",
    "claimed": "办理中",
    "completed": "已办",
    "skipped": "跳过",
    "cancelled": "已取消",
    "rejected": "不予许可",
    "returned": "退回补正",
    "on_track": "正常",
    "warning": "预警（黄牌）",
    "overdue": "逾期（红牌）",
    "done": "已办",
    "running": "办理中",
    "waiting": "等待补正",
    "not_reached": "未到达",
}
DEFAULT_FILL = "#ffffff"
CONDITION_COLOUR = "#6a1b9a"
PATH_COLOUR = "#1b5e20"
LANE_FILLS = ("#f3f6f9", "#fbfbfb")
LANE_TITLE_FILL = "#455a64"
NAME_SIZE, DETAIL_SIZE, SMALL_SIZE = 12, 10, 9


@dataclass(frozen=True)
class StepOverlay:
    """What to show on one step of a live case or a heat map."""

    state: str | None = None  # a key of STATE_COLOURS
    color: str | None = None  # explicit fill (heat maps); wins over state
    note: str | None = None  # one short line under the step, e.g. "逾期 1.5 工作日"


@dataclass(frozen=True)
class Layout:
    """How a chart is laid out: the direction of the flow and how wide a step's text may be."""

    rankdir: Literal["LR", "TB"]
    columns: int  # a step name's line, in columns (a Chinese character takes two)

    @property
    def step_width(self) -> float:
        """Every step box's least width, in inches, so a lane's boxes line up."""
        return round((self.columns * NAME_SIZE / 2 + 18) / 72, 2)


# Tried in this order; the first that fits the width limit and prints largest on A4 wins.
CANDIDATES = (
    Layout("LR", 20),
    Layout("TB", 18),
    Layout("TB", 16),
    Layout("TB", 14),
    Layout("TB", 12),
)


def flowchart(
    definition: Definition,
    departments: Mapping[str, Department] | None = None,
    overlay: Mapping[str, StepOverlay] | None = None,
    taken: Collection[tuple[str, str]] = (),
    *,
    heat: Mapping[str, tuple[str, str | None]] | None = None,
    direction: Direction = "auto",
    width_limit: float = WIDTH_LIMIT_PT,
) -> graphviz.Digraph:
    """The definition's DAG as a graphviz graph with one swimlane per department.

    ``overlay``: per-step state, colour and note of a live case; ``taken``: the edges it went along
    (drawn bold). ``heat``: step id → (fill colour, label), e.g. a bottleneck heat map's colour and
    "平均 2.3 工作日"; it wins over the overlay's colour. ``direction``: ``LR`` (lanes are rows),
    ``TB`` (lanes are columns) or ``auto``: the layout that fits ``width_limit`` points, chosen on
    the definition alone so a case's chart looks like its definition's.
    """
    departments = departments or {}
    layout = choose_layout(definition, departments, direction=direction, width_limit=width_limit)
    return _build(definition, departments, layout, overlay or {}, set(taken), heat or {})


def render(
    definition: Definition,
    departments: Mapping[str, Department] | None = None,
    fmt: Format = "svg",
    overlay: Mapping[str, StepOverlay] | None = None,
    taken: Collection[tuple[str, str]] = (),
    *,
    heat: Mapping[str, tuple[str, str | None]] | None = None,
    direction: Direction = "auto",
    width_limit: float = WIDTH_LIMIT_PT,
) -> bytes:
    """Rendered bytes; the same input gives the same bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    graph = flowchart(definition, departments, overlay, taken, heat=heat, direction=direction, width_limit=width_limit)
    if fmt == "dot":
        return graph.source.encode("utf-8")
    if fmt == "png":
        graph.graph_attr["dpi"] = str(PNG_DPI)
    return graph.pipe(format=fmt)


def inline_svg(svg: bytes | str, label: str) -> str:
    """An SVG to put inside a page: without the XML prolog and doctype, named for screen readers. (SVG is
    drawn at graphviz's 72 dpi, so its size and viewBox agree; only PNG is drawn at PNG_DPI.)"""
    text = svg.decode("utf-8") if isinstance(svg, bytes) else svg
    text = text[text.index("<svg") :]
    return text.replace("<svg", f'<svg role="img" aria-label="{html.escape(label)}"', 1)


@dataclass(frozen=True)
class Wrapped:
    """One text of a chart as wrapped: the text, the width in columns and the lines drawn."""

    text: str
    columns: int
    lines: tuple[str, ...]


_recording: ContextVar[list[Wrapped] | None] = ContextVar("_recording", default=None)


def wrapped_texts(
    definition: Definition,
    departments: Mapping[str, Department] | None = None,
    overlay: Mapping[str, StepOverlay] | None = None,
    **options: object,
) -> list[Wrapped]:
    """Every text that the chart of ``flowchart(definition, departments, overlay, **options)``
    wraps, as wrapped (to check the line-breaking rules on real charts)."""
    found: list[Wrapped] = []
    token = _recording.set(found)
    try:
        flowchart(definition, departments, overlay, **options)  # type: ignore[arg-type]
    finally:
        _recording.reset(token)
    return found


def _wrap(text: str, columns: int, keep: Collection[str] = ()) -> list[str]:
    lines = wrap(text, columns, keep)
    found = _recording.get()
    if found is not None:
        found.append(Wrapped(text, columns, tuple(lines)))
    return lines


def choose_layout(
    definition: Definition,
    departments: Mapping[str, Department] | None = None,
    *,
    direction: Direction = "auto",
    width_limit: float = WIDTH_LIMIT_PT,
) -> Layout:
    """The layout a chart is drawn in: per direction the candidate with the widest text that fits
    ``width_limit``; of those, the one whose drawing prints largest on one A4 page (either way
    round); when none fits, the narrowest."""
    departments = departments or {}
    token = _recording.set(None)  # the trial layouts are not the chart
    try:
        sizes: dict[Layout, tuple[float, float]] = {}
        picks: list[Layout] = []
        for rankdir in ("LR", "TB"):
            if direction not in ("auto", rankdir):
                continue
            # per direction, the candidate with the widest text that fits (narrower text makes a
            # taller chart, which prints smaller)
            for candidate in (c for c in CANDIDATES if c.rankdir == rankdir):
                sizes[candidate] = measure(_build(definition, departments, candidate, {}, set(), {}).source)
                if sizes[candidate][0] <= width_limit:
                    picks.append(candidate)
                    break
    finally:
        _recording.reset(token)
    if not picks:
        return min(sizes, key=lambda c: sizes[c][0])
    return max(picks, key=lambda c: _print_scale(*sizes[c]))


@lru_cache(maxsize=512)
def measure(source: str) -> tuple[float, float]:
    """Width and height in points of a DOT source as laid out (the SVG's width and height)."""
    svg = graphviz.Source(source).pipe(format="svg").decode("utf-8")
    match = re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg)
    if not match:
        raise RuntimeError("graphviz gave an SVG without a size")
    return float(match[1]), float(match[2])


def _print_scale(width: float, height: float) -> float:
    """How large the chart prints on one A4 page, landscape or portrait, whichever is larger (≤ 1)."""
    long, short = A4_PRINTABLE_PT
    return min(1.0, max(min(long / width, short / height), min(short / width, long / height)))


# ----------------------------------------------------------------------------------------------
# the drawing


def _build(
    definition: Definition,
    departments: Mapping[str, Department],
    layout: Layout,
    overlay: Mapping[str, StepOverlay],
    taken: set[tuple[str, str]],
    heat: Mapping[str, tuple[str, str | None]],
) -> graphviz.Digraph:
    across = layout.rankdir == "TB"
    graph = graphviz.Digraph(
        name=definition.key,
        graph_attr={
            "rankdir": layout.rankdir,
            "fontname": FONT,
            "label": _title(definition),
            "labelloc": "t",
            "labeljust": "l",
            "fontsize": "16",
            "nodesep": "0.18",
            "ranksep": "0.32" if across else "0.4",
            "newrank": "true",
            "compound": "true",
            "bgcolor": "white",
            # graphviz orders the lanes to cross fewest edges (it cannot be told an order of clusters);
            # twice its usual effort finds markedly tidier orders for these charts
            "mclimit": "2",
            "pad": "0.15",
        },
        node_attr={"fontname": FONT, "fontsize": str(NAME_SIZE), "margin": "0.1,0.05"},
        edge_attr={"fontname": FONT, "fontsize": "10", "color": "#546e7a", "arrowsize": "0.7", "weight": "4"},
    )
    lanes = _lane_order(definition)
    lead_departments = {step.department for step in definition.steps if step.lead}
    forks = {s.id for s in definition.steps if len(definition.successors[s.id]) > 1}
    joins = {s.id for s in definition.steps if len(s.after) > 1}
    members: dict[str, list[tuple[str, str]]] = {code: [] for code in lanes}  # (node, its step), in flow order
    order = _topological(definition)
    title_lines = max(len(_lane_title(code, departments, code in lead_departments, layout)) for code in lanes)

    for index, code in enumerate(lanes):
        department = departments.get(code)
        full_title = f"{department.name}（{code}）" if department else code
        if code in lead_departments:
            full_title = f"★ 牵头 · {full_title}"
        with graph.subgraph(name=f"cluster_{index:02d}_{code}") as lane:
            lane.attr(
                label="",
                style="filled",
                fillcolor=LANE_FILLS[index % 2],
                color="#90a4ae",
                penwidth="1",
                margin="6",
                tooltip=full_title,
            )
            lane.attr("node", group=code)  # graphviz keeps the edges between one lane's nodes straight
            header_lines = _lane_title(code, departments, code in lead_departments, layout)
            rows = "<br/>".join(f"<b>{_esc(line)}</b>" for line in header_lines)
            lane.node(
                f"lane__{code}",
                label=f"<{rows}>",
                tooltip=full_title,
                shape="box",
                style="filled",
                fillcolor=LANE_TITLE_FILL,
                color=LANE_TITLE_FILL,
                fontcolor="white",
                fontsize="12",
                width=str(layout.step_width if across else 1.15),
                height=str(round(0.22 * title_lines + 0.12, 2)),
                margin="0.06,0.04",
            )
            for step in order:
                if step.department != code:
                    continue
                if step.id in joins:
                    lane.node(f"join__{step.id}", xlabel="汇聚", **_GATEWAY)
                    members[code].append((f"join__{step.id}", step.id))
                if step.when is not None:
                    _add_condition(lane, step, definition, layout)
                    members[code].append((f"when__{step.id}", step.id))
                _add_step(lane, step, definition, departments, layout, overlay.get(step.id), heat.get(step.id))
                members[code].append((step.id, step.id))
                if step.id in forks:
                    lane.node(f"fork__{step.id}", xlabel="并联", **_GATEWAY)
                    members[code].append((f"fork__{step.id}", step.id))
            lane.node(f"lane_end__{code}", label="", shape="point", style="invis", width="0.01", height="0.01")

    # title bars in one rank before every step, lane ends in one rank after, both in lane order
    with graph.subgraph() as first:
        first.attr(rank="same")
        for code in lanes:
            first.node(f"lane__{code}")
    with graph.subgraph() as last:
        last.attr(rank="same")
        for code in lanes:
            last.node(f"lane_end__{code}")
    hidden = {"style": "invis", "weight": "0"}
    for left, right in itertools.pairwise(lanes):
        graph.edge(f"lane__{left}", f"lane__{right}", **hidden)
        graph.edge(f"lane_end__{left}", f"lane_end__{right}", **hidden)
    # a lane's nodes hang in a line from its title bar to its end, one below the other where the flow
    # goes from one to the next; side by side where they are parallel
    before = _ancestors(definition)
    for code in lanes:
        chain = [(f"lane__{code}", ""), *members[code], (f"lane_end__{code}", "")]
        for (tail, tail_step), (head, head_step) in itertools.pairwise(chain):
            ordered = not tail_step or not head_step or tail_step == head_step or tail_step in before[head_step]
            graph.edge(tail, head, style="invis", weight="8", **({} if ordered else {"constraint": "false"}))

    _add_edges(graph, definition, taken, forks, joins)
    return graph


_GATEWAY = {
    "shape": "diamond",
    "label": "+",
    "width": "0.3",
    "height": "0.3",
    "fixedsize": "true",
    "style": "filled",
    "fillcolor": "#ffe082",
    "color": "#8d6e00",
    "fontsize": "14",
    "fontcolor": "#5d4037",
}


def _topological(definition: Definition) -> list[Step]:
    """The steps in an order where each comes after those it waits on; file order among the rest."""
    placed: dict[str, Step] = {}
    pending = list(definition.steps)
    while pending:
        ready = [s for s in pending if all(b in placed for b in s.after)]
        if not ready:  # a cycle (refused by the validator): keep file order
            ready = pending[:1]
        for step in ready:
            placed[step.id] = step
        pending = [s for s in pending if s.id not in placed]
    return list(placed.values())


def _ancestors(definition: Definition) -> dict[str, set[str]]:
    """Step id → every step it waits on, directly or not."""
    result: dict[str, set[str]] = {}
    for step in _topological(definition):
        found = set(step.after)
        for before in step.after:
            found |= result.get(before, set())
        result[step.id] = found
    return result


def _title(definition: Definition) -> str:
    limits = definition.limits
    parts = [f"{definition.name}（{definition.key}）"]
    if limits.promised:
        parts.append(f"承诺时限 {limits.promised.label}")
    if limits.statutory:
        parts.append(f"法定时限 {limits.statutory.label}")
    legend = "实线：必经环节    虚线：满足条件才办理    ◇+ 并联分支 / 汇聚    粗框：牵头部门的环节"
    return "  ·  ".join(parts) + "\\l" + legend + "\\l"


def _lane_order(definition: Definition) -> list[str]:
    seen: dict[str, None] = {}
    for step in definition.steps:
        seen.setdefault(step.department, None)
    return list(seen)


def _lane_title(code: str, departments: Mapping[str, Department], lead: bool, layout: Layout) -> list[str]:
    department = departments.get(code)
    name = department.name if department else code
    columns = layout.columns if layout.rankdir == "TB" else 12
    lines = _wrap(name, columns)
    if department:
        lines.append(f"（{code}）")
    return (["★ 牵头"] if lead else []) + lines


def _add_step(
    lane: graphviz.Digraph,
    step: Step,
    definition: Definition,
    departments: Mapping[str, Department],
    layout: Layout,
    overlay: StepOverlay | None,
    heat: tuple[str, str | None] | None,
) -> None:
    shape, style = KIND_SHAPES[step.kind]
    columns = layout.columns
    detail_columns = columns * NAME_SIZE // DETAIL_SIZE
    small_columns = columns * NAME_SIZE // SMALL_SIZE
    rows = ["<br/>".join(f"<b>{_esc(part)}</b>" for part in _wrap(step.name, columns))]
    details = [KIND_LABELS[step.kind]] if KIND_LABELS[step.kind] != step.name else []
    if step.limit:
        details.append(f"限时 {step.limit.label}")
    if details:
        rows.append(_font(" · ".join(details), DETAIL_SIZE, detail_columns))
    participants = getattr(step, "participants", ())
    if participants:
        names = "、".join(departments[p].name if p in departments else p for p in participants)
        rows.append(_font(f"会同：{names}", SMALL_SIZE, small_columns))
    chain = getattr(step, "review_chain", ())
    if chain:
        rows.append(_font(" → ".join(chain), SMALL_SIZE, small_columns))
    if getattr(step, "sign", None):
        rows.append(_font("会签" if step.sign == "all" else "或签", SMALL_SIZE, small_columns))
    if step.kind == "auto":
        rule = f"规则：{_readable(step.rule.source, definition)}"
        rows.append(_font(rule, SMALL_SIZE, small_columns, keep=_labels(definition)))
    certificates = getattr(step, "certificates", ())
    if certificates:
        rows.append(_certificates(step, definition, small_columns))
    fill = DEFAULT_FILL
    if overlay is not None:
        fill = overlay.color or STATE_COLOURS.get(overlay.state or "", DEFAULT_FILL)
        badge = overlay.note or STATE_LABELS.get(overlay.state or "")
        if badge:
            rows.append(_font(badge, DETAIL_SIZE, detail_columns, bold=True, colour="#000000"))
    if heat is not None:
        colour, label = heat
        fill = colour or fill
        if label:
            rows.append(_font(label, DETAIL_SIZE, detail_columns, bold=True, colour="#000000"))
    attrs = {
        "shape": shape,
        "style": style + (",dashed" if overlay is not None and overlay.state == "skipped" else ""),
        "fillcolor": fill,
        "penwidth": "2.6" if step.lead else "1.1",
        "color": "#1a237e" if step.lead else "#455a64",
        "width": str(layout.step_width),
        "tooltip": f"{step.id} ({step.kind})" + (f"：{step.description}" if step.description else ""),
    }
    if step.kind == "survey":
        attrs["peripheries"] = "2"
    if step.kind == "acceptance":
        attrs["margin"] = "0.14,0.07"  # the arrow's point takes room from the text
    body = "".join(f"<tr><td>{row}</td></tr>" for row in rows)
    label = f'<<table border="0" cellborder="0" cellspacing="1" cellpadding="1">{body}</table>>'
    lane.node(step.id, label=label, **attrs)


def _add_condition(lane: graphviz.Digraph, step: Step, definition: Definition, layout: Layout) -> None:
    """The step's ``when`` as a tag on the edge into it: a node, so no edge or label runs over it."""
    text = f"若{NBSP}{_readable(step.when.source, definition)}"  # type: ignore[union-attr]
    lines = _wrap(text, layout.columns * NAME_SIZE // 10, _labels(definition))
    lane.node(
        f"when__{step.id}",
        label="\n".join(lines),
        shape="box",
        style="rounded,dashed,filled",
        fillcolor="#f8f0fb",
        color=CONDITION_COLOUR,
        fontcolor=CONDITION_COLOUR,
        fontsize="10",
        margin="0.06,0.02",
        height="0.2",
        tooltip=f"{step.id} 的办理条件（when: {step.when.source}）",  # type: ignore[union-attr]
    )


def _certificates(step: Step, definition: Definition, columns: int) -> str:
    """The step's certificates, one framed row each; one that only a conditional step produces is
    dashed and says when it is issued."""
    rows = []
    for certificate in step.certificates:  # type: ignore[attr-defined]
        condition = certificate_condition(definition, certificate)
        lines = [_font(certificate.name, SMALL_SIZE, columns, colour="#263238")]
        if condition:
            lines.append(
                _font(f"若{NBSP}{condition}", SMALL_SIZE, columns, colour=CONDITION_COLOUR, keep=_labels(definition))
            )
        style = ' style="dashed" color="#8e24aa"' if condition else ' color="#78909c"'
        rows.append(f'<tr><td border="1"{style}>{"<br/>".join(lines)}</td></tr>')
    return f'<table border="0" cellborder="0" cellspacing="2" cellpadding="2">{"".join(rows)}</table>'


def certificate_condition(definition: Definition, certificate: Certificate) -> str | None:
    """When a certificate is issued, readably (``None``: always): when one of its producing steps
    (Definition.producing_steps, the rule the engine issues by) ran and approved."""
    producers = definition.producing_steps(certificate)
    if not producers:
        return None
    conditions = [_run_condition(definition, s) for s in producers]
    if any(not c for c in conditions):
        return None
    return " 或 ".join("，".join(c) for c in conditions)


def _run_condition(definition: Definition, step: Step) -> list[str]:
    """The conditions (all must hold) under which a step runs: its own ``when`` and those every one of
    its predecessors shares (a step all of whose predecessors are skipped is skipped too)."""
    conditions: list[str] = []
    seen: dict[str, list[str]] = {}

    def of(current: Step) -> list[str]:
        if current.id in seen:
            return seen[current.id]
        inherited: list[str] | None = None
        for before in current.after:
            theirs = of(definition.steps_by_id[before])
            inherited = theirs if inherited is None else [c for c in inherited if c in theirs]
        result = list(inherited or [])
        if current.when is not None:
            result.append(_readable(current.when.source, definition))
        seen[current.id] = result
        return result

    conditions = of(step)
    return conditions


def _add_edges(
    graph: graphviz.Digraph,
    definition: Definition,
    taken: set[tuple[str, str]],
    forks: set[str],
    joins: set[str],
) -> None:
    """Edges, with a parallel gateway (◇ +) where branches fork or join, so parallel blocks stand out;
    an edge into a conditional step runs through its condition tag and is dashed."""

    def edge(
        tail: str, head: str, *, on_path: bool = False, conditional: bool = False, arrow: bool = True, weight: str = ""
    ) -> None:
        attrs: dict[str, str] = {} if arrow else {"arrowhead": "none"}
        if weight:
            attrs["weight"] = weight
        if on_path:
            attrs.update(penwidth="2.6", color=PATH_COLOUR)
        if conditional:
            attrs.update(style="dashed")
            if not on_path:
                attrs.update(color=CONDITION_COLOUR)
        graph.edge(tail, head, **attrs)

    def into(tail: str, step: Step, *, on_path: bool) -> None:
        if step.when is None:
            edge(tail, step.id, on_path=on_path)
            return
        edge(tail, f"when__{step.id}", on_path=on_path, conditional=True, arrow=False)
        edge(f"when__{step.id}", step.id, on_path=on_path, conditional=True)

    for step in definition.steps:
        if step.id in joins:
            into(f"join__{step.id}", step, on_path=any((b, step.id) in taken for b in step.after))
    for step in definition.steps:
        successors = definition.successors[step.id]
        if step.id in forks:
            edge(step.id, f"fork__{step.id}", on_path=any((step.id, s) in taken for s in successors))
        for head_id in successors:
            head = definition.steps_by_id[head_id]
            tail = f"fork__{step.id}" if step.id in forks else step.id
            on_path = (step.id, head_id) in taken
            if head_id in joins:
                # a branch's way into the join stretches, so the branches sit in a row below the fork
                edge(tail, f"join__{head_id}", on_path=on_path, weight="1")
            else:
                into(tail, head, on_path=on_path)


def _readable(expression: str, definition: Definition) -> str:
    """Show form labels instead of field keys: ``needs_seal`` → ``是否刻制公章``; quoted text in
    Chinese quotes: ``'房屋建筑工程'`` → ``“房屋建筑工程”``."""
    fields = definition.fields_by_key
    parts = re.split(r"""('[^']*'|"[^"]*")""", expression)
    shown = []
    for part in parts:
        if part[:1] in ("'", '"') and len(part) >= 2:
            shown.append(f"“{part[1:-1]}”")
            continue

        def word(match: re.Match[str]) -> str:
            name = match[0]
            return fields[name].label if name in fields else _WORDS.get(name, name)

        text = re.sub(r"[A-Za-z_][A-Za-z0-9_]*", word, part)
        for operator, replacement in _OPERATORS.items():
            text = text.replace(operator, replacement)
        shown.append(text)
    return "".join(shown)


_WORDS = {"and": "且", "or": "或", "not": "非", "in": "属于", "True": "是", "False": "否", "None": "空"}
_OPERATORS = {">=": "≥", "<=": "≤", "!=": "≠", "==": "="}


def _labels(definition: Definition) -> list[str]:
    """The form's field labels: terms a line should not split."""
    return [field.label for field in definition.form]


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _font(
    text: str, size: int, columns: int, *, bold: bool = False, colour: str = "#37474f", keep: Collection[str] = ()
) -> str:
    lines = [f"<b>{_esc(line)}</b>" if bold else _esc(line) for line in _wrap(text, columns, keep)]
    return f'<font point-size="{size}" color="{colour}">{"<br/>".join(lines)}</font>'
