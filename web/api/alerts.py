"""``GET /api/alerts``: 黄牌 (warning) and 红牌 (overdue) cards, newest first, for the viewer's departments
(managers and admins: every department), with where each task or case stands now."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.definition.model import IDENT_PATTERN
from orchestrator.engine.read.alerts import alerts
from orchestrator.store.db import reading

from ..accounts import Viewer
from ..deps import Services, WebError, services
from .access import case_reader
from .models import ERRORS, CursorText, Limit, Page, time_cursor

router = APIRouter(tags=["alerts"])

AlertKind = Literal["warning", "overdue", "negative_decision", "provisional_deadline"]


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str = Field(description="warning (黄牌), overdue (红牌), negative_decision (否定报备), provisional_deadline")
    label: str
    raised_at: datetime
    message: str
    department: str | None
    recipient_role: str | None
    case_id: int
    case_number: str
    case_state: str
    definition_key: str
    definition_name: str
    task_id: int | None = Field(description="null for a case's own card")
    step_id: str | None
    step_name: str | None
    task_state: str | None
    assignee: str | None
    sla_state: str | None = Field(description="now: the task's (or the case's)")
    due_at: datetime | None
    open: bool = Field(description="the task is still open, or the case still running")


@router.get("/alerts", response_model=Page[AlertOut], responses=ERRORS)
def list_alerts(
    kind: Annotated[
        list[AlertKind] | None, Query(max_length=4, description="default: warning and overdue (黄牌, 红牌)")
    ] = None,
    department: Annotated[str | None, Query(min_length=1, max_length=32, pattern=IDENT_PATTERN)] = None,
    open: Annotated[bool, Query(description="only alerts whose task (or case) is still open")] = False,
    cursor: CursorText = None,
    limit: Limit = 50,
    viewer: Viewer = Depends(case_reader),
    svc: Services = Depends(services),
) -> Page[AlertOut]:
    """SLA alerts, newest first, a page at a time (keyset: pass `next` as `cursor`)."""
    if department is not None:
        if department not in viewer.departments and not viewer.reads_everything:
            raise WebError(403, "forbidden", f"你不是部门 {department} 的成员，不能查看其预警")
        departments: list[str] | None = [department]
    else:
        departments = None if viewer.reads_everything else sorted(viewer.departments)
    if departments == []:
        return Page[AlertOut](items=[], next=None)
    with reading(svc.engine.db) as conn:
        page = alerts(
            conn,
            departments=departments,
            kinds=kind or ("warning", "overdue"),
            open_only=open,
            cursor=time_cursor(cursor),
            limit=limit,
        )
    return Page[AlertOut](items=[AlertOut.model_validate(a) for a in page.items], next=page.next)
