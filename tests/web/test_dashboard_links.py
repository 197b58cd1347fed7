"""效能监察's links to the case search: every figure that links to /cases lists exactly the cases it counts,
on SQLite and PostgreSQL, over the week of tests/engine/test_performance.py (online and window applications,
some at a centre, closed on different days with and without 补正, rated, a refusal, a rectification).
And /cases itself: the dashboard's filters listed in Chinese, kept across pages, refused when bad.
"""

from __future__ import annotations

import re
from datetime import date
from html import unescape
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import select

from orchestrator.calendar import day_span
from orchestrator.store.models import Case, Task
from web.pages import search as search_page
from web.pages.search import FILTERS, LINK_FILTERS, cases_link

from ..engine.test_performance import run_week
from .conftest import log_in_page

# (first day, last day): the Monday, the Tuesday, the Monday after, and all of them
PERIODS = [
    ("2026-03-02", "2026-03-02"),
    ("2026-03-03", "2026-03-03"),
    ("2026-03-09", "2026-03-09"),
    ("2026-03-01", "2026-03-09"),
]
PAGES = ("/dashboard", "/dashboard/targets", "/dashboard/ratings", "/dashboard/heatmap/kaiban-mini")
LINK = re.compile(r'<a href="(/cases\?[^"]*)"[^>]*>([^<]*)</a>')
FOUND = re.compile(r'<td><a href="/cases/([^"?]+)">')


def links_of(html: str) -> list[tuple[str, str]]:
    """(href, text) of every link to the case search."""
    return [(unescape(href), unescape(text).strip()) for href, text in LINK.findall(html)]


def numbers_found(client, href: str) -> set[str]:
    answer = client.get(href)
    assert answer.status_code == 200, (href, answer.text[-2000:])
    assert "下一页" not in answer.text, href  # one page holds them all
    return set(FOUND.findall(answer.text))


def completed_tasks(engine, params: dict[str, str]) -> list[str]:
    """The case number of every completed task a task count's link stands for (one per task)."""
    tasks, cases = Task.__table__, Case.__table__
    start, end = day_span(date.fromisoformat(params["done_from"]), date.fromisoformat(params["done_to"]))
    query = (
        select(cases.c.number)
        .join_from(tasks, cases, cases.c.id == tasks.c.case_id)
        .where(tasks.c.state == "completed", tasks.c.completed_at >= start, tasks.c.completed_at < end)
    )
    if "department" in params:
        query = query.where(tasks.c.department == params["department"])
    if "step" in params:
        query = query.where(tasks.c.step_id == params["step"])
    if "definition" in params:
        query = query.where(cases.c.definition_key == params["definition"])
    with engine.db.connect() as conn:
        return list(conn.execute(query).scalars())


def test_every_figure_links_to_exactly_the_cases_it_counts(client, engine, clock):
    run_week(engine, clock)
    log_in_page(client, "manager")
    names_used: set[str] = set()
    followed = 0
    for first, last in PERIODS:
        for page in PAGES:
            answer = client.get(f"{page}?start={first}&end={last}")
            assert answer.status_code == 200, (page, answer.text[-2000:])
            links = links_of(answer.text)
            rates = {(href, text) for href, text in links if re.fullmatch(r"[\d.]+%", text)}
            counts = {href for href, text in links if (href, text) not in rates}
            for href, text in links:
                params = dict(parse_qsl(urlsplit(href).query))
                assert set(params) <= set(FILTERS), (page, href)  # every name one /cases knows
                names_used |= set(params)
                if (href, text) in rates:  # a rate links to the cases of the count beside it
                    assert href in counts, (page, href)
                    continue
                assert re.match(r"\d+", text), (page, href, text)
                figure = int(re.match(r"\d+", text).group())
                found = numbers_found(client, href)
                followed += 1
                if "done_from" in params:  # a count of tasks: the cases of exactly those tasks
                    tasks = completed_tasks(engine, params)
                    assert (len(tasks), set(tasks)) == (figure, found), (page, first, href)
                else:
                    assert len(found) == figure, (page, first, href, found)
    assert followed > 60
    assert names_used >= set(LINK_FILTERS), set(LINK_FILTERS) - names_used


def test_a_task_count_lists_a_case_once_however_many_of_its_tasks_it_counts(client, engine, clock):
    run_week(engine, clock)
    log_in_page(client, "manager")
    html = client.get("/dashboard?start=2026-03-02&end=2026-03-09").text
    zwfw = next((href, text) for href, text in links_of(html) if "department=zwfw" in href and "step=" not in href)
    # 综合窗口: five acceptances, E's returned 补正 round, three issues, B's rectification, D's 否定报备 …
    tasks = completed_tasks(engine, dict(parse_qsl(urlsplit(zwfw[0]).query)))
    assert int(zwfw[1]) == len(tasks) > len(set(tasks)) == len(numbers_found(client, zwfw[0]))


