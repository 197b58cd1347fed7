"""The read side (orchestrator/engine/read): queues with the signatures people owe, keyset paging, the case
page and path, search, the applicant's progress view, dashboard figures and the notification outbox, on
SQLite and PostgreSQL. Cases are driven through the Engine's service functions only."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from orchestrator.calendar import BusinessCalendar
from orchestrator.definition.validator import load_departments
from orchestrator.engine import NotFound
from orchestrator.engine import read as r
from orchestrator.render import STATE_COLOURS, flowchart
from orchestrator.store.db import reading

from .conftest import START, fixture_path
from .helpers import (
    KAIBAN_APPLICANT,
    SURVEY_APPLICANT,
    accepted_kaiban,
    add_countersigners,
    at,
    case_row,
    confirm_refusal,
    open_tasks,
    submit_survey,
    surveyed,
)

CAL = BusinessCalendar()


def queue(engine, clock, **kwargs):
    with reading(engine.db) as conn:
        return r.queue(conn, now=clock(), calendar=CAL, **kwargs)


def ids(page) -> list[int]:
    return [item.task_id for item in page]


# ----------------------------------------------------------------------------------------------
# 待办: the pool, survey participants, countersigners, added signers


def test_survey_participants_see_the_survey_until_they_signed(engine, clock):
    case_id = submit_survey(engine)
    engine.accept_case(case_id, "zwfw1")
    survey = open_tasks(engine, case_id)["survey"]
    for department in ("zjj", "xf", "gaj"):
        page = queue(engine, clock, department=department)
        assert ids(page) == [survey], department
    assert [i.source for i in queue(engine, clock, department="xf")] == ["participant"]
    assert ids(queue(engine, clock, department="swj")) == []
    item = queue(engine, clock, department="xf", user="xf1").items[0]
    assert (item.can_sign, item.signature) == (True, "department:xf")
    assert item.applicant_id == SURVEY_APPLICANT["id"] and item.applicant_name == SURVEY_APPLICANT["name"]
    assert item.step_name == "联合踏勘" and item.definition_name == "联合踏勘测试一件事"

    engine.complete_task(survey, "xf1", "approve", "现场符合要求")
    assert ids(queue(engine, clock, department="xf")) == []
    assert ids(queue(engine, clock, department="gaj")) == [survey]
    # claimed by the lead department, the survey still waits for gaj's signature
    engine.claim_task(survey, "zjj1")  # out of zjj's pool, but zjj owes its own participant signature
    assert [(i.task_id, i.source) for i in queue(engine, clock, department="zjj")] == [(survey, "participant")]
    gaj = queue(engine, clock, department="gaj", user="gaj2").items
    assert [(i.task_id, i.state, i.can_sign) for i in gaj] == [(survey, "claimed", True)]


def test_countersigners_see_their_tasks_and_或签_leaves_once_signed(engine, clock):
    add_countersigners(engine)
    case_id = surveyed(engine)
    tasks = open_tasks(engine, case_id)
    fire, police = tasks["fire"], tasks["police"]
    engine.claim_task(fire, "xf1")  # out of the pool; the 会签 roles still owe their signatures
    assert fire not in ids(queue(engine, clock, department="xf"))
    mine = queue(engine, clock, department="xf", user="xf_fire").items
    assert [(i.task_id, i.source, i.signature) for i in mine] == [(fire, "countersign", "role:fire_reviewer")]
    assert ids(queue(engine, clock, department="xf", user="xf2")) == []  # a handler holds no 会签 role

    engine.complete_task(fire, "xf_fire", "approve", "同意")
    assert ids(queue(engine, clock, department="xf", user="xf_fire")) == []
    assert ids(queue(engine, clock, department="xf", user="xf_arch")) == [fire]

    for user in ("gaj_a", "gaj_b"):
        item = next(i for i in queue(engine, clock, user=user) if i.task_id == police)
        assert item.can_sign, user
    # 或签 with an added signer: after one role signs, the other role has nothing left to give
    engine.claim_task(police, "gaj1")
    engine.add_signer(police, "gaj1", "rsj1", "请人社会签")
    engine.complete_task(police, "gaj_a", "approve", "同意")
    assert police not in ids(queue(engine, clock, user="gaj_b"))
    added = queue(engine, clock, user="rsj1").items
    assert [(i.task_id, i.source, i.signature, i.can_sign) for i in added] == [
        (police, "added_signer", "user:rsj1", True)
    ]


def test_a_review_chain_says_who_can_sign_the_next_level(engine, clock):
    case_id = surveyed(engine)
    chain = open_tasks(engine, case_id)["chain"]
    item = next(i for i in queue(engine, clock, department="zjj", user="zjj1") if i.task_id == chain)
    assert (item.can_sign, item.signature) == (True, "level:承办")
    engine.complete_task(chain, "zjj1", "approve", "同意")
    first = next(i for i in queue(engine, clock, department="zjj", user="zjj1") if i.task_id == chain)
    second = next(i for i in queue(engine, clock, department="zjj", user="zjj2") if i.task_id == chain)
    assert (first.can_sign, second.can_sign, second.signature) == (False, True, "level:审核")
    assert not next(i for i in queue(engine, clock, department="zjj") if i.task_id == chain).can_sign


def test_queue_needs_someone_to_ask_for():
    with pytest.raises(ValueError, match="department, a user"):
        r.queue(None, now=START, calendar=CAL)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# order, filters, keyset paging


def _licences(engine, clock, count: int, minutes: int = 7) -> list[int]:
    """``count`` kaiban cases accepted ``minutes`` apart: their licence tasks (scjg) due in that order."""
    made = []
    for _ in range(count):
        case_id = accepted_kaiban(engine)
        made.append(open_tasks(engine, case_id)["licence"])
        clock.advance(minutes=minutes)
    return made


def test_queue_pages_follow_the_due_time_without_gaps_or_repeats_while_tasks_arrive(engine, clock):
    first = _licences(engine, clock, 7)
    seen: list[r.QueueItem] = []
    cursor = None
    arrived: list[int] = []
    while True:
        page = queue(engine, clock, department="scjg", cursor=cursor, limit=3)
        seen.extend(page)
        arrived += _licences(engine, clock, 1)  # a new task (due later) between every two pages
        cursor = page.next
        if cursor is None:
            break
    got = ids(seen)
    assert len(got) == len(set(got)), "a task came twice"
    assert got[:7] == first  # every task that was there, in due order
    assert set(got[7:]) <= set(arrived)
    assert [i.due_at for i in seen] == sorted(i.due_at for i in seen)


def test_untimed_tasks_come_after_the_timed_ones_across_pages(engine, clock, tmp_path):
    from .test_sla import publish_untimed

    publish_untimed(engine, clock, tmp_path)
    untimed = []
    for _ in range(3):
        case_id = engine.submit_case("instant-demo", {"id": "B1", "name": "李四"}, {})
        engine.accept_case(case_id, "zwfw1")
        untimed.append(open_tasks(engine, case_id)["review"])
    timed = _licences(engine, clock, 2)
    got, cursor = [], None
    while True:
        page = queue(engine, clock, department="scjg", cursor=cursor, limit=2)
        got += ids(page)
        if page.next is None:
            break
        cursor = page.next
    assert got == timed + untimed
    assert queue(engine, clock, department="scjg", limit=5).items[-1].remaining_minutes is None


def test_queue_filters(engine, clock):
    kaiban = _licences(engine, clock, 2)
    survey_case = surveyed(engine)
    chain = open_tasks(engine, survey_case)["chain"]
    number = case_row(engine, survey_case)["number"]

    def found(department="zjj", **filters):
        return ids(queue(engine, clock, department=department, filters=r.TaskFilter(**filters)))

    assert found(definition_key="survey-mini") == [chain]
    assert found(definition_key="kaiban-mini") == []
    assert found("scjg", step_id="licence") == kaiban
    assert found(case_number=number[:-1]) == [chain]
    assert found(case_number=number + "9") == []
    assert found("scjg", applicant=KAIBAN_APPLICANT["name"]) == kaiban
    assert found("scjg", applicant=KAIBAN_APPLICANT["id"]) == kaiban
    assert found("scjg", applicant="nobody") == []
    # the first licence (due 14:00, warning from 13:00) turns yellow at 13:00; the second (due 14:07) not yet
    clock.set(at(2, 13, 3))
    engine.sweep()
    assert found("scjg", sla_state="warning") == kaiban[:1]
    assert found("scjg", sla_state="on_track") == kaiban[1:]
    item = queue(engine, clock, department="scjg").items[0]
    assert (item.sla_state, item.remaining_minutes, item.remaining_label) == ("warning", 57, "剩余 57 工作分钟")
    with pytest.raises(ValueError):
        r.TaskFilter(sla_state="purple")


def test_remaining_time_is_negative_when_overdue_and_frozen_while_paused(engine, clock):
    (licence,) = _licences(engine, clock, 1, minutes=0)  # due 14:00
    clock.set(at(2, 15))
    assert queue(engine, clock, department="scjg").items[0].remaining_minutes == -60
    case_id = case_row_of_task(engine, licence)
    clock.set(at(2, 13))
    engine.suspend_case(case_id, "scjg1", "hearing", "听证", "20n")
    clock.set(at(3, 16))  # a day later: the clock stood still at 13:00
    item = queue(engine, clock, department="scjg").items[0]
    assert (item.sla_state, item.remaining_minutes) == ("paused", 60)


def case_row_of_task(engine, task_id: int) -> int:
    from .helpers import task_row

    return task_row(engine, task_id)["case_id"]


# ----------------------------------------------------------------------------------------------
# 在办 and 已办


def test_claimed_and_done(engine, clock):
    first, second = _licences(engine, clock, 2)
    engine.claim_task(first, "scjg1")
    engine.claim_task(second, "scjg1")
    with reading(engine.db) as conn:
        assert ids(r.claimed(conn, "scjg1", now=clock(), calendar=CAL)) == [first, second]
        assert ids(r.claimed(conn, "scjg2", now=clock(), calendar=CAL)) == []
    engine.complete_task(first, "scjg1")
    clock.advance(minutes=1)
    engine.complete_task(second, "scjg1", "reject", "名称不符合规定")
    confirm_refusal(engine, case_row_of_task(engine, second))  # 不予审批报告制: the leader confirms it
    survey_case = submit_survey(engine)
    engine.accept_case(survey_case, "zwfw1")
    survey = open_tasks(engine, survey_case)["survey"]
    clock.advance(minutes=1)
    engine.complete_task(survey, "zjj1", "approve", "现场符合要求")  # a signature, the task goes on

    with reading(engine.db) as conn:
        mine = r.done(conn, "scjg1")
        signer = r.done(conn, "zjj1")
        first_page = r.done(conn, "scjg1", limit=1)
        rest = r.done(conn, "scjg1", cursor=first_page.next, limit=1)
    assert [(i.what, i.task_id, i.outcome) for i in mine] == [
        ("completed", second, "reject"),
        ("completed", first, "approve"),
    ]
    assert ids(first_page) + ids(rest) == [second, first] and rest.next is None
    assert [(i.what, i.task_id, i.signature) for i in signer] == [("signed", survey, "department:zjj")]


def test_a_signature_that_completes_its_task_is_listed_once(engine, clock):
    case_id = submit_survey(engine)
    engine.accept_case(case_id, "zwfw1")
    survey = open_tasks(engine, case_id)["survey"]
    for user in ("zjj1", "xf1", "gaj1"):
        engine.complete_task(survey, user, "approve", "同意")
    with reading(engine.db) as conn:
        last = r.done(conn, "gaj1")
    assert [(i.what, i.task_id) for i in last] == [("signed", survey)]


# ----------------------------------------------------------------------------------------------
# one case


def _busy_case(engine, clock) -> int:
    """A kaiban case that went through 容缺, a suspension, an extension, a 补正, an urge, a sweep,
    certificates and an evaluation."""
    case_id = engine.submit_case(
        "kaiban-mini", KAIBAN_APPLICANT, {"company_name": "甲公司", "employees": 2}, ["id_card"]
    )
    engine.accept_case(case_id, "zwfw1", deferred=["lease"], deferred_limit="1d")
    licence = open_tasks(engine, case_id)["licence"]
    engine.urge("zwfw_boss", "请尽快办理", task_id=licence, within="1h")
    clock.set(at(2, 11))
    engine.suspend_case(case_id, "scjg1", "hearing", "听证", "20n")
    clock.set(at(2, 12))
    engine.resume_case(case_id, "scjg1", "听证结束")
    engine.extend_case(case_id, "scjg1", "1d", "scjg_boss", "材料复杂")
    engine.supply_materials(case_id, KAIBAN_APPLICANT["id"], ["lease"])
    engine.complete_task(licence, "scjg1")
    tasks = open_tasks(engine, case_id)
    engine.complete_task(tasks["invoice"], "swj1", "return", "请补充发票票种核定表", missing=["id_card"])
    engine.supply_materials(case_id, KAIBAN_APPLICANT["id"], ["id_card"])
    clock.set(at(2, 16))
    engine.sweep()
    for step, user in (("seal", "gaj1"), ("invoice", "swj1"), ("social", "rsj1")):
        engine.complete_task(open_tasks(engine, case_id)[step], user)
    engine.issue_certificates(open_tasks(engine, case_id)["issue"], "zwfw1")
    engine.evaluate_case(case_id, KAIBAN_APPLICANT["id"], 1, "pc", "很快")
    return case_id


def test_case_detail_has_everything_in_one_call(engine, clock):
    case_id = _busy_case(engine, clock)
    number = case_row(engine, case_id)["number"]
    with reading(engine.db) as conn:
        detail = r.case_detail(conn, case_id, now=clock(), calendar=CAL)
        by_number = r.case_detail(conn, number=number, now=clock(), calendar=CAL)
        with pytest.raises(NotFound):
            r.case_detail(conn, 999_999, now=clock(), calendar=CAL)
    assert by_number == detail
    assert detail.case.number == number and detail.case.state == "completed" and detail.case.state_label == "办结"
    assert detail.case.definition_name == "开办企业一件事"
    assert detail.form["company_name"] == "甲公司" and set(detail.materials) >= {"id_card", "lease"}
    assert detail.deferred == [] and detail.deferred_due_at is None  # 容缺 settled by the supply
    steps = [t.step_id for t in detail.tasks]
    assert steps[:2] == ["accept", "licence"] and "issue" in steps
    licence = next(t for t in detail.tasks if t.step_id == "licence")
    assert licence.state == "completed" and licence.completed_by == "scjg1"
    assert (licence.paused_minutes, licence.work_minutes) == (60, 60)  # 10:00→12:00 less the hour of 听证
    assert [s.kind for s in detail.suspensions] == ["hearing", "supplement"]
    assert detail.suspensions[0].result == "听证结束" and detail.suspensions[1].ended_at is not None
    assert [(e.amount, e.approver) for e in detail.extensions] == [("1d", "scjg_boss")]
    assert [s.missing for s in detail.supplements] == [[]] or detail.supplements[0].notice == "请补充发票票种核定表"
    assert [c.key for c in detail.certificates] == ["business_licence"]
    assert [(u.level, u.by, u.task_id) for u in detail.urges] == [("urge", "zwfw_boss", licence.id)]
    assert detail.evaluation is not None and detail.evaluation.level == 1
    assert {a.kind for a in detail.alerts} >= {"overdue"}
    kinds = [e.kind for e in detail.timeline]
    assert kinds[0] == "submitted" and "clock_stopped" in kinds and "evaluated" in kinds
    assert [e.id for e in detail.timeline] == sorted(e.id for e in detail.timeline)
    assert next(e for e in detail.timeline if e.kind == "accept").label == "受理"


def test_superseded_tasks_and_their_signoffs_are_on_the_case_page(engine, clock):
    case_id = surveyed(engine)
    chain = open_tasks(engine, case_id)["chain"]
    engine.complete_task(chain, "zjj1", "approve", "同意")
    engine.send_back(chain, "zjj2", "踏勘结论需补充", to_step="survey")
    with reading(engine.db) as conn:
        detail = r.case_detail(conn, case_id, now=clock(), calendar=CAL)
    surveys = [t for t in detail.tasks if t.step_id == "survey"]
    old_chain = next(t for t in detail.tasks if t.id == chain)
    assert old_chain.superseded and old_chain.state == "cancelled"
    assert [s.signed_by for s in old_chain.signoffs] == ["zjj1", None, None]
    assert len(surveys) == 2 and [s.party for s in surveys[0].signoffs] == ["zjj", "xf", "gaj"]


# ----------------------------------------------------------------------------------------------
# the path, drawn


def test_case_path_colours_each_step_and_renders(engine, clock, departments_of_fixtures):
    case_id = surveyed(engine)
    tasks = open_tasks(engine, case_id)
    engine.complete_task(tasks["drainage"], "swj1", "reject", "排水方案不符合要求")  # on_reject: continue
    confirm_refusal(engine, case_id)
    chain = tasks["chain"]
    engine.complete_task(chain, "zjj1", "approve", "同意")
    engine.send_back(chain, "zjj2", "重新踏勘", to_step="survey")
    clock.set(at(4, 10))  # an hour into the day after the 1d limits of the open steps ran out
    engine.sweep()
    definition = engine.definitions.get(engine.db.connect(), "survey-mini", 1)
    with reading(engine.db) as conn:
        path = r.case_path(conn, case_id, now=clock(), calendar=CAL, step_ids=[s.id for s in definition.steps])
    states = {step: s.state for step, s in path.steps.items()}
    assert states["accept"] == "done"
    assert states["drainage"] == "rejected"
    assert states["chain"] == "returned"
    assert states["survey"] == "overdue"
    assert states["instant"] == "not_reached" and states["issue"] == "not_reached"
    assert path.steps["survey"].remaining_minutes < 0 and path.steps["survey"].note.startswith("逾期")
    assert ("accept", "survey") in path.taken and ("survey", "drainage") in path.taken
    assert ("chain", "instant") not in path.taken
    source = flowchart(definition, departments_of_fixtures, path.overlay, path.taken).source
    assert STATE_COLOURS["overdue"] in source and STATE_COLOURS["rejected"] in source
    assert "逾期" in source and "penwidth=2.6" in source


@pytest.fixture
def departments_of_fixtures():
    return load_departments(fixture_path("departments.yaml"))


# ----------------------------------------------------------------------------------------------
# search and 办理进度


def test_search_cases_by_number_applicant_definition_state_colour_and_date(engine, clock):
    kaiban = [accepted_kaiban(engine) for _ in range(3)]
    clock.set(at(3, 10))
    survey = submit_survey(engine)
    numbers = {c: case_row(engine, c)["number"] for c in [*kaiban, survey]}

    def search(**filters):
        with reading(engine.db) as conn:
            return [c.id for c in r.search_cases(conn, r.CaseFilter(**filters), now=clock(), calendar=CAL)]

    assert search() == [survey, *reversed(kaiban)]
    assert search(number_prefix=numbers[survey]) == [survey]
    assert search(applicant=SURVEY_APPLICANT["name"]) == [survey]
    assert search(applicant=KAIBAN_APPLICANT["id"]) == list(reversed(kaiban))
    assert search(definition_key="kaiban-mini", state="accepted") == list(reversed(kaiban))
    assert search(state="submitted") == [survey]
    assert search(submitted_from=at(3, 0)) == [survey]
    assert search(submitted_to=at(3, 0)) == list(reversed(kaiban))
    engine.sweep(at(3, 16))  # the kaiban cases (1d, due Tue 17:00) are in their last quarter
    assert search(sla_state="warning") == list(reversed(kaiban))
    pages, cursor = [], None
    with reading(engine.db) as conn:
        while True:
            page = r.search_cases(conn, now=clock(), calendar=CAL, cursor=cursor, limit=3)
            pages.append([c.id for c in page])
            if page.next is None:
                break
            cursor = page.next
    assert pages == [[survey, kaiban[2], kaiban[1]], [kaiban[0]]]


def test_progress_shows_the_applicant_no_staff_and_hides_other_peoples_cases(engine, clock):
    case_id = accepted_kaiban(engine)
    number = case_row(engine, case_id)["number"]
    engine.complete_task(open_tasks(engine, case_id)["licence"], "scjg1", "approve", "同意，张科长")
    with reading(engine.db) as conn:
        view = r.progress(conn, number, KAIBAN_APPLICANT["id"])
        with pytest.raises(NotFound) as wrong:
            r.progress(conn, number, "someone-else")
        with pytest.raises(NotFound) as unknown:
            r.progress(conn, "TB-NO-SUCH", KAIBAN_APPLICANT["id"])
    assert str(wrong.value) == str(unknown.value)
    assert [s.name for s in view.done] == ["综合受理", "营业执照核发"]
    assert {s.name for s in view.current} == {"公章刻制备案", "发票申领", "社保登记"}
    assert view.due_at == case_row(engine, case_id)["due_at"] and view.can_rate is False
    text = repr(view)
    for staff in ("scjg1", "zwfw1", "张科长"):
        assert staff not in text, staff
    assert "市场监督管理局" in text

    for step, user in (("seal", "gaj1"), ("invoice", "swj1"), ("social", "rsj1")):
        engine.complete_task(open_tasks(engine, case_id)[step], user)
    engine.issue_certificates(open_tasks(engine, case_id)["issue"], "zwfw1")
    with reading(engine.db) as conn:
        finished = r.progress(conn, number, KAIBAN_APPLICANT["id"])
    assert (finished.state, finished.outcome, finished.outcome_label, finished.can_rate) == (
        "completed",
        "approved",
        "准予许可",
        True,
    )
    engine.evaluate_case(case_id, KAIBAN_APPLICANT["id"], 1)
    with reading(engine.db) as conn:
        assert r.progress(conn, number, KAIBAN_APPLICANT["id"]).can_rate is False


# ----------------------------------------------------------------------------------------------
# dashboard


def test_dashboard_figures_match_a_hand_count(engine, clock):
    a, b = accepted_kaiban(engine), accepted_kaiban(engine)  # Mon 10:00: licences due 14:00
    clock.set(at(2, 11))
    engine.complete_task(open_tasks(engine, a)["licence"], "scjg1")  # 60 working minutes, on time
    clock.set(at(2, 11, 30))
    engine.suspend_case(a, "gaj1", "hearing", "听证", "20n")
    clock.set(at(2, 12, 30))
    engine.resume_case(a, "gaj1")  # A's open steps (due 13:00) now due 14:00, 60 minutes paused
    clock.set(at(2, 12, 45))
    engine.complete_task(open_tasks(engine, a)["seal"], "gaj1")  # 105 - 60 = 45
    clock.set(at(2, 13))
    engine.complete_task(open_tasks(engine, a)["social"], "rsj1")  # 120 - 60 = 60
    clock.set(at(2, 13, 30))
    engine.complete_task(open_tasks(engine, b)["licence"], "scjg2")  # 210
    clock.set(at(2, 14, 30))
    engine.complete_task(open_tasks(engine, a)["invoice"], "swj1")  # 210 - 60 = 150, late (due 14:00)
    clock.set(at(2, 14, 45))
    engine.issue_certificates(open_tasks(engine, a)["issue"], "zwfw1")  # 15; case A 办结 on time
    engine.evaluate_case(a, KAIBAN_APPLICANT["id"], 2)
    engine.sweep(at(2, 15))  # B's three steps (ready 13:30, 2h) turn yellow at 15:00

    with reading(engine.db) as conn:
        board = r.dashboard(conn, at(2, 0), at(3, 0))
        empty = r.dashboard(conn, at(9, 0), at(10, 0))
    departments = {d.department: d for d in board.departments}
    scjg = departments["scjg"]
    assert (scjg.work.completed, scjg.work.on_time, scjg.work.timed) == (2, 2, 2)
    assert scjg.work.average_minutes == 135 and scjg.work.p90_minutes == pytest.approx(195)  # 60 + 0.9 × 150
    assert scjg.name == "市场监督管理局" and scjg.open == 0
    swj = departments["swj"]
    assert (swj.work.completed, swj.work.on_time_rate, swj.work.p90_minutes) == (1, 0.0, 150)
    assert (swj.open, swj.warning, swj.alerts) == (1, 1, {"warning": 1})
    assert (departments["gaj"].work.average_minutes, departments["rsj"].work.average_minutes) == (45, 60)
    zwfw = departments["zwfw"]  # two acceptances (0 minutes) and one issue (15)
    assert (zwfw.work.completed, zwfw.work.average_minutes, zwfw.open) == (3, 5, 0)
    (kaiban,) = board.definitions
    assert (kaiban.definition_key, kaiban.name) == ("kaiban-mini", "开办企业一件事")
    assert (kaiban.open, kaiban.warning, kaiban.completed, kaiban.on_time_rate) == (1, 0, 1, 1.0)
    steps = {s.step_id: s for s in kaiban.steps}
    assert steps["licence"].step_name == "营业执照核发"
    assert (steps["licence"].work.completed, steps["licence"].work.p90_minutes) == (2, pytest.approx(195))
    assert steps["invoice"].work.on_time_rate == 0.0
    assert kaiban.evaluations == {2: 1} and kaiban.alerts == {"warning": 3}
    # nothing happened in the other period; the live counts are the same
    assert [d.work.completed for d in empty.departments] == [0] * len(empty.departments)
    live = {d.department: d.open for d in board.departments if d.open}
    assert {d.department: d.open for d in empty.departments} == live == {"gaj": 1, "swj": 1, "rsj": 1}
    with pytest.raises(ValueError, match="empty"):
        r.dashboard(None, at(3, 0), at(2, 0))  # type: ignore[arg-type]

    # the same figures from the summary of closed days, alone or with live completions around it
    clock.set(at(3, 9))
    engine.complete_task(open_tasks(engine, b)["seal"], "gaj2")  # Tue 09:00: live, after the summary
    with engine.db.begin() as conn:
        assert r.refresh_work_summary(conn, clock()) == 1  # Monday; Tuesday is not over
        assert r.refresh_work_summary(conn, clock()) == 0
    with reading(engine.db) as conn:
        assert r.summarized_through(conn) == at(3, 0).date()
        summarized = r.dashboard(conn, at(2, 0), at(3, 0))
        wider = r.dashboard(conn, at(1, 0), at(4, 0))  # Sunday and Monday summarized, Tuesday live
        partial = r.dashboard(conn, at(2, 12), at(3, 12))  # no whole summarized day: all live
    assert _work_of(summarized) == _work_of(board)
    gaj = {d.department: d for d in wider.departments}["gaj"]
    # A's seal (45, Monday, from the summary) and B's seal (Mon 13:30 → Tue 09:00: 210, live)
    assert (gaj.work.completed, gaj.work.average_minutes) == (2, 127.5)
    assert gaj.work.p90_minutes == pytest.approx(45 + 0.9 * (210 - 45))
    assert {d.department: d.work.completed for d in partial.departments if d.work.completed} == {
        "gaj": 2,
        "rsj": 1,
        "scjg": 1,
        "swj": 1,
        "zwfw": 1,
    }


def _work_of(board):
    return (
        {d.department: d.work for d in board.departments},
        {(s.definition_key, s.step_id): s.work for f in board.definitions for s in f.steps},
    )


# ----------------------------------------------------------------------------------------------
# the outbox


def _outbox(engine, clock, cases: int = 2) -> list[int]:
    for _ in range(cases):
        accepted_kaiban(engine)
    with engine.db.begin() as conn:
        r.register_channel(conn, "inbox", now=clock(), max_attempts=2)
        return [row.id for row in conn.exec_driver_sql("SELECT id FROM notifications ORDER BY id")]


def test_outbox_claims_delivers_retries_and_gives_up(engine, clock):
    owed = _outbox(engine, clock)
    assert owed
    now = clock()
    with engine.db.begin() as conn:
        first = r.claim(conn, "inbox", now=now, limit=2, lease=timedelta(minutes=1))
        second = r.claim(conn, "inbox", now=now, limit=100)
    assert [i.id for i in first.items] == owed[:2] and [i.id for i in second.items] == owed[2:]
    with engine.db.begin() as conn:
        assert r.claim(conn, "inbox", now=now).items == ()  # every one is leased
        assert r.mark_delivered(conn, "inbox", second.token, [i.id for i in second.items], now=now) == len(owed) - 2
        assert (
            r.mark_failed(
                conn, "inbox", first.token, owed[0], "SMTP 550", now=now, retry_at=now + timedelta(minutes=10)
            )
            == "pending"
        )
    # the lease of owed[1] lapses: it is claimed again, a second attempt
    later = now + timedelta(minutes=2)
    with engine.db.begin() as conn:
        again = r.claim(conn, "inbox", now=later)
        assert [(i.id, i.attempt) for i in again.items] == [(owed[1], 2)]
        assert r.mark_delivered(conn, "inbox", first.token, [owed[1]], now=later) == 0  # the old claim lost it
        assert r.mark_delivered(conn, "inbox", again.token, [owed[1]], now=later) == 1
    retry = now + timedelta(minutes=11)
    with engine.db.begin() as conn:
        last = r.claim(conn, "inbox", now=retry)
        assert [(i.id, i.attempt) for i in last.items] == [(owed[0], 2)]
        assert (
            r.mark_failed(conn, "inbox", last.token, owed[0], "SMTP 550 again", now=retry, retry_at=retry) == "failed"
        )
        assert r.claim(conn, "inbox", now=retry + timedelta(hours=1)).items == ()
        failed = r.failed_deliveries(conn, "inbox")
        settled = dict(conn.exec_driver_sql("SELECT id, delivered_at IS NOT NULL FROM notifications").all())
        unsettled = conn.exec_driver_sql("SELECT COUNT(*) FROM notifications WHERE settled_at IS NULL").scalar()
    assert [(f.notification_id, f.attempts, f.last_error) for f in failed] == [(owed[0], 2, "SMTP 550 again")]
    assert unsettled == 0 and settled[owed[0]] == 0 and all(settled[i] for i in owed[1:])
    with engine.db.begin() as conn, pytest.raises(ValueError, match="not registered"):
        r.claim(conn, "sms", now=retry)


def test_a_second_channel_gets_its_own_copy_of_each_notification(engine, clock):
    owed = _outbox(engine, clock, cases=1)
    with engine.db.begin() as conn:
        r.register_channel(conn, "smtp", now=clock())
        inbox = r.claim(conn, "inbox", now=clock())
        smtp = r.claim(conn, "smtp", now=clock())
        r.mark_delivered(conn, "inbox", inbox.token, owed, now=clock())
        half = conn.exec_driver_sql("SELECT COUNT(*) FROM notifications WHERE settled_at IS NULL").scalar()
        r.mark_delivered(conn, "smtp", smtp.token, owed, now=clock())
        rest = conn.exec_driver_sql("SELECT COUNT(*) FROM notifications WHERE delivered_at IS NULL").scalar()
    assert [i.id for i in inbox.items] == [i.id for i in smtp.items] == owed
    assert (half, rest) == (len(owed), 0)


@pytest.mark.parametrize("db", ["postgres"], indirect=True)  # concurrent claimers; SQLite has one writer
def test_two_workers_never_claim_the_same_notification(engine, clock, db):
    owed = _outbox(engine, clock, cases=12)
    now = clock()
    claimed_by: dict[str, list[int]] = {"a": [], "b": []}
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            start.wait()
            while True:
                with db.begin() as conn:
                    batch = r.claim(conn, "inbox", now=now, limit=3)
                    if not batch.items:
                        return
                    claimed_by[name] += [i.id for i in batch.items]
                    r.mark_delivered(conn, "inbox", batch.token, [i.id for i in batch.items], now=now)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(name,)) for name in claimed_by]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    both = claimed_by["a"] + claimed_by["b"]
    assert sorted(both) == owed, "a notification was claimed twice or never"
    assert claimed_by["a"] and claimed_by["b"], "one worker did all the work: no concurrency was tested"
