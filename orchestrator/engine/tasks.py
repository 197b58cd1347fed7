"""Task rows: built in one place (``new_task``), with their deadlines and the signatures they need, and
read back as the state of each step for the DAG."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..calendar import BusinessCalendar
from ..definition.limits import Limit, LimitSyntaxError
from ..definition.model import Definition, Step
from . import dag
from .errors import InvalidData
from .publish import DefinitionCache
from .rules import CASE_STEPS, INTAKE_NOTICE_LIMIT
from .rules import newest_tasks as latest

SYSTEM = "system"

Row = dict[str, Any]


class Deadlines:
    """Due and warning times on the business calendar, remembered: parallel branches made in one
    transition usually share their start and limit."""

    def __init__(self, calendar: BusinessCalendar) -> None:
        self.calendar = calendar
        self._known: dict[tuple[datetime, Limit, float], tuple[Any, Any, bool]] = {}

    def of(self, start: datetime, limit: Limit | None, warning: float) -> tuple[datetime | None, datetime | None, bool]:
        """(due_at, warn_at, provisional) for a limit counted from start."""
        if limit is None:
            return None, None, False
        key = (start, limit, warning)
        found = self._known.get(key)
        if found is None:
            due = self.calendar.add(start, limit.amount, limit.unit)
            total = self.calendar.working_time_between(start, due.at)
            warn = self.calendar.add_working_time(start, total * (1 - warning))
            if len(self._known) > 4096:
                self._known.clear()
            found = self._known[key] = (due.at, warn.at, due.provisional or warn.provisional)
        return found

    def push(self, when: datetime | None, amount: timedelta) -> datetime | None:
        """A time moved out by an amount of working time (a suspension's length)."""
        if when is None or amount <= timedelta(0):
            return when
        return self.calendar.add_working_time(when, amount).at


@dataclass
class Env:
    """What the commands need besides the transaction: the calendar, the definitions, the settings."""

    calendar: BusinessCalendar
    definitions: DefinitionCache
    clock: Callable[[], datetime]
    auto_inline: bool = True  # False: `auto` steps wait for a worker (run_auto_tasks / Prefect)
    rectification_limit: Limit = field(default_factory=lambda: Limit.parse("5d"))
    negative_report_limit: Limit = field(default_factory=lambda: Limit.parse("1d"))  # the leader's time

    def __post_init__(self) -> None:
        self.deadlines = Deadlines(self.calendar)


@dataclass
class NewTask:
    """A task about to be inserted, the sign-off slots it needs, and why the DAG made it (for history)."""

    row: Row
    signatures: list[tuple[str, str]]
    reason: str | None = None


def new_task(
    env: Env,
    case: Row,
    step: Step | None,
    state: str,
    now: datetime,
    created_by: int | None,
    *,
    definition: Definition | None = None,
    limit: Limit | None = None,
    **values: Any,
) -> NewTask:
    """The one place a task row is built: a step's task (``step`` and ``definition``), or a task of no
    step of the definition (差评整改: ``values`` give step_id, kind, name and department, ``limit`` its
    limit). A ready task gets its deadline; a skipped one is completed at once."""
    signatures: list[tuple[str, str]] = []
    warning = definition.limits.warning if definition is not None else 0.25
    if step is not None:
        values = {"step_id": step.id, "kind": step.kind, "name": step.name, "department": step.department, **values}
        limit = step.limit
        if state == "ready":
            signatures = signatures_needed(step)
    due_at, warn_at, provisional = env.deadlines.of(now, limit, warning) if state == "ready" else (None, None, False)
    if step is not None and step.kind == "acceptance" and state == "ready":
        # Art. 32: the window decides (or sends its one 补正 notice) within 5 working days of receipt, so
        # the acceptance task is due then at the latest and the SLA sweep warns before that lapses
        intake = env.deadlines.of(now, INTAKE_NOTICE_LIMIT, warning)
        if due_at is None or intake[0] < due_at:
            due_at, warn_at, provisional = intake
    row = {
        "case_id": case["id"],
        "step_id": values.pop("step_id"),
        "kind": values.pop("kind"),
        "name": values.pop("name"),
        "department": values.pop("department"),
        "state": state,
        "outcome": None,
        "assignee": None,
        "delegated_by": None,
        "opinion": None,
        "ready_at": now,
        "claimed_at": None,
        "completed_at": now if state == "skipped" else None,
        "completed_by": None,
        "due_at": due_at,
        "warn_at": warn_at,
        "sla_state": "on_track" if due_at else None,
        "provisional": provisional,
        "waiting": None,
        "created_by_task": created_by,
        "superseded": False,
        "signoffs_open": open_signatures(step, signatures),
        "version": 1,
        "work_minutes": None,  # working minutes from ready to done, less the case's suspensions (dashboards)
        "paused_minutes": 0,
    }
    row.update(values)
    return NewTask(row, signatures)


def signatures_needed(step: Step) -> list[tuple[str, str]]:
    """The (kind, party) sign-off slots a new task of this step needs."""
    if step.kind == "survey":
        return [("department", d) for d in step.participants]
    if step.kind == "approval" and step.sign:
        return [("role", r) for r in step.signers]
    if step.kind == "approval" and step.review_chain:
        return [("level", level) for level in step.review_chain]
    return []


def open_signatures(step: Step | None, signatures: list[tuple[str, str]]) -> int:
    """How many signatures must still come: 或签 (sign: any) counts its role slots as one."""
    if not signatures:
        return 0
    return 1 if (step is not None and step.kind == "approval" and step.sign == "any") else len(signatures)


def step_states(tasks: list[Row]) -> dict[str, str]:
    """Each step's state from its newest task; a superseded task leaves its step pending (to redo)."""
    return {step_id: step_state(task) for step_id, task in latest(tasks).items() if step_id not in CASE_STEPS}


def approved_steps(tasks: list[Row]) -> set[str]:
    """The steps whose newest task was completed and approved, and not undone by a 退回."""
    return {
        step_id
        for step_id, task in latest(tasks).items()
        if not task["superseded"] and task["state"] == "completed" and task["outcome"] == "approve"
    }


def step_state(task: Row) -> str:
    """What the newest task of a step says of the step (for dag.advance)."""
    if task["superseded"]:
        return dag.PENDING
    state = task["state"]
    return state if state in ("completed", "skipped", "cancelled") else "open"


def parse_limit(text: str, what: str) -> Limit:
    try:
        return Limit.parse(text)
    except LimitSyntaxError as exc:
        raise InvalidData(f"{what}: {exc}") from None
