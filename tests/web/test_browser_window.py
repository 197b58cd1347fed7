"""In a real browser: a window accepts an application with a deferred material (容缺受理) and prints the
notice; an applicant checks the progress of a finished case and rates it (好差评)."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from orchestrator.store.models import Case, Evaluation

from .conftest import SCREENSHOTS, browser_log_in
from .test_pages_window import COMPANY, ID_CARD, LEASE, PERSON, engine_case, finish, number_of


def shoot(page, name: str, **options) -> None:
    if SCREENSHOTS is not None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name), **options)


def test_a_window_accepts_with_a_deferred_material_and_prints_the_notice(page, engine):
    browser_log_in(page, "zwfw1")
    page.goto("/window")
    page.get_by_role("link", name="受理新申请：开办企业一件事").click()
    page.get_by_label("申请人姓名或单位名称").fill("深圳市示例科技有限公司")
    page.get_by_label("证件类型").select_option("uscc")
    page.get_by_label("证件号码").fill(COMPANY[:-1] + "0")  # a wrong check character first
    page.get_by_label("联系电话").fill("13800138000")
    page.get_by_label("企业名称").fill("深圳市示例科技有限公司")
    page.get_by_label("参保职工人数").fill("3")
    page.get_by_label(ID_CARD).check()  # the lease is not there yet
    page.get_by_role("button", name="登记申请，进入受理审查").click()

    error = page.locator("#err-applicant_id")
    expect(error).to_contain_text("统一社会信用代码校验位不正确")
    expect(page.get_by_label("证件号码")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label(ID_CARD)).to_be_checked()  # what was entered stays
    page.get_by_label("证件号码").fill(COMPANY)
    page.get_by_role("button", name="登记申请，进入受理审查").click()
    page.wait_for_url("**/window/cases/TB*")
    expect(page.get_by_role("status").first).to_contain_text("申请已登记")

    accept = page.locator("#form-accept")
    expect(accept.get_by_label(LEASE)).to_be_checked()  # the deferrable material, offered for 容缺
    accept.get_by_label("补齐期限").select_option("1d")
    accept.get_by_label("受理意见（可选）").fill("申请人已签署容缺承诺书")
    shoot(page, "window.png", full_page=True)
    accept.get_by_role("button", name="受理（容缺）").click()
    expect(page.get_by_role("status").first).to_contain_text("已受理")
    number = page.url.split("/window/cases/")[1].split("?")[0]
    with engine.db.connect() as conn:
        case = conn.execute(select(Case.state, Case.deferred, Case.centre).where(Case.number == number)).one()
    assert (case.state, case.deferred, case.centre) == ("accepted", ["lease"], "city")

    page.get_by_role("link", name="打印容缺受理通知书").click()
    notice = page.locator("article.notice-paper")
    expect(notice.get_by_role("heading", name="容缺受理通知书")).to_be_visible()
    expect(notice).to_contain_text(number)
    expect(notice).to_contain_text(LEASE)
    expect(notice).to_contain_text("市民中心")
    expect(notice).to_contain_text("/progress")
    page.evaluate("window.print = () => { window.printed = true }")  # the browser's print dialog, stood in for
    page.get_by_role("button", name="打印容缺受理通知书").click()
    assert page.evaluate("window.printed") is True
    page.emulate_media(media="print")
    page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.get_by_role("button", name="打印容缺受理通知书")).to_be_hidden()
    shoot(page, "notice.png", full_page=True)


def test_an_applicant_follows_a_finished_case_and_rates_it(page, engine):
    case_id = engine_case(engine, name="张三")
    finish(engine, case_id)
    number = number_of(engine, case_id)

    page.goto("/progress")
    page.get_by_label("办件编号").fill(number)
    page.get_by_label("申请人证件号码").fill("110105194912310021")  # someone else's id
    page.get_by_role("button", name="查询").click()
    expect(page.get_by_role("alert")).to_contain_text("未查询到该办件")
    page.get_by_label("办件编号").fill(number)
    page.get_by_label("申请人证件号码").fill(PERSON)
    page.get_by_role("button", name="查询").click()

    expect(page.get_by_role("heading", name="开办企业一件事")).to_be_visible()
    expect(page.locator(".state-big")).to_contain_text("办结")
    expect(page.locator(".steps")).to_contain_text("营业执照核发")
    expect(page.locator(".steps")).to_contain_text("统一出件")
    expect(page.locator("main")).not_to_contain_text("zwfw1")
    page.get_by_label("满意", exact=True).check()
    page.get_by_label("评价内容").fill("一次办好，很方便")
    shoot(page, "progress.png", full_page=True)
    page.get_by_role("button", name="提交评价").click()
    expect(page.get_by_role("status").first).to_contain_text("感谢您的评价（满意）")
    expect(page.get_by_role("button", name="提交评价")).to_have_count(0)
    with engine.db.connect() as conn:
        rating = conn.execute(select(Evaluation.level, Evaluation.rater).where(Evaluation.case_id == case_id)).one()
    assert tuple(rating) == (2, PERSON)
