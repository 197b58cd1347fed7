"""The one-form (一表式) data an application carries, checked against the definition, and the checks
every value from outside passes before a transition starts.

What the database or the JSON encoder would refuse later with a raw error (a NUL character, a lone
surrogate, an integer beyond 64 bits, text longer than its column) or store wrongly (NaN and infinity
become JSON null, a required value silently lost) is refused here with ``InvalidData``, saying what
to fix. The Engine calls :func:`check_arguments` at the entry of each public method, before its
transaction; :func:`check_form` and :func:`check_materials` check against the definition inside it.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, TypeVar

import orjson

from ..definition.model import TEXT_LIMIT, Definition, FormField
from .errors import InvalidData

OPINION_LIMIT = 5_000  # characters of an opinion, reason, remedy, notice, message, comment or note
FORM_LIMIT = 256 * 1024  # bytes of the whole form, as JSON
APPLICANT_LIMIT = 16 * 1024  # bytes of the applicant's details, as JSON
ID_LIMIT = 64  # user ids, applicant ids, material keys, step ids (their columns hold 64)
NAME_LIMIT = 100  # a user's name (its column holds 100)
APPLICANT_NAME_LIMIT = 200  # a person's or a company's name
DEPARTMENT_LIMIT = 32  # department codes (their columns hold 32)
CERTIFICATE_NUMBER_LIMIT = 80
IDEMPOTENCY_KEY_LIMIT = 100  # cases.idempotency_key
LIST_LIMIT = 1_000  # materials, memberships, certificate numbers in one call
DEPTH_LIMIT = 8  # nesting of the applicant's details
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_NOT_STORABLE = re.compile("[\x00\ud800-\udfff]")  # PostgreSQL refuses NUL; a lone surrogate is no UTF-8


T = TypeVar("T")


def text_problem(value: str, max_length: int) -> str | None:
    """Why this text cannot be kept, or None."""
    if len(value) > max_length:
        return f"{len(value):,} characters, more than the {max_length:,} allowed"
    bad = _NOT_STORABLE.search(value)
    if bad is None:
        return None
    where = f"at character {bad.start() + 1}"
    if bad.group() == "\x00":
        return f"contains a NUL character (\\x00) {where}: remove it"
    return f"contains a lone surrogate ({bad.group()!r}) {where}: the text is not valid Unicode; send it as UTF-8"


def number_problem(value: int | float) -> str | None:
    """Why this number cannot be kept (it would be stored as null, or overflow a 64-bit integer), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a finite number"
    if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
        return "a whole number beyond 64 bits (±9223372036854775807)"
    return None


def check_text(value: Any, what: str, max_length: int, *, required: bool = False) -> str:
    """Text that can be stored: a str, at most ``max_length`` characters, no NUL, no lone surrogate."""
    if not isinstance(value, str):
        raise InvalidData(f"{what}: expected text, got {_kind(value)}")
    problem = text_problem(value, max_length)
    if problem:
        raise InvalidData(f"{what}: {problem}")
    if required and not value.strip():
        raise InvalidData(f"{what} is required")
    return value


def check_number(value: Any, what: str) -> int | float:
    """A finite number that fits a 64-bit integer when whole."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidData(f"{what}: expected a number, got {_kind(value)}")
    problem = number_problem(value)
    if problem:
        raise InvalidData(f"{what}: {problem}")
    return value


def check_value(value: Any, what: str, *, depth: int = 0) -> None:
    """A JSON value that can be stored as given: text, finite numbers, true/false, null, lists and
    objects of them (keys are text), nested at most DEPTH_LIMIT deep."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        check_text(value, what, TEXT_LIMIT)
    elif isinstance(value, int | float):
        check_number(value, what)
    elif depth >= DEPTH_LIMIT:
        raise InvalidData(f"{what}: nested more than {DEPTH_LIMIT} deep")
    elif isinstance(value, list | tuple):
        if len(value) > LIST_LIMIT:
            raise InvalidData(f"{what}: {len(value):,} items, more than the {LIST_LIMIT:,} allowed")
        for index, item in enumerate(value):
            check_value(item, f"{what}[{index}]", depth=depth + 1)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_text(key, f"{what}: a key", ID_LIMIT)
            check_value(item, f"{what}.{key}", depth=depth + 1)
    else:
        raise InvalidData(f"{what}: {_kind(value)} cannot be stored; use text, a number, true/false or null")


