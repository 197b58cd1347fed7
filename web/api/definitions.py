"""``/api/definitions``: the published 一件事 (what a portal builds its application form from), one
definition's form fields, materials, steps and limits, and its flowchart (SVG)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from orchestrator.definition.model import DEFINITION_KEY_PATTERN, Definition, FormField, Limits, Material, Step
from orchestrator.definition.model import Department as DepartmentSpec
from orchestrator.engine.read.common import latest_definition_names
from orchestrator.render import render
from orchestrator.store.db import reading
from orchestrator.store.models import Department

from ..accounts import Viewer
from ..deps import Services, api_viewer, services
from .models import ERRORS, SVG

router = APIRouter(tags=["definitions"])

DefinitionKey = Annotated[
    str, PathParam(min_length=1, max_length=64, pattern=DEFINITION_KEY_PATTERN, description="e.g. kaiban-qiye")
]
Version = Annotated[int | None, Query(ge=1, le=2**31 - 1, description="a published version; leave out for the newest")]


class DefinitionBrief(BaseModel):
    key: str
    name: str
    version: int = Field(description="the newest published version: new cases run it")
    summary: str
    tags: list[str]
    case_kind: str = Field(description="promised (承诺件) or instant (即办件)")
    limits: Limits
    departments: list[str]


class DefinitionOut(BaseModel):
    key: str
    name: str
    version: int
    latest_version: int
    summary: str
    tags: list[str]
    case_kind: str
    limits: Limits
    remedy: str | None = Field(description="told with a refusal: 行政复议 / 行政诉讼")
    form: list[FormField] = Field(description="the one form (一表式): send its values as `form` when submitting")
    materials: list[Material] = Field(description="the material list: send the keys supplied as `materials`")
    steps: list[Step]
    departments: dict[str, str] = Field(description="code → name of every department taking part")


def _brief(version: int, definition: Definition) -> DefinitionBrief:
    return DefinitionBrief(
        key=definition.key,
        name=definition.name,
        version=version,
        summary=definition.summary,
        tags=list(definition.tags),
        case_kind=definition.case_kind,
        limits=definition.limits,
        departments=list(definition.departments),
    )


@router.get("/definitions", response_model=list[DefinitionBrief], responses=ERRORS)
def list_definitions(viewer: Viewer = Depends(api_viewer), svc: Services = Depends(services)) -> list[DefinitionBrief]:
    """Every published 一件事, at its newest version."""
    with reading(svc.engine.db) as conn:
        keys = sorted(latest_definition_names(conn))
        return [_brief(*svc.engine.definitions.latest(conn, key)) for key in keys]


def _one(svc: Services, key: str, version: int | None) -> tuple[int, int, Definition, dict[str, DepartmentSpec]]:
    """(version, newest version, definition, its departments) in one read."""
    with reading(svc.engine.db) as conn:
        latest, definition = svc.engine.definitions.latest(conn, key)
        if version is not None and version != latest:
            definition = svc.engine.definitions.get(conn, key, version)
        departments = departments_of(conn, definition.departments)
    return version or latest, latest, definition, departments


def departments_of(conn: Connection, codes: list[str]) -> dict[str, DepartmentSpec]:
    """The departments (as the flowchart names them) of these codes."""
    rows = conn.execute(Department.__table__.select().where(Department.code.in_(codes))).all()
    return {
        r.code: DepartmentSpec(
            code=r.code, name=r.name, parent=r.parent, supervisor_role=r.supervisor_role, roles=list(r.roles or [])
        )
        for r in rows
    }


@router.get("/definitions/{key}", response_model=DefinitionOut, responses=ERRORS)
def get_definition(
    key: DefinitionKey,
    version: Version = None,
    viewer: Viewer = Depends(api_viewer),
    svc: Services = Depends(services),
) -> DefinitionOut:
    """One definition: its form fields, materials, steps (with their departments and limits) and limits."""
    number, latest, definition, departments = _one(svc, key, version)
    return DefinitionOut(
        key=definition.key,
        name=definition.name,
        version=number,
        latest_version=latest,
        summary=definition.summary,
        tags=list(definition.tags),
        case_kind=definition.case_kind,
        limits=definition.limits,
        remedy=definition.remedy,
        form=list(definition.form),
        materials=list(definition.materials),
        steps=list(definition.steps),
        departments={code: departments[code].name if code in departments else code for code in definition.departments},
    )


@router.get(
    "/definitions/{key}/flowchart.svg",
    response_class=Response,
    responses={**ERRORS, **SVG},
)
def definition_flowchart(
    key: DefinitionKey,
    version: Version = None,
    viewer: Viewer = Depends(api_viewer),
    svc: Services = Depends(services),
) -> Response:
    """The definition's flowchart: one lane per department, parallel steps side by side."""
    _, _, definition, departments = _one(svc, key, version)
    return Response(render(definition, departments, "svg"), media_type="image/svg+xml")
