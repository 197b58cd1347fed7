"""Flowcharts of definitions (graphviz): one swimlane per department, parallel blocks as gateways.

The same drawing serves a live case and a heat map: pass an overlay of per-step states, colours
and notes, and the edges a case really took.
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

import graphviz

from .definition.model import Definition, Department, Step

Format = Literal["svg", "png", "dot"]
FORMATS: tuple[Format, ...] = ("svg", "png", "dot")
FONT = "Noto Sans CJK SC"

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
    "survey": ("hexagon", "filled"),
    "approval": ("box", "rounded,filled"),
    "auto": ("component", "filled"),
    "issue": ("note", "filled"),
    "notify": ("ellipse", "filled"),
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


@dataclass(frozen=True)
class StepOverlay:
    """What to show on one step of a live case or a heat map."""

    state: str | None = None  # a key of STATE_COLOURS
    color: str | None = None  # explicit fill (heat maps); wins over state
    note: str | None = None  # one short line under the step, e.g. "逾期 1.5 工作日"


def flowchart(
    definition: Definition,
    departments: Mapping[str, Department] | None = None,
    overlay: Mapping[str, StepOverlay] | None = None,
    taken: Collection[tuple[str, str]] = (),
) -> graphviz.Digraph:
    """The definition's DAG as a graphviz graph, laid out left to right."""
    departments = departments or {}
    overlay = overlay or {}
    graph = graphviz.Digraph(
        name=definition.key,
        graph_attr={
            "rankdir": "LR",
            "fontname": FONT,
            "label": _title(definition),
            "labelloc": "t",
            "fontsize": "18",
            "nodesep": "0.35",
            "ranksep": "0.35",
            "newrank": "true",
            "compound": "true",
            "bgcolor": "white",
            "dpi": "110",
        },
        node_attr={"fontname": FONT, "fontsize": "12", "margin": "0.12,0.06"},
        edge_attr={"fontname": FONT, "fontsize": "10", "color": "#555555", "arrowsize": "0.7"},
    )
    lead_departments = {step.department for step in definition.steps if step.lead}
    for index, code in enumerate(_lane_order(definition)):
        department = departments.get(code)
        title = f"{department.name}（{code}）" if department else code
        if code in lead_departments:
            title = f"★ 牵头 · {title}"
        with graph.subgraph(name=f"cluster_{index:02d}_{code}") as lane:
            lane.attr(
                label=title,
                labeljust="l",
                style="rounded,filled",
                fillcolor="#fafafa" if index % 2 else "#f0f4f8",
                color="#b0bec5",
                fontsize="13",
            )
            for step in definition.steps:
                if step.department == code:
                    _add_step(lane, step, definition, departments, overlay.get(step.id))
    _add_edges(graph, definition, set(taken))
    return graph


