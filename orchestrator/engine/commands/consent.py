"""逾期视为同意 (deemed consent): where a step says so (``deemed_consent: true``, off by default; local
law only), a department that has not answered by the step's limit is deemed to consent. The step
completes as approved with the rule as its actor (``rules.DEEMED_CONSENT``), the history says why, the
department is told and its supervisor gets an alert (the rule is audited), and the case moves on.

The scheduler (flows: ``deemed_consent``) finds the candidates with one read over the open-task due-time
index and completes each in a transaction of its own, under the action's guard (``rules.ACTIONS``), so
a task a person completed, or a case suspended, in the meantime is left alone.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from ...calendar import TZ
from ...store.models import Case, Task
from ..progress import complete, progress, start_work
from ..publish import DefinitionCache
from ..rules import DEEMED_CONSENT, OPEN_CASE, require
from ..unit import Tx

_tasks = Task.__table__
_cases = Case.__table__


def overdue_candidates(conn: Connection, definitions: DefinitionCache, now: datetime) -> list[int]:
    """Open approval tasks past their due time whose step deems silence consent, oldest due first."""
    query = (
        select(_tasks.c.id, _tasks.c.step_id, _cases.c.definition_key, _cases.c.definition_version)
        .join(_cases, _cases.c.id == _tasks.c.case_id)
        .where(
            _tasks.c.state.in_(("ready", "claimed")),  # the predicate of ix_tasks_open_due
            _tasks.c.due_at < now,
            _tasks.c.kind == "approval",
            _tasks.c.waiting.is_(None),
            _cases.c.state.in_(sorted(OPEN_CASE)),
        )
        .order_by(_tasks.c.due_at, _tasks.c.id)
    )
    found = []
    for task_id, step_id, key, version in conn.execute(query):
        step = definitions.get(conn, key, version).steps_by_id.get(step_id)
        if getattr(step, "deemed_consent", False):
            found.append(task_id)
    return found


def deem_consent(tx: Tx, task_id: int) -> None:
    """Complete one overdue task as approved by 逾期视为同意 (refused by the guard unless it applies now)."""
    _, member = tx.lock_case_of_task(task_id, DEEMED_CONSENT)
    task = tx.task(task_id)
    require("deemed_consent", tx.situation(DEEMED_CONSENT, task, member))
    definition = tx.definition()
    step = definition.steps_by_id[task["step_id"]]
    due = task["due_at"].astimezone(TZ)
    opinion = f"{step.name}：逾期未答复（期限 {due:%Y-%m-%d %H:%M}），依本步骤逾期视为同意的规定视为同意"
    holder = task["assignee"]  # claimed by someone who did not answer in time
    start_work(tx, task, DEEMED_CONSENT)
    complete(tx, task, DEEMED_CONSENT, "approve", opinion, signoffs_open=0)
    tx.event(
        "deemed_consent",
        task=task,
        actor=DEEMED_CONSENT,
        data={"rule": "deemed_consent", "due_at": task["due_at"].isoformat(), "department": task["department"]},
    )
    message = f"{tx.case['number']} {task['name']}：{opinion}"
    department = task["department"]
    tx.notify("deemed_consent", message, task=task, department=department)
    if holder:
        tx.notify("deemed_consent", message, task=task, user=holder)
    tx.alert("deemed_consent", message, task=task, department=department, role=tx.supervisor_role(department))
    progress(tx, definition, task_id)
    tx.save_form()
