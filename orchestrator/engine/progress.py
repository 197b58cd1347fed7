"""Moving a case on: the tasks that become ready or skipped after a completion, the steps that complete
themselves (秒批 rules, notices), finishing a case, and the one way a confirmed refusal takes effect
(``refuse_step``; refusals are proposed to the leader first, refusals.py)."""

from __future__ import annotations

import contextlib
from typing import Any

from ..definition.model import Certificate, Definition, Step
from ..store import prepared
from . import dag
from .refusals import cancel_pending, propose_refusal
from .rules import LEADER, NEGATIVE_REPORT_STEP, TASK_OPEN
from .tasks import SYSTEM, NewTask, Row, approved_steps, new_task, step_state, step_states
from .unit import Tx


def progress(tx: Tx, definition: Definition, created_by: int | None) -> None:
    """Create the tasks that became ready or skipped; decide `auto` steps inline; close a finished case."""
    case = tx.case
    tasks = tx.tasks()
    made: list[NewTask] = []
    form = dict(case["form"])
    states = step_states(tasks)
    while True:
        moves = dag.advance(definition, states, form)
        for move in moves:
            step = definition.steps_by_id[move.step_id]
            new = new_task(tx.env, case, step, move.state, tx.now, created_by, definition=definition)
            new.reason = move.reason
            if move.state == "ready" and step.kind == "auto" and tx.env.auto_inline and not step.lookups:
                with contextlib.suppress(RuleFailed):  # left waiting: a worker retries it (commands/auto.py)
                    decide_auto(step, new.row, form, tx.now)
            elif move.state == "ready" and step.kind == "notify":
                send_notice(tx, step, new.row)
            elif move.state == "ready" and step.kind == "issue" and step.auto_issue and not case["deferred"]:
                issue_online(tx, step, new.row, [n.row for n in made])
            made.append(new)
            states[step.id] = step_state(new.row)
        if not any(n.row["state"] == "completed" for n in made[len(made) - len(moves) :]):
            break  # only a step that completed at once (auto, notify) can make more steps ready
    if form != case["form"]:
        case["form"] = form
        tx.form_changed = True
    tx.insert_tasks(made)
    for new in made:
        _record_new_task(tx, definition.steps_by_id[new.row["step_id"]], new)
    for new in made:
        row = new.row
        if row["kind"] == "auto" and row["waiting"] == LEADER:  # an automatic refusal, for the leader
            propose_refusal(
                tx, row, SYSTEM, "rejected", row["opinion"], definition.remedy, department=row["department"]
            )
    if dag.is_finished(definition, states):
        partly = any(t["outcome"] == "reject" and not t["superseded"] for t in tasks)
        finish(tx, "partly_approved" if partly else "approved")


def _record_new_task(tx: Tx, step: Step, new: NewTask) -> None:
    row = new.row
    for before in step.after:
        tx.event(
            "edge", task=row, edge=(before, step.id), data={"skipped": True} if row["state"] == "skipped" else None
        )
    if row["state"] == "skipped":
        data: dict[str, Any] | None = {"reason": new.reason}
    else:
        data = {"outcome": row["outcome"]} if row["outcome"] else None
    actor = SYSTEM if row["kind"] in ("auto", "issue") and row["state"] == "completed" else None
    tx.event(f"task_{row['state']}", task=row, to_state=row["state"], actor=actor, data=data)
    if row["state"] == "ready":
        tx.notify("task_ready", f"新待办：{tx.case['number']} {row['name']}", task=row, department=row["department"])


class RuleFailed(Exception):
    """An automatic step's rule could not be evaluated (a field it reads is empty, text compared with a
    number …): no decision. The task waits; the runner retries it and raises an incident in the end."""


def evaluate_rule(step: Any, form: dict[str, Any]) -> bool:
    try:
        return bool(step.rule.evaluate(form))
    except Exception as exc:
        raise RuleFailed(f"rule {step.rule.source!r} cannot be decided: {exc}") from exc


def decide_auto(step: Any, row: Row, form: dict[str, Any], now: Any) -> None:
    """秒批: the rule decides; the result may be written into a form field for later `when`s. Raises
    RuleFailed, having changed nothing, when the rule cannot be evaluated."""
    passed = evaluate_rule(step, form)
    if step.result_field:
        form[step.result_field] = passed
    if passed:
        outcome, opinion = "approve", "规则满足，自动通过（秒批）"
    elif step.on_false == "continue":
        outcome, opinion = None, "规则不满足，转人工办理"
    else:
        # a refusal is not final: the task stays claimed by the system, waiting for the leader (不予审批报告制)
        row.update(state="claimed", assignee=SYSTEM, claimed_at=now, opinion="规则不满足，不予通过", waiting=LEADER)
        return
    row.update(
        state="completed",
        outcome=outcome,
        opinion=opinion,
        completed_at=now,
        completed_by=SYSTEM,
        assignee=SYSTEM,
        sla_state=None,
        work_minutes=0,  # decided the moment it was reached
    )


def send_notice(tx: Tx, step: Any, row: Row) -> None:
    """A notify step needs no human: its message goes out and the step completes."""
    message = step.message or step.name
    for channel in step.channels:
        tx.notify(
            f"notice_{channel}",
            f"{tx.case['number']} {message}",
            user=tx.case["applicant"].get("id"),
            department=step.department,
        )
    row.update(
        state="completed",
        outcome="approve",
        opinion=message,
        completed_at=tx.now,
        completed_by=SYSTEM,
        assignee=SYSTEM,
        sla_state=None,
        work_minutes=0,  # decided the moment it was reached
    )


