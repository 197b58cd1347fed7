"""complete_task: approve / reject / return, the DAG moving on (parallel branches, `when`, dead paths),
on_reject: continue, form_updates of `editable` fields, auto steps (inline and run_auto_tasks) and
notify steps."""

from __future__ import annotations

import pytest

from orchestrator.definition.validator import parse_definition
from orchestrator.engine import Conflict, Engine, InvalidData, NotAllowed
from orchestrator.engine.publish import store_definition

from .conftest import fixture_path
from .helpers import (
    AUTO_APPLICANT,
    KAIBAN_APPLICANT,
    SURVEY_APPLICANT,
    accepted_kaiban,
    add_countersigners,
    alerts,
    at,
    case_row,
    confirm_refusal,
    edges,
    events,
    notifications,
    open_tasks,
    refused,
    reject,
    report_tasks,
    rows_of,
    sign_chain,
    signoffs,
    step_states,
    surveyed,
    task_row,
    tasks_of,
)


def finish_survey_branches(engine: Engine, case_id: int, *, drainage: str = "approve") -> None:
    """Sign off every parallel branch of survey-mini after the survey (chain, fire, police, drainage)."""
    add_countersigners(engine)
    tasks = open_tasks(engine, case_id)
    sign_chain(engine, tasks["chain"])
    engine.complete_task(tasks["fire"], "xf_fire", "approve", "符合消防要求")
    engine.complete_task(tasks["fire"], "xf_arch", "approve", "符合建筑要求")
    engine.complete_task(tasks["police"], "gaj_a", "approve", "同意")
    engine.complete_task(tasks["drainage"], "swj1", drainage, "同意" if drainage == "approve" else "管网容量不足")


# ----------------------------------------------------------------------------------------------
# approve: the DAG moves on


def test_approving_releases_the_parallel_steps_and_records_the_edges(engine, clock):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    clock.advance(hours=1)
    engine.complete_task(licence, "scjg1", "approve", "准予登记")
    task = task_row(engine, licence)
    assert (task["state"], task["outcome"], task["completed_by"], task["opinion"]) == (
        "completed",
        "approve",
        "scjg1",
        "准予登记",
    )
    assert task["assignee"] == "scjg1"  # completing from the queue claims it implicitly
    assert case_row(engine, case_id)["state"] == "in_progress"
    ready = open_tasks(engine, case_id)
    assert set(ready) == {"seal", "invoice", "social"}
    assert all(task_row(engine, t)["created_by_task"] == licence for t in ready.values())
    assert {("licence", "seal"), ("licence", "invoice"), ("licence", "social")} <= edges(engine, case_id)
    (done,) = events(engine, case_id, "task_completed")[1:]
    assert (done["task_id"], done["from_state"], done["to_state"], done["data"]) == (
        licence,
        "ready",
        "completed",
        {"outcome": "approve", "opinion": "准予登记"},
    )
    told = {n["recipient_department"] for n in notifications(engine, case_id, "task_ready")}
    assert {"gaj", "swj", "rsj"} <= told


def test_a_false_when_skips_the_step_and_the_join_still_fires(engine):
    case_id = accepted_kaiban(engine, form={"needs_seal": False, "employees": 0})
    engine.complete_task(open_tasks(engine, case_id)["licence"], "scjg1")
    states = step_states(engine, case_id)
    assert (states["seal"], states["social"], states["invoice"]) == ("skipped", "skipped", "ready")
    skipped = [e for e in events(engine, case_id, "edge") if e["data"] == {"skipped": True}]
    assert {(e["edge_from"], e["edge_to"]) for e in skipped} == {("licence", "seal"), ("licence", "social")}
    engine.complete_task(open_tasks(engine, case_id)["invoice"], "swj1")
    assert set(open_tasks(engine, case_id)) == {"issue"}
    assert {("seal", "issue"), ("invoice", "issue"), ("social", "issue")} <= edges(engine, case_id)