def check_size(value: Any, what: str, limit: int) -> None:
    """The JSON of a value (already checked with check_value) is at most ``limit`` bytes."""
    size = len(orjson.dumps(value))
    if size > limit:
        raise InvalidData(f"{what} is {size:,} bytes as JSON, more than the {limit:,} allowed")


# ------------------------------------------------------------------------------------------------
# the arguments of the Engine's public methods


def _id(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidData(f"{what}: expected a whole number (an id), got {_kind(value)}")
    if not 0 < value <= INT64_MAX:
        raise InvalidData(f"{what} {value} is no id (ids are whole numbers from 1 to {INT64_MAX})")


def _optional_id(value: Any, what: str) -> None:
    if value is not None:
        _id(value, what)


def _person(value: Any, what: str) -> None:
    check_text(value, what, ID_LIMIT)  # whether this person may act is the transition's to say


def _note(value: Any, what: str) -> None:
    if value is not None:
        check_text(value, what, OPINION_LIMIT)


def _keys(value: Any, what: str) -> None:
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise InvalidData(f"{what} must be a list of keys, got {_kind(value)}")
    if len(value) > LIST_LIMIT:
        raise InvalidData(f"{what}: {len(value):,} items, more than the {LIST_LIMIT:,} allowed")
    for item in value:
        check_text(item, f"{what}: an item", ID_LIMIT)


def _short(limit: int) -> Callable[[Any, str], None]:
    def check(value: Any, what: str) -> None:
        if value is not None:
            check_text(value, what, limit)

    return check


def _form(value: Any, what: str) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise InvalidData(f"{what} must be an object of field: value, got {_kind(value)}")
    check_value(value, what)
    check_size(value, what, FORM_LIMIT)


def _applicant(value: Any, what: str) -> None:
    if not isinstance(value, Mapping):
        raise InvalidData(f"{what} must be an object with id and name, got {_kind(value)}")
    check_value(value, what)
    for key, limit in (("id", ID_LIMIT), ("name", APPLICANT_NAME_LIMIT)):
        if value.get(key) is not None:
            check_text(value[key], f"{what}.{key}", limit)
    check_size(value, what, APPLICANT_LIMIT)


def _memberships(value: Any, what: str) -> None:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidData(f"{what} must be a list of (department, role) pairs")
    if len(value) > LIST_LIMIT:
        raise InvalidData(f"{what}: {len(value):,} pairs, more than the {LIST_LIMIT:,} allowed")
    for pair in value:
        if isinstance(pair, str) or not isinstance(pair, list | tuple) or len(pair) != 2:
            raise InvalidData(f"{what}: {pair!r} is no (department, role) pair")
        check_text(pair[0], f"{what}: a department", DEPARTMENT_LIMIT, required=True)
        check_text(pair[1], f"{what}: a role", ID_LIMIT, required=True)


def _numbers(value: Any, what: str) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping) or len(value) > LIST_LIMIT:
        raise InvalidData(f"{what} must be an object of certificate key: number")
    for key, number in value.items():
        check_text(key, f"{what}: a certificate key", ID_LIMIT)
        check_text(number, f"{what}.{key}", CERTIFICATE_NUMBER_LIMIT, required=True)