def test_the_case_search_lists_the_dashboards_filters_and_keeps_them_across_pages(client, engine, clock, monkeypatch):
    week = run_week(engine, clock)
    m = week.monday
    with engine.db.connect() as conn:
        number = dict(conn.execute(select(Case.id, Case.number)).all())
    log_in_page(client, "manager")
    href = cases_link(department="scjg", done_from="2026-03-02", done_to="2026-03-02", max_visits="1", channel="window")
    answer = client.get(href)
    assert answer.status_code == 200
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", answer.text))
    assert "筛选：" in text and "部门 市场监督管理局" in text and "任务办结 2026-03-02 至 2026-03-02" in text
    assert "窗口申请" in text and "跑动 ≤ 1 次" in text and "部门、环节和任务办结日期指同一项" in text
    assert set(FOUND.findall(answer.text)) == {number[m.a]}  # E: 3 visits; B: online
    assert 'href="/cases">清除这些筛选</a>' in answer.text
    assert '<input type="hidden" name="department" value="scjg">' in answer.text  # the form keeps them
    narrowed = client.get(cases_link(state="completed", definition="kaiban-mini", rated_department="gaj"))
    assert 'href="/cases?definition=kaiban-mini&amp;state=completed">清除这些筛选' in narrowed.text
    assert "评价计入部门 公安局" in narrowed.text and "完成过该办件任务（差评整改、否定报备除外）" in narrowed.text
    assert set(FOUND.findall(narrowed.text)) == {number[m.a], number[m.e]}

    not_live = client.get(cases_link(channel="online", live="0")).text
    assert "不在办" in not_live and set(FOUND.findall(not_live)) == {number[m.b]}  # F is live

    monkeypatch.setattr(search_page, "PAGE_SIZE", 1)
    first = client.get(cases_link(channel="online", max_visits="0")).text
    assert FOUND.findall(first) == [number[week.f]]  # the newest first
    following = unescape(re.search(r'href="(/cases\?[^"]*cursor=[^"]+)">下一页', first).group(1))
    assert "channel=online" in following and "max_visits=0" in following
    second = client.get(following).text
    assert FOUND.findall(second) == [number[m.b]] and "跑动 ≤ 0 次" in second and "下一页" not in second
    polled = unescape(re.search(r'hx-get="([^"]*)"', second).group(1))  # the list refreshes itself
    assert "max_visits=0" in polled and "cursor=" in polled


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"live": "yes"}, "live", "应为 1（是）或 0（否）"),
        ({"at_centre": "2"}, "at_centre", "应为 1（是）或 0（否）"),
        ({"channel": "fax"}, "channel", "应为 online（网上申请）或 window（窗口申请）"),
        ({"visits": "-1"}, "visits", "请输入 0 到 99 之间的整数"),
        ({"max_visits": "100"}, "max_visits", "请输入 0 到 99 之间的整数"),
        ({"max_visits": "１"}, "max_visits", "请输入 0 到 99 之间的整数"),
        ({"done_from": "2026-13-01"}, "done_from", "请输入日期"),
        ({"closed_to": "9999-12-31"}, "closed_to", "请输入日期"),
        ({"rated_from": "2026-03-05", "rated_to": "2026-03-01"}, "rated_to", "结束日期不能早于开始日期"),
        ({"department": "nowhere"}, "department", "没有编码为 nowhere 的部门"),
        ({"rated_department": "x" * 300}, "rated_department", "没有编码为 " + "x" * 32 + " 的部门"),
        ({"step": "nowhere"}, "step", "没有编码为 nowhere 的环节"),
        ({"definition": "survey-mini", "step": "licence"}, "step", "没有编码为 licence 的环节"),
    ],
)
@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_a_bad_dashboard_filter_is_a_message_next_to_it(client, params, field, message):
    log_in_page(client, "manager")
    answer = client.get("/cases", params=params)
    assert answer.status_code == 422, answer.text[-1000:]
    error = re.search(rf'<p class="field-error" id="err-{field}">([^<]*)</p>', answer.text)
    assert error and message in unescape(error.group(1)), answer.text[-3000:]
    assert 'id="results"' not in answer.text


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_a_known_step_and_department_pass(client):
    log_in_page(client, "manager")
    for params in ({"definition": "kaiban-mini", "step": "licence"}, {"step": "__rectification__"},
                   {"department": "scjg", "rated_department": "zwfw"}):  # fmt: skip
        assert client.get("/cases", params=params).status_code == 200, params
    assert "环节 营业执照核发" in client.get("/cases", params={"step": "licence"}).text


def test_staff_see_only_their_departments_cases_whatever_the_filters(client, engine, clock):
    week = run_week(engine, clock)
    m = week.monday
    with engine.db.connect() as conn:
        number = dict(conn.execute(select(Case.id, Case.number)).all())
    log_in_page(client, "gaj1")  # 公安 has the seal tasks of A, B (skipped), C and E; D and F never got there
    found = set(FOUND.findall(client.get(cases_link(channel="window")).text))
    assert found == {number[m.a], number[m.c], number[m.e]}
    assert FOUND.findall(client.get(cases_link(channel="online")).text) == [number[m.b]]
    assert FOUND.findall(client.get(cases_link(live="1")).text) == []  # F, at 市场监管 now


def test_a_link_with_a_name_the_case_search_does_not_know_is_refused():
    assert cases_link(department="scjg", live="", cursor="c") == "/cases?department=scjg&cursor=c"
    with pytest.raises(ValueError, match="sla_state"):
        cases_link(sla_state="overdue")
