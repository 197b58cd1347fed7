"""效能监察 (/dashboard) over HTTP on SQLite and PostgreSQL, on the Monday of tests/engine/test_performance.py
(five 开办企业 cases: two red cards, a refusal waiting for its leader, three rated); one browser test.
"""

from __future__ import annotations

import csv
import io
import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from orchestrator.store.models import Case, Urge

from ..engine.test_performance import run_monday
from .conftest import SCREENSHOTS, browser_log_in, csrf_of, log_in_page

MONDAY = "start=2026-03-02&end=2026-03-02"


def numbers(engine) -> dict[int, str]:
    with engine.db.connect() as conn:
        return dict(conn.execute(select(Case.id, Case.number)).all())


def csv_rows(answer) -> list[list[str]]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(answer.text.lstrip("\ufeff"))))


def test_a_manager_sees_live_counts_period_figures_and_the_red_cards(client, engine, clock):
    monday = run_monday(engine, clock)
    number = numbers(engine)
    log_in_page(client, "manager")
    page = client.get(f"/dashboard?{MONDAY}")
    assert page.status_code == 200, page.text
    html = page.text
    assert "效能监察" in html and "2026-03-02 至 2026-03-02（1 天）" in html
    # the red cards link to their cases, the most late first; the refusal waits for its leader
    red = html[html.index('id="alerts-red"') : html.index('id="alerts-yellow"')]
    assert red.index(f'href="/cases/{number[monday.d]}"') < red.index(f'href="/cases/{number[monday.c]}"')
    assert "超时 1.0 小时" in red and "营业执照核发" in red
    refusals = html[html.index('id="alerts-refusals"') :]
    assert number[monday.d] in refusals and "经营范围涉及前置许可" in refusals
    # live: 市场监督管理局 has one open task, red; its count links to the tasks behind it
    assert 'href="/dashboard/tasks?department=scjg&amp;sla=overdue"' in html
    assert 'href="/cases?definition=kaiban-mini&amp;sla=overdue"' not in html  # the case itself is on time
    # period figures: licence 3 done on time, average 50 minutes
    assert "营业执照核发" in html and "50 分钟" in html
    assert client.get(f"/dashboard/live?{MONDAY}", headers={"HX-Request": "true"}).text.count("<table>") == 2
    tasks = client.get("/dashboard/tasks?department=scjg&sla=overdue").text
    assert number[monday.c] in tasks and number[monday.d] not in tasks
    every = client.get("/dashboard/tasks?sla=open").text  # all open tasks, whatever their colour
    assert every.count('href="/cases/') == 4 and "差评整改" in every
    window = csv_rows(client.get("/dashboard/tasks.csv?department=zwfw&sla=open"))
    assert sorted(row[2] for row in window[1:]) == [
        "不予审批报告：综合受理（拟不予受理）",
        "差评整改：不满意",
        "综合受理",
    ]
    assert client.get("/dashboard/tasks?department=nowhere&sla=overdue").status_code == 404
    assert client.get("/dashboard/tasks?department=scjg&sla=purple").status_code == 422


def test_plain_staff_and_windows_may_not_open_it_and_bad_periods_are_refused(client, engine):
    for user in ("scjg1", "zwfw1", "designer"):
        log_in_page(client, user)
        assert client.get("/dashboard").status_code == 403, user
        assert client.get("/dashboard/departments.csv").status_code == 403, user
        assert client.get("/dashboard/heatmap/kaiban-mini").status_code == 403, user
    log_in_page(client, "admin")
    assert client.get("/dashboard").status_code == 200
    for query in ("start=2026-13-01", "start=2026-03-05&end=2026-03-01", "start=2024-01-01&end=2026-03-01"):
        answer = client.get(f"/dashboard?{query}")
        assert answer.status_code == 422, query
    assert client.get("/dashboard/nothing.csv").status_code == 404


def test_a_supervisor_sees_their_departments_only(client, engine, clock):
    monday = run_monday(engine, clock)
    number = numbers(engine)
    log_in_page(client, "scjg_boss")
    html = client.get(f"/dashboard?{MONDAY}").text
    red = html[html.index('id="alerts-red"') : html.index('id="alerts-yellow"')]
    assert number[monday.c] in red and number[monday.d] not in red  # D's acceptance is 综合窗口's
    assert "本部门（scjg）" in html
    assert client.get("/dashboard/tasks?department=zwfw&sla=overdue").status_code == 404
    log_in_page(client, "xf_boss")  # 消防 takes no part in 开办企业
    assert client.get(f"/dashboard/heatmap/kaiban-mini?{MONDAY}").status_code == 404
    assert client.get(f"/dashboard/heatmap/survey-mini?{MONDAY}").status_code == 200


