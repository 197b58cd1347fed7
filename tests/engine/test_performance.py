"""效能监察 reads (orchestrator/engine/read/performance.py) on SQLite and PostgreSQL, against one Monday whose
every figure is counted by hand: five 开办企业 applications (window at a centre, online, window without a
centre, a refusal waiting for its leader, a 补正 round), three of them closed and rated, one left to go red.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from orchestrator.calendar import BusinessCalendar
from orchestrator.engine import read as r
from orchestrator.engine.read import performance as p
from orchestrator.store.db import reading
from web.accounts import add_centre, open_accounts

from .helpers import KAIBAN_APPLICANT, at, open_tasks, submit_kaiban

CAL = BusinessCalendar()
APPLICANT = KAIBAN_APPLICANT["id"]
MONDAY = (at(2, 0), at(3, 0))


@dataclass
class Monday:
    a: int  # window at the city centre; closed 12:30, certificate by mail: 1 visit; rated 1
    b: int  # online, no seal, no employees (two branches skipped); closed 11:30 by mail: 0 visits; rated 4
    c: int  # window, no centre; its licence (due 14:00) left open: 红牌 at 15:00
    d: int  # window at the centre, 不予受理 proposed, waiting for the leader (否定报备)
    e: int  # window at the centre, one 补正 round, collected at the window: 3 visits; rated 2
    licence_c: int
    rectification: int


def run_monday(engine, clock) -> Monday:
    """Mon 2026-03-02, every working time chosen (see each line)."""
    a = submit_kaiban(engine, channel="window", centre="city")
    b = submit_kaiban(engine, form={"needs_seal": False, "employees": 0}, channel="online")
    c = submit_kaiban(engine)
    d = submit_kaiban(engine, centre="city")
    e = submit_kaiban(engine, materials=["id_card"], centre="city")
    for case_id in (a, b, c):
        engine.accept_case(case_id, "zwfw1")  # 10:00, 0 minutes
    engine.request_supplement(e, "zwfw1", ["lease"], "请补交住所使用证明")
    engine.refuse_case(d, "zwfw1", "经营范围涉及前置许可，不符合受理条件")
    licence_c = open_tasks(engine, c)["licence"]

    clock.set(at(2, 10, 30))
    engine.complete_task(open_tasks(engine, b)["licence"], "scjg1")  # 30
    clock.set(at(2, 11))
    engine.complete_task(open_tasks(engine, a)["licence"], "scjg1")  # 60
    engine.complete_task(open_tasks(engine, b)["invoice"], "swj1")  # 30
    engine.supply_materials(e, APPLICANT, ["lease"])
    engine.accept_case(e, "zwfw1")
    clock.set(at(2, 11, 30))
    engine.complete_task(open_tasks(engine, a)["seal"], "gaj1")  # 30
    engine.issue_certificates(open_tasks(engine, b)["issue"], "zwfw1", "mail", tracking_number="EMS001")  # 30
    clock.set(at(2, 12))
    engine.complete_task(open_tasks(engine, a)["invoice"], "swj1")  # 60
    engine.complete_task(open_tasks(engine, a)["social"], "rsj1")  # 60
    engine.complete_task(open_tasks(engine, e)["licence"], "scjg2")  # 60
    clock.set(at(2, 12, 30))
    engine.issue_certificates(open_tasks(engine, a)["issue"], "zwfw1", "mail", tracking_number="EMS002")  # 30
    clock.set(at(2, 13))
    engine.complete_task(open_tasks(engine, e)["seal"], "gaj1")  # 60
    engine.complete_task(open_tasks(engine, e)["invoice"], "swj1")  # 60
    engine.complete_task(open_tasks(engine, e)["social"], "rsj1")  # 60
    clock.set(at(2, 13, 30))
    engine.issue_certificates(open_tasks(engine, e)["issue"], "zwfw1", "window")  # 30
    engine.evaluate_case(a, APPLICANT, 1)
    engine.evaluate_case(b, APPLICANT, 4, comment="等了很久")
    engine.evaluate_case(e, APPLICANT, 2)
    rectification = open_tasks(engine, b)["__rectification__"]
    clock.set(at(2, 15))
    engine.sweep()  # C's licence (ready 10:00, 0.5d = 4 h) was due at 14:00: 红牌
    return Monday(a, b, c, d, e, licence_c, rectification)


def test_the_heat_map_of_a_definition_counts_each_step_and_branch(engine, clock):
    run_monday(engine, clock)
    with reading(engine.db) as conn:
        heat = p.step_heat(conn, "kaiban-mini", *MONDAY)
    assert heat.closed_cases == 3  # A, B, E (D waits for its leader, C is open)
    licence = heat.steps["licence"]
    assert (licence.work.completed, licence.work.on_time, licence.work.timed) == (3, 3, 3)
    assert licence.work.average_minutes == 50 and licence.median_minutes == 60  # 30, 60, 60
    assert licence.work.p90_minutes == pytest.approx(60)
    seal, social, invoice = heat.steps["seal"], heat.steps["social"], heat.steps["invoice"]
    assert (seal.work.completed, seal.median_minutes, seal.work.p90_minutes) == (2, 45, pytest.approx(57))
    # B needs no seal and has no employees: of the three closed cases, two took each branch
    assert (seal.reached, seal.taken, social.reached, social.taken) == (3, 2, 3, 2)
    assert seal.branch_share == pytest.approx(2 / 3) and invoice.branch_share == 1.0
    assert heat.steps["issue"].work.average_minutes == 30
    # the step list follows the definition, the rectification comes after it
    assert list(heat.steps)[:6] == ["accept", "licence", "seal", "invoice", "social", "issue"]
    with reading(engine.db) as conn:
        empty = p.step_heat(conn, "kaiban-mini", at(9, 0), at(10, 0))
    assert empty.closed_cases == 0 and empty.steps["licence"].work.completed == 0
    assert empty.steps["licence"].median_minutes is None and empty.steps["seal"].branch_share is None

    # the same figures from the summary of closed days (Tuesday: Monday is closed)
    clock.set(at(3, 9))
    with engine.db.begin() as conn:
        assert r.refresh_work_summary(conn, clock()) == 1
    with reading(engine.db) as conn:
        summarized = p.step_heat(conn, "kaiban-mini", *MONDAY)
    assert summarized.steps == heat.steps


def test_the_alert_list_and_the_refusals_waiting_for_a_leader(engine, clock):
    monday = run_monday(engine, clock)
    engine.urge("scjg_boss", "请今日办结", task_id=monday.licence_c, level="supervise")
    with reading(engine.db) as conn:
        red = p.cards(conn, "overdue", now=clock(), calendar=CAL)
        yellow = p.cards(conn, "warning", now=clock(), calendar=CAL)
        theirs = p.cards(conn, "overdue", now=clock(), calendar=CAL, departments={"scjg"})
        others = p.cards(conn, "overdue", now=clock(), calendar=CAL, departments={"gaj"})
        refusals = p.pending_refusals(conn, now=clock(), calendar=CAL)
        live = p.live_counts(conn)
    # D's acceptance waits (open) while the leader decides the refusal: due 11:00, the most late first
    assert [(c.case_id, c.step_id, c.remaining_minutes) for c in red] == [
        (monday.d, "accept", -240),
        (monday.c, "licence", -60),
    ]
    card = red[1]
    assert (card.task_id, card.step_name, card.department_name) == (monday.licence_c, "营业执照核发", "市场监督管理局")
    assert card.sla_state == "overdue" and card.assignee is None  # in the pool, due 14:00, now 15:00
    assert (card.urged.urges, card.urged.supervisions) == (0, 1) and red[0].urged.supervisions == 0
    assert card.definition_name == "开办企业一件事" and card.number.startswith("TB")
    assert yellow == () and theirs == red[1:] and others == ()
    (refusal,) = refusals
    assert (refusal.case_id, refusal.kind, refusal.department, refusal.proposed_by) == (
        monday.d,
        "not_accepted",
        "zwfw",
        "zwfw1",
    )
    assert refusal.waiting_minutes == 300 and refusal.report_state == "ready"  # proposed 10:00
    assert "前置许可" in refusal.reason
    departments = {d.code: d for d in live.departments}
    assert (departments["scjg"].open, departments["scjg"].overdue) == (1, 1)
    # D's acceptance and its leader's report task, B's rectification
    assert (departments["zwfw"].open, departments["zwfw"].overdue) == (3, 1)
    assert (live.open_tasks, live.overdue_tasks, departments["xf"].open) == (4, 2, 0)
    kaiban = {d.code: d for d in live.definitions}["kaiban-mini"]
    assert kaiban.open == 1  # C (D was never accepted)


def test_ratings_bad_ones_and_their_rectification(engine, clock):
    monday = run_monday(engine, clock)
    with reading(engine.db) as conn:
        rated = p.ratings(conn, *MONDAY)
        (bad,) = p.bad_ratings(conn, *MONDAY)
    assert [(row.code, row.levels) for row in rated.by_definition] == [("kaiban-mini", {1: 1, 2: 1, 4: 1})]
    by_department = {row.code: row.levels for row in rated.by_department}
    # A and E went through all five departments, B skipped 公安 (seal) and 人社 (social)
    assert by_department == {
        "gaj": {1: 1, 2: 1},
        "rsj": {1: 1, 2: 1},
        "scjg": {1: 1, 2: 1, 4: 1},
        "swj": {1: 1, 2: 1, 4: 1},
        "zwfw": {1: 1, 2: 1, 4: 1},
    }
    zwfw = next(row for row in rated.by_department if row.code == "zwfw")
    assert (zwfw.total, zwfw.satisfied, zwfw.bad, zwfw.satisfaction_rate) == (3, 2, 1, pytest.approx(2 / 3))
    assert (bad.case_id, bad.level, bad.comment, bad.rectification_state) == (monday.b, 4, "等了很久", "open")
    assert bad.rectification_department == "zwfw" and bad.level_label == "不满意"

    clock.set(at(2, 16))
    engine.complete_task(monday.rectification, "zwfw1", "approve", "已回访申请人，优化邮寄流程")
    with reading(engine.db) as conn:
        (bad,) = p.bad_ratings(conn, *MONDAY)
        scoped = p.bad_ratings(conn, *MONDAY, departments={"gaj"})
        board = r.dashboard(conn, *MONDAY)
        on_time = p.on_time_by_department(conn, *MONDAY)
        rated = p.ratings(conn, *MONDAY)
    assert (bad.rectification_state, bad.rectification_result, bad.rectification_on_time) == (
        "done",
        "已回访申请人，优化邮寄流程",
        True,
    )
    assert scoped == ()  # B never reached 公安

    # the stars' on-time figures are the dashboard's, from sums alone
    assert [(o.department, o.completed, o.timed, o.on_time) for o in on_time] == [
        (d.department, d.work.completed, d.work.timed, d.work.on_time) for d in board.departments if d.work.completed
    ]
    stars = p.department_stars(on_time, rated, min_sample=0)
    # on time everywhere; satisfaction 1.0 (gaj, rsj) or 2/3: 60 + 40 × 2/3 = 86.7
    assert [(s.department, s.rank, s.score, s.stars) for s in stars] == [
        ("gaj", 1, 100.0, 5),
        ("rsj", 2, 100.0, 5),
        ("scjg", 3, 86.7, 3),
        ("swj", 4, 86.7, 3),
        ("zwfw", 5, 86.7, 3),
    ]
    # a small sample ranks last: zwfw has 9 timed tasks (4 acceptances, 1 returned for 补正, 3 issues, the
    # rectification) and 3 ratings, scjg and swj 3 + 3, gaj and rsj 2 + 2
    assert {o.department: o.timed for o in on_time} == {"gaj": 2, "rsj": 2, "scjg": 3, "swj": 3, "zwfw": 9}
    small = p.department_stars(on_time, rated, min_sample=9)
    assert [(s.department, s.enough) for s in small] == [
        ("zwfw", True),
        ("gaj", False),
        ("rsj", False),
        ("scjg", False),
        ("swj", False),
    ]


def test_the_city_plan_counts_items_and_cases(engine, clock):
    run_monday(engine, clock)
    with reading(engine.db) as conn:
        before = p.plan_targets(conn, *MONDAY)
    assert before.window_departments == () and before.one_window_items == 0  # nobody works a window yet
    add_centre(engine.db, "city", "市民中心", "city")
    open_accounts(engine.db, [("zwfw1", ["window"], "city")], "correct-horse-battery", "test")
    with reading(engine.db) as conn:
        plan = p.plan_targets(conn, *MONDAY)
        empty = p.plan_targets(conn, at(9, 0), at(10, 0))
    assert plan.window_departments == ("zwfw",)
    # six test definitions; consent-mini and relay-mini hand their certificates over at a window only
    assert (plan.published, plan.online_items, plan.one_window_items, plan.one_visit_items) == (6, 4, 6, 6)
    assert {i.key for i in plan.items if not i.online} == {"consent-mini", "relay-mini"}
    assert (plan.submitted, plan.online, plan.at_window, plan.at_centre, plan.items_with_cases) == (5, 1, 4, 3, 1)
    # B online by mail 0, A window + mail 1, E window + 补正 + collected at the window 3
    assert (plan.closed, plan.visits, plan.at_most_one_visit) == (3, {0: 1, 1: 1, 3: 1}, 2)
    assert (empty.submitted, empty.closed, empty.visits) == (0, 0, {})


def test_weekly_trends_agree_with_the_dashboard_and_the_summary(engine, clock):
    run_monday(engine, clock)
    with reading(engine.db) as conn:
        weeks = p.weekly_trends(conn, now=clock(), weeks=2)
        board = r.dashboard(conn, at(2, 0), clock())
        scjg_only = p.weekly_trends(conn, now=clock(), weeks=1, departments={"scjg"})
        other_item = p.weekly_trends(conn, now=clock(), weeks=1, definitions={"survey-mini"})
        on_time = p.on_time_by_department(conn, *MONDAY)
    last_week, this_week = weeks
    assert (last_week.start.isoformat(), this_week.start.isoformat()) == ("2026-02-23", "2026-03-02")
    assert (last_week.submitted, last_week.tasks, last_week.on_time_rate) == (0, 0, None)
    assert (this_week.submitted, this_week.closed, this_week.closed_on_time, this_week.on_time_rate) == (5, 3, 3, 1.0)
    assert this_week.tasks == sum(d.work.completed for d in board.departments)
    assert this_week.tasks_on_time == sum(d.work.on_time for d in board.departments)
    (scjg_week,) = scjg_only
    assert (scjg_week.tasks, scjg_week.average_minutes, scjg_week.submitted) == (3, 50, 5)
    assert (other_item[0].submitted, other_item[0].closed) == (0, 0)
    with pytest.raises(ValueError, match="weeks"):
        p.weekly_trends(None, now=clock(), weeks=0)  # type: ignore[arg-type]

    clock.set(at(4, 9))  # Wednesday: Monday and Tuesday summarized, the same figures
    with engine.db.begin() as conn:
        assert r.refresh_work_summary(conn, clock()) == 2
    with reading(engine.db) as conn:
        again = p.weekly_trends(conn, now=clock(), weeks=2)
        assert p.on_time_by_department(conn, *MONDAY) == on_time  # from the summary's sums
    assert again[1].tasks == this_week.tasks and again[1].minutes_total == this_week.minutes_total
    assert again[1].tasks_on_time == this_week.tasks_on_time and again[0] == last_week


def test_a_supervisors_definitions_are_those_their_departments_take_part_in(engine):
    with reading(engine.db) as conn:
        xf = p.definitions_of_departments(conn, {"xf"})
        zwfw = p.definitions_of_departments(conn, {"zwfw"})
    assert xf == {"survey-mini"} and "kaiban-mini" in zwfw and len(zwfw) == 6


def test_the_nightly_job_keeps_the_summary_the_dashboard_reads(engine, clock, tmp_path):
    from flows.jobs import Jobs
    from orchestrator.settings import Settings

    run_monday(engine, clock)
    clock.set(at(3, 0, 30))  # Tuesday 00:30, when the daily report runs
    jobs = Jobs(Settings(home=tmp_path, calendar_file="none"), engine)
    jobs.daily_report()
    with reading(engine.db) as conn:
        assert r.summarized_through(conn) == at(3, 0).date()  # Monday is in work_days


# ----------------------------------------------------------------------------------------------
# the case search keeps exactly the cases behind a figure (CaseFilter's dashboard fields)


@dataclass
class Week:
    monday: Monday
    f: int  # online, submitted and accepted Tuesday, left open (live)


def run_week(engine, clock) -> Week:
    """The Monday, then Tuesday 2026-03-03 and the Monday after (2026-03-09), every event on its own day."""
    monday = run_monday(engine, clock)
    clock.set(at(3, 10))
    engine.complete_task(monday.licence_c, "scjg1")  # C's licence, a day late
    report = open_tasks(engine, monday.d)["__negative_report__"]
    engine.confirm_refusal(report, "zwfw_boss", "同意不予受理")  # D closes (不予受理) Tuesday
    clock.set(at(3, 11))
    engine.evaluate_case(monday.d, APPLICANT, 3)
    engine.complete_task(monday.rectification, "zwfw1", "approve", "已回访")  # B's 差评整改
    f = submit_kaiban(engine, channel="online")
    engine.accept_case(f, "zwfw1")
    clock.set(at(9, 10))  # C closes the Monday after, its certificate collected at the window
    for step, user in (("seal", "gaj1"), ("invoice", "swj1"), ("social", "rsj1")):
        engine.complete_task(open_tasks(engine, monday.c)[step], user)
    engine.issue_certificates(open_tasks(engine, monday.c)["issue"], "zwfw1", "window")
    clock.set(at(9, 11))
    engine.sweep()  # F's licence, due last week: 红牌
    return Week(monday, f)


def test_each_dashboard_filter_of_the_case_search_keeps_exactly_its_cases(engine, clock):
    week = run_week(engine, clock)
    m = week.monday
    tuesday, next_monday = (at(3, 0), at(4, 0)), (at(9, 0), at(10, 0))

    def found(**filters) -> set[int]:
        with reading(engine.db) as conn:
            return {c.id for c in r.search_cases(conn, r.CaseFilter(**filters), now=clock(), calendar=CAL, limit=500)}

    everything = {m.a, m.b, m.c, m.d, m.e, week.f}
    assert found() == everything
    assert found(live=True) == {week.f} and found(live=False) == everything - {week.f}
    assert found(channel="online") == {m.b, week.f} and found(channel="window") == {m.a, m.c, m.d, m.e}
    assert found(at_centre=True) == {m.a, m.d, m.e} and found(at_centre=False) == {m.b, m.c, week.f}
    assert found(channel="window", at_centre=True, submitted_from=tuesday[0]) == set()
    # closed (any outcome): A, B, E Monday, D (不予受理) Tuesday, C the Monday after; F is open
    assert found(closed_from=MONDAY[0], closed_to=MONDAY[1]) == {m.a, m.b, m.e}
    assert found(closed_from=tuesday[0], closed_to=tuesday[1]) == {m.d}
    assert found(closed_from=tuesday[0]) == {m.c, m.d} and found(closed_to=tuesday[0]) == {m.a, m.b, m.e}
    assert found(state="completed", closed_from=MONDAY[0]) == {m.a, m.b, m.c, m.e}
    # a task completed: of the department, of the step, in the period — one task meets them all
    assert found(done_department="scjg", done_from=MONDAY[0], done_to=MONDAY[1]) == {m.a, m.b, m.e}
    assert found(done_department="scjg", done_from=tuesday[0], done_to=tuesday[1]) == {m.c}
    assert found(done_step="licence") == {m.a, m.b, m.c, m.e}
    assert found(done_department="gaj", done_step="licence") == set()  # A's and E's gaj task is the seal
    assert found(done_department="gaj", done_to=MONDAY[1]) == {m.a, m.e}
    # 差评整改 and 否定报备 count for their department, as in the per-department figures (F: its acceptance)
    assert found(done_department="zwfw", done_from=tuesday[0], done_to=tuesday[1]) == {m.b, m.d, week.f}
    assert found(done_step="__rectification__") == {m.b} and found(done_step="__negative_report__") == {m.d}
    # rated in the period, and for a department: one that completed a task of the case
    assert found(rated_from=MONDAY[0], rated_to=MONDAY[1]) == {m.a, m.b, m.e}
    assert found(rated_from=tuesday[0]) == {m.d} and found(rated_to=next_monday[1]) == {m.a, m.b, m.d, m.e}
    assert found(rated_department="gaj") == {m.a, m.e}  # B skipped the seal
    assert found(rated_department="scjg", rated_from=MONDAY[0], rated_to=MONDAY[1]) == {m.a, m.b, m.e}
    # visits: B and F online, delivered by mail or not yet (0); A window, by mail (1); D window (1);
    # C window, collected at the window (2); E window, a 补正 round, collected at the window (3)
    assert found(visits=0) == {m.b, week.f} and found(visits=1) == {m.a, m.d}
    assert found(visits=2) == {m.c} and found(visits=3) == {m.e}
    assert found(max_visits=1) == {m.a, m.b, m.d, week.f}
    assert found(max_visits=1, closed_from=MONDAY[0], closed_to=MONDAY[1]) == {m.a, m.b}

    # each figure of these days: the number of cases found is the figure
    with reading(engine.db) as conn:
        for start, end in (MONDAY, tuesday, next_monday, (MONDAY[0], next_monday[1])):
            board = r.dashboard(conn, start, end)
            plan = p.plan_targets(conn, start, end)
            rated = p.ratings(conn, start, end)
            period = {"closed_from": start, "closed_to": end}
            for f in board.definitions:
                completed = found(definition_key=f.definition_key, state="completed", **period)
                assert len(completed) == f.completed, (start, f.definition_key)
                assert len(found(definition_key=f.definition_key, live=True)) == f.open
            submitted = {"submitted_from": start, "submitted_to": end}
            assert len(found(channel="online", **submitted)) == plan.online
            assert len(found(channel="window", at_centre=True, **submitted)) == plan.at_centre
            assert len(found(max_visits=1, **period)) == plan.at_most_one_visit
            assert {n: len(found(visits=n, **period)) for n in plan.visits} == plan.visits
            for row in rated.by_department:
                assert len(found(rated_department=row.code, rated_from=start, rated_to=end)) == row.total, row
            for row in rated.by_definition:
                assert len(found(definition_key=row.code, rated_from=start, rated_to=end)) == row.total, row


def test_a_case_filter_wants_aware_times_and_a_sane_number_of_visits():
    with pytest.raises(ValueError, match="naive datetime"):
        r.CaseFilter(done_from=at(2, 0).replace(tzinfo=None))
    with pytest.raises(ValueError):
        r.CaseFilter(max_visits=-1)
    with pytest.raises(ValueError):
        r.CaseFilter(channel="fax")


def test_step_names_are_every_published_versions_and_the_case_steps(engine):
    with reading(engine.db) as conn:
        kaiban = r.step_names(conn, "kaiban-mini")
        every = r.step_names(conn)
    assert kaiban["licence"] == "营业执照核发" and kaiban["__rectification__"] == "差评整改"
    assert "__negative_report__" in kaiban and set(kaiban) < set(every)
    assert {"accept", "licence", "seal", "invoice", "social", "issue"} <= set(kaiban)
