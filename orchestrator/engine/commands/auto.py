"""`auto` steps left for workers (``auto_inline=False``): each is decided in a transaction of its own.

Lock order as everywhere: the case, then its task. A worker picks a case that has a waiting
automatic task by locking the *case* row (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers
share the queue without waiting on each other or deciding a task twice); it never locks a task before
its case, which deadlocked against a person's transition (a withdrawal, say) on the same case.
"""

from __future__ import annotations

from sqlalchemy import select, text

from ...store.models import Case, Task
from ..errors import Conflict
from ..progress import complete, decide_auto, progress, start_work
from ..refusals import propose_refusal
from ..rules import CASE_RULES, LEADER
from ..tasks import SYSTEM
from ..unit import Tx

_cases = Case.__table__
_tasks = Task.__table__
# the predicate of ix_tasks_auto_ready, verbatim (a partial index is used only when the query repeats it)
AUTO_READY = text("tasks.state = 'ready' AND tasks.kind = 'auto'")


def next_auto_case(tx: Tx) -> int | None:
    """Lock (and return) an open case with a waiting automatic task that no other worker holds."""
    query = (
        select(_cases.c.id)
        .join(_tasks, _tasks.c.case_id == _cases.c.id)
        .where(AUTO_READY, _cases.c.state.in_(("accepted", "in_progress")))
        .order_by(_tasks.c.id)
        .limit(1)
    )  # a suspended case's automatic task waits for its resumption without blocking the queue
    if tx.conn.dialect.name == "postgresql":
        query = query.with_for_update(of=_cases, skip_locked=True)
    return tx.conn.execute(query).scalar()


def run_next_auto(tx: Tx) -> bool:
    """Decide the oldest waiting automatic task of one case no other worker holds; False if none."""
    case_id = next_auto_case(tx)
    if case_id is None:
        return False
    tx.lock_case(case_id)
    waiting = [t for t in tx.tasks() if t["state"] == "ready" and t["kind"] == "auto"]
    if not waiting or tx.case["state"] not in ("accepted", "in_progress"):
        return True  # decided by someone else between the pick and the lock (SQLite): nothing to do
    decide_waiting_auto(tx, waiting[0]["id"])
    return True


def run_auto_task(tx: Tx, task_id: int) -> None:
    """Decide one waiting automatic task by its id."""
    tx.lock_case_of_task(task_id, SYSTEM)
    decide_waiting_auto(tx, task_id)


def decide_waiting_auto(tx: Tx, task_id: int) -> None:
    case = tx.case
    task = tx.task(task_id)
    if task["state"] != "ready" or task["kind"] != "auto":
        raise Conflict(f"task {task_id} is no waiting auto task (it is {task['state']})")
    CASE_RULES["work"].check(case["state"], f"case {case['number']}")
    definition = tx.definition()
    step = definition.steps_by_id[task["step_id"]]
    form = dict(case["form"])
    decided = dict(task)
    decide_auto(step, decided, form, tx.now)
    if form != case["form"]:
        case["form"] = form
        tx.form_changed = True
    start_work(tx, task, SYSTEM)
    if decided["waiting"] == LEADER:  # a refusal: it waits for the leader (不予审批报告制)
        tx.update_task(task, state="claimed", assignee=SYSTEM, claimed_at=tx.now, opinion=decided["opinion"],
                       waiting=LEADER)  # fmt: skip
        tx.event("claimed", task=task, actor=SYSTEM, from_state="ready", to_state="claimed")
        remedy = definition.remedy
        propose_refusal(tx, task, SYSTEM, "rejected", decided["opinion"], remedy, department=task["department"])
        tx.save_form()
        return
    complete(tx, task, SYSTEM, decided["outcome"] or "approve", decided["opinion"])
    if decided["outcome"] is None:
        tx.update_task(task, outcome=None)
    progress(tx, definition, task_id)
    tx.save_form()
