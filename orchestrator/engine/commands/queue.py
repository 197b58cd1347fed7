"""The task queue and hand-overs: 签收, putting a task back, 改派, 转办, 委派, 加签."""

from __future__ import annotations

from typing import Any

from ..errors import Conflict, NotAllowed, NotFound
from ..progress import start_work
from ..rules import require
from ..tasks import Row
from ..unit import Tx


def _task(tx: Tx, task_id: int, actor: str, action: str) -> Row:
    """The task (its case locked), once ``action``'s guard allows it."""
    _, member = tx.lock_case_of_task(task_id, actor)
    task = tx.task(task_id)
    require(action, tx.situation(actor, task, member))
    return task


def claim_task(tx: Tx, task_id: int, actor: str) -> None:
    """签收: take a ready task of my department."""
    task = _task(tx, task_id, actor, "claim")
    tx.update_task(task, state="claimed", assignee=actor, claimed_at=tx.now)
    tx.event("claimed", task=task, actor=actor, from_state="ready", to_state="claimed")
    start_work(tx, task, actor)


def release_task(tx: Tx, task_id: int, actor: str) -> None:
    """Put a claimed task back into the department's queue."""
    task = _task(tx, task_id, actor, "release")
    tx.update_task(task, state="ready", assignee=None, claimed_at=None, delegated_by=None)
    tx.event("released", task=task, actor=actor, from_state="claimed", to_state="ready")


def reassign_task(tx: Tx, task_id: int, actor: str, to_user: str, reason: str) -> None:
    """改派: the department's supervisor gives the task to another member."""
    task = _task(tx, task_id, actor, "reassign")
    _require_member(tx, to_user, task["department"])
    _hand_over(tx, task, actor, to_user, "reassigned", "改派", {"reason": reason}, state="claimed", delegated_by=None)


def transfer_task(tx: Tx, task_id: int, actor: str, to_user: str, reason: str) -> None:
    """转办: hand my task to another member of the department; it is theirs from now on."""
    task = _task(tx, task_id, actor, "transfer")
    _require_member(tx, to_user, task["department"])
    _hand_over(tx, task, actor, to_user, "transferred", "转办", {"reason": reason}, delegated_by=None)


def delegate_task(tx: Tx, task_id: int, actor: str, to_user: str, note: str) -> None:
    """委派: someone works my task for me; their completion comes back to me for approval."""
    task = _task(tx, task_id, actor, "delegate")
    _require_user(tx, to_user)
    _hand_over(tx, task, actor, to_user, "delegated", "委派", {"note": note}, delegated_by=actor)


def add_signer(tx: Tx, task_id: int, actor: str, signer: str, note: str) -> None:
    """加签: one more person must sign this task before it can be completed."""
    task = _task(tx, task_id, actor, "add_signer")
    _require_user(tx, signer)
    if any(s.kind == "user" and s.party == signer and s.signed_at is None for s in tx.signoffs(task_id)):
        raise Conflict(f"{signer} already has a pending signature on task {task_id}")
    tx.add_signoff(task_id, "user", signer)
    tx.update_task(task, signoffs_open=task["signoffs_open"] + 1)
    tx.event("signer_added", task=task, actor=actor, data={"signer": signer, "note": note})
    tx.notify("signature_requested", f"请会签：{tx.case['number']} {task['name']}", task=task, user=signer)


def _require_member(tx: Tx, user: str, department: str) -> None:
    if not any(d == department for d, _ in tx.memberships(user)):
        raise NotAllowed(f"{user} is not a member of department {department}, so may not receive its tasks")


def _require_user(tx: Tx, user: str) -> None:
    if not tx.user_exists(user):
        raise NotFound(f"user {user} does not exist")


def _hand_over(
    tx: Tx, task: Row, actor: str, to_user: str, kind: str, label: str, data: dict[str, Any], **values: Any
) -> None:
    """Give a task to someone else (改派, 转办, 委派): the write, its history row and their notice."""
    before = task["state"]
    claimed_at = tx.now if values.get("state") == "claimed" or kind != "delegated" else task["claimed_at"]
    tx.update_task(task, assignee=to_user, claimed_at=claimed_at, **values)
    tx.event(kind, task=task, actor=actor, from_state=before, to_state=task["state"], data={"to": to_user, **data})
    notice = "task_delegated" if kind == "delegated" else "task_assigned"
    tx.notify(notice, f"{label}给您：{tx.case['number']} {task['name']}", task=task, user=to_user)