def test_completion_refusals_leave_the_task_as_it_was(engine):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    with refused(engine, InvalidData, "outcome 'approved': use approve, reject or return"):
        engine.complete_task(licence, "scjg1", "approved")
    with refused(engine, InvalidData, "不予许可 needs a written opinion"):
        engine.complete_task(licence, "scjg1", "reject", " ")
    with refused(engine, InvalidData, "补正 needs a written opinion"):
        engine.complete_task(licence, "scjg1", "return")
    with refused(engine, NotAllowed, "gaj1 is not a member of department scjg, so may not complete it"):
        engine.complete_task(licence, "gaj1")
    engine.claim_task(licence, "scjg1")
    with refused(engine, NotAllowed, f"task {licence} is claimed by scjg1; only they may complete it"):
        engine.complete_task(licence, "scjg2")
    engine.complete_task(licence, "scjg1")
    with refused(engine, Conflict, f"task {licence} (营业执照核发) is already completed by scjg1"):
        engine.complete_task(licence, "scjg1")


# ----------------------------------------------------------------------------------------------
# reject (不予许可)


def test_a_refusal_waits_for_the_leader_then_ends_the_case_as_rejected_with_reason_and_remedy(engine, clock):
    case_id = accepted_kaiban(engine)
    engine.complete_task(open_tasks(engine, case_id)["licence"], "scjg1")
    tasks = open_tasks(engine, case_id)
    clock.advance(hours=1)
    engine.complete_task(tasks["seal"], "gaj1", "reject", "印章样式不合规")
    # 不予审批报告制: the refusal waits for gaj's leader; the task is held, the other branches go on
    seal = task_row(engine, tasks["seal"])
    assert (seal["state"], seal["assignee"], seal["waiting"]) == ("claimed", "gaj1", "leader")
    assert case_row(engine, case_id)["state"] == "in_progress"
    (report,) = report_tasks(engine, case_id)
    assert (report["department"], report["created_by_task"]) == ("gaj", tasks["seal"])
    (alert,) = alerts(engine, case_id, "negative_decision")  # 否定报备, before the decision
    assert (alert["task_id"], alert["department"], alert["recipient_role"]) == (report["id"], "gaj", "gaj_supervisor")
    assert "印章样式不合规" in alert["message"]
    assert notifications(engine, case_id, "case_rejected") == []
    for action in ("approve", "reject", "send_back", "release", "transfer"):
        assert action not in engine.available_actions("gaj1", task_id=tasks["seal"])
    with refused(engine, NotAllowed, "waiting for its leader's decision", "不予审批报告制"):
        engine.complete_task(tasks["seal"], "gaj1", "approve", "改为同意")
    engine.complete_task(tasks["invoice"], "swj1")
    with refused(engine, NotAllowed, "only the leader (gaj_supervisor) of gaj"):
        engine.confirm_refusal(report["id"], "gaj2")

    clock.advance(hours=1)
    engine.confirm_refusal(report["id"], "gaj_boss", "同意")
    case = case_row(engine, case_id)
    assert (case["state"], case["outcome"], case["reason"]) == ("rejected", "rejected", "印章样式不合规")
    assert case["remedy"].startswith("如不服本决定")  # the definition's remedy
    assert case["closed_at"] == clock.now
    states = step_states(engine, case_id)
    assert (states["seal"], states["invoice"], states["social"]) == ("completed", "completed", "cancelled")
    seal = task_row(engine, tasks["seal"])
    assert (seal["outcome"], seal["completed_by"], seal["waiting"]) == ("reject", "gaj1", None)
    assert "issue" not in states
    cancelled = events(engine, case_id, "task_cancelled")
    assert {e["task_id"] for e in cancelled} == {tasks["social"]}
    assert all(e["data"] == {"why": "case_rejected"} for e in cancelled)
    assert [(e["from_state"], e["to_state"], e["actor"]) for e in events(engine, case_id, "reject")] == [
        ("in_progress", "rejected", "gaj_boss")
    ]
    (told,) = notifications(engine, case_id, "case_rejected")
    assert told["recipient_user"] == KAIBAN_APPLICANT["id"] and "印章样式不合规" in told["message"]
    assert "行政复议" in told["message"] and "行政诉讼" in told["message"]  # Art. 38: the remedy
    with refused(engine, NotAllowed, "办理完成 (complete) is not allowed", "is cancelled"):
        engine.complete_task(tasks["social"], "rsj1")