def _level(value: Any, what: str) -> None:
    """An evaluation's level (a whole number) or an urge's (a word); true/false is neither."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidData(f"{what}: expected a whole number or a word, got {_kind(value)}")
    if isinstance(value, str):
        check_text(value, what, ID_LIMIT)


_CHECKS: dict[str, Callable[[Any, str], None]] = {
    "case_id": _id,
    "task_id": _id,
    "optional_case_id": _optional_id,
    "optional_task_id": _optional_id,
    "actor": _person,
    "applicant_id": _person,
    "rater": _person,
    "to_user": _person,
    "signer": _person,
    "approver": _short(ID_LIMIT),  # may be missing: extend_case says what it needs
    "user_id": _person,
    "name": lambda v, w: check_text(v, w, NAME_LIMIT, required=True),
    "definition_key": lambda v, w: check_text(v, w, ID_LIMIT, required=True),
    "applicant": _applicant,
    "form": _form,
    "form_updates": _form,
    "materials": _keys,
    "missing": _keys,
    "deferred": _keys,
    "memberships": _memberships,
    "idempotency_key": _short(IDEMPOTENCY_KEY_LIMIT),
    "to_step": _short(ID_LIMIT),
    "tracking_number": _short(ID_LIMIT),
    "numbers": _numbers,
    "level": _level,
    **dict.fromkeys(("opinion", "reason", "remedy", "notice", "note", "message", "comment", "result"), _note),
    **dict.fromkeys(
        ("outcome", "kind", "channel", "delivery", "amount", "deferred_limit", "expected", "within"), _short(ID_LIMIT)
    ),
}


def checked(method: Callable[..., T]) -> Callable[..., T]:
    """An Engine method whose arguments are checked by their names (check_arguments) before it runs: a
    task or case id that may be None is optional. Arguments of other names are the method's to check."""
    signature = inspect.signature(method)
    # (name, position, check) of each checked parameter; an argument left out keeps its default, which
    # needs no check. Read straight from args/kwargs: binding the signature on every call cost about as
    # much as a SQLite transition's own Python.
    checks: list[tuple[str, int | None, Callable[[Any, str], None]]] = []
    for position, (name, parameter) in enumerate(signature.parameters.items()):
        key = f"optional_{name}" if parameter.default is None and name in ("task_id", "case_id") else name
        if key in _CHECKS:
            positional = parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
            checks.append((name, position if positional else None, _CHECKS[key]))

    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> T:
        for name, position, check in checks:
            if position is not None and position < len(args):
                check(args[position], name)
            elif name in kwargs:
                check(kwargs[name], name)
        return method(*args, **kwargs)

    return run


def check_arguments(**arguments: Any) -> None:
    """Check the arguments of an Engine call by their names; raises InvalidData on the first bad one.

    Ids are whole numbers within 64 bits; people are text of at most 64 characters; opinions, reasons
    and notices at most OPINION_LIMIT characters; forms and the applicant JSON values without NaN,
    infinity, 64-bit overflows, NUL or lone surrogates, within FORM_LIMIT / APPLICANT_LIMIT bytes.
    """
    for name, value in arguments.items():
        _CHECKS[name](value, name.removeprefix("optional_"))


# ------------------------------------------------------------------------------------------------
# against the definition


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
    check_size(values, "the form", FORM_LIMIT)
    return values


def _coerce(field: FormField, value: Any) -> Any:
    kind = field.type
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError(f"expected true or false, got {_shown(value)}")
    if kind in ("int", "number"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {_shown(value)}")
        problem = number_problem(value)
        if problem:  # NaN passes every comparison with min and max, and would be stored as null
            raise ValueError(problem)
        if kind == "int" and not float(value).is_integer():
            raise ValueError(f"expected a whole number, got {value!r}")
        number = int(value) if kind == "int" else value
        problem = number_problem(number)
        if problem:
            raise ValueError(problem)
        if field.min is not None and number < field.min:
            raise ValueError(f"{number} is below the minimum {field.min:g}")
        if field.max is not None and number > field.max:
            raise ValueError(f"{number} is above the maximum {field.max:g}")
        return number
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {_shown(value)}")
    problem = text_problem(value, field.max_length or TEXT_LIMIT)
    if problem:
        raise ValueError(problem)
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
    _keys(supplied, "materials")
    known = {m.key for m in definition.materials}
    unknown = [m for m in supplied if m not in known]
    if unknown:
        raise InvalidData("unknown materials", [f"{m!r} is no material of {definition.key}" for m in unknown])
    return sorted(set(supplied))


def missing_materials(definition: Definition, supplied: list[str]) -> list[str]:
    """Required materials not yet supplied, in the definition's order."""
    have = set(supplied)
    return [m.key for m in definition.materials if m.required and m.key not in have]


def _kind(value: Any) -> str:
    return {str: "text", bool: "true/false", int: "a number", float: "a number", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


def _shown(value: Any) -> str:
    """A value in a message: its repr, cut short (a 100 MB value must not make a 100 MB message)."""
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:60] + f"… ({len(shown):,} characters)"
