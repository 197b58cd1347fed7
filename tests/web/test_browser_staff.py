"""The staff pages in a real browser (system Chromium): a new task appears in 待办 without a reload, is
claimed in place, completed with an opinion and shows in 已办; another department's task URL is the 404
page; the queue shows each SLA colour (screenshots of the queue and the task page when
TONGBAN_SCREENSHOTS names a folder)."""

from __future__ import annotations

from playwright.sync_api import expect

from ..engine.helpers import accepted_kaiban, at, case_row, open_tasks, task_row
from .conftest import SCREENSHOTS, browser_log_in

POLL = 15_000  # ms: the list polls every 10 s


def test_a_new_task_appears_is_claimed_completed_and_listed_as_done(page, engine, clock):
    browser_log_in(page, "scjg1")
    page.goto("/tasks")
    expect(page.get_by_text("部门待办已清空")).to_be_visible()
    case_id = accepted_kaiban(engine)  # made meanwhile, by someone else
    number = case_row(engine, case_id)["number"]
    licence = open_tasks(engine, case_id)["licence"]
    row = page.locator(f"#task-{licence}")
    expect(row).to_be_visible(timeout=POLL)  # no reload: the list polled
    expect(row).to_contain_text(number)
    row.get_by_role("button", name="签收").click()
    expect(row).to_contain_text("我在办")
    expect(page.locator("#messages")).to_contain_text("已签收")
    assert task_row(engine, licence)["assignee"] == "scjg1"
    row.get_by_role("link", name="办理").click()
    page.wait_for_url(f"**/tasks/{licence}")
    page.get_by_label("办理意见").fill("名称核准，材料齐全，同意登记")
    page.get_by_role("button", name="通过", exact=True).click()
    page.wait_for_url(f"**/tasks/{licence}?flash=approve")
    expect(page.locator("#messages")).to_contain_text("已提交：通过")
    assert task_row(engine, licence)["state"] == "completed"
    page.get_by_role("link", name="已办", exact=True).first.click()
    done = page.locator("#task-list")
    expect(done).to_contain_text(number)
    expect(done).to_contain_text("名称核准，材料齐全，同意登记")


def test_a_refusal_shows_in_the_message_area(page, engine, clock):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    browser_log_in(page, "scjg1")
    page.goto("/tasks")
    engine.claim_task(licence, "scjg2")  # a colleague got there first, the row still offers 签收
    page.locator(f"#task-{licence}").get_by_role("button", name="签收").click()
    expect(page.locator("#messages .flash.error")).to_contain_text("is claimed")
    assert task_row(engine, licence)["assignee"] == "scjg2"


def test_another_departments_task_url_is_the_404_page(page, engine, clock):
    licence = open_tasks(engine, accepted_kaiban(engine))["licence"]
    browser_log_in(page, "gaj1")
    answer = page.goto(f"/tasks/{licence}")
    assert answer.status == 404
    expect(page.get_by_role("heading", name="未找到")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("甲公司")


def test_the_queue_shows_each_sla_colour_in_due_order(page, engine, clock):
    """A morning's work at 市场监督管理局: licences and 初审 due through the day, seen at 14:20."""
    people = [
        ("310101198805061234", "王小明"),
        ("91310000MA1K3C7X2P", "上海青禾餐饮管理有限公司"),
        ("310104199212153321", "陈静"),
        ("91310115MA1H8QWE5K", "浦东新区云帆科技有限公司"),
        ("320102197503041217", "刘建国"),
        ("91310106MA7B9XJ31N", "静安区晨光文化传播有限公司"),
        ("310110200001018864", "赵雨桐"),
    ]
    cases = []
    for hour, minute, (person_id, name), key in [
        (9, 0, people[0], "kaiban-mini"),
        (9, 20, people[1], "kaiban-mini"),
        (9, 50, people[2], "relay-mini"),
        (10, 40, people[3], "kaiban-mini"),
        (11, 30, people[4], "relay-mini"),
        (12, 10, people[5], "kaiban-mini"),
        (13, 0, people[6], "kaiban-mini"),
    ]:
        clock.set(at(2, hour, minute))
        form = (
            {"company_name": name if len(name) > 4 else f"{name}个体工商户", "needs_seal": True, "employees": 3}
            if key == "kaiban-mini"
            else {"applicant_name": name}
        )
        materials = ["id_card", "lease"] if key == "kaiban-mini" else ["id_card"]
        case_id = engine.submit_case(key, {"id": person_id, "name": name, "phone": "13812345678"}, form, materials)
        engine.accept_case(case_id, "zwfw1", opinion="材料齐全，予以受理")
        cases.append(case_id)
    first_steps = [open_tasks(engine, c).get("licence") or open_tasks(engine, c)["first"] for c in cases]
    clock.set(at(2, 13, 10))
    engine.claim_task(first_steps[1], "scjg1")
    engine.suspend_case(cases[4], "scjg2", "inspection", "需对经营场所进行现场检验", "3d")
    clock.set(at(2, 14, 20))
    engine.sweep()

    browser_log_in(page, "scjg1")
    page.goto("/tasks")
    rows = page.locator("#task-list tbody tr")
    expect(rows).to_have_count(6)  # the claimed one is in 我的在办
    colours = [rows.nth(i).locator(".sla").get_attribute("class") for i in range(6)]
    assert colours == [
        "sla sla-overdue",
        "sla sla-overdue",
        "sla sla-warning",
        "sla sla-paused",  # by its due time as it stood when the clock stopped
        "sla sla-on_track",
        "sla sla-on_track",
    ], colours
    expect(rows.first).to_contain_text("已超")
    expect(page.locator("#task-list")).not_to_contain_text("310101198805061234")  # masked in lists
    if SCREENSHOTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "queue.png"), full_page=True)
    page.goto(f"/tasks/{first_steps[1]}")
    expect(page.get_by_role("button", name="通过", exact=True)).to_be_visible()
    expect(page.locator(".flowchart svg")).to_be_visible()
    expect(page.locator("main")).to_contain_text("91310000MA1K3C7X2P")
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "task.png"), full_page=True)
    page.get_by_role("link", name="办件全貌 →").click()
    expect(page.get_by_role("heading", name="办理环节")).to_be_visible()
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "case.png"), full_page=True)
