"""流程设计 over HTTP on both databases: a designer pastes a definition with a mistake and sees it at its
line, fixes it, simulates it, publishes it (audited), and compares the versions; nobody else may."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from sqlalchemy import select

from orchestrator.store.models import AuditEntry, DefinitionVersion
from web.accounts import audit_entries

from ..conftest import FIXTURES
from .conftest import csrf_of, log_in_page

ORIGINAL = (FIXTURES / "kaiban-mini.yaml").read_text(encoding="utf-8")
# version 2: the licence limit changed, social removed, a tax registration added before the issue step
CHANGED = (
    ORIGINAL.replace("limit: 0.5d, lead: true", "limit: 4h, lead: true")
    .replace(
        "{id: social, kind: approval, name: 社保登记, department: rsj, after: [licence], limit: 2h, "
        "when: employees > 0}",
        "{id: tax, kind: approval, name: 税务登记, department: swj, after: [licence], limit: 2h}",
    )
    .replace("after: [seal, invoice, social]", "after: [seal, invoice, tax]")
    + "guide: {who: 在本市申请设立登记的企业}\n"
)
WITH_MISTAKE = CHANGED.replace("department: gaj", "department: gongan")


def line_of(text: str, token: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if token in line)


MISTAKE_LINE = line_of(WITH_MISTAKE, "gongan")  # the seal step


def designer(client):
    log_in_page(client, "designer")
    return {"X-CSRF-Token": csrf_of(client.get("/studio").text)}


def versions(engine, key="kaiban-mini"):
    with engine.db.connect() as conn:
        return conn.execute(
            select(DefinitionVersion.version, DefinitionVersion.source)
            .where(DefinitionVersion.key == key)
            .order_by(DefinitionVersion.version)
        ).all()


def test_the_studio_lists_the_definitions_with_their_versions(client):
    designer(client)
    page = client.get("/studio")
    assert page.status_code == 200
    assert "kaiban-mini" in page.text and "开办企业一件事" in page.text and "第 1 版" in page.text
    detail = client.get("/studio/kaiban-mini")
    assert detail.status_code == 200
    assert "<svg" in detail.text and 'role="img"' in detail.text  # the flowchart, inline
    for shown in ("营业执照核发", "住所使用证明", "可容缺后补", "承诺时限", "1工作日", "8.5工作日", "参保职工人数"):
        assert shown in detail.text
    assert client.get("/studio/no-such").status_code == 404
    source = client.get("/studio/kaiban-mini/source")
    assert source.status_code == 200 and source.text == ORIGINAL


@pytest.mark.parametrize("user", ["scjg1", "scjg_boss", "zwfw1", "manager", "admin"])
def test_only_designers_enter_the_studio(client, user):
    log_in_page(client, user)
    token = csrf_of(client.get("/login").text)
    assert client.get("/studio").status_code == 403
    assert client.get("/studio/edit").status_code == 403
    answer = client.post("/studio/check", data={"text": ORIGINAL, "csrf_token": token})
    assert answer.status_code == 403


def test_a_mistake_is_shown_at_its_line_and_the_fixed_text_is_drawn(client):
    headers = designer(client)
    answer = client.post("/studio/check", data={"text": WITH_MISTAKE}, headers={**headers, "HX-Request": "true"})
    assert answer.status_code == 200
    assert "发现 1 处错误" in answer.text and f"第 {MISTAKE_LINE} 行" in answer.text
    assert "unknown department &#39;gongan&#39;" in answer.text
    problems = json.loads(re.search(r'id="problems-data">(.*?)</script>', answer.text, re.S).group(1))
    assert problems == [
        {
            "line": MISTAKE_LINE,
            "column": WITH_MISTAKE.splitlines()[MISTAKE_LINE - 1].index("gongan") + 1,
            "message": "step 'seal': unknown department 'gongan'; departments are listed in departments.yaml",
            "severity": "error",
        }
    ]
    assert "<svg" not in answer.text and 'id="chart-note" hx-swap-oob="true"' in answer.text

    fixed = client.post("/studio/check", data={"text": CHANGED}, headers={**headers, "HX-Request": "true"})
    assert (
        "没有错误" in fixed.text
        and json.loads(re.search(r'id="problems-data">(.*?)</script>', fixed.text, re.S).group(1)) == []
    )
    assert '<div id="chart" hx-swap-oob="true">' in fixed.text and "<svg" in fixed.text
    # against the published version 1: what changes, coloured on the flowchart
    assert "与已发布的第 1 版相比" in fixed.text
    assert "新增 税务登记" in fixed.text and "删除 社保登记" in fixed.text and "修改 营业执照核发" in fixed.text
    assert 'fill="#a5d6a7"' in fixed.text and 'fill="#ffe082"' in fixed.text


def test_a_yaml_syntax_error_and_an_empty_text_are_problems_too(client):
    headers = designer(client)
    broken = client.post("/studio/check", data={"text": "key: x\nname: 甲: 乙\n"}, headers=headers)
    assert "第 2 行，第 8 列" in broken.text and "YAML syntax error" in broken.text
    empty = client.post("/studio/check", data={"text": "  "}, headers=headers)
    assert "the text is empty" in empty.text
    too_long = client.post("/studio/check", data={"text": "#" * 200_001}, headers=headers)
    assert too_long.status_code == 413


def test_simulating_runs_200_cases_and_shows_each_steps_figures(client, engine):
    headers = designer(client)
    answer = client.post("/studio/simulate", data={"text": CHANGED}, headers={**headers, "HX-Request": "true"})
    assert answer.status_code == 200
    assert "模拟结果：200 件办件" in answer.text
    for step in ("营业执照核发", "税务登记", "统一出件"):
        assert step in answer.text
    assert "办结" in answer.text and "营业执照" in answer.text
    assert len(versions(engine)) == 1  # nothing is published into the real database
    refused = client.post("/studio/simulate", data={"text": WITH_MISTAKE}, headers=headers)
    assert "无法模拟" in refused.text and "gongan" in refused.text


def test_publishing_stores_the_text_as_the_next_version_and_is_audited(client, engine):
    headers = designer(client)
    answer = client.post("/studio/publish", data={"text": CHANGED}, headers=headers, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/studio/kaiban-mini?version=2&published=new"
    assert [(v, s) for v, s in versions(engine)][-1] == (2, CHANGED)  # those very bytes
    page = client.get(answer.headers["location"])
    assert "已发布：开办企业一件事（kaiban-mini）第 2 版" in page.text
    entry = audit_entries(engine.db)[0]
    assert (entry.user_id, entry.action, entry.target) == ("designer", "definition_published", "kaiban-mini v2")
    assert entry.details == {"key": "kaiban-mini", "version": 2, "changed": True}

    again = client.post("/studio/publish", data={"text": CHANGED}, headers=headers, follow_redirects=False)
    assert again.headers["location"] == "/studio/kaiban-mini?version=2&published=unchanged"
    assert len(versions(engine)) == 2
    assert audit_entries(engine.db)[0].action == "definition_unchanged"


def test_a_text_with_a_mistake_is_not_published(client, engine):
    headers = designer(client)
    answer = client.post("/studio/publish", data={"text": WITH_MISTAKE}, headers=headers)
    assert answer.status_code == 422
    assert "未发布" in answer.text and f"第 {MISTAKE_LINE} 行" in answer.text
    assert "gongan" in answer.text  # the text stays in the editor
    assert len(versions(engine)) == 1
    with engine.db.connect() as conn:
        assert conn.execute(select(AuditEntry).where(AuditEntry.action.like("definition%"))).first() is None


@pytest.mark.parametrize("user", ["manager", "scjg_boss", "admin"])
def test_nobody_but_a_designer_publishes(client, engine, user):
    log_in_page(client, user)
    token = csrf_of(client.get("/login").text)
    answer = client.post("/studio/publish", data={"text": CHANGED, "csrf_token": token})
    assert answer.status_code == 403 and "需要角色：designer" in answer.text
    assert len(versions(engine)) == 1


def test_publishing_needs_the_csrf_token(client, engine):
    log_in_page(client, "designer")
    assert client.post("/studio/publish", data={"text": CHANGED}).status_code == 403
    assert len(versions(engine)) == 1


def test_two_versions_compared_on_the_flowchart(client):
    headers = designer(client)
    client.post("/studio/publish", data={"text": CHANGED}, headers=headers)
    page = client.get("/studio/kaiban-mini/compare?base=1&target=2")
    assert page.status_code == 200
    assert "第 1 版 → 第 2 版" in page.text
    assert "新增 税务登记（<code>tax</code>）" in page.text
    assert "删除 社保登记（<code>social</code>）" in page.text
    assert "limit: 0.5d → 4h" in page.text
    assert "after: [&#34;seal&#34;, &#34;invoice&#34;, &#34;social&#34;]" in page.text
    assert "已删除的步骤不在图中：社保登记" in page.text
    assert "guide: {&#34;covers&#34;: null, &#34;who&#34;: null" in page.text  # the guide block added
    svg = page.text[page.text.index("<svg") :]
    assert 'fill="#a5d6a7"' in svg and 'fill="#ffe082"' in svg and "新增" in svg and "已修改：after" in svg
    assert client.get("/studio/kaiban-mini/compare").text.count("第 1 版 → 第 2 版") >= 1  # the default pair
    assert client.get("/studio/kaiban-mini/compare?base=1&target=9").status_code == 404
    assert client.get("/studio/kaiban-mini/compare?base=x").status_code == 422


def test_the_editor_opens_a_version_a_starter_or_an_uploaded_file(client):
    headers = designer(client)
    page = client.get("/studio/edit?key=kaiban-mini&version=1")
    assert page.status_code == 200 and "营业执照核发" in page.text and "没有错误" in page.text
    assert 'hx-trigger="keyup changed delay:800ms"' in page.text
    starter = client.get("/studio/edit")
    assert "key: xin-shixiang" in starter.text and "没有错误" in starter.text  # the starter is valid as it is
    uploaded = client.post(
        "/studio/upload",
        files={"file": ("kaiban-mini.yaml", WITH_MISTAKE.encode("utf-8"), "application/yaml")},
        headers=headers,
    )
    assert uploaded.status_code == 200 and "gongan" in uploaded.text and f"第 {MISTAKE_LINE} 行" in uploaded.text
    not_text = client.post(
        "/studio/upload", files={"file": ("x.yaml", b"\xff\xfe\x00", "application/yaml")}, headers=headers
    )
    assert not_text.status_code == 422
    assert client.get("/studio/edit?key=Bad_Key").status_code == 422


def test_a_wide_flowchart_keeps_readable_text_and_shows_all_of_the_drawing():
    from orchestrator.definition.validator import check_paths
    from web.pages.studio import SHRINK, flowchart_svg

    from ..conftest import DEFINITIONS

    checked = check_paths([DEFINITIONS / "gongcheng-shigong-xuke.yaml"])[0]
    svg = str(flowchart_svg(checked.definition, checked.departments))
    width, height, box_width, box_height, least = re.match(
        r'<svg role="img" aria-label="工程建设项目施工许可（并联审批）流程图" width="([\d.]+)pt" height="([\d.]+)pt" '
        r'viewBox="0 0 ([\d.]+) ([\d.]+)" style="min-width: (\d+)px"',
        svg,
    ).groups()
    scale = float(box_width) / float(width)  # the drawing's own scale (graphviz draws at its dpi)
    assert abs(float(box_height) / float(height) - scale) < 0.01
    assert abs(int(least) - float(width) * 4 / 3 * SHRINK) <= 2


def test_the_schema_for_completion_is_the_languages(client):
    designer(client)
    schema = client.get("/studio/schema.json").json()
    assert set(schema["required"]) == {"key", "name", "steps"}
    assert {"guide", "materials", "limits"} <= set(schema["properties"])
    assert set(schema["properties"]["steps"]["items"]["discriminator"]["mapping"]) == {
        "acceptance",
        "survey",
        "approval",
        "auto",
        "issue",
        "notify",
    }


# ---------------------------------------------------------------------------------------------------
# in a browser


@pytest.mark.browser
def test_a_designer_authors_simulates_and_publishes_in_the_browser(page, engine):
    from .conftest import SCREENSHOTS, browser_log_in

    browser_log_in(page, "designer")
    page.goto("/studio")
    page.get_by_role("link", name="编辑").first.click()
    page.wait_for_selector(".CodeMirror")
    assert page.locator("#check").get_by_text("没有错误").is_visible()

    # completion: a new key at the top level offers the language's keys
    page.evaluate("() => { const e = window.studioEditor; e.focus(); e.setCursor(e.lineCount(), 0); }")
    page.keyboard.press("Enter")
    page.keyboard.type("ca")
    hints = page.locator(".CodeMirror-hints")
    try:  # typing opens the hints; a check answer landing at that moment may close them again
        hints.wait_for(timeout=3000)
    except PlaywrightTimeout:
        page.keyboard.press("Control+Space")  # the documented way, always there
        hints.wait_for()
    assert "case_kind" in hints.inner_text()
    page.keyboard.press("Escape")

    # the designer pastes a definition with a mistake: the error at its line, in the list and the gutter
    page.evaluate("text => window.studioEditor.setValue(text)", WITH_MISTAKE)
    problem = page.locator("#check .problem-list li").first
    problem.wait_for()
    assert f"第 {MISTAKE_LINE} 行" in problem.inner_text() and "unknown department 'gongan'" in problem.inner_text()
    page.wait_for_function(
        "line => !!(window.studioEditor.lineInfo(line).gutterMarkers || {})['CodeMirror-lint-markers']",
        arg=MISTAKE_LINE - 1,
    )
    assert page.locator(".CodeMirror-lint-mark-error").first.inner_text() == "gongan"
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "studio-error.png"), full_page=False)

    # fixed from the keyboard: jump to the problem, replace the department
    problem.locator("button.goto").click()
    for _ in "gongan":
        page.keyboard.press("Delete")
    page.keyboard.type("gaj")
    page.locator("#check").get_by_text("没有错误").wait_for()
    assert "新增 税务登记" in page.locator("#check").inner_text()
    page.locator("#chart svg").wait_for()
    assert page.locator("#chart svg").inner_html().count("#a5d6a7") >= 1  # the added step, green

    page.get_by_role("button", name="模拟 200 件办件").click()
    page.get_by_text("模拟结果：200 件办件").wait_for(timeout=90_000)
    assert page.locator("table.sim-steps tbody tr").count() == 6
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "studio.png"), full_page=True)

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="发布").click()
    page.wait_for_url("**/studio/kaiban-mini?version=2&published=new")
    assert "已发布：开办企业一件事（kaiban-mini）第 2 版" in page.locator("#messages").inner_text()
    assert versions(engine)[-1] == (2, CHANGED)

    # the 办事指南 follows the new version, for anyone
    page.context.clear_cookies()
    page.goto("/guide")
    page.get_by_role("link", name="开办企业一件事").click()
    page.get_by_role("heading", name="开办企业一件事 办事指南").wait_for()
    assert "税务登记" in page.locator("#steps-title + ol").inner_text()
    assert "在本市申请设立登记的企业" in page.locator("#who-title + p").inner_text()
    assert page.locator(".badge-now").inner_text() == "马上办"
    if SCREENSHOTS:
        page.set_viewport_size({"width": 1200, "height": 900})
        page.screenshot(path=str(SCREENSHOTS / "guide.png"), full_page=True)
