"""The engine's read side: named queries over indexed columns, for the web pages, the REST API and the
workers. Every function takes a SQLAlchemy ``Connection`` (open it with
``orchestrator.store.db.reading(db)``, one consistent read-only transaction; the outbox functions write and
take ``db.begin()``), an explicit ``now`` where time matters, and returns typed results (frozen
dataclasses); lists come a page at a time behind a keyset cursor, never OFFSET.

* queues (``queues.py``): ``queue`` (待办), ``claimed`` (我的在办), ``done`` (已办);
* one case (``cases.py``): ``case_detail``, ``case_path`` (the live flowchart); finding cases
  (``search.py``): ``search_cases``, ``progress`` (办理进度, for the applicant);
* ``dashboard`` (``dashboard.py``): live counts and period figures per department and definition, with
  ``refresh_work_summary`` keeping the per-day summary of closed days it reads; ``performance``
  (``performance.py``): the rest of 效能监察 — live counts, weekly trends, 黄牌/红牌 and 否定报备, a
  definition's heat map with its branch shares, 好差评, the city plan's targets and the departments' stars;
* the notification outbox (``outbox.py``): ``register_channel``, ``claim``, ``mark_delivered``,
  ``mark_failed``, ``failed_deliveries``.

docs/engine.md ("The read side") lists which index serves each read.
"""

from . import performance
from .cases import CaseDetail, CasePath, CaseSummary, StepOnPath, case_detail, case_path
from .common import DueKey, Page, TimeKey
from .dashboard import (
    Dashboard,
    DefinitionFigures,
    DepartmentFigures,
    StepFigures,
    WorkTime,
    dashboard,
    refresh_work_summary,
    summarized_through,
)
from .outbox import (
    Claim,
    FailedDelivery,
    OutboxItem,
    claim,
    failed_deliveries,
    mark_delivered,
    mark_failed,
    register_channel,
)
from .queues import DoneItem, QueueItem, TaskFilter, claimed, done, memberships_of, queue
from .search import CaseFilter, Progress, ProgressStep, progress, search_cases, step_names

__all__ = [
    "CaseDetail",
    "CaseFilter",
    "CasePath",
    "CaseSummary",
    "Claim",
    "Dashboard",
    "DefinitionFigures",
    "DepartmentFigures",
    "DoneItem",
    "DueKey",
    "FailedDelivery",
    "OutboxItem",
    "Page",
    "Progress",
    "ProgressStep",
    "QueueItem",
    "StepFigures",
    "StepOnPath",
    "TaskFilter",
    "TimeKey",
    "WorkTime",
    "case_detail",
    "case_path",
    "claim",
    "claimed",
    "dashboard",
    "done",
    "failed_deliveries",
    "mark_delivered",
    "mark_failed",
    "memberships_of",
    "performance",
    "progress",
    "queue",
    "refresh_work_summary",
    "register_channel",
    "search_cases",
    "step_names",
    "summarized_through",
]
