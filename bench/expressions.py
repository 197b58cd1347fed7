"""The most an expression can cost inside a transition (which holds the case's lock): hostile `when`
conditions within the language's bounds (orchestrator/definition/expressions.py), each evaluated
against form values at their own limits (text fields of 2,000 characters, 64-bit numbers). Prints
the median and slowest evaluation of each and what it ended with; the last line is one JSON object.

Before the bounds, `len([[0]*9999]*employees) > 0` with employees = 10 held SQLite's write lock for
37 s; a bounded expression either evaluates or is refused (counts as false) in well under a millisecond.

    .venv/bin/python bench/expressions.py [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.definition.expressions import EXPRESSION_LIMIT, NESTING_LIMIT, Expression  # noqa: E402
from orchestrator.definition.model import TEXT_LIMIT  # noqa: E402

TEXT = "申" * TEXT_LIMIT
BIG = 2**63 - 1
CHAIN = NESTING_LIMIT - 4  # a chain a + b + c … nests one level per operator


def _fill(unit: str, joiner: str, head: str, tail: str, most: int = EXPRESSION_LIMIT) -> str:
    """``head unit joiner unit … tail`` as long as the length limit allows (at most ``most`` units)."""
    count = min(most, (EXPRESSION_LIMIT - len(head) - len(tail)) // (len(unit) + len(joiner)) + 1)
    while len(head + joiner.join([unit] * count) + tail) > EXPRESSION_LIMIT:
        count -= 1
    return head + joiner.join([unit] * count) + tail


HOSTILE = {
    "list of long texts, as text": (_fill("t", ",", "str([", "]) == ''"), {"t": TEXT}),
    "chain of text concatenations": (_fill("t", "+", "len(", ") > 0", CHAIN), {"t": TEXT}),
    "substring tests on long text": (_fill("t in t", " and ", "", ""), {"t": TEXT}),
    "products of 64-bit numbers": (_fill("n", "*", "", " > 0", CHAIN), {"n": BIG}),
    "sums of 64-bit numbers": (_fill("n", "+", "", " > 0", CHAIN), {"n": BIG}),
    "nested lists": ("[" * (NESTING_LIMIT // 2 - 2) + "t" + "]" * (NESTING_LIMIT // 2 - 2) + " == []", {"t": TEXT}),
    "list equality": (_fill("n", ",", "[", "] == []"), {"n": BIG}),
    "an ordinary condition": ("employees > 0 and needs_seal", {"employees": 3, "needs_seal": True}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    figures: dict[str, float] = {}
    for name, (source, values) in HOSTILE.items():
        expression = Expression.parse(source)
        times, ended = [], ""
        for _ in range(args.runs):
            start = time.perf_counter()
            try:
                ended = repr(expression.evaluate(values))[:20]
            except Exception as exc:
                ended = f"{type(exc).__name__}: {exc}"[:70]
            times.append(time.perf_counter() - start)
        median, slowest = statistics.median(times) * 1000, max(times) * 1000
        figures[name] = {"median_ms": round(median, 3), "slowest_ms": round(slowest, 3)}
        print(f"{name:30} {len(source):5} chars  median {median:6.3f} ms  slowest {slowest:6.3f} ms  → {ended}")
    print(json.dumps({"bench": "expressions", "runs": args.runs, "figures": figures}, ensure_ascii=False))


if __name__ == "__main__":
    main()
