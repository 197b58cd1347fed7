"""流程设计 (the designers' studio): the published definitions and their versions, an editor that shows
every validation problem at its line and redraws the flowchart as the text changes, a simulation of 200
cases before publishing, publishing (the same checks and storage as `tongban publish`), and what
changed between two versions, drawn on the flowchart. Designers only."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from markupsafe import Markup, escape

from orchestrator.definition.compare import Comparison, compare
from orchestrator.definition.model import Definition, Department
from orchestrator.definition.source import Problem
from orchestrator.engine.errors import Busy, InvalidData
from orchestrator.engine.publish import publish_text
from orchestrator.render import KIND_LABELS, StepOverlay, inline_svg, render
from orchestrator.store.db import reading
from orchestrator.studio import (
    SIMULATED_CASES,
    SIMULATION_SECONDS,
    TEXT_LIMIT,
    TextCheck,
    check_text,
    definitions,
    departments_in,
    simulate_text,
    source_of,
    versions,
)

from ..accounts import Viewer, audit
from ..deps import Services, WebError, client_ip, require, services

router = APIRouter()
designer = require("designer")

KEY = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
ADDED, CHANGED = "#a5d6a7", "#ffe082"  # fills on the flowchart: added steps green, changed amber


# ---------------------------------------------------------------------------------------------------
# helpers shared with the 办事指南 pages


def flowchart_svg(
    definition: Definition,
    departments: Mapping[str, Department],
    overlay: Mapping[str, StepOverlay] | None = None,
) -> Markup:
    """The flowchart as inline SVG (render's bytes without the XML prolog), named for screen readers."""
    svg = render(definition, departments, "svg", overlay).decode("utf-8")
    return Markup(_sized(svg, definition.name))


_SIZE = re.compile(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"\s+viewBox="[\d.-]+ [\d.-]+ ([\d.]+) ([\d.]+)"')
SHRINK = 0.6  # a wide chart shrinks to the page down to this share of its size, then scrolls sideways


def _sized(svg: str, name: str) -> str:
    """The drawing at graphviz's own size, shrinking to the page but not below SHRINK of it, so a wide
    process scrolls rather than turning its text unreadable."""
    label = f"{name}流程图"
    svg = svg[svg.index("<svg") :]
    found = _SIZE.match(svg)
    if found is None:  # not graphviz's usual head: leave its size alone
        return inline_svg(svg, label)
    width, height, box_width, box_height = (float(v) for v in found.groups())
    head = (
        f'<svg role="img" aria-label="{escape(label)}" width="{width:.0f}pt" height="{height:.0f}pt" '
        f'viewBox="0 0 {box_width:g} {box_height:g}" '
        f'style="min-width: {width * 4 / 3 * SHRINK:.0f}px"'
    )
    return head + svg[found.end() :]


def _departments(svc: Services) -> dict[str, Department]:
    with reading(svc.engine.db) as conn:
        return departments_in(conn)


def _published(svc: Services, key: str, version: int | None = None) -> tuple[int, Definition, str]:
    """(version, definition, text) of a published version (the latest without ``version``), or 404."""
    with reading(svc.engine.db) as conn:
        found = versions(conn, key)
        if not found:
            raise WebError(404, "not_found", f"流程定义 {key} 尚未发布")
        number = version or found[0].version
        text = source_of(conn, key, number)
        if text is None:
            raise WebError(404, "not_found", f"流程定义 {key} 没有第 {number} 版")
        definition = svc.engine.definitions.get(conn, key, number)
    return number, definition, text


def _problem_rows(problems: list[Problem]) -> list[dict[str, Any]]:
    return [
        {"line": p.line, "column": p.column, "message": p.message, "severity": "warning" if p.warning else "error"}
        for p in problems
    ]


def _changes_overlay(comparison: Comparison) -> dict[str, StepOverlay]:
    overlay = {step_id: StepOverlay(color=ADDED, note="新增") for step_id, _ in comparison.steps.added}
    for changed in comparison.steps.changed:
        overlay[changed.id] = StepOverlay(color=CHANGED, note="已修改：" + "、".join(changed.keys))
    return overlay


# ---------------------------------------------------------------------------------------------------
# the list, one definition, its source, two versions compared


@router.get("/studio")
def studio_home(request: Request, viewer: Viewer = Depends(designer), svc: Services = Depends(services)) -> Response:
    with reading(svc.engine.db) as conn:
        rows = definitions(conn)
        department_count = len(departments_in(conn))
    return svc.templates.TemplateResponse(
        request, "studio/index.html", {"nav": "studio", "rows": rows, "department_count": department_count}
    )


@router.get("/studio/schema.json")
def schema(viewer: Viewer = Depends(designer)) -> Response:
    """The JSON Schema `tongban schema` prints: the editor completes keys and values from it."""
    document = Definition.model_json_schema(mode="validation")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "Tongban process definition (一件事)"
    return JSONResponse(document, headers={"Cache-Control": "private, max-age=300"})


@router.get("/studio/edit")
def edit(
    request: Request,
    key: str | None = Query(None, pattern=KEY, max_length=64),
    version: int | None = Query(None, ge=1, le=1_000_000),
    viewer: Viewer = Depends(designer),
    svc: Services = Depends(services),
) -> Response:
    """The editor, holding a published version's text (the latest without ``version``) or a starter."""
    departments = _departments(svc)
    text = _starter(departments) if key is None else _published(svc, key, version)[2]
    return _editor(request, svc, text, departments)


@router.post("/studio/upload")
async def upload(
    request: Request,
    file: UploadFile = File(...),
    viewer: Viewer = Depends(designer),
    svc: Services = Depends(services),
) -> Response:
    """A YAML file from the designer's disk, opened in the editor (nothing is stored)."""
    raw = await file.read(TEXT_LIMIT * 4 + 1)
    if len(raw) > TEXT_LIMIT * 4:
        raise WebError(413, "too_large", f"文件过大：流程定义最多 {TEXT_LIMIT:,} 个字符")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise WebError(422, "invalid_data", "文件不是 UTF-8 编码的文本：请以 UTF-8 保存 YAML 文件后再上传") from None
    return _editor(request, svc, _text(text), _departments(svc))


def _editor(
    request: Request,
    svc: Services,
    text: str,
    departments: Mapping[str, Department],
    *,
    status: int = 200,
    message: str | None = None,
) -> Response:
    context = {
        "nav": "studio",
        "text": text,
        "message": message,
        "departments": sorted(departments),
        "cases": SIMULATED_CASES,
        "seconds": SIMULATION_SECONDS,
    }
    context.update(_check_context(svc, text, departments))
    return svc.templates.TemplateResponse(request, "studio/edit.html", context, status_code=status)


@router.get("/studio/{key}")
def definition_page(
    request: Request,
    key: str,
    version: int | None = Query(None, ge=1, le=1_000_000),
    published: str | None = Query(None, pattern=r"^(new|unchanged)$"),
    viewer: Viewer = Depends(designer),
    svc: Services = Depends(services),
) -> Response:
    _key(key)
    number, definition, _text = _published(svc, key, version)
    departments = _departments(svc)
    with reading(svc.engine.db) as conn:
        history = versions(conn, key)
    context = {
        "nav": "studio",
        "key": key,
        "version": number,
        "latest": history[0].version,
        "history": history,
        "definition": definition,
        "departments": departments,
        "svg": flowchart_svg(definition, departments),
        "published": published,
        "compare_base": number - 1 if number > 1 else 1,
        "compare_target": number if number > 1 else history[0].version,
        "kind_labels": KIND_LABELS,
    }
    return svc.templates.TemplateResponse(request, "studio/definition.html", context)


@router.get("/studio/{key}/source")
def definition_source(
    key: str,
    version: int | None = Query(None, ge=1, le=1_000_000),
    viewer: Viewer = Depends(designer),
    svc: Services = Depends(services),
) -> Response:
    """The text of a version, exactly as published (download)."""
    _key(key)
    number, _definition, text = _published(svc, key, version)
    return PlainTextResponse(
        text,
        media_type="application/yaml; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{key}-v{number}.yaml"'},
    )


@router.get("/studio/{key}/compare")
def compare_page(
    request: Request,
    key: str,
    base: int | None = Query(None, ge=1, le=1_000_000),
    target: int | None = Query(None, ge=1, le=1_000_000),
    viewer: Viewer = Depends(designer),
    svc: Services = Depends(services),
) -> Response:
    """What changed from version ``base`` to version ``target`` (default: the latest and the one before)."""
    _key(key)
    with reading(svc.engine.db) as conn:
        history = versions(conn, key)
    if not history:
        raise WebError(404, "not_found", f"流程定义 {key} 尚未发布")
    target = target or history[0].version
    base = base or max(1, target - 1)
    base_number, old, _ = _published(svc, key, base)
    target_number, new, _ = _published(svc, key, target)
    departments = _departments(svc)
    comparison = compare(old, new)
    context = {
        "nav": "studio",
        "key": key,
        "history": history,
        "base": base_number,
        "target": target_number,
        "old": old,
        "definition": new,
        "comparison": comparison,
        "svg": flowchart_svg(new, departments, _changes_overlay(comparison)),
        "added_colour": ADDED,
        "changed_colour": CHANGED,
    }
    return svc.templates.TemplateResponse(request, "studio/compare.html", context)


def _key(key: str) -> None:
    if len(key) > 64 or not re.match(KEY, key):
        raise WebError(404, "not_found", f"流程定义 {key[:64]} 不存在")


# ---------------------------------------------------------------------------------------------------
# check, simulate, publish a text


def _check_context(svc: Services, text: str, departments: Mapping[str, Department]) -> dict[str, Any]:
    """What the editor shows beside the text: problems at their lines, warnings, the flowchart, and
    what changes against the latest published version of the same key."""
    checked: TextCheck = check_text(text, departments)
    context: dict[str, Any] = {
        "check": checked,
        "problems_json": json.dumps(_problem_rows(checked.problems + checked.warnings), ensure_ascii=False),
        "svg": None,
        "comparison": None,
        "previous": None,
        "added_colour": ADDED,
        "changed_colour": CHANGED,
    }
    definition = checked.definition
    if definition is None:
        return context
    overlay = None
    with reading(svc.engine.db) as conn:
        history = versions(conn, definition.key)
        if history:
            previous = svc.engine.definitions.get(conn, definition.key, history[0].version)
            context["previous"] = history[0].version
            context["comparison"] = compare(previous, definition)
            overlay = _changes_overlay(context["comparison"])
    context["svg"] = flowchart_svg(definition, departments, overlay)
    return context


def _text(text: str) -> str:
    if len(text) > TEXT_LIMIT:
        raise WebError(413, "too_large", f"流程定义最多 {TEXT_LIMIT:,} 个字符")
    return text.replace("\r\n", "\n")


@router.post("/studio/check")
def check(
    request: Request, text: str = Form(""), viewer: Viewer = Depends(designer), svc: Services = Depends(services)
) -> Response:
    """htmx, as the text changes: the problems at their lines and the flowchart redrawn."""
    text = _text(text)
    context = _check_context(svc, text, _departments(svc))
    context["oob"] = True
    return svc.templates.TemplateResponse(request, "studio/_check.html", context)


@router.post("/studio/simulate")
def simulate(
    request: Request, text: str = Form(""), viewer: Viewer = Depends(designer), svc: Services = Depends(services)
) -> Response:
    """htmx: 200 cases of the text run to the end on a scratch database, with the figures per step."""
    text = _text(text)
    report, error = None, None
    try:
        report = simulate_text(text, _departments(svc), calendar=svc.engine.calendar)
    except InvalidData as exc:
        message = "无法模拟：" + exc.problems[0] if len(exc.problems) == 1 else "无法模拟：定义有以下问题"
        error = {"message": message, "details": exc.problems}
    except Busy as exc:
        error = {"message": "暂时无法模拟：" + exc.message, "details": []}
    context = {"report": report, "error": error, "cases": SIMULATED_CASES, "kind_labels": KIND_LABELS}
    return svc.templates.TemplateResponse(request, "studio/_simulation.html", context)


@router.post("/studio/publish")
def publish(
    request: Request, text: str = Form(""), viewer: Viewer = Depends(designer), svc: Services = Depends(services)
) -> Response:
    """Publish the text as the next version: checked once, those bytes stored (as `tongban publish` does)."""
    text = _text(text)
    departments = _departments(svc)
    result = publish_text(svc.engine.db, text, departments, datetime.now(UTC))
    if result.problems:
        message = f"未发布：发现 {len(result.problems)} 处错误，修正后再发布（未保存任何内容）"
        return _editor(request, svc, text, departments, status=422, message=message)
    audit(
        svc.engine.db,
        viewer.user_id,
        "definition_published" if result.changed else "definition_unchanged",
        f"{result.key} v{result.version}",
        client_ip(request),
        key=result.key,
        version=result.version,
        changed=result.changed,
    )
    state = "new" if result.changed else "unchanged"
    return RedirectResponse(f"/studio/{result.key}?version={result.version}&published={state}", status_code=303)


STARTER = """\
# 新的一件事：改写 key、name 和各步骤；右侧随输入显示错误和流程图。
# 语言说明见 docs/definition-language.md；按 Ctrl-空格 补全键名。
key: {key}
name: 新的一件事
summary: 一句话说明一并办理哪些事项
case_kind: promised
limits: {{promised: 3d, statutory: 20d}}
form:
  - {{key: applicant_name, label: 申请人姓名, type: text, required: true}}
materials:
  - {{key: id_card, label: 申请人身份证明, source: government}}
steps:
  - {{id: accept, kind: acceptance, name: 综合受理, department: {first}, limit: 1h}}
  - {{id: review, kind: approval, name: 审核, department: {second}, after: [accept], limit: 2d}}
  - id: issue
    kind: issue
    name: 统一出件
    department: {first}
    after: [review]
    limit: 2h
    delivery: [window, mail, online]
remedy: 如不服本决定，可以自收到本决定之日起六十日内申请行政复议，或者自收到本决定之日起六个月内提起行政诉讼。
"""


def _starter(departments: Mapping[str, Department]) -> str:
    codes = list(departments) or ["zwfw"]
    first = "zwfw" if "zwfw" in departments else codes[0]
    second = next((c for c in codes if c != first), first)
    return STARTER.format(key="xin-shixiang", first=first, second=second)
