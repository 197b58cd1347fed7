"""What the read modules share: pages and cursors, the SLA colours, the applicant expressions the
indexes were built on, working time left on the business calendar, and definition names."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import ColumnElement, Connection, String, literal_column, select, text, tuple_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from ...calendar import BusinessCalendar
from ...store.models import DefinitionVersion, Department
from ..rules import NEGATIVE_REPORT_STEP, RECTIFICATION_STEP

T = TypeVar("T")

SlaColour = Literal["on_track", "warning", "overdue", "paused"]
SLA_LABELS = {"on_track": "正常", "warning": "预警（黄牌）", "overdue": "逾期（红牌）", "paused": "暂停计时"}
CASE_STATE_LABELS = {
    "submitted": "已提交（待受理）",
    "accepted": "已受理",
    "in_progress": "办理中",
    "suspended": "暂停计时（特别程序/补正）",
    "completed": "办结",
    "not_accepted": "不予受理",
    "rejected": "不予许可",
    "withdrawn": "撤回申请",
    "terminated": "终止办理",
}
TASK_STATE_LABELS = {
    "ready": "待办",
    "claimed": "办理中",
    "completed": "已办",
    "skipped": "跳过",
    "cancelled": "已取消",
}
OUTCOME_LABELS = {
    "approved": "准予许可",
    "partly_approved": "部分许可",
    "rejected": "不予许可",
    "not_accepted": "不予受理",
    "withdrawn": "撤回",
    "terminated": "终止办理",
}
CASE_STEP_LABELS = {RECTIFICATION_STEP: "差评整改", NEGATIVE_REPORT_STEP: "否定报备（领导确认）"}  # tasks of no step
KIND_LABELS = {
    "acceptance": "综合受理",
    "survey": "联合踏勘",
    "approval": "审批",
    "auto": "自动（秒批）",
    "issue": "出件",
    "notify": "通知",
    "rectification": "差评整改",
}

# The expressions of ix_cases_applicant_id / _name, verbatim (a query must repeat them to use the index).
case_applicant_id = literal_column("(cases.applicant ->> 'id')", String)
case_applicant_name = literal_column("(cases.applicant ->> 'name')", String)
# Partial-index predicates, verbatim (see orchestrator/engine/queries.py on why).
READY_TASKS = text("tasks.state = 'ready'")
CLAIMED_TASKS = text("tasks.state = 'claimed'")
OPEN_TASKS = text("tasks.state IN ('ready', 'claimed')")
COMPLETED_TASKS = text("tasks.state = 'completed'")
DONE_BY = text("tasks.completed_by IS NOT NULL")
UNSIGNED = text("signoffs.signed_at IS NULL")
SIGNED_BY = text("signoffs.signed_by IS NOT NULL")
LIVE_CASES = text("cases.state IN ('accepted', 'in_progress', 'suspended')")
CLOSED_CASES = text("cases.closed_at IS NOT NULL")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a keyset-paged read: ``next`` is the cursor of the page after it (None at the end)."""

    items: tuple[T, ...]
    next: str | None

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True, order=True)
class DueKey:
    """Queue order: timed tasks by due time, then untimed ones (即办) by id."""

    untimed: bool
    due_at: datetime
    id: int

    @classmethod
    def of(cls, due_at: datetime | None, task_id: int) -> DueKey:
        return cls(due_at is None, due_at or _EPOCH, task_id)

    def encode(self) -> str:
        return f"u:{self.id}" if self.untimed else f"t:{self.due_at.astimezone(UTC).isoformat()}:{self.id}"

    @classmethod
    def decode(cls, cursor: str) -> DueKey:
        try:
            kind, rest = cursor.split(":", 1)
            if kind == "u":
                return cls(True, _EPOCH, int(rest))
            moment, task_id = rest.rsplit(":", 1)
            return cls(False, datetime.fromisoformat(moment), int(task_id))
        except ValueError:
            raise ValueError(f"cursor {cursor!r} is not one this read gave out; start from the first page") from None


@dataclass(frozen=True, order=True)
class TimeKey:
    """Newest-first order by a timestamp, then id, then a tag naming the source of a merged read (已办)."""

    at: datetime
    id: int
    tag: str = ""

    def encode(self) -> str:
        return f"{self.at.astimezone(UTC).isoformat()}|{self.id}|{self.tag}"

    @classmethod
    def decode(cls, cursor: str) -> TimeKey:
        try:
            moment, key, tag = cursor.split("|", 2)
            return cls(datetime.fromisoformat(moment), int(key), tag)
        except ValueError:
            raise ValueError(f"cursor {cursor!r} is not one this read gave out; start from the first page") from None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class unindexed(FunctionElement[Any]):
    """A column SQLite must not pick an index for (its documented unary ``+``); plain elsewhere. For a term
    whose index would drive a join the wrong way round, e.g. every open task of a department probed for a
    sign-off, where the sign-offs owed are a handful."""

    name = "unindexed"
    inherit_cache = True
    type = String()