def test_a_refusal_gives_its_own_remedy_or_none_at_all_when_the_definition_has_none(engine, clock):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    reject(engine, licence, "scjg1", "名称不合规", remedy="可在六十日内向某市人民政府申请行政复议")
    assert case_row(engine, case_id)["remedy"] == "可在六十日内向某市人民政府申请行政复议"

    text = fixture_path("kaiban-mini.yaml").read_text(encoding="utf-8")  # a version from before `remedy:`
    old = "\n".join(line for line in text.splitlines() if not line.startswith("remedy:")) + "\n"
    with engine.db.begin() as tx:
        store_definition(tx, parse_definition(old), old, clock())
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    with refused(engine, InvalidData, "不予许可 needs the remedy", "行政许可法 Art. 38"):
        engine.complete_task(licence, "scjg1", "reject", "名称不合规")


def test_a_refusal_sent_back_returns_the_task_to_its_handler(engine, clock):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    engine.complete_task(licence, "scjg2", "reject", "名称不合规")  # from the queue: scjg2 takes it
    (report,) = report_tasks(engine, case_id)
    engine.send_back_refusal(report["id"], "scjg_boss", "名称可以核准，请重新审查")
    task = task_row(engine, licence)
    assert (task["state"], task["assignee"], task["waiting"]) == ("claimed", "scjg2", None)
    (back,) = notifications(engine, case_id, "refusal_sent_back")
    assert back["recipient_user"] == "scjg2" and "请重新审查" in back["message"]
    assert task_row(engine, report["id"])["outcome"] == "sent_back"
    engine.complete_task(licence, "scjg2", "approve", "准予登记")
    assert set(open_tasks(engine, case_id)) == {"seal", "invoice", "social"}
    (decided,) = rows_of(engine, "negative_reports", case_id)
    assert (decided["decision"], decided["decided_by"]) == ("sent_back", "scjg_boss")


def test_a_refusal_with_on_reject_continue_lets_the_case_complete_partly_approved(engine):
    case_id = surveyed(engine)
    finish_survey_branches(engine, case_id, drainage="reject")
    assert case_row(engine, case_id)["state"] == "in_progress"
    (alert,) = alerts(engine, case_id, "negative_decision")
    assert alert["department"] == "swj" and "管网容量不足" in alert["message"]
    assert "issue" not in open_tasks(engine, case_id)  # the join waits for the leader's decision
    confirm_refusal(engine, case_id)
    (told,) = notifications(engine, case_id, "step_rejected")  # the applicant learns of it, with the remedy
    assert "管网容量不足" in told["message"] and "行政复议" in told["message"]
    issue = open_tasks(engine, case_id)["issue"]  # the join after drainage still fired
    numbers = engine.issue_certificates(issue, "zwfw1")
    case = case_row(engine, case_id)
    assert (case["state"], case["outcome"]) == ("completed", "partly_approved")
    assert case["reason"] is None
    # the department that refused issues nothing
    assert sorted(n.rsplit("-", 1)[1] for n in numbers) == ["FIRE_OPINION", "PLANNING_PERMIT"]


# ----------------------------------------------------------------------------------------------
# form updates (editable fields)


