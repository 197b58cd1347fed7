"""Safe boolean expressions over the one-form (一表式) fields: ``when`` conditions and ``auto`` rules.

Parsing and evaluation go through simpleeval (never ``eval``); the names an expression uses are
collected from its syntax tree so the validator can check them against the form at load time.

An expression's cost is bounded, because it runs inside a transition that holds the case's lock
(on SQLite, the database's write lock). At load time: at most EXPRESSION_LIMIT characters nested at
most NESTING_LIMIT deep, and no text or list repeated with ``*`` or formatted with ``%``. At run
time, whatever the form holds: no value longer than VALUE_LIMIT items or characters, no whole number
beyond NUMBER_BITS bits, at most STEP_LIMIT steps (a node evaluated, an item built). The bounds are
counts, not clock time, so every process decides the same way; an expression that passes one raises
ExpressionTooCostly, which the engine treats as any expression that cannot be evaluated.
"""

from __future__ import annotations

import ast
import operator
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simpleeval import DEFAULT_OPERATORS, EvalWithCompoundTypes, FeatureNotAvailable, InvalidExpression

# Deterministic helpers only: simpleeval's defaults include rand/randint, which a rule must never use.
FUNCTIONS: dict[str, Any] = {
    "len": len,
    "abs": abs,
    "min": min,
    "max": max,
    "int": int,
    "float": float,
    "str": str,
    "round": round,
}
CONSTANTS: dict[str, Any] = {"True": True, "False": False, "None": None}

EXPRESSION_LIMIT = 1_000  # characters of one expression
NESTING_LIMIT = 100  # depth of its syntax tree
VALUE_LIMIT = 10_000  # items of a list, characters of a text, built while evaluating
NUMBER_BITS = 1_024  # size of a whole number built while evaluating (2**1024 is about 1.8e308)
STEP_LIMIT = 100_000  # nodes evaluated plus items and characters built, per evaluation

_SEQUENCES = (str, list, tuple, set, frozenset)


class ExpressionError(ValueError):
    """An expression that does not parse, or uses a construct the safe evaluator refuses."""


class ExpressionTooCostly(ExpressionError):
    """An expression that would build or compute more than the bounds allow."""


@dataclass(frozen=True)
class Expression:
    source: str
    names: frozenset[str]
    _tree: ast.AST = field(repr=False, compare=False)

    @classmethod
    def parse(cls, source: str) -> Expression:
        if not isinstance(source, str) or not source.strip():
            raise ExpressionError("empty expression: write a condition over form fields, e.g. needs_seal")
        source = source.strip()
        if len(source) > EXPRESSION_LIMIT:
            raise ExpressionError(
                f"expression of {len(source):,} characters, more than the {EXPRESSION_LIMIT:,} allowed: "
                "split the condition (a bool field set by an auto step's result_field) or simplify it"
            )
        shown = _short(source)
        try:
            tree = ast.parse(source, mode="eval")
        except SyntaxError as exc:
            where = f" at column {exc.offset}" if exc.offset else ""
            raise ExpressionError(f"expression {shown} does not parse{where}: {exc.msg}") from None
        except (RecursionError, MemoryError):
            raise ExpressionError(f"expression {shown} nests deeper than Python can parse") from None
        depth = _depth(tree)
        if depth > NESTING_LIMIT:
            raise ExpressionError(
                f"expression {shown} nests {depth} deep, more than the {NESTING_LIMIT} allowed "
                "(each operator in a chain like a + b + c … counts): simplify it"
            )
        names: set[str] = set()
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED_NODES):
                raise ExpressionError(
                    f"expression {shown}: {type(node).__name__} is not allowed; use field names, "
                    "constants, comparisons, and/or/not, arithmetic, lists and " + ", ".join(FUNCTIONS)
                )
            if isinstance(node, ast.Call) and not (
                isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS and not node.keywords
            ):
                raise ExpressionError(
                    f"expression {shown}: only these functions may be called: " + ", ".join(FUNCTIONS)
                )
            if isinstance(node, ast.BinOp) and _builds_text_or_list(node):
                raise ExpressionError(
                    f"expression {shown}: repeating text or a list with * (or formatting text with %) "
                    "is not allowed; compare values instead"
                )
            if isinstance(node, ast.Name) and node.id not in CONSTANTS and node.id not in FUNCTIONS:
                names.add(node.id)
        parsed = _evaluator().parse(source)
        return cls(source=source, names=frozenset(names), _tree=parsed)

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        """Evaluate against form values; a field the applicant left empty reads as None.

        Raises ExpressionTooCostly past the bounds, ExpressionError for what simpleeval refuses, and
        Python's own errors (TypeError …) for what cannot be computed."""
        names = dict.fromkeys(self.names)
        names.update({k: v for k, v in values.items() if k in self.names})
        evaluator = _thread_evaluator()
        evaluator.names = {**CONSTANTS, **names}
        evaluator.steps_left = STEP_LIMIT
        try:
            return evaluator.eval(self.source, previously_parsed=self._tree)
        except ExpressionError:
            raise
        except (FeatureNotAvailable, InvalidExpression) as exc:
            raise ExpressionError(f"expression {_short(self.source)}: {exc}") from None
        except RecursionError:
            raise ExpressionTooCostly(f"expression {_short(self.source)} nests too deep to evaluate") from None


