"""不予审批报告制: the leader of the deciding department confirms a proposed refusal (it takes effect and
the applicant is told, with the remedy) or sends it back to the handler (refusals.py proposes them)."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidData
from ..progress import complete
from ..refusals import LABELS, decide
from ..rules import require
from ..unit import Tx
from .acceptance import NO_REMEDY, not_accepted
from .work import finish_task, sign


def confirm_refusal(tx: Tx, task_id: int, actor: str, opinion: str, remedy: str | None) -> None:
    """The leader confirms the refusal of report task ``task_id``: 不予受理 closes the application, 不予许可
    completes the refused step (and rejects the case if the step says ``on_reject: stop``). ``remedy``
    replaces the one proposed (and is needed when there is none: an automatic refusal of a definition
    without ``remedy:``)."""
    _, member = tx.lock_case_of_task(task_id, actor)
    report_task = tx.task(task_id)
    require("confirm_refusal", tx.situation(actor, report_task, member))
    report = tx.negative_report(task_id)
    remedy = (remedy or "").strip() or report.remedy
    if not remedy:
        raise InvalidData(f"{LABELS[report.kind]} needs the remedy the applicant has: {NO_REMEDY}")
    complete(tx, report_task, actor, "confirmed", opinion or "同意")
    decide(tx, report_task, "confirmed", actor, opinion, remedy=remedy)
    proposer, reason = report.proposed_by, report.reason
    if report.kind == "not_accepted":
        not_accepted(tx, proposer, actor, reason, remedy)
        return
    refused = tx.task(report.task_id)
    definition = tx.definition()
    step = definition.steps_by_id[refused["step_id"]]
    also: dict[str, Any] = {}
    if report.slot_id is not None:  # the refusal was a signature: it is given now, and decides the task
        slot = next(s for s in tx.signoffs(refused["id"]) if s.id == report.slot_id)
        also["signoffs_open"] = sign(tx, refused, slot, proposer, "reject", reason)
    finish_task(
        tx, definition, step, refused, proposer, "reject", reason, remedy=remedy, leader=actor, waiting=None, **also
    )
    tx.save_form()


def send_back_refusal(tx: Tx, task_id: int, actor: str, opinion: str) -> None:
    """The leader does not uphold the refusal: the refusing task goes back to whoever proposed it, and an
    automatic (秒批) refusal to the department's handlers, who decide the step by hand."""
    _, member = tx.lock_case_of_task(task_id, actor)
    report_task = tx.task(task_id)
    require("send_back_refusal", tx.situation(actor, report_task, member))
    report = tx.negative_report(task_id)
    complete(tx, report_task, actor, "sent_back", opinion)
    decide(tx, report_task, "sent_back", actor, opinion)
    refused = tx.task(report.task_id)
    number, label = tx.case["number"], LABELS[report.kind]
    data = {"opinion": opinion, "report": task_id, "kind": report.kind}
    if refused["state"] not in ("ready", "claimed"):  # 不予受理 while a 补正 notice is out: nothing waits
        tx.event("refusal_sent_back", actor=actor, data=data)
    elif refused["kind"] == "auto":  # the rule is overruled: a person of the department decides the step
        tx.update_task(refused, kind="approval", state="ready", assignee=None, claimed_at=None, waiting=None)
        tx.event("refusal_sent_back", task=refused, actor=actor, from_state="claimed", to_state="ready", data=data)
        tx.notify(
            "refusal_sent_back",
            f"自动审批的{label}被退回，请人工办理：{number} {refused['name']}：{opinion}",
            task=refused,
            department=refused["department"],
        )
        return
    else:
        tx.update_task(refused, waiting=None)
        tx.event("refusal_sent_back", task=refused, actor=actor, data=data)
    tx.notify(
        "refusal_sent_back",
        f"拟{label}被领导退回，请重新决定：{number} {refused['name']}：{opinion}",
        task=refused,
        user=report.proposed_by,
    )
