"""办事指南 over HTTP on both databases: public, generated from the latest published version, printable."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.engine.publish import publish_text
from orchestrator.guide import LABEL_RULES
from orchestrator.store.db import reading
from orchestrator.studio import departments_in

from ..conftest import FIXTURES
from .conftest import log_in_page

KAIBAN = (FIXTURES / "kaiban-mini.yaml").read_text(encoding="utf-8")


def test_the_guides_are_listed_for_anyone(client):
    page = client.get("/guide")
    assert page.status_code == 200
    assert '<a href="/guide/kaiban-mini">开办企业一件事</a>' in page.text
    assert "survey-mini" in page.text or "/guide/survey-mini" in page.text
    for rule in LABEL_RULES.values():
        assert rule in page.text
    assert "退出" not in page.text  # nobody logged in: the public header


def test_a_guide_says_what_the_definition_says_and_no_more(client):
    page = client.get("/guide/kaiban-mini")
    assert page.status_code == 200
    text = page.text
    assert "开办企业一件事 办事指南" in text and "企业设立登记、公章刻制、发票申领、社保登记一次办结" in text
    # the materials, 容缺 marked
    assert "法定代表人身份证明" in text and "住所使用证明" in text and "<strong>可容缺</strong>，受理后补交" in text
    # the steps and departments, in stages
    assert "以下 3 项同时办理（并联）" in text
    for shown in ("营业执照核发", "市场监督管理局", "公章刻制备案", "公安局", "限时 0.5工作日"):
        assert shown in text
    assert "视情形办理：是否刻制公章" in text
    # limits
    assert "承诺时限</dt><dd>1工作日" in text and "法定时限</dt><dd>8.5工作日" in text
    # who and fees are not stated in kaiban-mini: said so, not guessed
    assert "未写明申请对象" in text and "未写明收费标准" in text and "不收费" not in text
    # where: every centre (全市通办), and the labels with their rules
    assert "市民中心" in text and "福田区政务服务中心" in text and "区级" in text
    assert '<span class="badge badge-now"' in text and '<span class="badge badge-near"' in text
    assert "✓ 是</strong>：承诺时限 1工作日，不超过 1 个工作日。" in text
    assert "<svg" in text and "如不服本决定" in text
    assert "第 1 版自动生成" in text


def test_the_guide_follows_the_latest_version(client, engine, clock):
    with reading(engine.db) as conn:
        departments = departments_in(conn)
    text = KAIBAN + "guide: {who: 本市新设立的企业, fees: 不收费}\n"
    published = publish_text(engine.db, text, departments, datetime.now(UTC))
    assert published.version == 2
    page = client.get("/guide/kaiban-mini").text
    assert "本市新设立的企业" in page and "<p>不收费</p>" in page and "第 2 版自动生成" in page
    assert "未写明申请对象" not in page and "未写明收费标准" not in page


def test_the_print_version_has_the_same_content_without_the_menus(client):
    page = client.get("/guide/kaiban-mini/print")
    assert page.status_code == 200
    assert 'onclick="window.print()"' in page.text and "主菜单" not in page.text
    assert "住所使用证明" in page.text and "<svg" in page.text and "九、服务标签说明" in page.text


def test_an_unknown_guide_is_404(client):
    assert client.get("/guide/no-such-thing").status_code == 404
    assert client.get("/guide/Not_A_Key").status_code == 404
    assert client.get("/guide/no-such-thing/print").status_code == 404


def test_a_logged_in_person_keeps_their_header(client):
    log_in_page(client, "scjg1")
    page = client.get("/guide/kaiban-mini")
    assert page.status_code == 200 and "退出" in page.text and 'href="/guide" aria-current="page"' in page.text
