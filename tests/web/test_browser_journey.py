"""One 开办企业 case walked in a real browser by everyone who touches it: the window takes the application
and accepts it, each department claims and approves its task from its own 待办, the window issues the
licence, a manager reads the finished case, and the applicant follows it on the progress page and rates
it. Along the way a staff member who types another department's task address gets the 404 page."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from orchestrator.store.models import Case, Certificate, Evaluation, Task

from .conftest import browser_log_in
from .test_pages_window import COMPANY, ID_CARD, LEASE

POLL = 15_000  # ms: queues poll every 10 s
DEPARTMENTS = [  # (person, step) in the order the case reaches them; seal, invoice and social run in parallel
    ("scjg1", "营业执照核发"),
    ("gaj1", "公章刻制备案"),
    ("swj1", "发票申领"),
    ("rsj1", "社保登记"),
]


def as_person(browser, live_url, user: str):
    """A browser window of its own for ``user`` (their own cookies), logged in."""
    context = browser.new_context(base_url=live_url, locale="zh-CN", viewport={"width": 1360, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    browser_log_in(page, user)
    return page


def task_id(engine, number: str, step_id: str) -> int:
    with engine.db.connect() as conn:
        return conn.execute(
            select(Task.id).join(Case, Case.id == Task.case_id).where(Case.number == number, Task.step_id == step_id)
        ).scalar_one()


def work_from_the_queue(page, number: str, opinion: str) -> None:
    """Find the case in 待办, claim it in place, open it and approve with an opinion."""
    page.goto("/tasks")
    row = page.locator("#task-list tbody tr", has_text=number)
    expect(row).to_be_visible(timeout=POLL)
    row.get_by_role("button", name="签收").click()
    expect(row).to_contain_text("我在办")
    row.get_by_role("link", name="办理").click()
    page.get_by_label("办理意见").fill(opinion)
    page.get_by_role("button", name="通过", exact=True).click()
    expect(page.locator("#messages")).to_contain_text("已提交：通过")


def test_a_kaiban_case_goes_from_the_window_through_every_queue_to_its_licence_and_rating(browser, live_url, engine):
    window = as_person(browser, live_url, "zwfw1")
    window.goto("/window")
    window.get_by_role("link", name="受理新申请：开办企业一件事").click()
    window.get_by_label("申请人姓名或单位名称").fill("深圳市通办示例科技有限公司")
    window.get_by_label("证件类型").select_option("uscc")
    window.get_by_label("证件号码").fill(COMPANY)
    window.get_by_label("联系电话").fill("13800138000")
    window.get_by_label("企业名称").fill("深圳市通办示例科技有限公司")
    window.get_by_label("参保职工人数").fill("3")
    window.get_by_label(ID_CARD).check()
    window.get_by_label(LEASE).check()
    window.get_by_role("button", name="登记申请，进入受理审查").click()
    window.wait_for_url("**/window/cases/TB*")
    number = window.url.split("/window/cases/")[1].split("?")[0]
    window.locator("#form-accept").get_by_role("button", name="受理", exact=True).click()
    expect(window.get_by_role("status").first).to_contain_text("已受理")

    for user, step in DEPARTMENTS:
        staff = as_person(browser, live_url, user)
        if user == "gaj1":  # the licence is done; gaj1 tries the licence task's address by hand
            answer = staff.goto(f"/tasks/{task_id(engine, number, 'licence')}")
            assert answer.status == 404
            expect(staff.get_by_role("heading", name="未找到")).to_be_visible()
            expect(staff.locator("main")).not_to_contain_text("深圳市通办示例科技有限公司")
        work_from_the_queue(staff, number, f"{step}：材料齐全，同意")
        staff.context.close()

    issuer = as_person(browser, live_url, "zwfw2")  # the window's back office issues what was approved
    issuer.goto("/tasks")
    row = issuer.locator("#task-list tbody tr", has_text=number)
    expect(row).to_contain_text("统一出件", timeout=POLL)
    row.get_by_role("button", name="签收").click()
    expect(row).to_contain_text("我在办")
    row.get_by_role("link", name="办理").click()
    issuer.get_by_role("button", name="出件", exact=True).click()
    expect(issuer.locator("#messages")).to_contain_text("出件")
    with engine.db.connect() as conn:
        case = conn.execute(select(Case.id, Case.state, Case.outcome, Case.centre).where(Case.number == number)).one()
        certificates = conn.execute(select(Certificate.key).where(Certificate.case_id == case.id)).scalars().all()
    assert (case.state, case.outcome, case.centre) == ("completed", "approved", "city")
    assert certificates == ["business_licence"]

    manager = as_person(browser, live_url, "manager")  # reads every department's case, masked
    manager.goto(f"/cases/{number}")
    expect(manager.locator("main")).to_contain_text("办结")
    expect(manager.locator("main")).to_contain_text("营业执照")

    applicant = browser.new_context(base_url=live_url, locale="zh-CN").new_page()  # nobody logged in
    applicant.goto("/progress")
    applicant.get_by_label("办件编号").fill(number)
    applicant.get_by_label("申请人证件号码").fill(COMPANY)
    applicant.get_by_role("button", name="查询").click()
    expect(applicant.locator(".state-big")).to_contain_text("办结")
    for _, step in DEPARTMENTS:
        expect(applicant.locator(".steps")).to_contain_text(step)
    expect(applicant.locator("main")).not_to_contain_text("scjg1")  # no staff names
    applicant.get_by_label("非常满意", exact=True).check()
    applicant.get_by_role("button", name="提交评价").click()
    expect(applicant.get_by_role("status").first).to_contain_text("感谢您的评价")
    with engine.db.connect() as conn:
        rating = conn.execute(select(Evaluation.level, Evaluation.rater).where(Evaluation.case_id == case.id)).one()
    assert tuple(rating) == (1, COMPANY)
