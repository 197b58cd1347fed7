"""Working a task: approve, reject (不予许可: proposed to the leader first, refusals.py) or return (补正);
signatures on surveys, review chains, 会签/或签 and 加签; form edits by the step that may make them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...definition.model import Definition, Step
from ..errors import InvalidData, NotAllowed
from ..forms import check_form
from ..progress import complete, progress, refuse_step, start_work
from ..refusals import propose_refusal
from ..rules import LEADER, Completion, plan_completion, refuse
from ..tasks import Row
from ..unit import Tx
from .acceptance import NO_REMEDY, open_supplement
from .clock import suspend


def complete_task(
    tx: Tx,
    task_id: int,
    actor: str,
    outcome: str,
    opinion: str,
    form_updates: dict[str, Any] | None,
    missing: Sequence[str],
    remedy: str | None = None,
) -> None:
    """办理: approve, reject (with a written reason and the remedy; proposed to the leader first) or
    return (补正: the clock stops).

    A survey needs every participant department's sign-off, a review chain each level in order, a
    countersign every (会签) or any (或签) signer; each call signs once.
    """
    _, member = tx.lock_case_of_task(task_id, actor)
    task = tx.task(task_id)
    plan = plan_completion(tx.situation(actor, task, member), outcome)
    if isinstance(plan, str):
        refuse(plan)
    assert isinstance(plan, Completion)
    if plan.how == "rectification":
        if not (opinion or "").strip():
            raise InvalidData("差评整改 needs the rectification result (整改结果) as the opinion")
        complete(tx, task, actor, "approve", opinion)
        return
    definition = tx.definition()
    step = definition.steps_by_id[task["step_id"]]
    if form_updates:
        _edit_form(tx, definition, step, form_updates)
    if outcome == "reject" and plan.how in ("sign", "assignee"):
        _propose_rejection(tx, definition, task, plan, actor, opinion, remedy)
    elif plan.how == "sign":
        left = sign(tx, task, plan.slot, actor, outcome, opinion)
        if left is not None:  # this signature decides the task
            finish_task(tx, definition, step, task, actor, outcome, opinion, signoffs_open=left)
    elif plan.how == "delegation_return":
        _return_delegation(tx, task, actor, outcome, opinion)
    elif outcome == "return":
        _return_for_supplement(tx, definition, task, actor, opinion, missing)
    else:
        finish_task(tx, definition, step, task, actor, outcome, opinion)
    tx.save_form()  # the edits stand whatever the call was: a signature, 补正, 委派 …


def finish_task(
    tx: Tx,
    definition: Definition,
    step: Step,
    task: Row,
    actor: str,
    outcome: str,
    opinion: str,
    *,
    remedy: str = "",
    leader: str | None = None,
    **also: Any,
) -> None:
    """Complete the task, then reject the case or move the DAG on. A ``reject`` comes here only once its
    leader confirmed it (commands/report.py)."""
    start_work(tx, task, actor)
    complete(tx, task, actor, outcome, opinion, **also)
    if outcome == "reject" and refuse_step(tx, step, task, leader or actor, opinion, remedy):
        return
    progress(tx, definition, task["id"])


def _propose_rejection(
    tx: Tx, definition: Definition, task: Row, plan: Completion, actor: str, opinion: str, remedy: str | None
) -> None:
    """不予许可 by a person (the assignee, or a signer whose signature would decide the task) goes to the
    leader of the deciding department; the task waits for the decision."""
    remedy = (remedy or "").strip() or definition.remedy
    if not remedy:
        raise InvalidData(f"不予许可 needs the remedy the applicant has (行政复议或者行政诉讼, and where): {NO_REMEDY}")
    start_work(tx, task, actor)
    slot = plan.slot if plan.how == "sign" else None
    if slot is None and task["state"] == "ready":  # the one who refuses holds the task while it waits
        tx.update_task(task, state="claimed", assignee=actor, claimed_at=tx.now, waiting=LEADER)
        tx.event("claimed", task=task, actor=actor, from_state="ready", to_state="claimed")
    else:
        tx.update_task(task, waiting=LEADER)
    department = slot.party if slot is not None and slot.kind == "department" else task["department"]
    propose_refusal(
        tx,
        task,
        actor,
        "rejected",
        opinion,
        remedy,
        department=department,
        slot_id=slot.id if slot is not None else None,
    )


def _return_delegation(tx: Tx, task: Row, actor: str, outcome: str, opinion: str) -> None:
    """委派: the delegate's work returns to the one who delegated it, who then decides."""
    owner = task["delegated_by"]
    tx.update_task(task, assignee=owner, delegated_by=None, opinion=opinion)
    tx.event("delegation_returned", task=task, actor=actor, data={"outcome": outcome, "opinion": opinion})
    tx.notify("task_returned", f"委派已办理，请审核：{tx.case['number']} {task['name']}", task=task, user=owner)


def _return_for_supplement(
    tx: Tx, definition: Definition, task: Row, actor: str, opinion: str, missing: Sequence[str]
) -> None:
    """补正 after acceptance: the task waits for the applicant and the case's clock stops."""
    start_work(tx, task, actor)
    if task["state"] == "ready":
        tx.update_task(task, state="claimed", assignee=actor, claimed_at=tx.now)
        tx.event("claimed", task=task, actor=actor, from_state="ready", to_state="claimed")
    open_supplement(tx, definition, task, actor, missing, opinion, before_acceptance=False)
    suspend(tx, actor, "supplement", opinion, None)


def sign(tx: Tx, task: Row, slot: Any, actor: str, outcome: str, opinion: str) -> int | None:
    """Record one signature. When it decides the task (a refusal by any signer, or the last signature)
    returns the signatures left, for the caller to write with the completion; else None."""
    tx.sign(slot, actor, outcome, opinion)
    left = task["signoffs_open"] - 1  # 或签 counts its role slots as one (tasks.open_signatures)
    tx.event(
        "signed",
        task=task,
        actor=actor,
        data={"slot": slot.kind, "party": slot.party, "outcome": outcome, "opinion": opinion},
    )
    start_work(tx, task, actor)
    base_kinds = {s.kind for s in tx.signoffs(task["id"])} - {"user"}
    if outcome == "reject" or (left == 0 and base_kinds):
        return left
    tx.update_task(task, signoffs_open=left)
    return None


def _edit_form(tx: Tx, definition: Definition, step: Step, updates: dict[str, Any]) -> None:
    not_editable = [k for k in updates if k not in step.editable]
    if not_editable:
        raise NotAllowed(
            f"step {step.id} may not change {', '.join(not_editable)}; it may edit: "
            f"{', '.join(step.editable) or 'nothing'}"
        )
    values = check_form(definition, updates, partial=True)
    case = tx.case
    changed = {k: v for k, v in values.items() if case["form"].get(k) != v}
    if changed:
        case["form"] = {**case["form"], **changed}
        tx.form_changed = True
        tx.event("form_edited", step_id=step.id, data={"changes": changed})
