"""Moving a case on: the tasks that become ready or skipped after a completion, the steps that complete
themselves (秒批 rules, notices), finishing a case, and the one way a refusal takes effect."""

from __future__ import annotations

import contextlib
from typing import Any

from ..definition.model import Definition, Step
from ..store import prepared
from . import dag
from .rules import TASK_OPEN
from .tasks import SYSTEM, NewTask, Row, new_task, step_state, step_states
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
        if any(_stops_case(definition, n.row) for n in made):
            break  # an automatic refusal ends the case: release nothing after it
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
        if row["kind"] == "auto" and row["outcome"] == "reject":
            step = definition.steps_by_id[row["step_id"]]
            if refuse_step(tx, step, row, SYSTEM, row["opinion"] or "", f"自动审批规则不满足：{step.name}"):
                return
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


def _stops_case(definition: Definition, row: Row) -> bool:
    """An inline automatic step refused and its refusal stops the case (on_reject: stop)."""
    return (
        row["kind"] == "auto"
        and row["outcome"] == "reject"
        and definition.steps_by_id[row["step_id"]].on_reject == "stop"
    )


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
        outcome, opinion = "reject", "规则不满足，不予通过"
    row.update(
        state="completed",
        outcome=outcome,
        opinion=opinion,
        completed_at=now,
        completed_by=SYSTEM,
        assignee=SYSTEM,
        sla_state=None,
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
    )


def issue_online(tx: Tx, step: Any, row: Row, made: list[Row]) -> None:
    """在线签发电子证照 (``auto_issue``): the step's e-certificates are issued online by the system and the
    step completes; as for a person's 出件, a certificate goes out only if its issuer approved its own
    step in this case."""
    approved = {
        t["department"]
        for t in [*tx.tasks(), *made]
        if t["state"] == "completed" and t["outcome"] == "approve" and not t["superseded"] and t["kind"] != "acceptance"
    }
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
        for c in step.certificates
        if c.issuer in approved
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
    )


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


def refuse_step(tx: Tx, step: Step, task: Row, actor: str, reason: str, report: str) -> bool:
    """A step refused (不予许可): reported to the deciding department's supervisor (否定报备), and the
    case rejected if the step says ``on_reject: stop``. Returns whether the case was rejected."""
    negative_decision(tx, task, report)
    if step.on_reject != "stop":
        return False
    reject_case(tx, actor, reason)
    return True


def finish(tx: Tx, outcome: str) -> None:
    values = tx.closing(outcome=outcome, closed_at=tx.now)
    if tx.case["state"] == "accepted":  # an all-automatic case never had a department start work
        tx.set_case_state("start_work", SYSTEM)  # recorded, so the history replays
    tx.set_case_state("complete", SYSTEM, **values)
    tx.tell_applicant("case_completed", f"您的办件 {tx.case['number']} 已办结")


def reject_case(tx: Tx, actor: str, reason: str) -> None:
    cancel_open(tx, actor, "case_rejected")
    values = tx.closing(outcome="rejected", reason=reason, closed_at=tx.now)
    tx.set_case_state("reject", actor, **values)
    tx.tell_applicant("case_rejected", f"您的办件 {tx.case['number']} 不予许可：{reason}")


def cancel_open(tx: Tx, actor: str, why: str) -> None:
    values = {"state": "cancelled", "completed_at": tx.now}
    tx.update_tasks([cancelled(tx, t, actor, why, values) for t in tx.tasks() if t["state"] in TASK_OPEN])


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
    """否定报备: every refusal is reported to the supervisor of the deciding department."""
    department = task["department"] if task else None
    role = tx.supervisor_role(department) if department else None
    number = tx.case["number"]
    tx.alert("negative_decision", f"{number} {message}", task=task, department=department, role=role)
    tx.notify("negative_decision", f"否定报备：{number} {message}", task=task, department=department, role=role)