def test_every_table_exports_as_csv(client, engine, clock):
    monday = run_monday(engine, clock)
    number = numbers(engine)
    log_in_page(client, "manager")
    departments = csv_rows(client.get(f"/dashboard/departments.csv?{MONDAY}"))
    assert departments[0][:3] == ["部门", "办结任务", "按时办结率(%)"]
    scjg = next(row for row in departments if row[0].startswith("市场监督管理局"))
    assert scjg[1:5] == ["3", "100.0", "50.0", "60.0"]  # licences 30, 60, 60 minutes, all on time
    red = csv_rows(client.get(f"/dashboard/red-cards.csv?{MONDAY}"))
    assert [row[0] for row in red[1:]] == [number[monday.d], number[monday.c]]
    assert red[2][6] == "-60"  # working minutes left: an hour late
    answer = client.get(f"/dashboard/bad-ratings.csv?{MONDAY}")
    assert (
        "attachment" in answer.headers["content-disposition"]
        and "20260302-20260302" in answer.headers["content-disposition"]
    )
    (bad,) = csv_rows(answer)[1:]
    assert bad[0] == number[monday.b] and bad[2] == "4" and bad[6] == "整改中"
    targets = csv_rows(client.get(f"/dashboard/targets.csv?{MONDAY}"))
    visit = next(row for row in targets if row[0] == "最多跑一次")
    assert visit[5:8] == ["2 / 3 件办结办件", "66.7", "未达标"]
    heat = csv_rows(client.get(f"/dashboard/heatmap/kaiban-mini.csv?{MONDAY}"))
    seal = next(row for row in heat if row[0] == "seal")
    assert seal[3] == "2" and seal[-1] == "66.7"  # two of the three closed cases took 公章刻制
    for name in ("live-departments", "live-definitions", "definitions", "steps", "trends", "yellow-cards",
                 "refusals", "ratings-departments", "ratings-definitions", "visits", "stars"):  # fmt: skip
        assert len(csv_rows(client.get(f"/dashboard/{name}.csv?{MONDAY}"))) >= 1, name


def test_the_heat_map_colours_each_step_and_titles_it_with_its_figures(client, engine, clock):
    run_monday(engine, clock)
    log_in_page(client, "manager")
    page = client.get(f"/dashboard/heatmap/kaiban-mini?{MONDAY}")
    assert page.status_code == 200, page.text
    svg = page.text[page.text.index("<svg") : page.text.index("</svg>")]
    licence = re.search(r'<g [^>]*data-step="licence"[^>]*>\s*<title>([^<]*)</title>', svg)
    assert licence, svg[:2000]
    assert "期内办结：3 件，按时率 100.0%" in licence.group(1) and "P90 1.0 小时" in licence.group(1)
    assert "办结办件中走此环节：2/3" in re.search(r'data-step="seal"[^>]*>\s*<title>([^<]*)<', svg).group(1)
    assert "分支 67%" in svg  # on the seal step's note
    assert client.get(f"/dashboard/heatmap/nothing?{MONDAY}").status_code == 404
    assert client.get(f"/dashboard/heatmap?{MONDAY}").status_code == 200


def test_ratings_and_targets_pages_state_their_figures_and_rules(client, engine, clock):
    run_monday(engine, clock)
    log_in_page(client, "manager")
    ratings = client.get(f"/dashboard/ratings?{MONDAY}").text
    assert "等了很久" in ratings and "整改中" in ratings and "计入完成过该办件任务的每个部门" in ratings
    targets = client.get(f"/dashboard/targets?{MONDAY}").text
    assert "1 / 5 件申请" in targets  # online
    assert "3 / 4 件窗口申请" in targets  # at a centre's window
    assert "2 / 3 件办结办件" in targets and "证照窗口领取 +1 次" in targets
    assert "得分 = 60 × 按时办结率 + 40 × 满意率" in targets and "★★★★★" in targets


