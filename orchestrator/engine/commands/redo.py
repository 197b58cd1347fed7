"""退回 (send a task back to an earlier step) and 撤回 (take back one's own completion)."""

from __future__ import annotations

from .. import dag
from ..errors import InvalidData
from ..progress import cancelled
from ..rules import TASK_OPEN, may_send_back, newest_tasks, refuse, send_back_target, take_back_plan
from ..tasks import SYSTEM, new_task
from ..unit import Tx


def send_back(tx: Tx, task_id: int, actor: str, reason: str, to_step: str | None) -> int:
    """退回: back to the previous (or any earlier completed) step, which gets a new task; the steps in
    between are redone. Returns the new task's id."""
    _, member = tx.lock_case_of_task(task_id, actor)
    task = tx.task(task_id)
    situation = tx.situation(actor, task, member)
    refusal = may_send_back(situation)
    if refusal:
        refuse(refusal)
    target, not_allowed, invalid = send_back_target(situation, to_step)
    if invalid:
        raise InvalidData(invalid)
    if not_allowed:
        refuse(not_allowed)
    assert target is not None
    case = tx.case
    definition = tx.definition()
    latest = newest_tasks(tx.tasks())
    target_task = latest[target]
    redo = set(dag.between(definition, target, task["step_id"])) | {task["step_id"], target}
    changes = []
    for step_id in redo:
        current = latest.get(step_id)
        if current is None:
            continue
        if current["state"] in TASK_OPEN:
            values = {"superseded": True, "state": "cancelled", "completed_at": tx.now}
            changes.append(cancelled(tx, current, actor, "send_back", values))
        else:
            changes.append((current, {"superseded": True}))
    tx.update_tasks(changes)
    new = new_task(tx.env, case, definition.steps_by_id[target], "ready", tx.now, None, definition=definition)
    row = new.row
    previous = target_task["completed_by"]
    if previous and previous != SYSTEM:
        row.update(state="claimed", assignee=previous, claimed_at=tx.now)
    tx.insert_tasks([new])
    tx.event(
        "sent_back",
        task=task,
        actor=actor,
        edge=(task["step_id"], target),
        data={"reason": reason, "new_task": row["id"], "redo": sorted(redo)},
    )
    tx.event(f"task_{row['state']}", task=row, to_state=row["state"])
    tx.notify(
        "task_sent_back",
        f"退回重办：{case['number']} {row['name']}：{reason}",
        task=row,
        user=row["assignee"],
        department=row["department"],
    )
    return row["id"]


def take_back(tx: Tx, task_id: int, actor: str) -> int:
    """撤回: undo my own completion while the tasks it created are still untouched. Returns the id of
    my task, open again."""
    tx.lock_case_of_task(task_id, actor)
    task = tx.task(task_id)
    made = take_back_plan(tx.situation(actor, task))
    if isinstance(made, str):
        refuse(made)
    assert not isinstance(made, str)
    changes = [
        cancelled(
            tx,
            t,
            actor,
            "take_back",
            {"state": "cancelled" if t["state"] == "ready" else t["state"], "superseded": True},
        )
        for t in made
    ]
    changes.append((task, {"superseded": True}))
    tx.update_tasks(changes)
    definition = tx.definition()
    new = new_task(
        tx.env, tx.case, definition.steps_by_id[task["step_id"]], "ready", tx.now, None, definition=definition
    )
    new.row.update(state="claimed", assignee=actor, claimed_at=tx.now)
    tx.insert_tasks([new])
    tx.event("taken_back", task=task, actor=actor, data={"new_task": new.row["id"]})
    tx.event("task_claimed", task=new.row, actor=actor, to_state="claimed")
    return new.row["id"]
