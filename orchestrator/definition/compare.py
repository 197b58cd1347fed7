"""What changed between two versions of a definition: steps, form fields, materials, limits and the rest.

Items are matched by their id (steps) or key (form fields, materials); an item whose id changed is
one removed and one added. Values are compared as written (``model_dump``), so a limit ``8h`` against
``1d`` is a change even though the two last as long.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import Definition


@dataclass(frozen=True)
class Changed:
    """One item in both versions whose keys differ."""

    id: str
    name: str  # as the newer version names it
    keys: tuple[str, ...]  # the keys that differ: limit, after …
    changes: tuple[str, ...]  # "limit: 4h → 0.5d", one per key


@dataclass(frozen=True)
class ListChanges:
    """Added, removed and changed items of one list (steps, form, materials): (id, name) pairs."""

    added: tuple[tuple[str, str], ...] = ()
    removed: tuple[tuple[str, str], ...] = ()
    changed: tuple[Changed, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


@dataclass(frozen=True)
class Comparison:
    steps: ListChanges
    form: ListChanges
    materials: ListChanges
    limits: tuple[str, ...]  # "promised: 1d → 2d"
    other: tuple[str, ...] = field(default_factory=tuple)  # name, summary, case_kind, remedy, tags, guide

    def __bool__(self) -> bool:
        return bool(self.steps or self.form or self.materials or self.limits or self.other)


def compare(old: Definition, new: Definition) -> Comparison:
    """The changes that turn ``old`` into ``new``."""
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    return Comparison(
        steps=_lists(before["steps"], after["steps"], "id", "name"),
        form=_lists(before["form"], after["form"], "key", "label"),
        materials=_lists(before["materials"], after["materials"], "key", "label"),
        limits=_keys(before["limits"], after["limits"]),
        other=_keys(
            {k: v for k, v in before.items() if k not in ("steps", "form", "materials", "limits")},
            {k: v for k, v in after.items() if k not in ("steps", "form", "materials", "limits")},
        ),
    )


def _lists(old: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]], id_key: str, name_key: str) -> ListChanges:
    old_by_id = {item[id_key]: item for item in old}
    new_by_id = {item[id_key]: item for item in new}
    changed = []
    for item in new:
        previous = old_by_id.get(item[id_key])
        if previous is not None:
            keys = _differing(previous, item)
            if keys:
                changed.append(Changed(item[id_key], item[name_key], keys, _keys(previous, item)))
    return ListChanges(
        added=tuple((i[id_key], i[name_key]) for i in new if i[id_key] not in old_by_id),
        removed=tuple((i[id_key], i[name_key]) for i in old if i[id_key] not in new_by_id),
        changed=tuple(changed),
    )


def _differing(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, ...]:
    return tuple(key for key in [*old, *(k for k in new if k not in old)] if old.get(key) != new.get(key))


def _keys(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, ...]:
    return tuple(f"{key}: {_shown(old.get(key))} → {_shown(new.get(key))}" for key in _differing(old, new))


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value if len(value) <= 60 else value[:57] + "…"
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= 80 else text[:77] + "…"
