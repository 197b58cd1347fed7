"""The staff pages over HTTP, on SQLite and PostgreSQL: 待办/在办/已办, the task page and every action
it offers, the case page. Each action goes through its page's form (CSRF token and all) and lands in
the engine; a refusal comes back as the engine's message, on a page or in ``#messages`` for htmx."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from web.accounts import case_views, open_accounts
from web.pages import tasks as task_pages

from ..engine.helpers import (
    accepted_kaiban,
    add_countersigners,
    at,
    case_row,
    open_tasks,
    report_tasks,
    rows_of,
    submit_kaiban,
    surveyed,
    task_row,
    tasks_of,
)
from .conftest import PASSWORD, csrf_of, log_in_page

PERSON = {"id": "310101199001011234", "name": "李四"}  # a person: their id is masked in lists
MASKED = "310101********1234"


class Staff:
    """A logged-in browser of one person: GET pages, POST their forms with the page's CSRF token."""

    def __init__(self, app, user: str) -> None:
        self.user = user
        self.client = TestClient(app)
        log_in_page(self.client, user)
        self.token = csrf_of(self.client.get("/login").text)

    def get(self, url: str, **kwargs):
        return self.client.get(url, **kwargs)

    def post(self, url: str, data: dict | None = None, *, htmx: bool = False, target: str | None = None):
        headers = {}
        if htmx:  # htmx sends the token as a header (hx-headers on <body>)
            headers = {"HX-Request": "true", "X-CSRF-Token": self.token}
            if target:
                headers["HX-Target"] = target
            return self.client.post(url, data=data or {}, headers=headers, follow_redirects=False)
        return self.client.post(url, data={**(data or {}), "csrf_token": self.token}, follow_redirects=False)

    def act(self, task_id: int, action: str, data: dict | None = None, *, expect: str | None = None) -> None:
        """POST an action from the task page: it goes back to the task page with its flash."""
        answer = self.post(f"/tasks/{task_id}/{action}", data)
        assert answer.status_code == 303, answer.text
        location = answer.headers["location"]
        assert location.endswith(f"?flash={expect or action}"), location


@pytest.fixture
def as_user(app):
    return lambda user: Staff(app, user)


def kaiban_of_person(engine, **kwargs) -> int:
    case_id = engine.submit_case(
        "kaiban-mini", PERSON, {"company_name": "甲公司", "needs_seal": True, "employees": 2}, ["id_card", "lease"]
    )
    engine.accept_case(case_id, "zwfw1", **kwargs)
    return case_id


def number_of(engine, case_id: int) -> str:
    return case_row(engine, case_id)["number"]


def action_paths(html: str, task_id: int) -> set[str]:
    """The actions the page's forms post to."""
    return set(re.findall(rf'action="/tasks/{task_id}/(\w+)"', html))


def viewed(engine, case_id: int) -> list[str]:
    """The pages the case was viewed on (访问记录), newest first."""
    return [row.page for row in case_views(engine.db, case_id)]


# ---------------------------------------------------------------------------------------------------
# 待办 / 在办 / 已办


def test_the_queue_lists_the_departments_tasks_by_due_time_with_their_sla_colour(engine, clock, as_user):
    first = kaiban_of_person(engine)  # licence due 14:00
    clock.advance(minutes=30)
    second = accepted_kaiban(engine)  # due 14:30
    licences = [open_tasks(engine, c)["licence"] for c in (first, second)]
    scjg = as_user("scjg1")
    page = scjg.get("/tasks")
    assert page.status_code == 200
    html = page.text
    assert html.index(f'id="task-{licences[0]}"') < html.index(f'id="task-{licences[1]}"')
    assert "营业执照核发" in html and "开办企业一件事" in html and "市场监督管理局" in html
    assert MASKED in html and PERSON["id"] not in html  # lists mask the applicant's id
    assert 'hx-trigger="every 10s"' in html  # new tasks appear without a reload
    assert "sla sla-on_track" in html and "4个工作日" not in html and "4小时" in html
    clock.set(at(2, 13, 30))
    engine.sweep()
    html = scjg.get("/tasks").text
    row = re.search(rf'<tr id="task-{licences[0]}".*?</tr>', html, re.S).group(0)
    assert "sla sla-warning" in row and "30分" in row
    clock.set(at(2, 14, 10))
    engine.sweep()
    row = re.search(rf'<tr id="task-{licences[0]}".*?</tr>', scjg.get("/tasks").text, re.S).group(0)
    assert "sla sla-overdue" in row and "已超 10分" in row
    assert f'id="task-{licences[0]}"' not in as_user("gaj1").get("/tasks").text  # another department's queue