def test_a_step_edits_only_its_editable_fields_and_later_conditions_read_them(engine):
    case_id = surveyed(engine)
    chain = open_tasks(engine, case_id)["chain"]
    with refused(engine, NotAllowed, "step chain may not change project_name", "it may edit: floor_area, phone"):
        engine.complete_task(chain, "zjj1", "approve", "同意", form_updates={"project_name": "改名"})
    with refused(engine, InvalidData, "floor_area (建筑面积（平方米）): -5 is below the minimum 0"):
        engine.complete_task(chain, "zjj1", "approve", "同意", form_updates={"floor_area": -5})
    engine.complete_task(chain, "zjj1", "approve", "核实面积", form_updates={"floor_area": 1500, "phone": "021-1"})
    form = case_row(engine, case_id)["form"]
    assert (form["floor_area"], form["phone"], form["project_name"]) == (1500, "021-1", "乙公司厂房")
    (edited,) = events(engine, case_id, "form_edited")
    assert edited["step_id"] == "chain" and edited["data"] == {"changes": {"floor_area": 1500, "phone": "021-1"}}
    sign_chain(engine, chain, ("zjj2", "zjj3"))
    # 秒批 read the corrected area: 1500 > 1000, so the manual review runs
    states = step_states(engine, case_id)
    assert states["instant"] == "completed" and states["manual"] == "ready"
    assert case_row(engine, case_id)["form"]["auto_ok"] is False


def test_edits_made_with_a_return_for_supplement_are_kept(engine):
    case_id = surveyed(engine)
    chain = open_tasks(engine, case_id)["chain"]
    engine.complete_task(
        chain, "zjj1", "return", "请补正消防评估", missing=["fire_report"], form_updates={"phone": "021-2"}
    )
    assert case_row(engine, case_id)["form"]["phone"] == "021-2"
    assert case_row(engine, case_id)["state"] == "suspended"


def test_edits_made_with_a_refusal_are_kept_with_the_closed_case(engine):
    case_id = surveyed(engine)
    chain = open_tasks(engine, case_id)["chain"]
    engine.complete_task(chain, "zjj1", "reject", "面积不符", form_updates={"floor_area": 1500})
    assert case_row(engine, case_id)["form"]["floor_area"] == 1500  # kept while the leader decides
    confirm_refusal(engine, case_id)
    case = case_row(engine, case_id)
    assert (case["state"], case["form"]["floor_area"]) == ("rejected", 1500)
    (level,) = [s for s in signoffs(engine, chain) if s["signed_by"]]  # the refusing signature, given now
    assert (level["party"], level["signed_by"], level["outcome"]) == ("承办", "zjj1", "reject")


def test_a_step_without_editable_fields_may_edit_nothing(engine):
    case_id = accepted_kaiban(engine)
    with refused(engine, NotAllowed, "step licence may not change company_name; it may edit: nothing"):
        engine.complete_task(open_tasks(engine, case_id)["licence"], "scjg1", form_updates={"company_name": "乙"})


# ----------------------------------------------------------------------------------------------
# auto (秒批) and notify steps


def test_an_auto_step_decides_inline_writes_its_result_and_skips_the_manual_fallback(engine):
    case_id = surveyed(engine)  # floor_area 800 <= 1000
    sign_chain(engine, open_tasks(engine, case_id)["chain"])
    instant = next(t for t in tasks_of(engine, case_id) if t["step_id"] == "instant")
    assert (instant["state"], instant["outcome"], instant["completed_by"]) == ("completed", "approve", "system")
    assert case_row(engine, case_id)["form"]["auto_ok"] is True
    assert step_states(engine, case_id)["manual"] == "skipped"
    assert ("instant", "manual") in edges(engine, case_id)
    (auto_done,) = [e for e in events(engine, case_id, "task_completed") if e["task_id"] == instant["id"]]
    assert auto_done["actor"] == "system"


def test_an_auto_step_that_says_no_with_on_false_continue_hands_over_to_a_person(engine):
    case_id = surveyed(engine, form={"floor_area": 5000})
    sign_chain(engine, open_tasks(engine, case_id)["chain"])
    instant = next(t for t in tasks_of(engine, case_id) if t["step_id"] == "instant")
    assert (instant["state"], instant["outcome"]) == ("completed", None)
    assert "转人工" in instant["opinion"]
    assert step_states(engine, case_id)["manual"] == "ready"
    assert alerts(engine, case_id) == []  # no refusal: nothing to report