@compiles(unindexed)
def _unindexed(element: unindexed, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element: unindexed, compiler: Any, **kw: Any) -> str:
    return "+" + compiler.process(element.clauses, **kw)


def due_after(due_at: ColumnElement[Any], key_id: ColumnElement[Any], cursor: DueKey) -> ColumnElement[bool]:
    """Timed rows after a timed cursor. Written ``due_at >= c AND (due_at > c OR id > i)`` so the index range
    starts at c on both databases."""
    return (due_at >= cursor.due_at) & ((due_at > cursor.due_at) | (key_id > cursor.id))


def newer_than(
    at: ColumnElement[Any], key_id: ColumnElement[Any], cursor: TimeKey, *, inclusive: bool = False
) -> ColumnElement[bool]:
    """Rows after a newest-first cursor, i.e. older (the same range-first form as ``due_after``);
    ``inclusive`` keeps the row with the cursor's own (at, id), for a source whose tag sorts after it."""
    later_id = (key_id <= cursor.id) if inclusive else (key_id < cursor.id)
    return (at <= cursor.at) & ((at < cursor.at) | later_id)


def remaining_minutes(
    calendar: BusinessCalendar, due_at: datetime | None, now: datetime, paused_since: datetime | None = None
) -> int | None:
    """Working minutes from now (or from when the clock stopped) to the due time; negative when overdue."""
    if due_at is None:
        return None
    return calendar.working_minutes_between(paused_since or now, due_at)


def describe_minutes(minutes: int | None, window_minutes: int = 480) -> str:
    """``剩余 1.5 工作日`` / ``逾期 3 工作小时`` (a working day is the calendar's window, 8 h by default)."""
    if minutes is None:
        return "不限时"
    word = "剩余" if minutes >= 0 else "逾期"
    amount = abs(minutes)
    if amount >= window_minutes:
        return f"{word} {amount / window_minutes:.1f} 工作日"
    if amount >= 60:
        return f"{word} {amount / 60:.1f} 工作小时"
    return f"{word} {amount} 工作分钟"


_NAMES: dict[tuple[str, int], str] = {}  # a published version never changes, nor its name


def definition_names(conn: Connection, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """Names of the given (key, version) pairs: kept per process, read (one indexed read) when new."""
    wanted = set(keys)
    missing = sorted(wanted - _NAMES.keys())
    if missing:
        dv = DefinitionVersion.__table__
        rows = conn.execute(
            select(dv.c.key, dv.c.version, dv.c.name).where(tuple_(dv.c.key, dv.c.version).in_(missing))
        )
        _NAMES.update({(r.key, r.version): r.name for r in rows})
    return {key: _NAMES[key] for key in wanted if key in _NAMES}


def latest_definition_names(conn: Connection) -> dict[str, str]:
    """The newest name of every definition key (the dashboards group by key, over versions)."""
    dv = DefinitionVersion.__table__
    rows = conn.execute(select(dv.c.key, dv.c.version, dv.c.name).order_by(dv.c.key, dv.c.version))
    return {r.key: r.name for r in rows}


def department_names(conn: Connection) -> dict[str, str]:
    dept = Department.__table__
    return {r.code: r.name for r in conn.execute(select(dept.c.code, dept.c.name))}


def applicant_of(value: Any) -> tuple[str | None, str | None]:
    """(id, name) from the case's applicant JSON."""
    if isinstance(value, dict):
        return value.get("id"), value.get("name")
    return None, None


def aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass an aware time (e.g. with tzinfo=Asia/Shanghai)")
    return value


@dataclass(frozen=True)
class Counts:
    """A small tally keyed by a code (alert kinds, evaluation levels, SLA colours)."""

    by_key: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, key: str) -> int:
        return self.by_key.get(key, 0)

    @property
    def total(self) -> int:
        return sum(self.by_key.values())


def take(rows: Sequence[T], limit: int) -> tuple[tuple[T, ...], bool]:
    """The first ``limit`` rows and whether there were more."""
    return tuple(rows[:limit]), len(rows) > limit