def test_filters_and_search_narrow_the_queue_and_the_fragment_is_the_list_alone(engine, clock, as_user):
    kaiban = accepted_kaiban(engine)
    survey = surveyed(engine)
    zjj = as_user("zjj1")
    chain = open_tasks(engine, survey)["chain"]
    assert f'id="task-{chain}"' in zjj.get("/tasks?definition=survey-mini").text
    assert f'id="task-{chain}"' not in zjj.get("/tasks?definition=kaiban-mini").text
    assert f'id="task-{chain}"' in zjj.get("/tasks?step=chain&sla=on_track").text
    assert "没有符合条件的任务" in zjj.get("/tasks?sla=overdue").text
    number = number_of(engine, survey)
    found = zjj.get(f"/tasks?number={number[:-2]}")
    assert f'id="task-{chain}"' in found.text
    licence = open_tasks(engine, kaiban)["licence"]
    assert f'id="task-{licence}"' not in as_user("scjg1").get(f"/tasks?number={number}").text
    fragment = zjj.get("/tasks?definition=survey-mini", headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith('<div id="task-list"') and "<html" not in fragment.text
    assert 'hx-get="/tasks?definition=survey-mini"' in fragment.text  # the poll keeps the filters
    bad = zjj.get("/tasks?sla=purple")
    assert bad.status_code == 422 and "时效状态" in bad.text


def test_next_page_follows_the_keyset_cursor(engine, clock, as_user, monkeypatch):
    monkeypatch.setattr(task_pages, "PAGE_SIZE", 2)
    licences = []
    for _ in range(3):
        licences.append(open_tasks(engine, accepted_kaiban(engine))["licence"])
        clock.advance(minutes=5)
    scjg = as_user("scjg1")
    first = scjg.get("/tasks").text
    assert [f'id="task-{t}"' in first for t in licences] == [True, True, False]
    next_url = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = scjg.get(next_url).text
    assert [f'id="task-{t}"' in second for t in licences] == [False, False, True]
    assert 'rel="next"' not in second and "第一页" in second
    assert scjg.get("/tasks?cursor=nonsense").status_code == 422


def test_claim_and_release_from_the_list_update_the_row_in_place(engine, clock, as_user):
    licence = open_tasks(engine, accepted_kaiban(engine))["licence"]
    scjg = as_user("scjg1")
    assert f'hx-post="/tasks/{licence}/claim"' in scjg.get("/tasks").text
    row = scjg.post(f"/tasks/{licence}/claim", htmx=True, target=f"task-{licence}")
    assert row.status_code == 200
    assert row.text.lstrip().startswith(f'<tr id="task-{licence}"') and "我在办" in row.text
    assert f'action="/tasks/{licence}/release"' in row.text and 'hx-swap-oob="innerHTML"' in row.text
    assert task_row(engine, licence)["assignee"] == "scjg1"
    assert f'id="task-{licence}"' in scjg.get("/tasks/mine").text
    assert f'id="task-{licence}"' not in scjg.get("/tasks").text  # out of the pool
    # someone else cannot claim it: the engine's refusal, in #messages
    refused = as_user("scjg2").post(f"/tasks/{licence}/claim", htmx=True, target=f"task-{licence}")
    assert refused.headers["HX-Retarget"] == "#messages" and "flash error" in refused.text
    assert "claimed" in refused.text or "签收" in refused.text
    assert "可能已由他人处理" in refused.text  # what happened, said in Chinese before the engine's detail
    row = scjg.post(f"/tasks/{licence}/release", htmx=True, target=f"task-{licence}")
    assert "待签收" in row.text and task_row(engine, licence)["state"] == "ready"


def test_a_form_post_without_the_csrf_token_is_refused(engine, clock, as_user):
    licence = open_tasks(engine, accepted_kaiban(engine))["licence"]
    scjg = as_user("scjg1")
    answer = scjg.client.post(f"/tasks/{licence}/claim", follow_redirects=False)
    assert answer.status_code == 403 and task_row(engine, licence)["state"] == "ready"
    answer = scjg.client.post(f"/tasks/{licence}/claim", data={"csrf_token": "forged"}, follow_redirects=False)
    assert answer.status_code == 403
    scjg.act(licence, "claim")
    assert task_row(engine, licence)["assignee"] == "scjg1"


def test_done_lists_completions_and_signatures_newest_first(engine, clock, as_user):
    licence = open_tasks(engine, accepted_kaiban(engine))["licence"]
    scjg = as_user("scjg1")
    scjg.act(licence, "claim")
    scjg.act(licence, "approve", {"opinion": "材料齐全，同意"})
    survey_case = surveyed(engine)
    html = scjg.get("/tasks/done").text
    assert f'href="/tasks/{licence}"' in html and "材料齐全，同意" in html and "通过" in html
    zjj = as_user("zjj1").get("/tasks/done").text
    survey = tasks_of(engine, survey_case)[1]["id"]
    assert f'href="/tasks/{survey}"' in zjj and "签署" in zjj


def test_bad_input_is_refused_never_a_server_error(engine, as_user):
    scjg = as_user("scjg1")
    for url in ("/tasks?number=%00", "/tasks?definition=%00", "/tasks/mine?step=a%00", "/tasks/done?cursor=%00"):
        assert scjg.get(url).status_code == 422, url
    for url in ("/cases/TB%00x", "/cases/" + "x" * 65, "/tasks/0", "/tasks/-1"):
        assert scjg.get(url).status_code == 404, url


def test_queue_pages_are_for_department_staff(engine, as_user):
    assert as_user("manager").get("/tasks").status_code == 403
    assert as_user("zwfw_boss").get("/tasks").status_code == 200


# ---------------------------------------------------------------------------------------------------
# the task page


def test_the_task_page_shows_the_case_and_exactly_the_allowed_actions(engine, clock, as_user):
    case_id = kaiban_of_person(engine)
    licence = open_tasks(engine, case_id)["licence"]
    scjg = as_user("scjg1")
    page = scjg.get(f"/tasks/{licence}")
    assert page.status_code == 200
    html = page.text
    assert PERSON["id"] in html  # unmasked for the staff working it
    assert "<svg" in html and 'aria-label="开办企业一件事 流程图（实时状态）"' in html
    assert "#90caf9" in html or "#bbdefb" in html  # the running step is coloured
    assert "提交申请" in html and "受理" in html  # the timeline
    assert "法定身份证明" in html or "法定代表人身份证明" in html  # materials
    assert "甲公司" in html  # the one-form data
    for user in ("scjg1", "scjg_boss"):
        allowed = engine.available_actions(user, task_id=licence).names
        shown = action_paths(as_user(user).get(f"/tasks/{licence}").text, licence)
        expected = {"urge" if a == "urge_task" else a for a in allowed} - {"urge_case"}
        assert shown == expected, (user, allowed)
    scjg.act(licence, "claim")
    allowed = engine.available_actions("scjg1", task_id=licence).names
    shown = action_paths(scjg.get(f"/tasks/{licence}").text, licence)
    assert shown == {"urge" if a == "urge_task" else a for a in allowed} - {"urge_case"}
    assert {"approve", "reject", "return", "release", "transfer", "delegate", "add_signer"} <= shown
    assert viewed(engine, case_id)[0] == f"/tasks/{licence}"  # 访问记录


def test_another_departments_task_is_not_found_by_url(engine, clock, as_user):
    licence = open_tasks(engine, accepted_kaiban(engine))["licence"]
    gaj = as_user("gaj1")
    page = gaj.get(f"/tasks/{licence}")
    assert page.status_code == 404 and "未找到" in page.text and "甲公司" not in page.text
    assert gaj.post(f"/tasks/{licence}/claim").status_code == 404
    assert gaj.post(f"/tasks/{licence}/approve", {"opinion": "x"}).status_code == 404
    assert task_row(engine, licence)["state"] == "ready"
    assert gaj.get("/tasks/99999999999999999999").status_code == 404
    assert gaj.get("/tasks/abc").status_code == 404
    assert as_user("manager").get(f"/tasks/{licence}").status_code == 200  # managers read everything


def test_approving_with_the_steps_form_edits_through_a_review_chain(engine, clock, as_user):
    case_id = surveyed(engine)
    chain = open_tasks(engine, case_id)["chain"]
    first = as_user("zjj1")
    html = first.get(f"/tasks/{chain}").text
    assert "承办同意，送下一级（审核）" in html
    assert 'name="field.floor_area"' in html and 'name="field.phone"' in html
    assert 'name="field.project_name"' not in html  # not editable at this step
    bad = first.post(f"/tasks/{chain}/approve", {"field.floor_area": "很大"}, htmx=True)
    assert bad.headers["HX-Retarget"] == "#messages" and "不是数字" in bad.text
    below = first.post(f"/tasks/{chain}/approve", {"field.floor_area": "-5"}, htmx=True)
    assert "minimum" in below.text and case_row(engine, case_id)["form"]["floor_area"] == 800
    answer = first.post(f"/tasks/{chain}/approve", {"field.floor_area": "900", "opinion": "同意"}, htmx=True)
    assert answer.status_code == 204 and answer.headers["HX-Redirect"] == f"/tasks/{chain}?flash=approve"
    assert case_row(engine, case_id)["form"]["floor_area"] == 900
    second = as_user("zjj2")
    assert "审核同意，送下一级（批准）" in second.get(f"/tasks/{chain}").text
    second.act(chain, "approve", {"opinion": "同意"})
    third = as_user("zjj3")
    assert "批准同意（最后一级）" in third.get(f"/tasks/{chain}").text
    third.act(chain, "approve", {"opinion": "准予"})
    assert task_row(engine, chain)["state"] == "completed"
    page = third.get(f"/tasks/{chain}?flash=approve").text
    assert "已提交：通过" in page and "修改表单" in page and "建筑面积（平方米） 改为 900" in page


def test_a_survey_is_signed_by_each_participant_department(engine, clock, as_user):
    case_id = engine.submit_case("survey-mini", {"id": "91310000MA1K000002", "name": "乙建设公司"},
                                 {"project_name": "厂房", "floor_area": 800}, ["site_plan", "drawings"])  # fmt: skip
    engine.accept_case(case_id, "zwfw1")
    survey = open_tasks(engine, case_id)["survey"]
    for user in ("zjj1", "xf1", "gaj1"):
        staff = as_user(user)
        assert "踏勘签署：同意" in staff.get(f"/tasks/{survey}").text
        staff.act(survey, "approve", {"opinion": "现场符合要求"})
    assert task_row(engine, survey)["state"] == "completed"


def test_a_countersign_waits_for_its_signers(engine, clock, as_user):
    add_countersigners(engine)
    open_accounts(engine.db, [(u, [], None) for u in ("xf_fire", "xf_arch")], PASSWORD, "test")
    case_id = surveyed(engine)
    fire = open_tasks(engine, case_id)["fire"]
    html = as_user("xf1").get(f"/tasks/{fire}").text  # a handler of xf, no countersign role
    assert "等待签署" in html and "fire_reviewer" in html and "approve" not in action_paths(html, fire)
    for user in ("xf_fire", "xf_arch"):
        signer = as_user(user)
        assert "会签：同意" in signer.get(f"/tasks/{fire}").text
        signer.act(fire, "approve", {"opinion": "符合消防技术标准"})
    assert task_row(engine, fire)["state"] == "completed"


def test_the_supervisor_retries_or_hands_over_an_automatic_step_that_failed(engine, clock, as_user):
    from orchestrator.engine import Engine
    from orchestrator.engine.commands.auto import RunPolicy
    from orchestrator.engine.lookups import Sources

    worker = Engine(engine.db, engine.calendar, engine.clock, auto_inline=False)
    case_id = engine.submit_case("lookup-mini", {"id": "310101195001011234", "name": "王五"},
                                 {"id_number": "310101195001011234"}, ["id_card", "photo"])  # fmt: skip
    check = open_tasks(engine, case_id)["check"]

    def fail_three_times() -> None:  # `age >= 60` on an empty age cannot be decided: an incident after three
        for _ in range(3):
            worker.run_auto_batch(sources=Sources(engine.db), policy=RunPolicy(max_attempts=3, backoff_s=1))
            clock.advance(hours=1)

    fail_three_times()
    assert "retry_incident" not in action_paths(as_user("rsj1").get(f"/tasks/{check}").text, check)
    boss = as_user("rsj_boss")
    assert {"retry_incident", "hand_over"} <= action_paths(boss.get(f"/tasks/{check}").text, check)
    boss.act(check, "retry_incident", {"note": "数据共享平台已恢复，再试一次"})
    assert rows_of(engine, "incidents", case_id)[0]["state"] == "retried"
    assert "retry_incident" not in action_paths(boss.get(f"/tasks/{check}").text, check)
    fail_three_times()
    boss.act(check, "hand_over", {"note": "年龄缺失，请人工核实"})
    assert task_row(engine, check)["kind"] == "approval"
    rsj = as_user("rsj1")
    rsj.act(check, "claim")
    rsj.act(check, "approve", {"opinion": "核实户籍，年满60周岁"})
    assert task_row(engine, check)["state"] == "completed"


def test_refusing_goes_to_the_leader_who_confirms_or_sends_it_back(engine, clock, as_user):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    scjg = as_user("scjg1")
    scjg.act(licence, "claim")
    empty = scjg.post(f"/tasks/{licence}/reject", {"opinion": "  "})
    assert empty.status_code == 422 and "不予许可的理由" in empty.text
    scjg.act(licence, "reject", {"opinion": "名称与已登记企业重名", "remedy": ""})
    assert task_row(engine, licence)["waiting"] == "leader"
    (report,) = report_tasks(engine, case_id)
    html = scjg.get(f"/tasks/{report['id']}").text
    assert "不予审批报告" in html and "名称与已登记企业重名" in html and "等待市场监督管理局负责人确认或退回" in html
    assert "confirm_refusal" not in action_paths(html, report["id"])  # the handler cannot decide it
    boss = as_user("scjg_boss")
    html = boss.get(f"/tasks/{report['id']}").text
    assert {"confirm_refusal", "send_back_refusal"} <= action_paths(html, report["id"])
    assert "行政复议" in html  # the definition's remedy, offered for the notice
    boss.act(report["id"], "send_back_refusal", {"opinion": "理由不充分，请核实"})
    assert task_row(engine, licence)["waiting"] is None and case_row(engine, case_id)["state"] == "in_progress"
    scjg.act(licence, "reject", {"opinion": "经核实，名称与已登记企业重名"})
    (report,) = report_tasks(engine, case_id)
    boss.act(report["id"], "confirm_refusal", {"opinion": "同意", "remedy": "可申请行政复议"})
    assert case_row(engine, case_id)["state"] == "rejected"


def test_return_for_supplement_stops_the_clock(engine, clock, as_user):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    scjg = as_user("scjg1")
    assert 'name="missing" value="lease"' in scjg.get(f"/tasks/{licence}").text
    scjg.act(licence, "return", {"opinion": "住所使用证明不清晰，请补正", "missing": ["lease"]})
    assert case_row(engine, case_id)["state"] == "suspended" and task_row(engine, licence)["waiting"] == "applicant"
    html = scjg.get(f"/cases/{number_of(engine, case_id)}").text
    assert "住所使用证明不清晰" in html and "待申请人补正" in html


def test_handing_tasks_on_transfer_delegate_reassign_and_add_a_signer(engine, clock, as_user):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    scjg = as_user("scjg1")
    scjg.act(licence, "claim")
    html = scjg.get(f"/tasks/{licence}").text
    assert '<option value="scjg2">' in html and '<option value="scjg1">' not in html  # colleagues, not me
    scjg.act(licence, "add_signer", {"signer": "scjg3", "note": "请会签"})
    assert [s["party"] for s in rows_of(engine, "signoffs") if s["task_id"] == licence] == ["scjg3"]
    scjg.act(licence, "transfer", {"to_user": "scjg2", "note": "我请假"})
    assert task_row(engine, licence)["assignee"] == "scjg2"
    as_user("scjg2").act(licence, "delegate", {"to_user": "scjg3", "note": "请代为审查"})
    assert (task_row(engine, licence)["assignee"], task_row(engine, licence)["delegated_by"]) == ("scjg3", "scjg2")
    as_user("scjg_boss").act(licence, "reassign", {"to_user": "scjg1", "note": "改由原经办人办理"})
    assert task_row(engine, licence)["assignee"] == "scjg1"
    nobody = scjg.post(f"/tasks/{licence}/transfer", {"to_user": "", "note": ""})
    assert nobody.status_code == 422 and "接收人" in nobody.text
    outsider = scjg.post(f"/tasks/{licence}/transfer", {"to_user": "gaj1"}, htmx=True)
    assert outsider.headers["HX-Retarget"] == "#messages" and "not a member" in outsider.text


def test_send_back_and_take_back(engine, clock, as_user):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    scjg = as_user("scjg1")
    scjg.act(licence, "claim")
    scjg.act(licence, "approve", {"opinion": "同意"})
    assert "take_back" in action_paths(scjg.get(f"/tasks/{licence}").text, licence)
    answer = scjg.post(f"/tasks/{licence}/take_back")
    reopened = open_tasks(engine, case_id)["licence"]
    assert answer.status_code == 303 and answer.headers["location"] == f"/tasks/{reopened}?flash=take_back"
    assert task_row(engine, reopened)["assignee"] == "scjg1" and "invoice" not in open_tasks(engine, case_id)
    licence = reopened
    scjg.act(licence, "approve", {"opinion": "同意"})
    invoice = open_tasks(engine, case_id)["invoice"]
    swj = as_user("swj1")
    html = swj.get(f"/tasks/{invoice}").text
    assert '<option value="licence">营业执照核发</option>' in html
    swj.act(invoice, "send_back", {"reason": "经营范围与发票种类不符", "to_step": "licence"})
    assert task_row(engine, invoice)["superseded"] and open_tasks(engine, case_id)["licence"] != licence
    assert "退回" in scjg.get(f"/cases/{number_of(engine, case_id)}").text


def test_suspend_resume_and_extend_from_the_task_page(engine, clock, as_user):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    scjg = as_user("scjg1")
    html = scjg.get(f"/tasks/{licence}").text
    assert "专家评审" in html and 'value="supplement"' not in html
    scjg.act(licence, "suspend", {"kind": "expert_review", "reason": "需组织专家评审", "expected": "5d"})
    assert case_row(engine, case_id)["state"] == "suspended"
    assert "resume" in action_paths(scjg.get(f"/tasks/{licence}").text, licence)
    clock.advance(hours=2)
    scjg.act(licence, "resume", {"result": "专家评审通过"})
    assert case_row(engine, case_id)["state"] == "in_progress"
    wrong = scjg.post(f"/tasks/{licence}/extend", {"amount": "ten days", "approver": "局长", "reason": "复杂"})
    assert wrong.status_code == 422
    scjg.act(licence, "extend", {"amount": "2d", "approver": "scjg_boss", "reason": "情况复杂需延长"})
    assert rows_of(engine, "extensions", case_id)[0]["amount"] == "2d"
    assert "extend" not in action_paths(scjg.get(f"/tasks/{licence}").text, licence)  # once per case
    assert "情况复杂需延长" in scjg.get(f"/cases/{number_of(engine, case_id)}").text


def test_urge_a_task_and_a_case(engine, clock, as_user):
    case_id = accepted_kaiban(engine)
    number = number_of(engine, case_id)
    licence = open_tasks(engine, case_id)["licence"]
    boss = as_user("scjg_boss")
    assert 'value="supervise"' in boss.get(f"/tasks/{licence}").text
    boss.act(licence, "urge", {"message": "请今天办结", "level": "supervise", "within": "2h"})
    assert rows_of(engine, "urges", case_id)[0]["level"] == "supervise"
    assert 'action="/cases/' not in as_user("scjg1").get(f"/cases/{number}").text  # handlers do not urge cases
    manager = as_user("manager")
    answer = manager.post(f"/cases/{number}/urge", {"message": "请加快办理", "level": "urge"})
    assert answer.status_code == 303 and answer.headers["location"] == f"/cases/{number}?flash=urge"
    html = manager.get(answer.headers["location"]).text
    assert "已发出催办/督办" in html and "请加快办理" in html and "请今天办结" in html
    assert PERSON["id"] not in html  # managers see identities masked
    bad = manager.post(f"/cases/{number}/urge", {"message": "x", "level": "shout"})
    assert bad.status_code == 422


def test_issue_certificates_at_the_window_department(engine, clock, as_user):
    case_id = accepted_kaiban(engine, form={"employees": 0, "needs_seal": False})
    licence = open_tasks(engine, case_id)["licence"]
    engine.complete_task(licence, "scjg1", "approve", "同意")
    engine.complete_task(open_tasks(engine, case_id)["invoice"], "swj1", "approve", "同意")
    issue = open_tasks(engine, case_id)["issue"]
    zwfw = as_user("zwfw2")
    html = zwfw.get(f"/tasks/{issue}").text
    assert "营业执照 编号" in html and "免费邮寄" in html
    no_tracking = zwfw.post(f"/tasks/{issue}/issue", {"delivery": "mail"}, htmx=True)
    assert "tracking number" in no_tracking.text
    zwfw.act(issue, "issue", {"delivery": "mail", "tracking_number": "SF123456", "electronic": "on"})
    assert case_row(engine, case_id)["state"] == "completed"
    html = zwfw.get(f"/cases/{number_of(engine, case_id)}").text
    assert "SF123456" in html and "营业执照" in html and "办结" in html


def test_an_acceptance_task_points_to_the_window(engine, clock, as_user):
    case_id = submit_kaiban(engine)
    entry = tasks_of(engine, case_id)[0]["id"]
    html = as_user("zwfw1").get(f"/tasks/{entry}").text
    assert 'href="/window"' in html and not action_paths(html, entry) & {"accept", "refuse"}


# ---------------------------------------------------------------------------------------------------
# the case page


def test_the_case_page_shows_deadlines_flowchart_history_and_logs_the_view(engine, clock, as_user):
    case_id = kaiban_of_person(engine)
    number = number_of(engine, case_id)
    licence = open_tasks(engine, case_id)["licence"]
    engine.complete_task(licence, "scjg1", "approve", "同意")
    scjg = as_user("scjg1")
    page = scjg.get(f"/cases/{number}")
    assert page.status_code == 200
    html = page.text
    assert "承诺时限" in html and "1工作日" in html and "法定时限" in html and "8.5工作日" in html
    assert "剩余工作时间" in html and "<svg" in html and 'penwidth="2.6"' not in html
    assert "提交申请" in html and "环节办结" in html and "营业执照核发" in html
    assert PERSON["id"] in html  # staff see the applicant unmasked on the case page
    assert scjg.get(f"/cases/{case_id}").status_code == 200  # by id too
    assert viewed(engine, case_id) == [f"/cases/{number}"] * 2
    assert as_user("rsj1").get(f"/cases/{number}").status_code == 200  # a department with work on it
    assert as_user("xf1").get(f"/cases/{number}").status_code == 404  # no work on it: not found
    assert as_user("xf1").get("/cases/99999999999999999999999").status_code == 404


def test_the_case_page_shows_suspensions_and_the_evaluation(engine, clock, as_user):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    engine.suspend_case(case_id, "scjg1", "hearing", "依申请举行听证", "10d")
    html = as_user("scjg1").get(f"/cases/{number_of(engine, case_id)}").text
    assert "听证" in html and "依申请举行听证" in html and "进行中" in html
    engine.resume_case(case_id, "scjg1", "听证结束")
    engine.complete_task(licence, "scjg1", "reject", "不符合条件")
    (report,) = report_tasks(engine, case_id)
    engine.confirm_refusal(report["id"], "scjg_boss", "同意")
    engine.evaluate_case(case_id, "91310000MA1K000001", 4, "pc", "等太久")
    html = as_user("scjg_boss").get(f"/cases/{number_of(engine, case_id)}").text
    assert "不满意" in html and "等太久" in html and "差评整改" in html and "不予许可" in html
    (rectification,) = rows_of(engine, "evaluations", case_id)
    window = as_user("zwfw1")  # the window's department answers for the rating
    task_id = rectification["rectification_task"]
    assert "提交整改结果" in window.get(f"/tasks/{task_id}").text
    window.act(task_id, "approve", {"opinion": "已回访申请人，说明听证程序所需时间"})
    assert task_row(engine, task_id)["state"] == "completed"
