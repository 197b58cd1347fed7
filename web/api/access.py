"""Who may use which part of the API, and what every case or task route does around its one engine call.

* reading cases and tasks: staff, supervisors, windows (their work), managers and admins (everything,
  identities masked); designers and portal accounts are refused (403);
* changing them: staff, supervisors and windows only — a manager reads everything and changes nothing
  (403), whatever the engine would say;
* what the applicant does (submit online, supply, withdraw, evaluate): a window on the applicant's behalf,
  or a portal account (an account without any role, e.g. the 一网通办 portal's API token), naming the
  applicant, whose id must match the case's.

Which case or task within a role is the viewer's is ``web.deps.visible_case_id`` / ``visible_task`` (another
department's: 404, no leak), and what they may do to it the engine decides (409 when refused).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import Depends, Request
from sqlalchemy import select

from orchestrator.engine.read import case_detail
from orchestrator.engine.read.common import applicant_of
from orchestrator.store.db import reading
from orchestrator.store.models import Case

from ..accounts import Viewer, record_view
from ..deps import Services, WebError, api_viewer, client_ip, require
from .models import ActionResult, TaskOut, case_summary

READERS = ("staff", "supervisor", "window", "manager", "admin")
WORKERS = ("staff", "supervisor", "window")

case_reader = require(*READERS, api=True)
case_worker = require(*WORKERS, api=True)


def is_portal(viewer: Viewer) -> bool:
    """An account with no role at all: an applicant-facing client (the online portal) holds one."""
    return not viewer.roles


async def applicant_agent(viewer: Viewer = Depends(api_viewer)) -> Viewer:
    """A window (the applicant in front of it) or a portal account acts for an applicant."""
    if not (viewer.has("window") or is_portal(viewer)):
        raise WebError(
            403,
            "forbidden",
            "只有综合窗口或网上办事（门户）账号可以代申请人提交、补正、撤回或评价",
        )
    return viewer


def now(svc: Services) -> datetime:
    """The engine's clock (tests move it; in production it is the wall clock)."""
    return svc.engine.clock()


def viewed(svc: Services, viewer: Viewer, case_id: int, page: str, request: Request) -> None:
    """访问记录: every API read of a case or a task is logged."""
    record_view(svc.engine.db, viewer.user_id, case_id, page, client_ip(request))


NOT_THE_APPLICANTS = "no case with this number for this applicant; check the number and the applicant's id"


def applicants_case(svc: Services, number: str, applicant_id: str) -> int:
    """The case with this number whose applicant has this id, or 404 (the same for both: the answer
    tells nobody which numbers exist)."""
    with reading(svc.engine.db) as conn:
        row = conn.execute(select(Case.id, Case.applicant).where(Case.number == number)).first()
    if row is None or applicant_of(row.applicant)[0] != applicant_id:
        raise WebError(404, "not_found", NOT_THE_APPLICANTS)
    return row.id


def result(
    svc: Services,
    viewer: Viewer,
    case_id: int,
    task_id: int | None = None,
    created_id: int | None = None,
    certificates: list[str] | None = None,
) -> ActionResult:
    """The case (and the task) as they are after an action."""
    with reading(svc.engine.db) as conn:
        detail = case_detail(conn, case_id, now=now(svc), calendar=svc.engine.calendar)
    task = next((t for t in detail.tasks if t.id == task_id), None)
    return ActionResult(
        case=case_summary(detail.case, viewer.sees_identities),
        task=TaskOut.model_validate(task) if task is not None else None,
        created_id=created_id,
        certificates=certificates or [],
    )