def test_an_auto_refusal_goes_to_the_leader_and_with_on_reject_stop_rejects_the_case(engine):
    case_id = engine.submit_case("auto-mini", AUTO_APPLICANT, {"age": 45}, ["id_card"])
    engine.accept_case(case_id, "zwfw1")
    check = next(t for t in tasks_of(engine, case_id) if t["step_id"] == "check")
    assert (check["state"], check["assignee"], check["waiting"]) == ("claimed", "system", "leader")
    assert "规则不满足" in check["opinion"]
    (alert,) = alerts(engine, case_id, "negative_decision")
    assert (alert["department"], alert["recipient_role"]) == ("rsj", "rsj_supervisor")
    assert case_row(engine, case_id)["state"] == "accepted"
    assert notifications(engine, case_id, "case_rejected") == []
    (proposal,) = rows_of(engine, "negative_reports", case_id)
    assert proposal["proposed_by"] == "system"
    assert proposal["remedy"].startswith("如不服本决定")  # the definition's, for an automatic refusal
    confirm_refusal(engine, case_id)
    case = case_row(engine, case_id)
    assert (case["state"], case["outcome"]) == ("rejected", "rejected")
    assert "规则不满足" in case["reason"] and case["remedy"] == proposal["remedy"]
    check = task_row(engine, check["id"])
    assert (check["outcome"], check["completed_by"]) == ("reject", "system")
    assert open_tasks(engine, case_id) == {}
    assert events(engine, case_id, "reject")[0]["actor"] == "rsj_boss"
    assert notifications(engine, case_id, "case_rejected")[0]["recipient_user"] == AUTO_APPLICANT["id"]


def test_an_auto_refusal_sent_back_is_decided_by_a_person(engine):
    case_id = engine.submit_case("auto-mini", AUTO_APPLICANT, {"age": 45}, ["id_card"])
    engine.accept_case(case_id, "zwfw1")
    (report,) = report_tasks(engine, case_id)
    engine.send_back_refusal(report["id"], "rsj_boss", "年龄可由户籍资料核实，转人工")
    check = next(t for t in tasks_of(engine, case_id) if t["step_id"] == "check")
    assert (check["state"], check["kind"], check["assignee"], check["waiting"]) == ("ready", "approval", None, None)
    (back,) = notifications(engine, case_id, "refusal_sent_back")
    assert back["recipient_department"] == "rsj" and "转人工" in back["message"]
    engine.complete_task(check["id"], "rsj1", "approve", "核实年龄符合")
    assert set(open_tasks(engine, case_id)) == {"review"}


def test_a_case_rejected_by_an_auto_step_sends_no_new_work_to_anyone(engine):
    case_id = engine.submit_case("auto-mini", AUTO_APPLICANT, {"age": 45}, ["id_card"])
    engine.accept_case(case_id, "zwfw1")
    assert "review" not in step_states(engine, case_id)
    assert [n["recipient_department"] for n in notifications(engine, case_id, "task_ready")] == ["zwfw"]


def test_an_auto_approval_moves_straight_on(engine):
    case_id = engine.submit_case("auto-mini", AUTO_APPLICANT, {"age": 70}, ["id_card"])
    engine.accept_case(case_id, "zwfw1")
    assert step_states(engine, case_id)["check"] == "completed"
    assert set(open_tasks(engine, case_id)) == {"review"}


def test_a_notify_step_sends_its_message_on_every_channel_and_completes(engine):
    case_id = surveyed(engine)
    finish_survey_branches(engine, case_id)
    announce = next(t for t in tasks_of(engine, case_id) if t["step_id"] == "announce")
    assert (announce["state"], announce["completed_by"]) == ("completed", "system")
    sent = notifications(engine, case_id, "notice_sms") + notifications(engine, case_id, "notice_site")
    assert len(sent) == 2
    assert all(n["recipient_user"] == SURVEY_APPLICANT["id"] and "审查结果已出" in n["message"] for n in sent)
    assert set(open_tasks(engine, case_id)) == {"issue"}


# ----------------------------------------------------------------------------------------------
# auto steps left for the runner (auto_inline=False)


@pytest.fixture
def worker_engine(engine):
    """The same database, with `auto` steps left for run_auto_tasks."""
    return Engine(engine.db, engine.calendar, engine.clock, auto_inline=False)


