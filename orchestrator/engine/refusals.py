"""不予审批报告制: a refusal goes to the leader of the deciding department before the applicant is told.

A refusal, at intake (不予受理, ``refuse_case``) or after review (不予许可, a ``reject`` by a person or an
automatic 秒批 rule), does not take effect when it is made. It is *proposed*: the refusing task stays open
with ``waiting = 'leader'`` (nobody works it meanwhile), a report task (step ``__negative_report__``, kind
``report``) opens in the deciding department for its supervisor role, with a time limit of its own
(``Engine(negative_report_limit=…)``, default 1 working day, which the SLA sweep watches), a
``negative_reports`` row records the proposal, and the 否定报备 alert goes to that leader. The leader
confirms it (``commands/report.py``: the refusal takes effect and the applicant is told, with the
remedy) or sends it back to the handler.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, update

from ..store.models import NegativeReport
from .rules import NEGATIVE_REPORT_STEP
from .tasks import Row, new_task
from .unit import Tx

_reports = NegativeReport.__table__
LABELS = {"not_accepted": "不予受理", "rejected": "不予许可"}


def propose_refusal(
    tx: Tx,
    task: Row,
    actor: str,
    kind: str,
    reason: str,
    remedy: str | None,
    *,
    department: str,
    slot_id: int | None = None,
) -> Row:
    """Report a refusal (``kind``: not_accepted or rejected) of ``task`` to ``department``'s leader.

    The caller has set ``task``'s ``waiting`` to 'leader' (when it is open). Returns the report task."""
    role = tx.supervisor_role(department)
    label = LABELS[kind]
    new = new_task(
        tx.env,
        tx.case,
        None,
        "ready",
        tx.now,
        task["id"],
        definition=tx.definition(),
        limit=tx.env.negative_report_limit,
        step_id=NEGATIVE_REPORT_STEP,
        kind="report",
        name=f"不予审批报告：{task['name']}（拟{label}）",
        department=department,
        opinion=reason,
    )
    tx.insert_tasks([new])
    report = new.row
    tx.conn.execute(
        insert(_reports),
        {
            "case_id": tx.case["id"],
            "task_id": task["id"],
            "report_task_id": report["id"],
            "slot_id": slot_id,
            "kind": kind,
            "department": department,
            "reason": reason,
            "remedy": remedy,
            "proposed_by": actor,
            "proposed_at": tx.now,
            "decision": None,
            "decided_by": None,
            "decided_at": None,
            "opinion": None,
        },
    )
    tx.event("refusal_proposed", task=task, actor=actor, data={"kind": kind, "reason": reason, "report": report["id"]})
    tx.event("task_ready", task=report, to_state="ready")
    number = tx.case["number"]
    message = f"{number} {task['name']} 拟{label}：{reason}"
    tx.alert("negative_decision", message, task=report, department=department, role=role)  # 否定报备
    notice = f"不予审批报告：{message}；请确认或退回"
    tx.notify("negative_report", notice, task=report, department=department, role=role)
    return report


def decide(tx: Tx, report_task: Row, decision: str, actor: str | None, opinion: str | None, **values: Any) -> None:
    """Record the leader's decision on the refusal (or 'cancelled' when the case closed first)."""
    tx.conn.execute(
        update(_reports)
        .where(_reports.c.report_task_id == report_task["id"])
        .values(decision=decision, decided_by=actor, decided_at=tx.now, opinion=opinion or None, **values)
    )


def cancel_pending(tx: Tx, report_tasks: list[Row], why: str) -> None:
    """The case closed while these refusals waited for their leader: they will never be decided."""
    ids = [t["id"] for t in report_tasks]
    if ids:
        tx.conn.execute(
            update(_reports)
            .where(_reports.c.report_task_id.in_(ids), _reports.c.decision.is_(None))
            .values(decision="cancelled", decided_at=tx.now, opinion=why)
        )