def test_a_manager_urges_a_red_card_and_staff_may_not(client, engine, clock):
    monday = run_monday(engine, clock)
    log_in_page(client, "manager")
    form = client.get(f"/dashboard/urge/{monday.licence_c}", headers={"HX-Request": "true"})
    assert form.status_code == 200 and 'name="message"' in form.text and 'value="supervise" checked' in form.text
    token = csrf_of(client.get("/dashboard").text)
    answer = client.post(
        f"/dashboard/urge/{monday.licence_c}",
        data={"level": "supervise", "message": "请今日办结", "within": "4h", "csrf_token": token},
    )
    assert answer.status_code == 200 and "已督办" in answer.text
    with engine.db.connect() as conn:
        urge = conn.execute(select(Urge.task_id, Urge.level, Urge.by, Urge.message)).one()
    assert tuple(urge) == (monday.licence_c, "supervise", "manager", "请今日办结")
    red = client.get(f"/dashboard/alerts?{MONDAY}").text
    assert "督办 1" in red
    # a task no longer open offers no form
    done = client.get(f"/dashboard/urge/{monday.rectification - 1}")  # E's issue step, completed
    assert done.status_code == 200 and "不可催办" in done.text
    bad = client.post(f"/dashboard/urge/{monday.licence_c}", data={"level": "shout", "csrf_token": token})
    assert bad.status_code == 422
    log_in_page(client, "scjg1")
    token = csrf_of(client.get("/login").text)
    assert client.post(f"/dashboard/urge/{monday.licence_c}", data={"csrf_token": token}).status_code == 403
    log_in_page(client, "gaj_boss")  # a supervisor, but not of 市场监督管理局
    assert client.get(f"/dashboard/urge/{monday.licence_c}").status_code == 404


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_in_a_browser_a_manager_follows_a_red_card_exports_and_opens_a_heat_map(page, engine, clock, tmp_path):
    monday = run_monday(engine, clock)
    number = numbers(engine)
    browser_log_in(page, "manager")
    page.goto(f"/dashboard?{MONDAY}")
    red = page.locator("#alerts-red")
    assert red.get_by_role("link", name=number[monday.c]).is_visible()
    with page.expect_download() as download:
        page.locator("#alerts-red").get_by_role("link", name="导出 CSV").click()
    saved = tmp_path / "red.csv"
    download.value.save_as(saved)
    assert number[monday.c] in saved.read_text(encoding="utf-8-sig")
    # 督办 from the list
    row = red.locator("tr", has_text=number[monday.c])
    row.get_by_role("button", name=re.compile("催办或督办")).click()
    row.get_by_role("button", name="发出").click()
    assert row.get_by_role("status").inner_text() == "已督办"
    # live: the licence done meanwhile, the red count drops without a reload (the counts poll every 10 s)
    red_tile = page.locator("#live .tile.late .n").first
    expect(red_tile).to_have_text("2")
    engine.complete_task(monday.licence_c, "scjg1")
    expect(red_tile).to_have_text("1", timeout=15_000)
    # the heat map: a step's figures in its title
    page.get_by_role("link", name="瓶颈热力图").click()
    page.get_by_role("link", name="开办企业一件事").click()
    page.wait_for_url(re.compile(r"/dashboard/heatmap/kaiban-mini"))
    title = page.locator('g[data-step="licence"] > title').text_content()
    assert "期内办结：4 件，按时率 75.0%" in title  # C's licence, done late meanwhile, counts too
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "heatmap-test.png"), full_page=True)
    # a red card leads to its case (the case page is the staff pages'; here its address is what counts)
    page.goto(f"/dashboard?{MONDAY}")
    page.locator("#alerts-red").get_by_role("link", name=number[monday.d]).click()
    page.wait_for_url(re.compile(rf"/cases/{number[monday.d]}$"))


def test_csv_cells_a_spreadsheet_would_run_are_quoted():
    from web.pages.dashboard import Cell, Table

    table = Table("x", "x", ("内容", "剩余"), ((Cell("=HYPERLINK(\"http://x\")"), Cell("超时", value=-60)),
                                               (Cell("@SUM(A1)"), Cell("-5"))))  # fmt: skip
    rows = list(csv.reader(io.StringIO(table.csv())))
    assert rows[1:] == [['\'=HYPERLINK("http://x")', "-60"], ["'@SUM(A1)", "-5"]]
