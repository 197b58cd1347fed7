"""Time limits as written in definitions: ``1d`` working days, ``4h`` working hours, ``3n`` natural days."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Unit = Literal["d", "h", "n"]

# Working hours in one working day (09:00–17:00). Used to compare limits of different units.
HOURS_PER_WORKING_DAY = 8.0
# A natural day holds on average 5/7 of a working day (weekends); used only to compare limits.
WORKING_DAYS_PER_NATURAL_DAY = 5 / 7

_LIMIT_RE = re.compile(r"^(?P<amount>\d+(?:\.\d+)?)(?P<unit>[dhn])$")
UNIT_NAMES = {"d": "工作日", "h": "工作小时", "n": "自然日"}


class LimitSyntaxError(ValueError):
    pass


@dataclass(frozen=True, order=False)
class Limit:
    amount: float
    unit: Unit

    @classmethod
    def parse(cls, text: str) -> Limit:
        match = _LIMIT_RE.match(text.strip()) if isinstance(text, str) else None
        if match is None or float(match["amount"]) <= 0:
            raise LimitSyntaxError(
                f"bad limit {text!r}: write a positive number and a unit, "
                "d = working days, h = working hours, n = natural days (e.g. 1d, 0.5d, 4h, 7n)"
            )
        if match["unit"] == "n" and not float(match["amount"]).is_integer():
            raise LimitSyntaxError(f"bad limit {text!r}: natural days (n) are whole days, e.g. 7n")
        return cls(float(match["amount"]), match["unit"])  # type: ignore[arg-type]

    @property
    def working_hours(self) -> float:
        """The limit in working hours, for comparing limits of different units."""
        if self.unit == "h":
            return self.amount
        if self.unit == "d":
            return self.amount * HOURS_PER_WORKING_DAY
        return self.amount * WORKING_DAYS_PER_NATURAL_DAY * HOURS_PER_WORKING_DAY

    def __str__(self) -> str:
        amount = f"{self.amount:g}"
        return f"{amount}{self.unit}"

    @property
    def label(self) -> str:
        """Chinese label, e.g. ``0.5工作日``."""
        return f"{self.amount:g}{UNIT_NAMES[self.unit]}"


def format_working_hours(hours: float) -> str:
    """Show a working-hours total the way designers write limits (``1.5d`` or ``6h``)."""
    if hours >= HOURS_PER_WORKING_DAY:
        return f"{hours / HOURS_PER_WORKING_DAY:g}d"
    return f"{hours:g}h"
