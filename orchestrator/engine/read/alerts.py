"""SLA alerts (黄牌 ``warning``, 红牌 ``overdue``) and the other cards the sweep and the refusals raise
(``negative_decision``, ``provisional_deadline``), newest first, for some departments or all of them.

Read in index order with a keyset cursor: ``ix_alerts_department (department, raised_at)`` for the
departments asked for, ``ix_alerts_raised`` for every alert; each alert's case and task are read by key.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, or_, select

from ...store.models import Alert, Case, Task
from .common import Page, TimeKey, definition_names, newer_than

_alerts = Alert.__table__
_cases = Case.__table__
_tasks = Task.__table__

ALERT_KINDS = ("warning", "overdue", "negative_decision", "provisional_deadline")
ALERT_LABELS = {
    "warning": "预警（黄牌）",
    "overdue": "逾期（红牌）",
    "negative_decision": "否定报备",
    "provisional_deadline": "容缺补齐期限",
}


@dataclass(frozen=True)
class AlertItem:
    """One alert with where its subject stands now (the task's, or for a case alert the case's, state)."""

    id: int
    kind: str
    raised_at: datetime
    message: str
    department: str | None
    recipient_role: str | None
    case_id: int
    case_number: str
    case_state: str
    definition_key: str
    definition_name: str
    task_id: int | None
    step_id: str | None
    step_name: str | None
    task_state: str | None
    assignee: str | None
    sla_state: str | None  # now: the task's (task alerts) or the case's
    due_at: datetime | None
    open: bool  # the task is still open (ready or claimed), or the case still running

    @property
    def label(self) -> str:
        return ALERT_LABELS.get(self.kind, self.kind)


_LIVE = ("accepted", "in_progress", "suspended")
_OPEN = ("ready", "claimed")


def alerts(
    conn: Connection,
    *,
    departments: Collection[str] | None = None,
    kinds: Collection[str] = ("warning", "overdue"),
    open_only: bool = False,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[AlertItem]:
    """Alerts newest first (raised time, then id). ``departments``: only those (None: every alert).
    ``open_only``: only alerts whose task is still open, or whose case (a case alert) still runs."""
    if not 1 <= limit <= 500:
        raise ValueError(f"limit {limit}: ask for 1 to 500 items a page")
    unknown = sorted(set(kinds) - set(ALERT_KINDS))
    if unknown:
        raise ValueError(f"unknown alert kind(s) {', '.join(unknown)}: use {', '.join(ALERT_KINDS)}")
    query = (
        select(
            _alerts.c.id,
            _alerts.c.kind,
            _alerts.c.raised_at,
            _alerts.c.message,
            _alerts.c.department,
            _alerts.c.recipient_role,
            _alerts.c.case_id,
            _alerts.c.task_id,
            _cases.c.number,
            _cases.c.state.label("case_state"),
            _cases.c.definition_key,
            _cases.c.definition_version,
            _cases.c.sla_state.label("case_sla_state"),
            _cases.c.due_at.label("case_due_at"),
            _tasks.c.step_id,
            _tasks.c.name.label("step_name"),
            _tasks.c.state.label("task_state"),
            _tasks.c.assignee,
            _tasks.c.sla_state.label("task_sla_state"),
            _tasks.c.due_at.label("task_due_at"),
        )
        .join_from(_alerts, _cases, _cases.c.id == _alerts.c.case_id)
        .join(_tasks, _tasks.c.id == _alerts.c.task_id, isouter=True)
        .where(_alerts.c.kind.in_(sorted(set(kinds))))
    )
    if departments is not None:
        query = query.where(_alerts.c.department.in_(sorted(set(departments))))
    if open_only:
        query = query.where(
            or_(
                and_(_alerts.c.task_id.is_not(None), _tasks.c.state.in_(_OPEN)),
                and_(_alerts.c.task_id.is_(None), _cases.c.state.in_(_LIVE)),
            )
        )
    if cursor:
        query = query.where(newer_than(_alerts.c.raised_at, _alerts.c.id, TimeKey.decode(cursor)))
    rows = conn.execute(query.order_by(_alerts.c.raised_at.desc(), _alerts.c.id.desc()).limit(limit + 1)).all()
    rows, more = rows[:limit], len(rows) > limit
    names = definition_names(conn, {(r.definition_key, r.definition_version) for r in rows})
    items = tuple(
        AlertItem(
            id=r.id,
            kind=r.kind,
            raised_at=r.raised_at,
            message=r.message,
            department=r.department,
            recipient_role=r.recipient_role,
            case_id=r.case_id,
            case_number=r.number,
            case_state=r.case_state,
            definition_key=r.definition_key,
            definition_name=names.get((r.definition_key, r.definition_version), r.definition_key),
            task_id=r.task_id,
            step_id=r.step_id,
            step_name=r.step_name,
            task_state=r.task_state,
            assignee=r.assignee,
            sla_state=r.task_sla_state if r.task_id is not None else r.case_sla_state,
            due_at=r.task_due_at if r.task_id is not None else r.case_due_at,
            open=(r.task_state in _OPEN) if r.task_id is not None else (r.case_state in _LIVE),
        )
        for r in rows
    )
    next_cursor = TimeKey(items[-1].raised_at, items[-1].id).encode() if more and items else None
    return Page(items, next_cursor)


__all__ = ["ALERT_KINDS", "ALERT_LABELS", "AlertItem", "alerts"]