def issue_online(tx: Tx, step: Any, row: Row, made: list[Row]) -> None:
    """在线签发电子证照 (``auto_issue``): the step's e-certificates are issued online by the system and the
    step completes; as for a person's 出件, only the certificates one of whose producing steps approved."""
    definition = tx.definition()
    number = tx.case["number"]
    certificates = [
        {
            "case_id": tx.case["id"],
            "key": c.key,
            "name": c.name,
            "issuer": c.issuer,
            "number": f"{number}-{c.key}".upper(),
            "electronic": True,
            "delivery": "online",
            "tracking_number": None,
            "issued_at": tx.now,
        }
        for c in issuable(definition, step.certificates, [*tx.tasks(), *made])
    ]
    if certificates:
        prepared.execute_many(tx.conn, tx.sql("insert_certificates"), certificates)
    numbers = [c["number"] for c in certificates]
    tx.event("certificates_issued", task=row, actor=SYSTEM, data={"numbers": numbers, "delivery": "online"})
    if numbers:
        tx.tell_applicant("certificates_issued", f"您的办件 {number} 的电子证照已签发：{'、'.join(numbers)}")
    row.update(
        state="completed",
        outcome="approve",
        opinion=f"在线签发电子证照：{len(numbers)} 件",
        completed_at=tx.now,
        completed_by=SYSTEM,
        assignee=SYSTEM,
        sla_state=None,
        work_minutes=0,  # decided the moment it was reached
    )


def issuable(definition: Definition, certificates: list[Certificate], tasks: list[Row]) -> list[Certificate]:
    """The certificates to issue: those one of whose producing steps (Definition.producing_steps) approved
    in this case. A certificate of a step that was skipped or refused does not go out."""
    approved = approved_steps(tasks)
    return [c for c in certificates if any(s.id in approved for s in definition.producing_steps(c))]


def start_work(tx: Tx, task: Row, actor: str) -> None:
    """The first department action after acceptance moves the case to in_progress (部门开始办理)."""
    if tx.case["state"] == "accepted" and task["kind"] != "acceptance":
        tx.set_case_state("start_work", actor)


def complete(tx: Tx, task: Row, actor: str, outcome: str, opinion: str, **also: Any) -> None:
    """Write a task's completion and its history row (``also``: more columns in the same UPDATE)."""
    before = task["state"]
    tx.update_task(
        task,
        state="completed",
        outcome=outcome,
        opinion=opinion,
        completed_at=tx.now,
        completed_by=actor,
        work_minutes=tx.env.calendar.working_minutes_between(task["ready_at"], tx.now) - task["paused_minutes"],
        assignee=task["assignee"] or actor,
        claimed_at=task["claimed_at"] or tx.now,
        **also,
    )
    tx.event(
        "task_completed",
        task=task,
        actor=actor,
        from_state=before,
        to_state="completed",
        data={"outcome": outcome, "opinion": opinion} if opinion else {"outcome": outcome},
    )


def refuse_step(tx: Tx, step: Step, task: Row, actor: str, reason: str, remedy: str) -> bool:
    """A confirmed refusal of a step (不予许可) takes effect: the case is rejected if the step says
    ``on_reject: stop``, else the applicant is told of this refusal and the other branches go on.
    Returns whether the case was rejected."""
    if step.on_reject != "stop":
        number = tx.case["number"]
        tx.tell_applicant("step_rejected", f"您的办件 {number} 的「{task['name']}」不予许可：{reason}。{remedy}")
        return False
    reject_case(tx, actor, reason, remedy)
    return True


def finish(tx: Tx, outcome: str) -> None:
    values = tx.closing(outcome=outcome, closed_at=tx.now)
    if tx.case["state"] == "accepted":  # an all-automatic case never had a department start work
        tx.set_case_state("start_work", SYSTEM)  # recorded, so the history replays
    tx.set_case_state("complete", SYSTEM, **values)
    tx.tell_applicant("case_completed", f"您的办件 {tx.case['number']} 已办结")


def reject_case(tx: Tx, actor: str, reason: str, remedy: str) -> None:
    cancel_open(tx, actor, "case_rejected")
    values = tx.closing(outcome="rejected", reason=reason, remedy=remedy, closed_at=tx.now)
    tx.set_case_state("reject", actor, **values)
    tx.tell_applicant("case_rejected", f"您的办件 {tx.case['number']} 不予许可：{reason}。{remedy}")


def cancel_open(tx: Tx, actor: str, why: str) -> None:
    """The case closes: its open tasks are cancelled, refusals still waiting for their leader with them."""
    values = {"state": "cancelled", "completed_at": tx.now}
    open_tasks = [t for t in tx.tasks() if t["state"] in TASK_OPEN]
    tx.update_tasks([cancelled(tx, t, actor, why, values) for t in open_tasks])
    cancel_pending(tx, [t for t in open_tasks if t["step_id"] == NEGATIVE_REPORT_STEP], why)


def cancelled(tx: Tx, task: Row, actor: str, why: str, values: dict[str, Any]) -> tuple[Row, dict[str, Any]]:
    """A task change that takes the task out of the work (退回, 撤回, a closed case), with its history row."""
    tx.event(
        "task_cancelled",
        task=task,
        actor=actor,
        from_state=task["state"],
        to_state=values.get("state", task["state"]),
        data={"why": why},
    )
    return task, values


def negative_decision(tx: Tx, task: Row | None, message: str) -> None:
    """否定报备 of a decision that is not a refusal (终止办理) to the supervisor of the deciding department;
    a refusal is reported before it takes effect (refusals.propose_refusal)."""
    department = task["department"] if task else None
    role = tx.supervisor_role(department) if department else None
    number = tx.case["number"]
    tx.alert("negative_decision", f"{number} {message}", task=task, department=department, role=role)
    tx.notify("negative_decision", f"否定报备：{number} {message}", task=task, department=department, role=role)
