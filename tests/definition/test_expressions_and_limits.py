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
