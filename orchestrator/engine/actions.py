"""``available_actions``: the buttons a page may show a person, from the same guards (rules.ACTIONS) that
the commands check before they change anything — so a button shown is never refused and a refused one is
never shown (a test holds the two against each other)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select
from sqlalchemy import Engine as Database

from ..store.db import reading
from ..store.models import (
    Case,
    Department,
    Evaluation,
    Extension,
    Incident,
    Membership,
    NegativeReport,
    Signoff,
    Supplement,
    Suspension,
    Task,
    User,
)
from .errors import NotFound
from .publish import DefinitionCache
from .rules import ACTIONS, Situation

if TYPE_CHECKING:
    from ..definition.limits import Limit
    from .tasks import Deadlines

_cases = Case.__table__
_tasks = Task.__table__


@dataclass(frozen=True)
class ActionOption:
    name: str  # the command's action name (rules.ACTIONS), e.g. "claim", "approve", "suspend"
    label: str  # the button's Chinese label
    subject: str  # "task" or "case"


@dataclass(frozen=True)
class AvailableActions:
    user: str
    case_id: int
    task_id: int | None
    actions: tuple[ActionOption, ...]

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.actions]

    def __contains__(self, name: object) -> bool:
        return name in self.names


class ReadFacts:
    """What a guard looks up, read from a read-only transaction (no locks taken)."""

    def __init__(self, conn: Connection, case: dict[str, Any], now: datetime, deadlines: Deadlines) -> None:
        self.conn = conn
        self.case = case
        self.now = now
        self.deadlines = deadlines
        self._memberships: dict[str, set[tuple[str, str]]] = {}

    def memberships(self, actor: str) -> set[tuple[str, str]]:
        if actor not in self._memberships:
            rows = self.conn.execute(select(Membership.department, Membership.role).where(Membership.user_id == actor))
            self._memberships[actor] = {(r.department, r.role) for r in rows}
        return self._memberships[actor]

    def supervisor_role(self, department: str) -> str | None:
        return self.conn.execute(select(Department.supervisor_role).where(Department.code == department)).scalar()

    def signoffs(self, task_id: int) -> list[Any]:
        query = select(Signoff.__table__).where(Signoff.task_id == task_id).order_by(Signoff.position)
        return list(self.conn.execute(query))

    def user_exists(self, user: str) -> bool:
        return self.conn.execute(select(User.id).where(User.id == user)).first() is not None

    def open_supplement(self) -> Any:
        query = select(Supplement.__table__).where(
            Supplement.case_id == self.case["id"], Supplement.supplied_at.is_(None)
        )
        return self.conn.execute(query).first()

    def evaluated(self) -> bool:
        return self.conn.execute(select(Evaluation.id).where(Evaluation.case_id == self.case["id"])).first() is not None

    def open_incident(self, task_id: int) -> Any:
        query = select(Incident.__table__).where(Incident.task_id == task_id, Incident.state == "open")
        return self.conn.execute(query).first()

    def signed_any(self, task_ids: list[int]) -> bool:
        query = select(Signoff.id).where(Signoff.task_id.in_(task_ids), Signoff.signed_at.is_not(None)).limit(1)
        return self.conn.execute(query).first() is not None

    def negative_report(self, report_task_id: int) -> Any:
        reports = NegativeReport.__table__
        return self.conn.execute(select(reports).where(reports.c.report_task_id == report_task_id)).one()

    def returns_made(self) -> int:
        query = select(func.count()).where(Suspension.case_id == self.case["id"], Suspension.kind == "supplement")
        return self.conn.execute(query).scalar_one()

    def extensions(self) -> list[Any]:
        query = select(Extension.__table__).where(Extension.case_id == self.case["id"]).order_by(Extension.id)
        return list(self.conn.execute(query))

    def due(self, start: datetime, limit: Limit) -> datetime:
        return self.deadlines.of(start, limit, 0.25)[0]  # type: ignore[return-value]


def available_actions(
    db: Database,
    definitions: DefinitionCache,
    deadlines: Deadlines,
    now: datetime,
    user: str,
    *,
    task_id: int | None = None,
    case_id: int | None = None,
) -> AvailableActions:
    """The actions ``user`` may take at ``now`` on the task (and on its case), or on the case."""
    if (task_id is None) == (case_id is None):
        raise ValueError("give exactly one of task_id and case_id")
    with reading(db) as conn:
        if task_id is not None:
            case_id = conn.execute(select(_tasks.c.case_id).where(_tasks.c.id == task_id)).scalar()
            if case_id is None:
                raise NotFound(f"task {task_id} does not exist")
        case = conn.execute(select(_cases).where(_cases.c.id == case_id)).mappings().first()
        if case is None:
            raise NotFound(f"case {case_id} does not exist")
        case = dict(case)
        tasks = [
            dict(r)
            for r in conn.execute(select(_tasks).where(_tasks.c.case_id == case_id).order_by(_tasks.c.id)).mappings()
        ]
        definition = definitions.get(conn, case["definition_key"], case["definition_version"])
        facts = ReadFacts(conn, case, now, deadlines)
        task = next((t for t in tasks if t["id"] == task_id), None)
        situation = Situation(facts, case, tasks, definition, user, task)
        options = [
            ActionOption(a.name, a.label, a.subject)
            for a in ACTIONS.values()
            if (a.subject == "case" or task is not None) and a.guard(situation) is None
        ]
    return AvailableActions(user, case_id, task_id, tuple(options))