def test_with_auto_inline_off_auto_steps_wait_for_the_runner(worker_engine, clock):
    case_id = worker_engine.submit_case("auto-mini", AUTO_APPLICANT, {"age": 70}, ["id_card"])
    worker_engine.accept_case(case_id, "zwfw1")
    check = open_tasks(worker_engine, case_id)
    assert set(check) == {"check"}  # waiting, not decided
    assert task_row(worker_engine, check["check"])["due_at"] == clock.now.replace(hour=11)
    clock.advance(minutes=10)
    assert worker_engine.run_auto_tasks() == 1
    task = task_row(worker_engine, check["check"])
    assert (task["state"], task["outcome"], task["completed_by"], task["completed_at"]) == (
        "completed",
        "approve",
        "system",
        clock.now,
    )
    assert set(open_tasks(worker_engine, case_id)) == {"review"}
    assert worker_engine.run_auto_tasks() == 0
    with refused(worker_engine, Conflict, f"task {check['check']} is no waiting auto task"):
        worker_engine.run_auto_task(check["check"])


def test_the_runner_writes_the_result_field_and_applies_the_fallback(worker_engine):
    small = surveyed(worker_engine)
    large = surveyed(worker_engine, form={"floor_area": 2000})
    for case_id in (small, large):
        sign_chain(worker_engine, open_tasks(worker_engine, case_id)["chain"])
        assert "instant" in open_tasks(worker_engine, case_id)
    assert worker_engine.run_auto_tasks(limit=1) == 1  # the oldest waiting task first
    assert case_row(worker_engine, small)["form"]["auto_ok"] is True
    assert "instant" in open_tasks(worker_engine, large)
    assert worker_engine.run_auto_tasks() == 1
    assert step_states(worker_engine, small)["manual"] == "skipped"
    assert step_states(worker_engine, large)["manual"] == "ready"
    assert case_row(worker_engine, large)["form"]["auto_ok"] is False


def test_the_runner_rejects_the_case_when_the_rule_says_no(worker_engine):
    case_id = worker_engine.submit_case("auto-mini", AUTO_APPLICANT, {"age": 30}, ["id_card"])
    worker_engine.accept_case(case_id, "zwfw1")
    assert case_row(worker_engine, case_id)["state"] == "accepted"
    assert worker_engine.run_auto_tasks() == 1
    assert worker_engine.run_auto_tasks() == 0  # the refusal waits for the leader, not for a worker
    assert case_row(worker_engine, case_id)["state"] == "in_progress"
    confirm_refusal(worker_engine, case_id)
    case = case_row(worker_engine, case_id)
    assert (case["state"], case["outcome"]) == ("rejected", "rejected")
    assert open_tasks(worker_engine, case_id) == {}
    assert len(alerts(worker_engine, case_id, "negative_decision")) == 1


def test_an_auto_task_of_a_suspended_case_waits_and_does_not_block_the_others(worker_engine):
    held = worker_engine.submit_case("auto-mini", AUTO_APPLICANT, {"age": 70}, ["id_card"])
    worker_engine.accept_case(held, "zwfw1")
    worker_engine.suspend_case(held, "rsj1", "expert_review", "年龄存疑，专家鉴定", "5d")
    other = worker_engine.submit_case("auto-mini", {"id": "X2", "name": "赵六"}, {"age": 80}, ["id_card"])
    worker_engine.accept_case(other, "zwfw1")
    assert worker_engine.run_auto_tasks() == 1
    assert step_states(worker_engine, other)["check"] == "completed"
    assert "check" in open_tasks(worker_engine, held)
    worker_engine.resume_case(held, "rsj1", "鉴定完毕")
    assert worker_engine.run_auto_tasks() == 1
    assert set(open_tasks(worker_engine, held)) == {"review"}


def test_run_auto_task_decides_the_task_a_worker_was_given(worker_engine):
    case_id = worker_engine.submit_case("auto-mini", AUTO_APPLICANT, {"age": 61}, ["id_card"])
    worker_engine.accept_case(case_id, "zwfw1")
    worker_engine.run_auto_task(open_tasks(worker_engine, case_id)["check"])
    assert set(open_tasks(worker_engine, case_id)) == {"review"}
    assert case_row(worker_engine, case_id)["state"] == "in_progress"


