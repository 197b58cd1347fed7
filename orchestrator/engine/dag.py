"""Advancing the DAG: which steps become ready, and which are skipped, given the steps' states.

Pure functions over the definition, so they can be tested and reasoned about without a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..definition.model import Definition

DONE = frozenset({"completed", "skipped"})
PENDING = "pending"  # no live task: never reached, or superseded by a 退回


@dataclass(frozen=True)
class Move:
    step_id: str
    state: str  # ready | skipped
    reason: str  # why: 'ready', 'when_false', 'dead_path', 'when_error: …'


def advance(definition: Definition, states: Mapping[str, str], form: Mapping[str, Any]) -> list[Move]:
    """Steps to make ready or skip now, in topological (file) order, cascading through skips.

    A pending step whose predecessors are all completed or skipped (AND-join) becomes ready, unless
    every predecessor was skipped (dead-path elimination) or its ``when`` is false: then it is skipped,
    and the same rule is applied to its successors within this call.
    """
    current = dict(states)
    moves: list[Move] = []
    for step in _topological(definition):
        if current.get(step.id, PENDING) != PENDING or not step.after:
            continue
        before = [current.get(b, PENDING) for b in step.after]
        if not all(state in DONE for state in before):
            continue
        if all(state == "skipped" for state in before):
            move = Move(step.id, "skipped", "dead_path")
        elif step.when is not None:
            try:
                holds = bool(step.when.evaluate(form))
                move = Move(step.id, "ready" if holds else "skipped", "ready" if holds else "when_false")
            except Exception as exc:
                move = Move(step.id, "skipped", f"when_error: {exc}")
        else:
            move = Move(step.id, "ready", "ready")
        current[step.id] = move.state
        moves.append(move)
    return moves


def is_finished(definition: Definition, states: Mapping[str, str]) -> bool:
    """Every step completed or skipped."""
    return all(states.get(step.id) in DONE for step in definition.steps)


def between(definition: Definition, start: str, end: str) -> list[str]:
    """Steps on some path from ``start`` to ``end``, both excluded (the steps a 退回 must redo)."""
    down = descendants(definition, start)
    up = _ancestors(definition, end)
    return [step.id for step in definition.steps if step.id in down and step.id in up]


def descendants(definition: Definition, step_id: str) -> set[str]:
    found: set[str] = set()
    todo = list(definition.successors[step_id])
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo.extend(definition.successors[current])
    return found


def _ancestors(definition: Definition, step_id: str) -> set[str]:
    found: set[str] = set()
    todo = list(definition.steps_by_id[step_id].after)
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo.extend(definition.steps_by_id[current].after)
    return found


def _topological(definition: Definition) -> list[Any]:
    cached = _ORDER.get(id(definition))
    if cached is not None and cached[0] is definition:
        return cached[1]
    order: list[Any] = []
    placed: set[str] = set()
    remaining = list(definition.steps)
    while remaining:  # definitions are validated acyclic, so each pass places at least one step
        rest = []
        for step in remaining:
            if all(b in placed for b in step.after):
                order.append(step)
                placed.add(step.id)
            else:
                rest.append(step)
        remaining = rest
    _ORDER[id(definition)] = (definition, order)
    return order


_ORDER: dict[int, tuple[Definition, list[Any]]] = {}
