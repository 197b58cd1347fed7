"""``GET /api/progress/{number}?id_number=``: 办理进度 for the applicant, without logging in. The case
number AND the applicant's id must match (else 404, the same answer as for an unknown number); the
answer names departments and steps, never a member of staff."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.engine.errors import NotFound
from orchestrator.engine.read import progress
from orchestrator.store.db import reading

from ..deps import Services, WebError, services
from ..pages.progress import count_failed_look_up, look_up_wait_s
from .models import ERRORS, NO_CONTROL, CaseNumber

router = APIRouter(tags=["progress"])


class ProgressStepOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    department_name: str
    state: str = Field(description="done, current, or waiting (for your 补正 materials)")
    since: datetime
    finished_at: datetime | None
    due_at: datetime | None


class ProgressOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: str
    definition_name: str
    state: str
    state_label: str
    submitted_at: datetime
    accepted_at: datetime | None
    due_at: datetime | None = Field(description="承诺办结时间 (moved by suspensions and extensions)")
    closed_at: datetime | None
    outcome: str | None
    outcome_label: str | None
    reason: str | None = Field(description="the written reason of a refusal, rejection or termination")
    done: list[ProgressStepOut]
    current: list[ProgressStepOut]
    materials_owed: list[str] = Field(description="补正 asked for, or 容缺 materials still owed")
    can_rate: bool = Field(description="好差评 is open to you now")


@router.get("/progress/{number}", response_model=ProgressOut, responses=ERRORS)
def case_progress(
    number: CaseNumber,
    id_number: Annotated[
        str,
        Query(
            min_length=1,
            max_length=64,
            pattern=NO_CONTROL,
            description="the applicant's 身份证号 or 统一社会信用代码, as given when applying",
        ),
    ],
    request: Request,
    svc: Services = Depends(services),
) -> ProgressOut:
    """办理进度: where the case stands, which steps are done and which are under way, the due date, the
    outcome and its reason, the materials still owed, and whether it can be rated."""
    wait = look_up_wait_s(svc, request, number)  # the page's limit on guessing, shared
    if wait is not None:
        raise WebError(429, "too_many_attempts", "查询失败次数过多，请稍后再试", headers={"Retry-After": str(wait)})
    try:
        with reading(svc.engine.db) as conn:
            found = progress(conn, number, id_number)
    except NotFound:
        count_failed_look_up(svc, request, number)
        raise
    return ProgressOut.model_validate(found)
