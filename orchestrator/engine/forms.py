"""The one-form (一表式) data an application carries, checked against the definition."""

from __future__ import annotations

from datetime import date
from typing import Any

from ..definition.model import Definition, FormField
from .errors import InvalidData


def check_form(definition: Definition, data: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Typed, complete form values (defaults filled in); raises InvalidData listing every problem.

    ``partial`` checks only the fields given (a step editing some fields).
    """
    if not isinstance(data, dict):
        raise InvalidData("form data must be an object of field: value")
    problems: list[str] = []
    fields = definition.fields_by_key
    for key in data:
        if key not in fields:
            problems.append(f"unknown form field {key!r}; the form has: {', '.join(fields)}")
    values: dict[str, Any] = {}
    for field in definition.form:
        if field.key in data and data[field.key] is not None and data[field.key] != "":
            try:
                values[field.key] = _coerce(field, data[field.key])
            except ValueError as exc:
                problems.append(f"{field.key} ({field.label}): {exc}")
        elif partial:
            continue
        elif field.default is not None:
            values[field.key] = field.default
        elif field.required:
            problems.append(f"{field.key} ({field.label}) is required")
        else:
            values[field.key] = None
    if problems:
        raise InvalidData("the form has problems", problems)
    return values


def _coerce(field: FormField, value: Any) -> Any:
    kind = field.type
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError(f"expected true or false, got {value!r}")
    if kind in ("int", "number"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {value!r}")
        if kind == "int" and not float(value).is_integer():
            raise ValueError(f"expected a whole number, got {value!r}")
        number = int(value) if kind == "int" else value
        if field.min is not None and number < field.min:
            raise ValueError(f"{number} is below the minimum {field.min:g}")
        if field.max is not None and number > field.max:
            raise ValueError(f"{number} is above the maximum {field.max:g}")
        return number
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    if kind == "date":
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            raise ValueError(f"expected a date like 2026-03-01, got {value!r}") from None
    if kind == "choice" and value not in (field.options or []):
        raise ValueError(f"{value!r} is not one of {', '.join(field.options or [])}")
    return value


def check_materials(definition: Definition, supplied: list[str]) -> list[str]:
    """Material keys, each known to the definition; raises InvalidData naming the unknown ones."""
    if not isinstance(supplied, list) or not all(isinstance(m, str) for m in supplied):
        raise InvalidData("materials must be a list of material keys")
    known = {m.key for m in definition.materials}
    unknown = [m for m in supplied if m not in known]
    if unknown:
        raise InvalidData("unknown materials", [f"{m!r} is no material of {definition.key}" for m in unknown])
    return sorted(set(supplied))


def missing_materials(definition: Definition, supplied: list[str]) -> list[str]:
    """Required materials not yet supplied, in the definition's order."""
    have = set(supplied)
    return [m.key for m in definition.materials if m.required and m.key not in have]
