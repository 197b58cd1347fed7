"""Finding cases: the case search (staff) and the applicant's progress view (办理进度, public)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection, Integer, bindparam, exists, literal_column, or_, select, text

from ...calendar import BusinessCalendar
from ...store.models import Case, DefinitionVersion, Department, Evaluation, Signoff, Supplement, Task
from ..errors import NotFound
from ..rules import CASE_RULES
from .cases import _CASE_COLUMNS, CaseSummary, _summary
from .common import (
    CASE_STATE_LABELS,
    CASE_STEP_LABELS,
    CLOSED_CASES,
    COMPLETED_TASKS,
    LIVE_CASES,
    OUTCOME_LABELS,
    Page,
    SlaColour,
    TimeKey,
    applicant_of,
    aware,
    case_applicant_id,
    case_applicant_name,
    definition_names,
    newer_than,
)
from .dashboard import _DEFINITIONS
from .performance import AT_CENTRE, CASE_VISITS, SHARES_RATING

_cases = Case.__table__
_tasks = Task.__table__
_supplements = Supplement.__table__
_signoffs = Signoff.__table__
_evaluations = Evaluation.__table__
_case_visits = literal_column(CASE_VISITS, Integer)


# ----------------------------------------------------------------------------------------------
# search


Channel = Literal["online", "window"]
MAX_VISITS = 99
Visits = Annotated[int, Field(ge=0, le=MAX_VISITS)]
StepId = Annotated[str, Field(min_length=1, max_length=64)]
Code = Annotated[str, Field(min_length=1, max_length=32)]


class CaseFilter(BaseModel):
    """The case search; every field optional, combined with AND. The fields after ``sla_state`` are the
    dashboard's figures (效能监察, performance.py): each keeps exactly the cases its figure counts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    number_prefix: str | None = Field(None, description="办件编号 prefix")
    applicant: str | None = Field(None, description="申请人 name or id, exact")
    definition_key: str | None = None
    state: str | None = Field(None, description="case state (submitted … terminated)")
    sla_state: SlaColour | None = None
    live: bool | None = Field(None, description="live (accepted, in progress, suspended) as the live counts, or not")
    channel: Channel | None = Field(None, description="where the application came in")
    at_centre: bool | None = Field(None, description="recorded at a service centre's window (cases.centre), or not")
    submitted_from: datetime | None = Field(None, description="submitted at or after (inclusive)")
    submitted_to: datetime | None = Field(None, description="submitted before (exclusive)")
    closed_from: datetime | None = Field(None, description="closed (办结, any outcome) at or after")
    closed_to: datetime | None = Field(None, description="closed before")
    done_department: Code | None = Field(None, description="a task of this department is completed")
    done_step: StepId | None = Field(None, description="a task of this step is completed")
    done_from: datetime | None = Field(None, description="a task was completed at or after")
    done_to: datetime | None = Field(None, description="a task was completed before")
    rated_from: datetime | None = Field(None, description="rated (好差评) at or after")
    rated_to: datetime | None = Field(None, description="rated before")
    rated_department: Code | None = Field(
        None, description="rated, and the rating counts for this department (it completed a task of the case)"
    )
    visits: Visits | None = Field(None, description="跑动次数, exactly")
    max_visits: Visits | None = Field(None, description="跑动次数, at most")
    supplement_open: bool | None = Field(
        None, description="a 补正 notice waits for the applicant's materials (true) or none does (false)"
    )
    departments: tuple[str, ...] | None = Field(
        None,
        description="what a member of staff may see: only cases with a task of one of these departments, or "
        "(with worker) one this person holds or signs",
    )
    worker: str | None = Field(None, description="with departments: the person whose held or signed tasks count")

    @model_validator(mode="after")
    def _aware(self) -> CaseFilter:
        for moment in (
            self.submitted_from, self.submitted_to, self.closed_from, self.closed_to, self.done_from, self.done_to,
            self.rated_from, self.rated_to,
        ):  # fmt: skip
            if moment is not None:
                aware(moment)
        return self

    def clauses(self) -> list[Any]:
        found: list[Any] = []
        if self.number_prefix:
            found.append(_cases.c.number.startswith(self.number_prefix, autoescape=True))
            upper = self.number_prefix[:-1] + chr(ord(self.number_prefix[-1]) + 1)
            found.append(_cases.c.number >= self.number_prefix)  # a range the unique index on number can read
            found.append(_cases.c.number < upper)
        if self.applicant:
            found.append(or_(case_applicant_id == self.applicant, case_applicant_name == self.applicant))
        if self.definition_key:
            found.append(_cases.c.definition_key == self.definition_key)
        if self.state:
            found.append(_cases.c.state == self.state)
        if self.sla_state:
            found.append(_cases.c.sla_state == self.sla_state)
            if self.sla_state in ("warning", "overdue", "paused"):
                found.append(LIVE_CASES)  # the predicate of ix_cases_live_sla
        if self.live is not None:
            found.append(LIVE_CASES if self.live else text(f"NOT ({LIVE_CASES.text})"))
        if self.channel:
            found.append(_cases.c.channel == self.channel)
        if self.at_centre is not None:
            found.append(text(AT_CENTRE if self.at_centre else f"NOT ({AT_CENTRE})"))
        if self.submitted_from:
            found.append(_cases.c.submitted_at >= self.submitted_from)
        if self.submitted_to:
            found.append(_cases.c.submitted_at < self.submitted_to)
        if self.closed_from or self.closed_to:
            found.append(CLOSED_CASES)  # the predicate of ix_cases_closed
            if self.closed_from:
                found.append(_cases.c.closed_at >= self.closed_from)
            if self.closed_to:
                found.append(_cases.c.closed_at < self.closed_to)
        if self.done_department or self.done_step or self.done_from or self.done_to:
            found.append(self._done_task())
        if self.rated_from or self.rated_to or self.rated_department:
            found.extend(self._rated())
        if self.visits is not None:
            found.append(_case_visits == bindparam("visits", self.visits, Integer))
        if self.max_visits is not None:
            found.append(_case_visits <= bindparam("max_visits", self.max_visits, Integer))
        if self.supplement_open is not None:
            notice = exists().where(_supplements.c.case_id == _cases.c.id, _supplements.c.supplied_at.is_(None))
            found.append(notice if self.supplement_open else ~notice)
        if self.departments is not None or self.worker:
            theirs = [_tasks.c.department.in_(self.departments or ())]
            if self.departments:  # a joint survey's participant departments, as web.deps.visible_case_id
                theirs.append(
                    exists().where(
                        _signoffs.c.task_id == _tasks.c.id,
                        _signoffs.c.kind == "department",
                        _signoffs.c.party.in_(self.departments),
                    )
                )
            if self.worker:
                theirs.append(_tasks.c.assignee == self.worker)
                theirs.append(
                    exists().where(
                        _signoffs.c.task_id == _tasks.c.id,
                        or_(_signoffs.c.party == self.worker, _signoffs.c.signed_by == self.worker),
                    )
                )
            found.append(exists().where(_tasks.c.case_id == _cases.c.id, or_(*theirs)))  # by ix_tasks_case
        return found

    def _done_task(self) -> Any:
        """One completed task meets every done_ field: what the per-department and per-step figures count
        (every completed task, 差评整改 and 否定报备 too; the step's 一件事 is the case's)."""
        task = [_tasks.c.case_id == _cases.c.id, COMPLETED_TASKS]
        if self.done_department:
            task.append(_tasks.c.department == self.done_department)
        if self.done_step:
            task.append(_tasks.c.step_id == self.done_step)
        if self.done_from:
            task.append(_tasks.c.completed_at >= self.done_from)
        if self.done_to:
            task.append(_tasks.c.completed_at < self.done_to)
        return exists().where(*task)

    def _rated(self) -> list[Any]:
        """Rated in the period, and (rated_department) counted for the department, as performance.ratings."""
        rating = [_evaluations.c.case_id == _cases.c.id]  # the unique evaluations.case_id
        if self.rated_from:
            rating.append(_evaluations.c.at >= self.rated_from)
        if self.rated_to:
            rating.append(_evaluations.c.at < self.rated_to)
        found = [exists().where(*rating)]
        if self.rated_department:
            found.append(
                exists().where(
                    _tasks.c.case_id == _cases.c.id, text(SHARES_RATING), _tasks.c.department == self.rated_department
                )
            )
        return found