def render(
    definition: Definition,
    departments: Mapping[str, Department] | None = None,
    fmt: Format = "svg",
    overlay: Mapping[str, StepOverlay] | None = None,
    taken: Collection[tuple[str, str]] = (),
) -> bytes:
    """Rendered bytes; the same input gives the same bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    graph = flowchart(definition, departments, overlay, taken)
    if fmt == "dot":
        return graph.source.encode("utf-8")
    return graph.pipe(format=fmt)


def _title(definition: Definition) -> str:
    limits = definition.limits
    parts = [f"{definition.name}（{definition.key}）"]
    if limits.promised:
        parts.append(f"承诺时限 {limits.promised.label}")
    if limits.statutory:
        parts.append(f"法定时限 {limits.statutory.label}")
    return "  ·  ".join(parts)


def _lane_order(definition: Definition) -> list[str]:
    seen: dict[str, None] = {}
    for step in definition.steps:
        seen.setdefault(step.department, None)
    return list(seen)


def _add_step(
    lane: graphviz.Digraph,
    step: Step,
    definition: Definition,
    departments: Mapping[str, Department],
    overlay: StepOverlay | None,
) -> None:
    shape, style = KIND_SHAPES[step.kind]
    lines = ["<br/>".join(f"<b>{_esc(part)}</b>" for part in _wrap(step.name, 24))]
    details = [KIND_LABELS[step.kind]] if KIND_LABELS[step.kind] != step.name else []
    if step.limit:
        details.append(f"限时 {step.limit.label}")
    detail = " · ".join(details)
    if detail:
        lines.append(_small(detail, size=10))
    participants = getattr(step, "participants", ())
    if participants:
        names = "、".join(departments[p].name if p in departments else p for p in participants)
        lines.append(_small(f"会同：{names}"))
    chain = getattr(step, "review_chain", ())
    if chain:
        lines.append(_small(" → ".join(chain)))
    if getattr(step, "sign", None):
        lines.append(_small("会签" if step.sign == "all" else "或签"))
    if step.kind == "auto":
        lines.append(
            f'<font point-size="9" color="#37474f">规则：{_esc(_readable(step.rule.source, definition))}</font>'
        )
    certificates = getattr(step, "certificates", ())
    if certificates:
        lines.append(_small("、".join(c.name for c in certificates)))
    fill = DEFAULT_FILL
    if overlay is not None:
        fill = overlay.color or STATE_COLOURS.get(overlay.state or "", DEFAULT_FILL)
        badge = overlay.note or STATE_LABELS.get(overlay.state or "")
        if badge:
            lines.append(f'<font point-size="10"><b>{_esc(badge)}</b></font>')
    attrs = {
        "shape": shape,
        "style": style + (",dashed" if overlay is not None and overlay.state == "skipped" else ""),
        "fillcolor": fill,
        "penwidth": "2.4" if step.lead else "1.1",
        "color": "#1a237e" if step.lead else "#455a64",
        "tooltip": f"{step.id} ({step.kind})",
    }
    rows = "".join(f"<tr><td>{line}</td></tr>" for line in lines)
    label = f'<<table border="0" cellborder="0" cellspacing="1" cellpadding="1">{rows}</table>>'
    lane.node(step.id, label=label, **attrs)


def _add_edges(graph: graphviz.Digraph, definition: Definition, taken: set[tuple[str, str]]) -> None:
    """Edges, with a parallel gateway (◇ +) where branches fork or join, so parallel blocks stand out."""
    successors = definition.successors
    gateway = {
        "shape": "diamond",
        "label": "+",
        "width": "0.3",
        "height": "0.3",
        "fixedsize": "true",
        "style": "filled",
        "fillcolor": "#ffe082",
        "fontsize": "14",
    }

    def edge(tail: str, head: str, *, condition: str | None = None, on_path: bool = False) -> None:
        attrs = {"penwidth": "2.6", "color": "#1b5e20"} if on_path else {}
        if condition:
            label = "\n".join(_wrap(f"若 {_readable(condition, definition)}", 26))
            attrs.update(label=label, style="dashed", fontcolor="#6a1b9a")
        graph.edge(tail, head, **attrs)

    for step in definition.steps:
        joins = len(step.after) > 1
        if joins:
            graph.node(f"join__{step.id}", xlabel="汇聚", **gateway)
            edge(
                f"join__{step.id}",
                step.id,
                condition=_source(step.when),
                on_path=any((b, step.id) in taken for b in step.after),
            )
    for step in definition.steps:
        forks = len(successors[step.id]) > 1
        if forks:
            graph.node(f"fork__{step.id}", xlabel="并联", **gateway)
            edge(step.id, f"fork__{step.id}", on_path=any((step.id, s) in taken for s in successors[step.id]))
        for head_id in successors[step.id]:
            head = definition.steps_by_id[head_id]
            tail = f"fork__{step.id}" if forks else step.id
            joined = len(head.after) > 1
            target = f"join__{head_id}" if joined else head_id
            edge(tail, target, condition=None if joined else _source(head.when), on_path=(step.id, head_id) in taken)


def _source(expression: object | None) -> str | None:
    return getattr(expression, "source", None)


def _readable(expression: str, definition: Definition) -> str:
    """Show form labels instead of field keys: ``needs_seal`` → ``是否刻制公章``."""
    fields = definition.fields_by_key

    def word(match: re.Match[str]) -> str:
        name = match[0]
        return fields[name].label if name in fields else _WORDS.get(name, name)

    text = re.sub(r"[A-Za-z_][A-Za-z0-9_]*", word, expression)
    for operator, shown in _OPERATORS.items():
        text = text.replace(operator, shown)
    return text


_WORDS = {"and": "且", "or": "或", "not": "非", "in": "属于", "True": "是", "False": "否", "None": "空"}
_OPERATORS = {">=": "≥", "<=": "≤", "!=": "≠", "==": "="}


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _wrap(text: str, width: int = 28) -> list[str]:
    """Break text into lines of at most ``width`` columns (a Chinese character takes two)."""
    lines: list[str] = []
    line, used = "", 0
    for char in text:
        cost = 2 if ord(char) > 0x2E7F else 1
        if used + cost > width and line:
            lines.append(line)
            line, used = "", 0
        if char == " " and not line:
            continue
        line, used = line + char, used + cost
    if line:
        lines.append(line)
    return lines


def _small(text: str, size: int = 9, width: int = 30) -> str:
    return "<br/>".join(f'<font point-size="{size}" color="#37474f">{_esc(part)}</font>' for part in _wrap(text, width))