# ----------------------------------------------------------------------------------------------
# the history


def test_the_history_records_every_transition_and_every_edge_taken(engine):
    case_id = accepted_kaiban(engine, form={"employees": 0})
    engine.complete_task(open_tasks(engine, case_id)["licence"], "scjg1")
    for step, user in (("seal", "gaj1"), ("invoice", "swj1")):
        engine.claim_task(open_tasks(engine, case_id)[step], user)
        engine.complete_task(open_tasks(engine, case_id)[step], user)
    engine.issue_certificates(open_tasks(engine, case_id)["issue"], "zwfw1")
    history = events(engine, case_id)
    case_moves = [
        (e["kind"], e["from_state"], e["to_state"]) for e in history if e["task_id"] is None and e["to_state"]
    ]
    assert case_moves == [
        ("submitted", None, "submitted"),
        ("accept", "submitted", "accepted"),
        ("start_work", "accepted", "in_progress"),
        ("complete", "in_progress", "completed"),
    ]
    assert edges(engine, case_id) == {
        ("accept", "licence"),
        ("licence", "seal"),
        ("licence", "invoice"),
        ("licence", "social"),
        ("seal", "issue"),
        ("invoice", "issue"),
        ("social", "issue"),
    }
    by_task: dict[int, list[str]] = {}
    for e in history:
        if e["task_id"] is not None and e["kind"] != "edge":
            by_task.setdefault(e["task_id"], []).append(e["kind"])
    story = {t["step_id"]: by_task[t["id"]] for t in tasks_of(engine, case_id)}
    assert story == {
        "accept": ["task_ready", "task_completed"],
        "licence": ["task_ready", "task_completed"],
        "seal": ["task_ready", "claimed", "task_completed"],
        "invoice": ["task_ready", "claimed", "task_completed"],
        "social": ["task_skipped"],
        "issue": ["task_ready", "certificates_issued", "task_completed"],
    }
    assert all(e["at"] is not None for e in history)
    ids = [e["id"] for e in history]
    assert ids == sorted(ids)  # append-only, in order


def test_parallel_branches_made_together_get_the_same_correct_deadlines(engine, clock):
    """Every task of a fork is stored with its own working-time due and warning times (in UTC on SQLite)."""
    case_id = accepted_kaiban(engine)  # accepted Mon 03-02 10:00
    clock.advance(minutes=30)
    engine.complete_task(open_tasks(engine, case_id)["licence"], "scjg1")
    branches = [t for t in tasks_of(engine, case_id) if t["step_id"] in ("seal", "invoice", "social")]
    assert len(branches) == 3
    for task in branches:  # 2h limit, warning at 25% left: due 12:30, yellow from 12:00, Shanghai time
        assert (task["ready_at"], task["due_at"], task["warn_at"]) == (at(2, 10, 30), at(2, 12, 30), at(2, 12, 0))
    with engine.db.connect() as conn:
        stored = conn.exec_driver_sql("SELECT due_at FROM tasks WHERE step_id IN ('seal', 'invoice', 'social')")
        raw = {str(value) for (value,) in stored}
    assert len(raw) == 1  # one stored representation for one instant


def test_staff_cannot_claim_or_complete_an_automatic_step(worker_engine):
    case_id = worker_engine.submit_case("auto-mini", AUTO_APPLICANT, {"age": 70}, ["id_card"])
    worker_engine.accept_case(case_id, "zwfw1")
    check = open_tasks(worker_engine, case_id)["check"]
    with refused(worker_engine, NotAllowed, "automatic step: its rule decides it"):
        worker_engine.claim_task(check, "rsj1")
    with refused(worker_engine, NotAllowed, "automatic step: its rule decides it"):
        worker_engine.complete_task(check, "rsj1", "approve")
    assert worker_engine.run_auto_tasks() == 1
