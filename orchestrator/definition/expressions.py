"""Safe boolean expressions over the one-form (一表式) fields: ``when`` conditions and ``auto`` rules.

Parsing and evaluation go through simpleeval (never ``eval``); the names an expression uses are
collected from its syntax tree so the validator can check them against the form at load time.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simpleeval import EvalWithCompoundTypes, FeatureNotAvailable, InvalidExpression

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


class ExpressionError(ValueError):
    """An expression that does not parse, or uses a construct the safe evaluator refuses."""


@dataclass(frozen=True)
class Expression:
    source: str
    names: frozenset[str]
    _tree: ast.AST = field(repr=False, compare=False)

    @classmethod
    def parse(cls, source: str) -> Expression:
        if not isinstance(source, str) or not source.strip():
            raise ExpressionError("empty expression: write a condition over form fields, e.g. needs_seal")
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as exc:
            where = f" at column {exc.offset}" if exc.offset else ""
            raise ExpressionError(f"expression {source!r} does not parse{where}: {exc.msg}") from None
        names: set[str] = set()
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED_NODES):
                raise ExpressionError(
                    f"expression {source!r}: {type(node).__name__} is not allowed; use field names, "
                    "constants, comparisons, and/or/not, arithmetic, lists and " + ", ".join(FUNCTIONS)
                )
            if isinstance(node, ast.Call) and not (
                isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS and not node.keywords
            ):
                raise ExpressionError(
                    f"expression {source!r}: only these functions may be called: " + ", ".join(FUNCTIONS)
                )
            if isinstance(node, ast.Name) and node.id not in CONSTANTS and node.id not in FUNCTIONS:
                names.add(node.id)
        evaluator = _evaluator({})
        parsed = evaluator.parse(source.strip())
        return cls(source=source.strip(), names=frozenset(names), _tree=parsed)

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        """Evaluate against form values; a field the applicant left empty reads as None."""
        names = dict.fromkeys(self.names)
        names.update({k: v for k, v in values.items() if k in self.names})
        evaluator = _thread_evaluator()
        evaluator.names = {**CONSTANTS, **names}
        try:
            return evaluator.eval(self.source, previously_parsed=self._tree)
        except (FeatureNotAvailable, InvalidExpression) as exc:
            raise ExpressionError(f"expression {self.source!r}: {exc}") from None


_ALLOWED_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Mod, ast.FloorDiv,
    ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot,
    ast.IfExp, ast.Call, ast.Name, ast.Load, ast.Constant, ast.List, ast.Tuple, ast.Set,
)  # fmt: skip


_LOCAL = threading.local()


def _thread_evaluator() -> EvalWithCompoundTypes:
    """One evaluator per thread, reused: building one costs more than evaluating a condition."""
    evaluator = getattr(_LOCAL, "evaluator", None)
    if evaluator is None:
        evaluator = _LOCAL.evaluator = _evaluator({})
    return evaluator


def _evaluator(names: dict[str, Any]) -> EvalWithCompoundTypes:
    return EvalWithCompoundTypes(
        names={**CONSTANTS, **names}, functions=dict(FUNCTIONS)
    )  # it adds to the dict it is given