_ALLOWED_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Mod, ast.FloorDiv,
    ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot,
    ast.IfExp, ast.Call, ast.Name, ast.Load, ast.Constant, ast.List, ast.Tuple, ast.Set,
)  # fmt: skip

_LITERAL_SEQUENCES = (ast.List, ast.Tuple, ast.Set)


def _builds_text_or_list(node: ast.BinOp) -> bool:
    """``'x' * n``, ``[0] * n``, ``'%999999d' % n``: written out in the expression itself."""

    def literal(operand: ast.AST) -> bool:
        return isinstance(operand, _LITERAL_SEQUENCES) or (
            isinstance(operand, ast.Constant) and isinstance(operand.value, str)
        )

    if isinstance(node.op, ast.Mult):
        return literal(node.left) or literal(node.right)
    return isinstance(node.op, ast.Mod) and literal(node.left)


def _depth(tree: ast.AST) -> int:
    """Depth of the syntax tree, without recursion (a chain of 3,000 terms must not crash the check)."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _short(source: str) -> str:
    return repr(source) if len(source) <= 80 else repr(source[:60] + "…")


# ------------------------------------------------------------------------------------------------
# evaluation within bounds


def _number(value: Any) -> bool:
    return isinstance(value, int | float)  # bool is an int


def _multiply(left: Any, right: Any) -> Any:
    if not (_number(left) and _number(right)):  # repetition builds the value before any check could see it
        raise ExpressionTooCostly("repeating text or a list with * is not allowed")
    return left * right


def _modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str):  # '%0999999999d' % 1 builds a gigabyte of text
        raise ExpressionTooCostly("formatting text with % is not allowed")
    return left % right


OPERATORS = {**DEFAULT_OPERATORS, ast.Add: operator.add, ast.Mult: _multiply, ast.Mod: _modulo}


class _BoundedEvaluator(EvalWithCompoundTypes):  # type: ignore[misc]
    """simpleeval's evaluator, counting its steps and refusing values past the bounds."""

    steps_left: int = STEP_LIMIT

    def _eval(self, node: ast.AST) -> Any:
        self.steps_left -= 1
        result = super()._eval(node)
        if isinstance(result, _SEQUENCES):
            if len(result) > VALUE_LIMIT:
                raise ExpressionTooCostly(f"builds a value of {len(result):,} items, more than {VALUE_LIMIT:,}")
            self.steps_left -= len(result)
        elif type(result) is int and result.bit_length() > NUMBER_BITS:
            raise ExpressionTooCostly(f"builds a number of more than {NUMBER_BITS} bits")
        if self.steps_left < 0:
            raise ExpressionTooCostly(f"takes more than {STEP_LIMIT:,} steps")
        return result


_LOCAL = threading.local()


def _thread_evaluator() -> _BoundedEvaluator:
    """One evaluator per thread, reused: building one costs more than evaluating a condition."""
    evaluator = getattr(_LOCAL, "evaluator", None)
    if evaluator is None:
        evaluator = _LOCAL.evaluator = _evaluator()
    return evaluator


def _evaluator() -> _BoundedEvaluator:
    # simpleeval adds to the dicts it is given: each evaluator gets copies
    return _BoundedEvaluator(operators=dict(OPERATORS), names=dict(CONSTANTS), functions=dict(FUNCTIONS))
