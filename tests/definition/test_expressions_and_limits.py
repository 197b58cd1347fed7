from __future__ import annotations

import pytest

from orchestrator.definition import Expression, ExpressionError, Limit


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("needs_seal", {"needs_seal": True}, True),
        ("employees > 0 and not needs_seal", {"employees": 3, "needs_seal": False}, True),
        ("district in ['浦东', '黄浦']", {"district": "浦东"}, True),
        ("age >= 60 and len(name) > 0", {"age": 59, "name": "张三"}, False),
        ("employees > 0", {}, None),  # an empty field reads as None; None > 0 is an error…
    ],
)
def test_evaluate(source, values, expected):
    expression = Expression.parse(source)
    if expected is None:
        with pytest.raises(TypeError):
            expression.evaluate(values)
    else:
        assert expression.evaluate(values) is expected


def test_names_are_the_form_fields_used():
    assert Expression.parse("a > 1 and (b or not c) and len(d) == 2").names == {"a", "b", "c", "d"}


@pytest.mark.parametrize(
    "source", ["__import__('os')", "a.__class__", "[x for x in a]", "lambda: 1", "open('x')", "a[0]"]
)
def test_unsafe_constructs_are_refused(source):
    with pytest.raises(ExpressionError):
        Expression.parse(source)


@pytest.mark.parametrize(("text", "hours"), [("1d", 8.0), ("0.5d", 4.0), ("4h", 4.0), ("7n", 40.0), ("8.5d", 68.0)])
def test_limits_in_working_hours(text, hours):
    assert Limit.parse(text).working_hours == pytest.approx(hours)


@pytest.mark.parametrize("text", ["", "1", "d", "1w", "-1d", "0d", "1.d", "1 d", "1.5n"])
def test_bad_limits(text):
    with pytest.raises(ValueError, match="bad limit"):
        Limit.parse(text)


# -- what an expression may cost ------------------------------------------------------------------
# It runs inside a transition holding the case's lock (SQLite: the database's write lock), so what it
# may build and how many steps it may take are bounded, by counts every process agrees on.

from orchestrator.definition.expressions import (  # noqa: E402
    EXPRESSION_LIMIT,
    NESTING_LIMIT,
    NUMBER_BITS,
    VALUE_LIMIT,
    ExpressionTooCostly,
)


@pytest.mark.parametrize(
    "source",
    [
        "len([[0]*9999]*employees) > 0",  # held SQLite's write lock for 37 s with a large number
        "len('x' * employees) > 0",
        "len(employees * [0]) > 0",
        "'%0999999999d' % employees == ''",
    ],
)
def test_repeating_text_or_lists_is_refused_when_loaded(source):
    with pytest.raises(ExpressionError, match="repeating text or a list with"):
        Expression.parse(source)


def test_a_long_chain_is_a_clear_error_not_a_recursion_error():
    with pytest.raises(ExpressionError, match=f"more than the {EXPRESSION_LIMIT:,} allowed"):
        Expression.parse(" + ".join(["employees"] * 3000) + " > 0")  # used to raise RecursionError
    with pytest.raises(ExpressionError, match=f"more than the {NESTING_LIMIT} allowed"):
        Expression.parse("+".join(["e"] * 400) + " > 0")
    assert Expression.parse("+".join(["e"] * 90) + " > 0").evaluate({"e": 1}) is True


@pytest.mark.parametrize(
    ("source", "values", "words"),
    [
        ("len(" + "+".join(["name"] * 6) + ") > 0", {"name": "名" * 2000}, f"more than {VALUE_LIMIT:,}"),
        ("*".join(["n"] * 20) + " > 0", {"n": 2**62}, f"more than {NUMBER_BITS} bits"),
        ("len(name * n) > 0", {"name": "名", "n": 10**12}, "repeating text or a list"),
        ("len(name % n) > 0", {"name": "%09999999d", "n": 1}, "formatting text with %"),
    ],
)
def test_values_past_the_bounds_at_run_time_are_refused_before_they_are_built(source, values, words):
    expression = Expression.parse(source)  # fine when loaded: the form's values make it costly
    with pytest.raises(ExpressionTooCostly, match=words):
        expression.evaluate(values)
    assert ExpressionTooCostly.__mro__[1] is ExpressionError


def test_many_steps_are_refused():
    source = " and ".join(["name in name"] * 55)
    with pytest.raises(ExpressionTooCostly, match="steps"):
        Expression.parse(source).evaluate({"name": "名" * 2000})
    assert Expression.parse(source).evaluate({"name": "名" * 100}) is True
