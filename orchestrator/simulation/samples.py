"""Plausible applications for a definition: simulation, benchmarks, demo data and tests use these."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from ..definition.model import Definition, FormField


def sample_form(definition: Definition, rng: random.Random, *, all_branches: bool = False) -> dict[str, Any]:
    """A valid form: every field filled with a value of its type; ``all_branches`` sets bools true."""
    return {f.key: _value(f, rng, all_branches) for f in definition.form}


def _value(field: FormField, rng: random.Random, all_branches: bool) -> Any:
    if field.type == "bool":
        return (
            True
            if all_branches
            else (field.default if field.default is not None and rng.random() < 0.7 else rng.random() < 0.5)
        )
    if field.type in ("int", "number"):
        low = field.min if field.min is not None else 0
        high = field.max if field.max is not None else max(low + 100, 100)
        value = max(low, min(high, 60.0)) if all_branches else rng.uniform(low, high)
        return round(value) if field.type == "int" else round(value, 2)
    if field.type == "choice":
        return (field.options or [""])[0] if all_branches else rng.choice(field.options or [""])
    if field.type == "date":
        return (date(2026, 1, 5) + timedelta(days=rng.randrange(300))).isoformat()
    text = f"{field.label}{rng.randrange(1000)}"
    return text[: field.max_length] if field.max_length else text


def sample_materials(definition: Definition, *, complete: bool = True) -> list[str]:
    """Every material (complete) or only those not deferrable (leaving room for 容缺受理)."""
    return [m.key for m in definition.materials if complete or not m.deferrable]