def step_names(conn: Connection, definition_key: str | None = None) -> dict[str, str]:
    """The step ids a case's tasks may carry, with their names: every step of every published version of the
    一件事 (of all of them without a key; the newest name wins) and the case's own (差评整改, 否定报备)."""
    versions = select(DefinitionVersion.key, DefinitionVersion.version).order_by(DefinitionVersion.version)
    if definition_key is not None:
        versions = versions.where(DefinitionVersion.key == definition_key)
    names: dict[str, str] = {}
    for key, version in conn.execute(versions):
        names.update((step.id, step.name) for step in _DEFINITIONS.get(conn, key, version).steps)
    return names | CASE_STEP_LABELS


def search_cases(
    conn: Connection,
    filters: CaseFilter | None = None,
    *,
    now: datetime,
    calendar: BusinessCalendar,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[CaseSummary]:
    """Cases newest first (submission time, then id), keyset-paged. Served by ``ix_cases_submitted`` read
    backwards, or by the index of a narrow filter: the unique number (prefix as a range),
    ``ix_cases_applicant_id``/``_name``, ``ix_cases_definition_state``, ``ix_cases_closed``. The
    dashboard's filters are correlated EXISTS probes by each case's index (``ix_tasks_case``, the unique
    ``evaluations.case_id``, ``ix_supplements_case``, ``ix_certificates_case``); PostgreSQL may read a
    task period from ``ix_tasks_completed`` instead."""
    aware(now)
    if not 1 <= limit <= 500:
        raise ValueError(f"limit {limit}: ask for 1 to 500 items a page")
    query = select(*_CASE_COLUMNS).where(*(filters.clauses() if filters else []))
    if cursor:
        query = query.where(newer_than(_cases.c.submitted_at, _cases.c.id, TimeKey.decode(cursor)))
    query = query.order_by(_cases.c.submitted_at.desc(), _cases.c.id.desc()).limit(limit + 1)
    rows = conn.execute(query).all()
    rows, more = rows[:limit], len(rows) > limit
    names = definition_names(conn, {(r.definition_key, r.definition_version) for r in rows})
    items = tuple(
        _summary(conn, r, now, calendar, names.get((r.definition_key, r.definition_version), r.definition_key))
        for r in rows
    )
    next_cursor = TimeKey(items[-1].submitted_at, items[-1].id).encode() if more and items else None
    return Page(items, next_cursor)


# ----------------------------------------------------------------------------------------------
# 办理进度: what the applicant may see


@dataclass(frozen=True)
class ProgressStep:
    """A step as the applicant sees it: no staff names or ids."""

    name: str
    department_name: str
    state: str  # done | current | waiting
    since: datetime  # ready
    finished_at: datetime | None
    due_at: datetime | None


@dataclass(frozen=True)
class Progress:
    case_id: int  # for the applicant's own commands (好差评); never shown
    number: str
    definition_key: str
    definition_version: int
    definition_name: str
    state: str
    state_label: str
    submitted_at: datetime
    accepted_at: datetime | None
    due_at: datetime | None  # 承诺办结时间 (moved out by suspensions and extensions)
    closed_at: datetime | None
    outcome: str | None
    outcome_label: str | None
    reason: str | None  # the written reason of a refusal, rejection or termination
    done: tuple[ProgressStep, ...]
    current: tuple[ProgressStep, ...]
    materials_owed: tuple[str, ...]  # 补正 asked for, or 容缺 still owed
    can_rate: bool  # 好差评 open to the applicant now


NOT_FOUND = "no case with this number for this applicant; check the number and the applicant's id"


def progress(conn: Connection, number: str, applicant_id: str) -> Progress:
    """办理进度 by case number AND the applicant's id. A wrong id gives exactly the NotFound of an unknown
    number, so the page tells nobody which numbers exist."""
    row = conn.execute(select(*_CASE_COLUMNS).where(_cases.c.number == number)).first()
    if row is None or applicant_of(row.applicant)[0] != applicant_id or not applicant_id:
        raise NotFound(NOT_FOUND)
    name = definition_names(conn, [(row.definition_key, row.definition_version)]).get(
        (row.definition_key, row.definition_version), row.definition_key
    )

    d = Department.__table__
    tasks = conn.execute(
        select(
            _tasks.c.step_id,
            _tasks.c.name,
            _tasks.c.department,
            d.c.name.label("department_name"),
            _tasks.c.state,
            _tasks.c.superseded,
            _tasks.c.waiting,
            _tasks.c.ready_at,
            _tasks.c.completed_at,
            _tasks.c.due_at,
        )
        .join_from(_tasks, d, d.c.code == _tasks.c.department, isouter=True)
        .where(_tasks.c.case_id == row.id, _tasks.c.superseded.is_(False))
        .order_by(_tasks.c.id)
    ).all()
    done_steps, current = [], []
    for t in tasks:
        if t.step_id.startswith("__"):
            continue
        step = ProgressStep(t.name, t.department_name or t.department, "done", t.ready_at, t.completed_at, t.due_at)
        if t.state == "completed":
            done_steps.append(step)
        elif t.state in ("ready", "claimed"):
            current.append(dataclasses.replace(step, state="waiting" if t.waiting == "applicant" else "current"))
    owed: list[str] = list(row.deferred or [])
    s = Supplement.__table__
    for missing in conn.execute(select(s.c.missing).where(s.c.case_id == row.id, s.c.supplied_at.is_(None))).scalars():
        owed.extend(m for m in missing if m not in owed)
    rated = (
        conn.execute(select(Evaluation.__table__.c.id).where(Evaluation.__table__.c.case_id == row.id)).first()
        is not None
    )
    outcome = row.outcome or (row.state if row.state in OUTCOME_LABELS else None)
    return Progress(
        case_id=row.id,
        number=row.number,
        definition_key=row.definition_key,
        definition_version=row.definition_version,
        definition_name=name,
        state=row.state,
        state_label=CASE_STATE_LABELS.get(row.state, row.state),
        submitted_at=row.submitted_at,
        accepted_at=row.accepted_at,
        due_at=row.due_at,
        closed_at=row.closed_at,
        outcome=outcome,
        outcome_label=OUTCOME_LABELS.get(outcome or ""),
        reason=row.reason,
        done=tuple(done_steps),
        current=tuple(current),
        materials_owed=tuple(owed),
        can_rate=row.state in CASE_RULES["evaluate"].from_states and not rated,
    )


__all__ = ["CaseFilter", "Progress", "ProgressStep", "progress", "search_cases", "step_names"]
