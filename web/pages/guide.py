"""办事指南 (service guides): one per published 一件事, generated from its latest version, public (no log-in),
with a printable version. The content is orchestrator.guide's; this module only reads and renders."""

from __future__ import annotations

import re
from collections import OrderedDict
from threading import Lock

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from markupsafe import Markup

from orchestrator.definition.model import Definition, Department
from orchestrator.guide import LABEL_RULES, ServiceGuide, service_guide
from orchestrator.store.db import reading
from orchestrator.studio import definitions, departments_in

from ..accounts import Viewer, centres
from ..deps import Services, WebError, optional_viewer, services
from .studio import KEY, flowchart_svg

router = APIRouter()


class _Flowcharts:
    """Drawn flowcharts by (key, version, the names of its departments): a version never changes, and a
    public page should not start graphviz on every request."""

    def __init__(self, size: int = 64) -> None:
        self._drawn: OrderedDict[tuple, Markup] = OrderedDict()
        self._size = size
        self._lock = Lock()

    def get(self, definition: Definition, version: int, departments: dict[str, Department]) -> Markup:
        names = tuple((code, departments[code].name if code in departments else "") for code in definition.departments)
        key = (definition.key, version, names)
        with self._lock:
            if key in self._drawn:
                self._drawn.move_to_end(key)
                return self._drawn[key]
        svg = flowchart_svg(definition, departments)
        with self._lock:
            self._drawn[key] = svg
            while len(self._drawn) > self._size:
                self._drawn.popitem(last=False)
        return svg


_flowcharts = _Flowcharts()


def _guide(svc: Services, key: str) -> tuple[ServiceGuide, Markup]:
    if len(key) > 64 or not re.match(KEY, key):
        raise WebError(404, "not_found", "没有这个办事指南")
    with reading(svc.engine.db) as conn:
        published = {row.key: row for row in definitions(conn)}
        if key not in published:
            raise WebError(404, "not_found", f"没有这个办事指南：{key} 尚未发布")
        version = published[key].latest
        definition = svc.engine.definitions.get(conn, key, version)
        departments = departments_in(conn)
    guide = service_guide(definition, departments, list(centres(svc.engine.db).values()), version)
    return guide, _flowcharts.get(definition, version, departments)


@router.get("/guide")
def guide_list(
    request: Request, viewer: Viewer | None = Depends(optional_viewer), svc: Services = Depends(services)
) -> Response:
    all_centres = list(centres(svc.engine.db).values())
    with reading(svc.engine.db) as conn:
        rows = definitions(conn)
        departments = departments_in(conn)
        guides = [
            service_guide(svc.engine.definitions.get(conn, row.key, row.latest), departments, all_centres, row.latest)
            for row in rows
        ]
    context = {"nav": "guide", "guides": guides, "rules": LABEL_RULES}
    return svc.templates.TemplateResponse(request, "guide/index.html", context)


@router.get("/guide/{key}")
def guide_page(
    request: Request, key: str, viewer: Viewer | None = Depends(optional_viewer), svc: Services = Depends(services)
) -> Response:
    guide, svg = _guide(svc, key)
    context = {"nav": "guide", "guide": guide, "svg": svg, "rules": LABEL_RULES}
    return svc.templates.TemplateResponse(request, "guide/guide.html", context)


@router.get("/guide/{key}/print")
def guide_print(request: Request, key: str, svc: Services = Depends(services)) -> Response:
    guide, svg = _guide(svc, key)
    context = {"guide": guide, "svg": svg, "rules": LABEL_RULES}
    return svc.templates.TemplateResponse(request, "guide/print.html", context)
