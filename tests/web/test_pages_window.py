"""综合受理, the notices, 办理进度 (public) and 办件查询 over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from html import unescape

from sqlalchemy import select
from starlette.datastructures import FormData

from orchestrator.definition.model import Definition
from orchestrator.engine import read
from orchestrator.engine.rules import NEGATIVE_REPORT_STEP
from orchestrator.store.db import reading
from orchestrator.store.models import Case, Evaluation
from web.pages import search as search_page
from web.pages.progress import MAX_FAILURES_PER_NUMBER, NOT_FOUND_TEXT
from web.pages.window import id_card_problem, parse_application, uscc_problem

from .conftest import PASSWORD, csrf_of, log_in_page

PERSON = "11010519491231002X"  # a valid 居民身份证号码 (check character X)
COMPANY = "91350100M000100Y43"  # a valid 统一社会信用代码
LEASE = "住所使用证明"
ID_CARD = "法定代表人身份证明"


def application(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "applicant_name": "深圳市示例科技有限公司",
        "applicant_id_type": "uscc",
        "applicant_id": COMPANY,
        "applicant_phone": "13800138000",
        "f_company_name": "深圳市示例科技有限公司",
        "f_needs_seal": "true",
        "f_employees": "3",
        "materials": ["id_card", "lease"],
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def window(client, user: str = "zwfw1") -> str:
    log_in_page(client, user)
    return csrf_of(client.get("/window").text)


def submit(client, csrf: str, **changes: object):
    page = client.get("/window/new/kaiban-mini").text
    key = re.search(r'name="idempotency_key" value="([0-9a-f]{32})"', page).group(1)
    data = {"csrf_token": csrf, "idempotency_key": key, **application(**changes)}
    return client.post("/window/new/kaiban-mini", data=data, follow_redirects=False)


def submitted(client, csrf: str, **changes: object) -> str:
    answer = submit(client, csrf, **changes)
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.endswith("?done=submitted")
    return location.split("/window/cases/")[1].split("?")[0]


def case_of(engine, number: str):
    with engine.db.connect() as conn:
        return conn.execute(select(Case.__table__).where(Case.number == number)).mappings().one()


def field_block(html: str, name: str) -> str:
    """The markup of the form field (div.field) holding the input named ``name``."""
    at = html.index(f'name="{name}"')
    start = html.rindex('<div class="field">', 0, at)
    end = html.find('<div class="field">', at)
    return html[start : end if end != -1 else len(html)]


def text_of(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", html))


def engine_case(engine, applicant_id: str = PERSON, name: str = "张三", materials=("id_card", "lease"), **kw) -> int:
    return engine.submit_case(
        "kaiban-mini",
        {"id": applicant_id, "name": name, "phone": "13900139000"},
        {"company_name": f"{name}的公司", "employees": 0},
        list(materials),
        channel=kw.get("channel", "window"),
        centre=kw.get("centre", "city"),
    )


def finish(engine, case_id: int) -> None:
    """Accept and work a kaiban-mini case to its end (办结), the clock moving on between the steps."""
    engine.accept_case(case_id, "zwfw1")
    for _ in range(6):
        engine.clock.advance(minutes=50)
        with reading(engine.db) as conn:
            detail = read.case_detail(conn, case_id, now=engine.clock(), calendar=engine.calendar)
        open_tasks = [t for t in detail.tasks if t.state in ("ready", "claimed")]
        if not open_tasks:
            return
        for task in open_tasks:
            user = {"scjg": "scjg1", "gaj": "gaj1", "swj": "swj1", "rsj": "rsj1", "zwfw": "zwfw1"}[task.department]
            if task.kind == "issue":
                engine.issue_certificates(task.id, user)
            else:
                engine.complete_task(task.id, user, "approve", "同意")


def number_of(engine, case_id: int) -> str:
    with engine.db.connect() as conn:
        return conn.execute(select(Case.number).where(Case.id == case_id)).scalar_one()


# ---------------------------------------------------------------------------------------------------
# who may use the window


def test_the_window_needs_a_log_in_and_the_window_role(client):
    assert client.get("/window", follow_redirects=False).headers["location"] == "/login?next=/window"
    log_in_page(client, "scjg1")
    answer = client.get("/window")
    assert answer.status_code == 403 and "没有此操作的权限" in answer.text
    assert client.get("/window/new/kaiban-mini").status_code == 403


def test_the_window_lists_the_published_definitions_and_generates_the_form(client):
    window(client)
    home = client.get("/window")
    assert home.status_code == 200
    assert "开办企业一件事" in home.text and 'href="/window/new/kaiban-mini"' in home.text
    assert "市民中心" in home.text  # the window's own centre
    form = client.get("/window/new/kaiban-mini").text
    company = field_block(form, "f_company_name")
    assert "企业名称" in company and "required" in company and 'for="f_company_name"' in company
    seal = field_block(form, "f_needs_seal")
    assert 'type="radio"' in seal and 'value="true" checked' in seal  # the field's default: true
    employees = field_block(form, "f_employees")
    assert 'type="number"' in employees and 'min="0"' in employees and 'step="1"' in employees
    assert f"{LEASE}</label>" in form and "可容缺" in form and ID_CARD in form
    assert client.get("/window/new/no-such-thing").status_code == 404
    assert client.get("/window/new/NOT%20A%20KEY").status_code == 404


# ---------------------------------------------------------------------------------------------------
# a new application


def test_a_window_application_remembers_its_centre_and_a_second_post_makes_no_second_case(client, engine):
    csrf = window(client)
    page = client.get("/window/new/kaiban-mini").text
    key = re.search(r'name="idempotency_key" value="([0-9a-f]{32})"', page).group(1)
    data = {"csrf_token": csrf, "idempotency_key": key, **application()}
    first = client.post("/window/new/kaiban-mini", data=data, follow_redirects=False)
    again = client.post("/window/new/kaiban-mini", data=data, follow_redirects=False)
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]  # a double click: one case
    number = first.headers["location"].split("/window/cases/")[1].split("?")[0]
    case = case_of(engine, number)
    assert (case["channel"], case["centre"], case["state"]) == ("window", "city", "submitted")
    assert case["applicant"] == {"name": "深圳市示例科技有限公司", "id": COMPANY, "id_type": "uscc",
                                 "phone": "13800138000"}  # fmt: skip
    assert case["form"] == {"company_name": "深圳市示例科技有限公司", "needs_seal": True, "employees": 3}
    assert case["materials"] == ["id_card", "lease"]
    screen = client.get(first.headers["location"])
    assert "申请已登记" in screen.text and number in screen.text

    client.post("/logout", data={"csrf_token": csrf})
    other = window(client, "zwfw2")
    district = case_of(engine, submitted(client, other))
    assert district["centre"] == "district"


def test_validation_errors_stand_next_to_their_fields_in_chinese(client, engine):
    csrf = window(client)
    answer = submit(
        client,
        csrf,
        applicant_name="",
        applicant_id_type="id_card",
        applicant_id="110105194912310021",
        applicant_phone="12345",
        f_company_name="  ",
        f_employees="-1",
        f_needs_seal="maybe",
    )
    assert answer.status_code == 422
    html = answer.text
    for name, message in (
        ("applicant_name", "请填写申请人姓名或单位名称"),
        ("applicant_id", "身份证号码校验位不正确"),
        ("applicant_phone", "请填写11位手机号码"),
        ("f_company_name", "请填写企业名称"),
        ("f_employees", "不能小于 0"),
        ("f_needs_seal", "请选择“是”或“否”"),
    ):
        block = field_block(html, name)
        assert message in text_of(block), (name, text_of(block))
        assert f'aria-describedby="err-{name}"' in block and 'aria-invalid="true"' in block
    assert "请更正以下 6 处后再提交" in html  # the summary on top links to each field
    assert 'href="#f_employees"' in html
    assert 'value="-1"' in field_block(html, "f_employees")  # what was typed stays
    with engine.db.connect() as conn:
        assert conn.execute(select(Case.id)).first() is None  # nothing was stored

    letters = submit(client, csrf, f_employees="3.5")
    assert letters.status_code == 422 and "请输入整数" in text_of(field_block(letters.text, "f_employees"))
    company = submit(client, csrf, applicant_id="91350100M000100Y44")
    assert "统一社会信用代码校验位不正确" in text_of(field_block(company.text, "applicant_id"))
    tampered = submit(client, csrf, materials=["id_card", "forged"])
    assert tampered.status_code == 422 and "材料清单中没有所选的材料" in tampered.text


def test_a_form_post_without_the_csrf_token_is_refused(client, engine):
    window(client)
    answer = client.post("/window/new/kaiban-mini", data=application(), follow_redirects=False)
    assert answer.status_code == 403 and "CSRF" in answer.text
    with engine.db.connect() as conn:
        assert conn.execute(select(Case.id)).first() is None


def test_the_form_parser_knows_every_field_type():
    definition = Definition.model_validate(
        {
            "key": "types-mini",
            "name": "类型测试",
            "form": [
                {"key": "kind", "label": "类别", "type": "choice", "options": ["甲", "乙"], "required": True},
                {"key": "start", "label": "开工日期", "type": "date"},
                {"key": "area", "label": "面积", "type": "number", "min": 0, "max": 1000},
                {"key": "code", "label": "代码", "type": "text", "max_length": 4},
                {"key": "flag", "label": "是否", "type": "bool", "required": True},
            ],
            "steps": [{"id": "accept", "kind": "acceptance", "name": "受理", "department": "zwfw"}],
        }
    )
    base = {"applicant_name": "张三", "applicant_id": PERSON, "applicant_phone": "0755-88889999"}
    good = parse_application(
        definition,
        FormData(
            {**base, "f_kind": "乙", "f_start": "2026-03-01", "f_area": "12.5", "f_code": "AB", "f_flag": "false"}
        ),
    )
    assert good.errors == {}
    assert good.form == {"kind": "乙", "start": "2026-03-01", "area": 12.5, "code": "AB", "flag": False}
    assert good.applicant == {"name": "张三", "id": PERSON, "id_type": "id_card", "phone": "0755-88889999"}
    bad = parse_application(
        definition, FormData({**base, "f_kind": "丙", "f_start": "2026-02-30", "f_area": "1001", "f_code": "ABCDE"})
    )
    assert bad.errors == {
        "f_kind": "请从选项中选择",
        "f_start": "请输入日期，格式如 2026-03-01",
        "f_area": "不能大于 1000",
        "f_code": "最多 4 个字（现为 5 个字）",
        "f_flag": "请选择是否",
    }
    assert parse_application(definition, FormData({**base, "f_area": "abc"})).errors["f_area"] == "请输入数字"
    assert id_card_problem(PERSON) is None and id_card_problem("110105194913310021") == "身份证号码中的出生日期不正确"
    assert uscc_problem(COMPANY) is None and uscc_problem("9135010OM000100Y43").startswith("统一社会信用代码应为")


# ---------------------------------------------------------------------------------------------------
# the acceptance screen: 容缺受理, 一次性告知补正, 不予受理


def test_accepting_with_a_deferred_material_and_printing_the_notice(client, engine, clock):
    csrf = window(client)
    number = submitted(client, csrf, materials=["id_card"])
    screen = client.get(f"/window/cases/{number}").text
    accept_form = screen[screen.index('id="form-accept"') : screen.index("</form>", screen.index('id="form-accept"'))]
    assert f'value="lease" checked> {LEASE}' in accept_form and "受理（容缺）" in accept_form
    assert '<option value="1d" selected>1工作日</option>' in accept_form  # within the promised 1d
    assert "0.5工作日" in accept_form and "2工作日" not in accept_form

    bad = client.post(
        f"/window/cases/{number}/accept",
        data={"csrf_token": csrf, "deferred": "lease", "deferred_limit": "7d"},
        follow_redirects=False,
    )
    assert bad.status_code == 422 and "请从列表中选择补齐期限" in text_of(field_block_of_select(bad.text))

    answer = client.post(
        f"/window/cases/{number}/accept",
        data={"csrf_token": csrf, "deferred": "lease", "deferred_limit": "1d"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == f"/window/cases/{number}?done=accepted"
    case = case_of(engine, number)
    assert case["state"] == "accepted" and case["deferred"] == ["lease"] and case["deferred_due_at"] is not None
    after = client.get(answer.headers["location"]).text
    assert "打印容缺受理通知书" in after and "容缺待补" in after and 'id="form-accept"' not in after

    notice = client.get(f"/window/cases/{number}/notice")
    assert notice.status_code == 200
    paper = text_of(notice.text)
    for expected in (
        "容缺受理通知书",
        number,
        "深圳市示例科技有限公司",
        "开办企业一件事",
        "2026年03月02日",  # accepted on the test clock's Monday
        "1工作日",
        "2026年03月03日前",  # due: the end of the next working day
        ID_CARD,
        LEASE,
        "市民中心",
        "/progress",
        "办件编号",
    ):
        assert expected in paper, expected
    assert paper.index(ID_CARD) < paper.index(LEASE)  # received first, then the deferred one

    # the applicant brings the lease: the window records it and the notice still says what was deferred
    supplied = client.post(f"/window/cases/{number}/supply", data={"csrf_token": csrf, "supplied": "lease"})
    assert supplied.status_code == 200 and "已收取申请人补交的材料" in supplied.text
    assert case_of(engine, number)["deferred"] == []
    assert "容缺受理通知书" in client.get(f"/window/cases/{number}/notice").text


def field_block_of_select(html: str) -> str:
    at = html.index('id="deferred_limit"')
    return html[at : html.index("</form>", at)]


def test_accepting_without_a_required_material_is_refused_on_the_accept_form(client, engine):
    csrf = window(client)
    number = submitted(client, csrf, materials=["lease"])  # the id card is missing and cannot be deferred
    screen = client.get(f"/window/cases/{number}").text
    assert f"缺少不可容缺的必要材料：{ID_CARD}" in text_of(screen)
    answer = client.post(f"/window/cases/{number}/accept", data={"csrf_token": csrf}, follow_redirects=False)
    assert answer.status_code == 422
    form = answer.text[answer.text.index('id="form-accept"') :]
    assert "cannot accept" in form[: form.index("</form>")] and "id_card" in form[: form.index("</form>")]
    assert case_of(engine, number)["state"] == "submitted"


def test_one_supplement_notice_lists_everything_missing_then_the_materials_come_back(client, engine):
    csrf = window(client)
    number = submitted(client, csrf, materials=[])
    screen = client.get(f"/window/cases/{number}").text
    notice_text = re.search(r'<textarea id="notice"[^>]*>([^<]*)</textarea>', screen).group(1)
    assert ID_CARD in notice_text and LEASE in notice_text  # prefilled with every missing material

    empty = client.post(f"/window/cases/{number}/supplement", data={"csrf_token": csrf, "notice": ""})
    assert empty.status_code == 422
    assert "请勾选需要补正的全部材料" in empty.text and "请填写补正告知内容" in empty.text
    partial = client.post(
        f"/window/cases/{number}/supplement", data={"csrf_token": csrf, "missing": "lease", "notice": "补交租赁合同"}
    )
    assert partial.status_code == 422 and "一次性告知" in partial.text  # the engine: one notice lists everything
    answer = client.post(
        f"/window/cases/{number}/supplement",
        data={"csrf_token": csrf, "missing": ["id_card", "lease"], "notice": "请补交身份证明和租赁合同"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"].endswith("?done=supplement")
    screen = client.get(answer.headers["location"]).text
    assert "已告知补正" in screen and 'id="form-supply"' in screen and 'id="form-accept"' not in screen

    waiting = client.get("/window/queue?tab=supplement")
    assert waiting.status_code == 200 and number in waiting.text and 'hx-trigger="every 10s"' in waiting.text
    assert number not in client.get("/window/queue?tab=waiting").text
    paper = text_of(client.get(f"/window/cases/{number}/notice?kind=supplement").text)
    assert (
        "一次性告知补正通知书" in paper and ID_CARD in paper and LEASE in paper and "请补交身份证明和租赁合同" in paper
    )
    assert client.get(f"/window/cases/{number}/notice?kind=accepted").status_code == 409

    short = client.post(f"/window/cases/{number}/supply", data={"csrf_token": csrf, "supplied": "lease"})
    assert short.status_code == 422 and "still missing" in short.text
    back = client.post(
        f"/window/cases/{number}/supply", data={"csrf_token": csrf, "supplied": ["id_card", "lease"]},
        follow_redirects=False,
    )  # fmt: skip
    assert back.status_code == 303
    assert number in client.get("/window/queue?tab=waiting").text
    accepted = client.post(f"/window/cases/{number}/accept", data={"csrf_token": csrf}, follow_redirects=False)
    assert accepted.status_code == 303 and case_of(engine, number)["state"] == "accepted"


def test_refusing_needs_a_reason_waits_for_the_leader_then_prints_the_decision(client, engine):
    csrf = window(client)
    number = submitted(client, csrf)
    screen = client.get(f"/window/cases/{number}").text
    remedy = re.search(r'<textarea id="remedy"[^>]*>([^<]*)</textarea>', screen).group(1)
    assert "行政复议" in remedy  # the definition's remedy, prefilled
    empty = client.post(f"/window/cases/{number}/refuse", data={"csrf_token": csrf, "reason": " ", "remedy": remedy})
    assert empty.status_code == 422 and "请填写不予受理的理由" in text_of(empty.text)
    answer = client.post(
        f"/window/cases/{number}/refuse",
        data={"csrf_token": csrf, "reason": "申请事项不属于本机关职权范围", "remedy": remedy},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    pending = client.get(answer.headers["location"]).text
    assert "不予审批报告制" in pending and 'id="form-accept"' not in pending and 'id="form-refuse"' not in pending
    assert client.get(f"/window/cases/{number}/notice?kind=refusal").status_code == 409  # not yet in force

    case_id = case_of(engine, number)["id"]
    with reading(engine.db) as conn:
        detail = read.case_detail(conn, case_id, now=engine.clock(), calendar=engine.calendar)
    report = next(t for t in detail.tasks if t.step_id == NEGATIVE_REPORT_STEP)
    engine.confirm_refusal(report.id, "zwfw_boss", "同意")
    paper = text_of(client.get(f"/window/cases/{number}/notice").text)
    assert "不予受理决定书" in paper and "申请事项不属于本机关职权范围" in paper and "行政复议" in paper


def test_the_window_lists_open_by_number_and_refuse_bad_paging(client, engine):
    csrf = window(client)
    numbers = [submitted(client, csrf) for _ in range(2)]
    home = client.get("/window").text
    assert all(n in home for n in numbers) and 'id="queue-waiting"' in home and 'id="queue-supplement"' in home
    assert (
        client.get(f"/window/open?number={numbers[0].lower()}", follow_redirects=False).headers["location"]
        == f"/window/cases/{numbers[0]}"
    )
    assert client.get("/window/open?number=TB-NONE").status_code == 404
    assert client.get("/window/open?number=").status_code == 422
    assert client.get("/window/queue?tab=other").status_code == 422
    assert client.get("/window/queue?tab=waiting&cursor=nonsense").status_code == 422
    assert client.get("/window/cases/TB-NONE").status_code == 404
    for odd in ("%00", "%C2%B2", "1", "x" * 65):  # NUL, a superscript digit, an id, too long: never a 500
        assert client.get(f"/window/cases/{odd}").status_code == 404, odd
        assert client.get(f"/window/open?number={odd}").status_code in (404, 422), odd
    assert client.get(f"/window/cases/{numbers[0]}/notice?kind=other").status_code == 404


# ---------------------------------------------------------------------------------------------------
# 办理进度 (public)


def progress_form(client) -> str:
    page = client.get("/progress")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    return re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)


def test_progress_shows_the_steps_and_the_due_date_to_the_applicant_only(client, engine):
    case_id = engine_case(engine)
    engine.accept_case(case_id, "zwfw1")
    number = number_of(engine, case_id)
    token = progress_form(client)
    assert "tongban_form" in client.cookies

    found = client.post(
        "/progress", data={"form_token": token, "number": number.lower(), "applicant_id": PERSON.lower()}
    )
    assert found.status_code == 200 and found.headers["cache-control"] == "no-store"
    page = text_of(found.text)
    assert "开办企业一件事" in page and "已受理" in page and "综合受理" in page and "营业执照核发" in page
    assert "承诺办结时间" in page and "2026年03月03日 17:00 前" in page
    for staff in ("zwfw1", "zwfw 办理人", "scjg1"):
        assert staff not in page

    wrong = client.post("/progress", data={"form_token": token, "number": number, "applicant_id": "110105194912310021"})
    unknown = client.post("/progress", data={"form_token": token, "number": "TB-NONE", "applicant_id": PERSON})
    assert wrong.status_code == unknown.status_code == 404
    assert NOT_FOUND_TEXT in wrong.text and NOT_FOUND_TEXT in unknown.text
    assert "开办企业一件事" not in wrong.text and number not in text_of(wrong.text).replace(f'value="{number}"', "")

    missing = client.post("/progress", data={"form_token": token, "number": "", "applicant_id": ""})
    assert missing.status_code == 422
    assert "请填写办件编号" in text_of(field_block(missing.text, "number"))
    assert "请填写申请人证件号码" in text_of(field_block(missing.text, "applicant_id"))


def test_the_public_form_needs_its_signed_token_and_cookie(client, engine):
    number = number_of(engine, engine_case(engine))
    token = progress_form(client)
    assert client.post("/progress", data={"number": number, "applicant_id": PERSON}).status_code == 403
    assert (
        client.post("/progress", data={"form_token": "x" * 40, "number": number, "applicant_id": PERSON}).status_code
        == 403
    )
    client.cookies.delete("tongban_form")
    answer = client.post("/progress", data={"form_token": token, "number": number, "applicant_id": PERSON})
    assert answer.status_code == 403 and "页面已过期" in answer.text


def test_guessing_an_id_for_a_known_number_is_slowed_down_without_locking_log_ins(client, engine):
    number = number_of(engine, engine_case(engine))
    token = progress_form(client)
    for n in range(MAX_FAILURES_PER_NUMBER):
        guess = client.post("/progress", data={"form_token": token, "number": number, "applicant_id": f"guess{n}"})
        assert guess.status_code == 404
    right = client.post("/progress", data={"form_token": token, "number": number, "applicant_id": PERSON})
    assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0 and "查询失败次数过多" in right.text
    log_in_page(client, "zwfw1", PASSWORD)  # the same address still logs in


def test_an_applicant_rates_a_finished_case_once(client, engine):
    case_id = engine_case(engine)
    number = number_of(engine, case_id)
    token = progress_form(client)
    running = client.post("/progress", data={"form_token": token, "number": number, "applicant_id": PERSON})
    assert "服务评价" not in running.text
    early = client.post(
        "/progress/rate", data={"form_token": token, "number": number, "applicant_id": PERSON, "level": "1"}
    )
    assert early.status_code == 409 and "办结后方可评价" in early.text

    finish(engine, case_id)
    done = client.post("/progress", data={"form_token": token, "number": number, "applicant_id": PERSON})
    assert "办结" in done.text and "服务评价（好差评）" in done.text and "非常不满意" in done.text
    no_level = client.post("/progress/rate", data={"form_token": token, "number": number, "applicant_id": PERSON})
    assert no_level.status_code == 422 and "请选择评价等级" in no_level.text
    assert 'aria-describedby="err-level"' in no_level.text
    forged = client.post(
        "/progress/rate", data={"form_token": token, "number": number, "applicant_id": "someone", "level": "5"}
    )
    assert forged.status_code == 404 and NOT_FOUND_TEXT in forged.text
    rated = client.post(
        "/progress/rate",
        data={"form_token": token, "number": number, "applicant_id": PERSON, "level": "2", "comment": "窗口很耐心"},
    )
    assert (
        rated.status_code == 200
        and "感谢您的评价（满意）" in rated.text
        and 'action="/progress/rate"' not in rated.text
    )
    with engine.db.connect() as conn:
        row = conn.execute(select(Evaluation.__table__).where(Evaluation.case_id == case_id)).mappings().one()
    assert (row["level"], row["rater"], row["channel"], row["comment"]) == (2, PERSON, "pc", "窗口很耐心")
    twice = client.post(
        "/progress/rate", data={"form_token": token, "number": number, "applicant_id": PERSON, "level": "1"}
    )
    assert twice.status_code == 409 and "已评价" in twice.text


# ---------------------------------------------------------------------------------------------------
# 办件查询


def test_case_search_filters_masks_and_shows_staff_only_their_departments_cases(client, engine, clock):
    accepted = engine_case(engine, name="李四")
    engine.accept_case(accepted, "zwfw1")
    clock.advance(days=1)
    waiting = engine_case(engine, applicant_id=COMPANY, name="示例公司", channel="online", centre=None)
    numbers = {accepted: number_of(engine, accepted), waiting: number_of(engine, waiting)}

    log_in_page(client, "zwfw1")
    everything = client.get("/cases")
    assert everything.status_code == 200 and 'hx-trigger="every 10s"' in everything.text
    assert all(n in everything.text for n in numbers.values())
    assert f'href="/cases/{numbers[accepted]}"' in everything.text
    assert PERSON not in everything.text and "110105********002X" in everything.text  # masked in lists
    assert "网上申报" in everything.text and "市民中心" in everything.text
    by_name = client.get("/cases", params={"applicant": "李四"}).text
    assert numbers[accepted] in by_name and numbers[waiting] not in by_name
    by_state = client.get("/cases", params={"state": "submitted", "definition": "kaiban-mini"}).text
    assert numbers[waiting] in by_state and numbers[accepted] not in by_state
    by_prefix = client.get("/cases", params={"number": numbers[waiting][:-3].lower()}).text
    assert numbers[waiting] in by_prefix and numbers[accepted] not in by_prefix
    by_date = client.get("/cases", params={"date_from": "2026-03-03", "date_to": "2026-03-03"}).text
    assert numbers[waiting] in by_date and numbers[accepted] not in by_date
    fragment = client.get("/cases", params={"state": "accepted"}, headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith("<section") and numbers[accepted] in fragment.text

    client.post("/logout", data={"csrf_token": csrf_of(everything.text)})
    log_in_page(client, "scjg1")  # 市场监管: only the accepted case has its task
    theirs = client.get("/cases").text
    assert numbers[accepted] in theirs and numbers[waiting] not in theirs and "仅显示本部门" in theirs


def test_case_search_shows_bad_filters_next_to_their_fields_and_pages_by_cursor(client, engine, clock, monkeypatch):
    made = []
    for n in range(3):
        made.append(number_of(engine, engine_case(engine, name=f"申请人{n}")))
        clock.advance(minutes=5)
    log_in_page(client, "manager")
    bad = client.get("/cases", params={"date_from": "2026-13-01", "state": "nonsense", "date_to": "x"})
    assert bad.status_code == 422
    assert "请输入日期" in text_of(field_block_filters(bad.text, "date_from"))
    assert "请从列表中选择办件状态" in text_of(field_block_filters(bad.text, "state"))
    backwards = client.get("/cases", params={"date_from": "2026-03-05", "date_to": "2026-03-01"})
    assert "结束日期不能早于开始日期" in text_of(field_block_filters(backwards.text, "date_to"))
    assert client.get("/cases", params={"cursor": "nonsense"}).status_code == 422

    monkeypatch.setattr(search_page, "PAGE_SIZE", 2)
    first = client.get("/cases", params={"definition": "kaiban-mini"}).text
    assert made[2] in first and made[1] in first and made[0] not in first
    following = re.search(r'href="(/cases\?[^"]*cursor=[^"]+)">下一页', first).group(1)
    second = client.get(unescape(following)).text
    assert made[0] in second and made[2] not in second and "第一页" in second and "下一页" not in second

    client.post("/logout", data={"csrf_token": csrf_of(first)})
    log_in_page(client, "designer")
    assert client.get("/cases").status_code == 403


def field_block_filters(html: str, name: str) -> str:
    at = html.index(f'name="{name}"')
    return html[html.rindex("<div>", 0, at) : html.index("</div>", at)]


def test_the_read_side_filters_for_visibility_and_open_supplement_notices(engine):
    """CaseFilter's departments/worker (what staff may see) and supplement_open (the window's two lists)."""
    accepted = engine_case(engine)
    engine.accept_case(accepted, "zwfw1")
    asked = engine_case(engine, materials=[])
    engine.request_supplement(asked, "zwfw1", ["id_card", "lease"], "请补交")
    with reading(engine.db) as conn:
        licence = next(
            t.id
            for t in read.case_detail(conn, accepted, now=engine.clock(), calendar=engine.calendar).tasks
            if t.step_id == "licence"
        )
    engine.claim_task(licence, "scjg1")
    engine.add_signer(licence, "scjg1", "gaj2", "请公安会签")  # gaj has no task of its own yet

    def found(**filters: object) -> set[int]:
        with reading(engine.db) as conn:
            page = read.search_cases(conn, read.CaseFilter(**filters), now=engine.clock(), calendar=engine.calendar)
        return {c.id for c in page}

    assert found(departments=("scjg",)) == {accepted}
    assert found(departments=("gaj",), worker="gaj2") == {accepted}  # by the signature asked of them
    assert found(departments=("gaj",), worker="gaj1") == set()
    assert found(departments=()) == set()
    assert found(state="submitted", supplement_open=True) == {asked}
    assert found(state="submitted", supplement_open=False) == set()
    with reading(engine.db) as conn:
        summary = read.search_cases(conn, now=engine.clock(), calendar=engine.calendar).items[0]
        progress = read.progress(conn, number_of(engine, accepted), PERSON)
    assert (summary.channel, summary.centre) == ("window", "city")
    assert (progress.case_id, progress.definition_key, progress.definition_version) == (accepted, "kaiban-mini", 1)
