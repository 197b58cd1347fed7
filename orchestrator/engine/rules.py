"""The state machine and who may move it, on one page.

Two layers, both declared here once:

* ``CASE_RULES`` / ``TASK_RULES``: which transition is allowed from which states, to which state.
* ``ACTIONS``: what a person may do to a case or a task — each action names its rule, who may take it
  and the further conditions, as a guard over a ``Situation`` (the case, its tasks, the task, the
  person). The commands call ``require(action, situation)`` before they change anything, and
  ``available_actions`` (orchestrator/engine/actions.py) runs the same guards to list exactly the
  buttons a page may show: a button shown is never refused, a refused one is never shown.

A guard answers ``None`` (allowed) or the sentence that refuses it. Checks of the *input* (a reason
left empty, a user to hand over to) are not guards: they come back as ``InvalidData`` from the command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ..definition.limits import Limit
from . import dag
from .errors import Conflict, NotAllowed

CASE_STATES = ("submitted", "accepted", "in_progress", "suspended", "completed", "not_accepted", "rejected",
               "withdrawn", "terminated")  # fmt: skip
CASE_FINAL = frozenset({"completed", "not_accepted", "rejected", "withdrawn", "terminated"})
TASK_STATES = ("ready", "claimed", "completed", "skipped", "cancelled")
TASK_OPEN = frozenset({"ready", "claimed"})
TASK_DONE = frozenset({"completed", "skipped"})
OUTCOMES = ("approve", "reject", "return")
RECTIFICATION_STEP = "__rectification__"  # 差评整改, opened by a bad rating
NEGATIVE_REPORT_STEP = "__negative_report__"  # 不予审批报告: a proposed refusal, for the leader to decide
CASE_STEPS = frozenset({RECTIFICATION_STEP, NEGATIVE_REPORT_STEP})  # tasks of a case that are no step of it
LEADER = "leader"  # tasks.waiting of a task whose proposed refusal waits for the leader (不予审批报告制)
APPLICANT = "applicant"  # tasks.waiting of a task whose 补正 waits for the applicant's materials
# 行政许可法 Art. 32 (with Art. 82: working days): a 补正 notice comes within 5 days of receiving the
# application, else the application counts as accepted from its receipt
INTAKE_NOTICE_LIMIT = Limit(5.0, "d")


def deferral_lapsed(deferred: list[str], deferred_due_at: datetime | None, now: datetime) -> bool:
    """容缺 materials still owed after their supply deadline: the case is to be terminated."""
    return bool(deferred) and deferred_due_at is not None and deferred_due_at < now


@dataclass(frozen=True)
class Rule:
    name: str
    label: str  # Chinese name of the operation, for messages
    from_states: frozenset[str]
    to_state: str | None  # None: the state does not change

    def refusal(self, current: str, subject: str) -> str | None:
        if current in self.from_states:
            return None
        allowed = ", ".join(sorted(self.from_states))
        return f"{self.label} ({self.name}) is not allowed: {subject} is {current}; it must be one of: {allowed}"

    def check(self, current: str, subject: str) -> None:
        refusal = self.refusal(current, subject)
        if refusal:
            raise NotAllowed(refusal)


def _rule(name: str, label: str, from_states: set[str] | frozenset[str], to_state: str | None) -> Rule:
    return Rule(name, label, frozenset(from_states), to_state)


OPEN_CASE = {"accepted", "in_progress"}
CASE_RULES = {
    "accept": _rule("accept", "受理", {"submitted"}, "accepted"),
    "refuse": _rule("refuse", "不予受理", {"submitted"}, "not_accepted"),
    "request_supplement": _rule("request_supplement", "一次性告知补正", {"submitted"}, None),
    "supply_before_acceptance": _rule("supply", "补齐材料", {"submitted"}, None),
    "supply_after_acceptance": _rule("supply", "补齐材料", {"suspended"}, None),
    "start_work": _rule("start_work", "部门开始办理", {"accepted"}, "in_progress"),
    "suspend": _rule("suspend", "特别程序（挂起）", OPEN_CASE, "suspended"),
    "resume": _rule("resume", "特别程序结束（恢复计时）", {"suspended"}, None),
    "extend": _rule("extend", "延长审批", OPEN_CASE | {"suspended"}, None),
    "withdraw": _rule("withdraw", "撤回申请", {"submitted", "accepted", "in_progress", "suspended"}, "withdrawn"),
    "reject": _rule("reject", "不予许可", OPEN_CASE, "rejected"),
    "terminate": _rule("terminate", "终止办理（容缺材料逾期未补齐）", OPEN_CASE | {"suspended"}, "terminated"),
    "complete": _rule("complete", "办结", OPEN_CASE, "completed"),
    "evaluate": _rule("evaluate", "好差评", CASE_FINAL, None),  # whatever the outcome (一事一评)
    "work": _rule("work", "办理", OPEN_CASE, None),
    "urge": _rule("urge", "催办/督办", OPEN_CASE | {"suspended", "completed"}, None),
}
TASK_RULES = {
    "claim": _rule("claim", "签收", {"ready"}, "claimed"),
    "release": _rule("release", "退回待办池", {"claimed"}, "ready"),
    "reassign": _rule("reassign", "改派", TASK_OPEN, "claimed"),
    "transfer": _rule("transfer", "转办", {"claimed"}, "claimed"),
    "delegate": _rule("delegate", "委派", {"claimed"}, "claimed"),
    "complete": _rule("complete", "办理完成", TASK_OPEN, "completed"),
    "sign": _rule("sign", "会签/踏勘签署", TASK_OPEN, None),
    "add_signer": _rule("add_signer", "加签", TASK_OPEN, None),
    "send_back": _rule("send_back", "退回", TASK_OPEN, "cancelled"),
    "take_back": _rule("take_back", "撤回", {"completed"}, "completed"),
    "urge": _rule("urge", "催办/督办", TASK_OPEN, None),
    "confirm_refusal": _rule("confirm_refusal", "确认不予决定", TASK_OPEN, "completed"),
    "send_back_refusal": _rule("send_back_refusal", "退回重新决定", TASK_OPEN, "completed"),
}

Row = dict[str, Any]


class Facts(Protocol):
    """What a guard may look up beyond the case and its tasks: the transaction (``unit.Tx``) in a
    command, a read-only connection in ``available_actions``."""

    def memberships(self, actor: str) -> set[tuple[str, str]]: ...
    def supervisor_role(self, department: str) -> str | None: ...
    def signoffs(self, task_id: int) -> list[Any]: ...
    def user_exists(self, user: str) -> bool: ...
    def open_supplement(self) -> Any: ...
    def evaluated(self) -> bool: ...
    def signed_any(self, task_ids: list[int]) -> bool: ...
    def negative_report(self, report_task_id: int) -> Any: ...
    def returns_made(self) -> int: ...
    def extensions(self) -> list[Any]: ...
    def due(self, start: datetime, limit: Limit) -> datetime: ...
    def open_incident(self, task_id: int) -> Any: ...
    @property
    def now(self) -> datetime: ...


@dataclass
class Situation:
    """The subject of an action and the person acting: the case, its tasks, the definition, one task
    for task actions, and ``facts`` to look up the rest."""

    facts: Facts
    case: Row
    tasks: list[Row]
    definition: Any  # definition.model.Definition
    actor: str
    task: Row | None = None
    member_of_task_department: bool | None = None  # already known from the lock, when given

    def is_member(self, department: str, role: str | None = None) -> bool:
        known = self.member_of_task_department
        if role is None and known is not None and self.task is not None and department == self.task["department"]:
            return known
        roles = self.facts.memberships(self.actor)
        if role is None:
            return any(d == department for d, _ in roles)
        return (department, role) in roles

    @property
    def number(self) -> str:
        return self.case["number"]

    def entry_task(self) -> Row | None:
        """The open acceptance (综合受理) task, if any."""
        entry = self.definition.entry.id
        return next((t for t in reversed(self.tasks) if t["step_id"] == entry and t["state"] in TASK_OPEN), None)

    def open_reports(self) -> list[Row]:
        """The case's refusal reports still waiting for their leader."""
        return [t for t in self.tasks if t["step_id"] == NEGATIVE_REPORT_STEP and t["state"] in TASK_OPEN]


Guard = Callable[[Situation], "str | None"]


@dataclass(frozen=True)
class Action:
    """One thing a person can do to a case or a task: a button, and the command behind it."""

    name: str
    label: str  # the button's Chinese label
    subject: str  # "case" or "task"
    who: str  # who may take it, for people reading this table
    guard: Guard


class RaceLost(str):
    """A refusal because someone else got there first: raised as Conflict, not NotAllowed."""


def refuse(refusal: str) -> None:
    raise (Conflict if isinstance(refusal, RaceLost) else NotAllowed)(str(refusal))


def require(action: str, situation: Situation) -> None:
    """Raise the refusal of ``action`` in this situation, if it is refused."""
    refusal = ACTIONS[action].guard(situation)
    if refusal is not None:
        refuse(refusal)


def allowed(action: str, situation: Situation) -> bool:
    return ACTIONS[action].guard(situation) is None


# ------------------------------------------------------------------------------------------------
# shared conditions


def _first(*checks: Callable[[], str | None]) -> str | None:
    for check in checks:
        refusal = check()
        if refusal:
            return refusal
    return None


def _member(s: Situation, department: str, what: str) -> str | None:
    if s.is_member(department):
        return None
    return f"{s.actor} is not a member of department {department}, so may not {what}"


def _assignee(task: Row, actor: str, what: str) -> str | None:
    if task["assignee"] == actor:
        return None
    holder = task["assignee"] or "nobody"
    return f"task {task['id']} is claimed by {holder}; only they may {what}"


def _not_delegated(task: Row, what: str) -> str | None:
    if task["delegated_by"] is None:
        return None
    return (
        f"task {task['id']} is delegated by {task['delegated_by']} (委派): the delegate works it "
        f"and it returns to them; a delegate may not {what}"
    )


def _not_awaiting_leader(task: Row, what: str) -> str | None:
    if task["waiting"] != LEADER:
        return None
    return (
        f"task {task['id']} ({task['name']}) has a refusal waiting for its leader's decision (不予审批报告制); "
        f"nobody may {what} until the leader confirms it or sends it back"
    )


def _not_report(task: Row, what: str) -> str | None:
    if task["step_id"] != NEGATIVE_REPORT_STEP:
        return None
    return (
        f"task {task['id']} is a refusal report (不予审批报告): its leader confirms or sends it back; nobody may {what}"
    )


def _case_rule(s: Situation, rule: str) -> str | None:
    return CASE_RULES[rule].refusal(s.case["state"], f"case {s.number}")


def _task_rule(s: Situation, rule: str) -> str | None:
    task = s.task
    assert task is not None
    return TASK_RULES[rule].refusal(task["state"], f"task {task['id']}")


def _applicant(s: Situation, what: str) -> str | None:
    return None if s.case["applicant"].get("id") == s.actor else f"only the applicant may {what}"


def case_worker(s: Situation, what: str) -> str | None:
    """A member of a department that has open work on the case (or waits on the applicant for it)."""
    departments = {t["department"] for t in s.tasks if t["state"] in TASK_OPEN or t["waiting"]}
    if any(s.is_member(d) for d in departments):
        return None
    return f"{s.actor} works no open task of case {s.number}, so may not {what}"


# ------------------------------------------------------------------------------------------------
# acceptance (综合受理) and the applicant


def _window(s: Situation, what: str) -> str | None:
    return _member(s, s.definition.entry.department, what)


def _refusal_pending(s: Situation) -> str | None:
    if not s.open_reports():
        return None
    return f"case {s.number} has a refusal (不予受理) waiting for the leader's decision (不予审批报告制)"


def _accept(s: Situation) -> str | None:
    return _first(
        lambda: _window(s, "accept applications"),
        lambda: _case_rule(s, "accept"),
        lambda: _refusal_pending(s),
        lambda: None if s.entry_task() else f"case {s.number} is waiting for the applicant's 补正 materials",
    )


def _refuse(s: Situation) -> str | None:
    return _first(
        lambda: _window(s, "refuse applications"), lambda: _case_rule(s, "refuse"), lambda: _refusal_pending(s)
    )


def intake_notice_due(s: Situation) -> tuple[datetime, datetime] | None:
    """(receipt, deadline) of the 补正 notice for the open acceptance task: 5 working days from the
    application's receipt, or the arrival of the materials a notice asked for (行政许可法 Art. 32)."""
    entry = s.entry_task()
    if entry is None:
        return None
    return entry["ready_at"], s.facts.due(entry["ready_at"], INTAKE_NOTICE_LIMIT)


def _notice_in_time(s: Situation) -> str | None:
    due = intake_notice_due(s)
    if due is None or s.facts.now <= due[1]:
        return None
    received, deadline = (moment.astimezone(_tz()) for moment in due)
    return (
        f"too late for a 补正 notice: it had to go out within 5 working days of receiving the application "
        f"({received:%Y-%m-%d %H:%M}), by {deadline:%Y-%m-%d %H:%M} (行政许可法 Art. 32); the application now "
        f"counts as accepted from its receipt: accept it (the promised limit runs from {received:%Y-%m-%d %H:%M}) "
        "or refuse it"
    )


def _request_supplement(s: Situation) -> str | None:
    return _first(
        lambda: _window(s, "request 补正"),
        lambda: _case_rule(s, "request_supplement"),
        lambda: _refusal_pending(s),
        lambda: None if s.entry_task() else f"case {s.number} already has a 补正 notice out; wait for the materials",
        lambda: _notice_in_time(s),
    )


def _supply(s: Situation) -> str | None:
    case = s.case

    def owed() -> str | None:
        notice = s.facts.open_supplement()
        if notice is None and not case["deferred"]:
            return f"case {s.number} is not waiting for materials"
        if notice is None and deferral_lapsed(case["deferred"], case["deferred_due_at"], s.facts.now):
            deadline = case["deferred_due_at"].astimezone(_tz())
            return (
                f"the 容缺 supply deadline {deadline:%Y-%m-%d %H:%M} has passed: case {s.number} is to "
                "be terminated (终止办理) and takes no more materials"
            )
        return None

    return _first(
        lambda: _applicant(s, "supply materials for this case"),
        lambda: (
            f"case {s.number} is {case['state']}; it takes no more materials" if case["state"] in CASE_FINAL else None
        ),
        owed,
    )


def _withdraw(s: Situation) -> str | None:
    return _first(lambda: _applicant(s, "withdraw the application"), lambda: _case_rule(s, "withdraw"))


def _evaluate(s: Situation) -> str | None:
    return _first(
        lambda: (
            None
            if s.case["applicant"].get("id") == s.actor
            else "only the applicant rates the service of their own case"
        ),
        lambda: _case_rule(s, "evaluate"),
        lambda: RaceLost(f"case {s.number} has been rated already (一事一评)") if s.facts.evaluated() else None,
    )


# ------------------------------------------------------------------------------------------------
# the clock


def _suspend(s: Situation) -> str | None:
    return _first(lambda: case_worker(s, "suspend the case"), lambda: _case_rule(s, "suspend"))


def _resume(s: Situation) -> str | None:
    return _first(
        lambda: _case_rule(s, "resume"),
        lambda: case_worker(s, "resume the case"),
        lambda: (
            "the case waits for the applicant's 补正 materials; it resumes when they arrive"
            if any(t["waiting"] == "applicant" and t["state"] in TASK_OPEN for t in s.tasks)
            else None
        ),
    )


def _extend(s: Situation) -> str | None:
    limits = s.definition.limits

    def statutory() -> str | None:
        if limits.statutory is None or limits.promised is None or s.case["due_at"] is None:
            return f"{s.definition.key} has no statutory limit, so there is no legal extension to grant"
        return None

    def once() -> str | None:
        granted = s.facts.extensions()
        if not granted:
            return None
        first = granted[0]
        return (
            f"延长审批 is granted once per case (行政许可法 Art. 42): case {s.number} was extended by "
            f"{first.amount} on {first.at.astimezone(_tz()):%Y-%m-%d} (approved by {first.approver})"
        )

    return _first(lambda: _case_rule(s, "extend"), lambda: case_worker(s, "extend the case"), statutory, once)


def _urge_case(s: Situation) -> str | None:
    return _first(
        lambda: None if s.facts.user_exists(s.actor) else f"{s.actor} is no registered user",
        lambda: _case_rule(s, "urge"),
    )


# ------------------------------------------------------------------------------------------------
# the task queue


def _claim(s: Situation) -> str | None:
    task = s.task
    assert task is not None

    def case_open() -> str | None:
        if task["step_id"] == RECTIFICATION_STEP or task["kind"] == "acceptance":
            return None
        return _case_rule(s, "work")

    return _first(
        lambda: _not_report(task, "claim it"),
        lambda: _member(s, task["department"], "claim it"),
        lambda: _task_rule(s, "claim"),
        lambda: _not_awaiting_leader(task, "claim it"),
        lambda: (
            f"task {task['id']} is an automatic step: its rule decides it (run_auto_tasks)"
            if task["kind"] == "auto"
            else None
        ),
        case_open,
    )


def _release(s: Situation) -> str | None:
    task = s.task
    assert task is not None
    return _first(
        lambda: _task_rule(s, "release"),
        lambda: _not_awaiting_leader(task, "put it back in the queue"),
        lambda: _not_delegated(task, "put it back in the queue"),
        lambda: _assignee(task, s.actor, "release it"),
    )


def _reassign(s: Situation) -> str | None:
    task = s.task
    assert task is not None

    def supervisor() -> str | None:
        role = s.facts.supervisor_role(task["department"])
        if role is not None and s.is_member(task["department"], role):
            return None
        return f"only the supervisor ({role}) of {task['department']} may reassign its tasks"

    return _first(
        lambda: _not_report(task, "reassign it"),
        lambda: _task_rule(s, "reassign"),
        lambda: _not_awaiting_leader(task, "reassign it"),
        supervisor,
    )


def _transfer(s: Situation) -> str | None:
    task = s.task
    assert task is not None
    return _first(
        lambda: _task_rule(s, "transfer"),
        lambda: _not_awaiting_leader(task, "transfer it"),
        lambda: _not_delegated(task, "transfer it"),
        lambda: _assignee(task, s.actor, "transfer it"),
    )


def _delegate(s: Situation) -> str | None:
    task = s.task
    assert task is not None
    return _first(
        lambda: _task_rule(s, "delegate"),
        lambda: _not_awaiting_leader(task, "delegate it"),
        lambda: _assignee(task, s.actor, "delegate it"),
        lambda: f"task {task['id']} is already delegated by {task['delegated_by']}" if task["delegated_by"] else None,
    )


def _add_signer(s: Situation) -> str | None:
    task = s.task
    assert task is not None
    return _first(
        lambda: _task_rule(s, "add_signer"),
        lambda: _not_awaiting_leader(task, "add a signer"),
        lambda: _assignee(task, s.actor, "add a signer"),
    )


def _urge_task(s: Situation) -> str | None:
    return _first(
        lambda: None if s.facts.user_exists(s.actor) else f"{s.actor} is no registered user",
        lambda: _task_rule(s, "urge"),
    )


# ------------------------------------------------------------------------------------------------
# working a task: approve, reject, return (补正), signatures


@dataclass(frozen=True)
class Completion:
    """How a completion call is carried out, decided by ``plan_completion``."""

    how: str  # "sign" | "delegation_return" | "assignee" | "rectification"
    slot: Any = None


def plan_completion(s: Situation, outcome: str) -> Completion | str:
    """What ``complete_task(outcome)`` does for this person on this task, or why it is refused."""
    task = s.task
    assert task is not None
    if task["state"] == "completed":
        return RaceLost(f"task {task['id']} ({task['name']}) is already completed by {task['completed_by']}")
    refusal = _not_report(task, "complete it") or _task_rule(s, "complete")
    if refusal:
        return refusal
    if task["step_id"] == RECTIFICATION_STEP:
        if not s.is_member(task["department"]):
            return f"{s.actor} is not a member of department {task['department']}"
        if outcome != "approve":
            return "差评整改 is completed with its result (approve), not rejected or returned"
        return Completion("rectification")
    if task["kind"] == "auto":
        return f"task {task['id']} is an automatic step: its rule decides it (run_auto_tasks)"
    if task["kind"] == "acceptance":
        return "the acceptance step is worked with accept_case, refuse_case or request_supplement"
    refusal = _case_rule(s, "work")
    if refusal:
        return refusal
    if task["waiting"] == APPLICANT:
        return f"task {task['id']} waits for the applicant's 补正 materials"
    refusal = _not_awaiting_leader(task, "work it")
    if refusal:
        return refusal
    if task["signoffs_open"] > 0 and outcome != "return":  # 补正 is the assignee's, not a signature
        slot = _slot_for(s)
        if isinstance(slot, str):
            return slot
        if slot is not None:
            return Completion("sign", slot)
    if task["delegated_by"] is not None and task["assignee"] == s.actor:
        return Completion("delegation_return")  # 委派: the delegate's work returns to the one who delegated
    if task["state"] == "claimed" and task["assignee"] != s.actor:
        return f"task {task['id']} is claimed by {task['assignee']}; only they may complete it"
    if not s.is_member(task["department"]):  # a claimed task's assignee too: roles can be taken away
        return f"{s.actor} is not a member of department {task['department']}, so may not complete it"
    if outcome == "return":
        return _returns_left(s) or Completion("assignee")
    return Completion("assignee")


def _returns_left(s: Situation) -> str | None:
    """补正 after acceptance stops the clock: at most ``limits.returns`` times per case (default once)."""
    allowed = s.definition.limits.returns
    made = s.facts.returns_made()
    if made < allowed:
        return None
    return (
        f"case {s.number} has been returned to the applicant for 补正 {made} time(s) after acceptance, as many as "
        f"{s.definition.key} allows (limits.returns: {allowed}); decide on what the applicant gave"
    )


def _slot_for(s: Situation) -> Any:
    """The sign-off slot this person signs now; None if they have none to give and act as the task's
    assignee instead; a sentence if they may not act on it at all."""
    task, actor = s.task, s.actor
    assert task is not None
    slots = s.facts.signoffs(task["id"])
    open_slots = [x for x in slots if x.signed_at is None]
    for slot in open_slots:
        if slot.kind == "user" and slot.party == actor:
            return slot
    levels = [x for x in open_slots if x.kind == "level"]
    if levels:
        if any(x.signed_by == actor for x in slots if x.kind == "level"):
            return (
                f"{actor} already signed a level of this review chain; the next level "
                f"({levels[0].party}) must be signed by someone else"
            )
        if not s.is_member(task["department"]):
            return f"{actor} is not a member of department {task['department']}"
        return levels[0]
    departments = [x for x in open_slots if x.kind == "department"]
    if departments:
        for slot in departments:
            if s.is_member(slot.party):
                return slot
        signed = [x.party for x in slots if x.kind == "department" and x.signed_at is not None]
        return (
            f"{actor} is in none of the survey departments still to sign "
            f"({', '.join(x.party for x in departments)}); signed: {', '.join(signed) or 'none'}"
        )
    roles = [x for x in open_slots if x.kind == "role"]
    step = s.definition.steps_by_id.get(task["step_id"])
    if getattr(step, "sign", None) == "any" and any(x.kind == "role" and x.signed_at for x in slots):
        roles = []  # 或签: one countersignature was enough
    if roles:
        for slot in roles:
            if s.is_member(task["department"], slot.party):
                return slot
        return f"{actor} holds none of the countersign roles still to sign ({', '.join(x.party for x in roles)})"
    added = [x for x in open_slots if x.kind == "user"]
    if added:  # only added signers (加签) left, and the actor is not one of them
        if task["assignee"] == actor:
            return f"task {task['id']} waits for 加签 signatures from {', '.join(x.party for x in added)}"
        return f"{actor} has no signature to give on task {task['id']}"
    return None


def _completion(outcome: str) -> Guard:
    def guard(s: Situation) -> str | None:
        plan = plan_completion(s, outcome)
        return plan if isinstance(plan, str) else None

    return guard


def _issue(s: Situation) -> str | None:
    task = s.task
    assert task is not None
    return _first(
        lambda: _case_rule(s, "work"),
        lambda: _task_rule(s, "complete"),
        lambda: f"task {task['id']} ({task['name']}) is no issue (出件) step" if task["kind"] != "issue" else None,
        lambda: (
            None if s.is_member(task["department"]) else f"{s.actor} is not a member of department {task['department']}"
        ),
        lambda: _assignee(task, s.actor, "issue its certificates") if task["state"] == "claimed" else None,
        lambda: (
            f"容缺 materials are still owed ({', '.join(s.case['deferred'])}); certificates go out once "
            "they are supplied"
            if s.case["deferred"]
            else None
        ),
    )


# ------------------------------------------------------------------------------------------------
# 退回 and 撤回


def newest_tasks(tasks: list[Row]) -> dict[str, Row]:
    """The newest task of each step (a row not inserted yet, without an id, is the newest)."""
    newest: dict[str, Row] = {}
    for task in tasks:
        current = newest.get(task["step_id"])
        if current is None or "id" not in task or ("id" in current and task["id"] > current["id"]):
            newest[task["step_id"]] = task
    return newest


def being_redone(definition: Any, newest: dict[str, Row], step_id: str) -> list[str]:
    """Predecessors of a step that an earlier 退回 reopened (not completed or skipped again yet)."""
    return [
        b
        for b in definition.steps_by_id[step_id].after
        if b not in newest or newest[b]["superseded"] or newest[b]["state"] not in ("completed", "skipped")
    ]


def previous_step(definition: Any, newest: dict[str, Row], step_id: str) -> str | None:
    """The predecessor completed last (skips do not count)."""
    done = [
        newest[b] for b in definition.steps_by_id[step_id].after if b in newest and newest[b]["state"] == "completed"
    ]
    if not done:
        return None
    return max(done, key=lambda t: (t["completed_at"], t["id"]))["step_id"]


def send_back_target(s: Situation, to_step: str | None) -> tuple[str | None, str | None, str | None]:
    """(target step, refusal as NotAllowed, refusal as InvalidData) of a 退回 to ``to_step`` (None: the
    previous step)."""
    task = s.task
    assert task is not None
    definition = s.definition
    newest = newest_tasks(s.tasks)
    target = to_step or previous_step(definition, newest, task["step_id"])
    if target is None:
        return None, f"step {task['step_id']} has no completed predecessor to send back to", None
    ancestors = set(dag.between(definition, definition.entry.id, task["step_id"])) | {definition.entry.id}
    if target not in definition.steps_by_id or target not in ancestors or target == definition.entry.id:
        return (
            None,
            None,
            f"cannot send back to {target!r}: choose an earlier department step of this case "
            f"({', '.join(sorted(ancestors - {definition.entry.id}))})",
        )
    if definition.steps_by_id[target].kind in ("auto", "notify"):
        return None, None, f"cannot send back to {target!r}: it is an automatic step; send back to a step people work"
    target_task = newest.get(target)
    if target_task is None or target_task["state"] != "completed" or target_task["superseded"]:
        return None, f"step {target} has not been completed in this case; nothing to send back to", None
    if target_task["outcome"] == "reject":
        return None, f"step {target} was refused with its leader's confirmation; it is not redone", None
    redoing = being_redone(definition, newest, target)
    if redoing:  # an earlier 退回 reopened them: the target would run ahead of its predecessors
        return None, f"cannot send back to {target} while {', '.join(redoing)} are redone", None
    return target, None, None


def may_send_back(s: Situation) -> str | None:
    """Whether this person may send this task back at all (the target aside)."""
    task = s.task
    assert task is not None

    def person() -> str | None:
        if task["state"] == "claimed":
            return _assignee(task, s.actor, "send it back")
        return (
            None if s.is_member(task["department"]) else f"{s.actor} is not a member of department {task['department']}"
        )

    return _first(
        lambda: _not_report(task, "send it back"),
        lambda: _case_rule(s, "work"),
        lambda: _task_rule(s, "send_back"),
        lambda: _not_awaiting_leader(task, "send it back"),
        person,
    )


def _send_back(s: Situation) -> str | None:
    def default_target() -> str | None:
        _, not_allowed, invalid = send_back_target(s, None)
        return not_allowed or invalid

    return _first(lambda: may_send_back(s), default_target)


def take_back_plan(s: Situation) -> list[Row] | str:
    """The later tasks a 撤回 cancels, or why it is refused."""
    task = s.task
    assert task is not None
    if s.case["state"] in CASE_FINAL:
        return f"case {s.number} is {s.case['state']}; a closed case cannot be taken back"
    refusal = _case_rule(s, "work") or _task_rule(s, "take_back")  # not while the clock is stopped
    if refusal:
        return refusal
    if task["step_id"] in CASE_STEPS:
        return f"task {task['id']} ({task['name']}) is no step of the process; it cannot be taken back"
    if s.definition.steps_by_id[task["step_id"]].kind in ("auto", "notify"):  # its redo would be nobody's
        return f"task {task['id']} ({task['name']}) is an automatic step; it cannot be taken back"
    if task["outcome"] == "reject":  # its leader confirmed it and the applicant was told
        return f"task {task['id']} ({task['name']}) was refused with its leader's confirmation; it cannot be taken back"
    if task["completed_by"] != s.actor:
        return f"only {task['completed_by']}, who completed task {task['id']}, may take it back"
    if task["superseded"] or task["kind"] == "acceptance":
        return f"task {task['id']} can no longer be taken back"
    definition = s.definition
    redoing = being_redone(definition, newest_tasks(s.tasks), task["step_id"])
    if redoing:  # after a 退回, reopening this step now would run it ahead of its predecessors
        return f"task {task['id']} cannot be taken back while {', '.join(redoing)} are redone"
    later = dag.descendants(definition, task["step_id"])  # a join made ready by another branch counts too
    made = [
        t
        for t in s.tasks
        if not t["superseded"]
        and t["step_id"] not in CASE_STEPS  # a decided refusal report is history, not a next step
        and (t["created_by_task"] == task["id"] or t["step_id"] in later)
    ]
    touched = [t for t in made if t["state"] not in ("ready", "skipped") or t["assignee"] is not None]
    if touched:
        names = ", ".join(f"{t['name']} ({t['state']})" for t in touched)
        return f"too late to take back: the next steps have started: {names}"
    waiting = [t["id"] for t in made if t["state"] == "ready"]
    if waiting and s.facts.signed_any(waiting):
        return "too late to take back: a next step already has signatures"
    return made


def _take_back(s: Situation) -> str | None:
    plan = take_back_plan(s)
    return plan if isinstance(plan, str) else None


# ------------------------------------------------------------------------------------------------
# 不予审批报告制: the leader decides on a proposed refusal before the applicant is told


def _decide_refusal(rule: str) -> Guard:
    """The guard of confirming (``confirm_refusal``) or sending back (``send_back_refusal``) a refusal."""

    def guard(s: Situation) -> str | None:
        task = s.task
        assert task is not None
        department = task["department"]

        def report_task() -> str | None:
            if task["step_id"] == NEGATIVE_REPORT_STEP:
                return None
            return f"task {task['id']} ({task['name']}) is no refusal report (不予审批报告)"

        def undecided() -> str | None:
            if task["state"] == "completed":
                return RaceLost(f"the refusal report {task['id']} was decided already by {task['completed_by']}")
            return _task_rule(s, rule)

        def leader() -> str | None:
            role = s.facts.supervisor_role(department)
            if role is not None and s.is_member(department, role):
                return None
            return f"only the leader ({role}) of {department} decides on a proposed refusal (不予审批报告制)"

        def not_the_proposer() -> str | None:
            report = s.facts.negative_report(task["id"])
            if report.proposed_by != s.actor:
                return None
            return f"{s.actor} proposed this refusal; another leader ({department}) decides on it"

        def takes_effect() -> str | None:  # a confirmed refusal closes the case or completes its step now
            if rule != "confirm_refusal":
                return None
            kind = s.facts.negative_report(task["id"]).kind
            return _case_rule(s, "refuse" if kind == "not_accepted" else "work")

        return _first(report_task, undecided, leader, not_the_proposer, takes_effect)

    return guard


def _tz() -> Any:
    from ..calendar import TZ

    return TZ


# ------------------------------------------------------------------------------------------------
# what runs by itself: incidents of automatic steps, 逾期视为同意

DEEMED_CONSENT = "rule:deemed_consent"  # the actor recorded when 逾期视为同意 completes a step


def _incident(s: Situation, what: str) -> str | None:
    """A supervisor acting on an automatic task whose attempts ran out (commands/incidents.py)."""
    task = s.task
    assert task is not None

    def supervisor() -> str | None:
        role = s.facts.supervisor_role(task["department"])
        if role is not None and s.is_member(task["department"], role):
            return None
        return f"only the supervisor ({role}) of {task['department']} may {what}"

    return _first(
        lambda: _case_rule(s, "work"),
        lambda: _task_rule(s, "complete"),
        lambda: None if task["kind"] == "auto" else f"task {task['id']} is no automatic step",
        lambda: None if s.facts.open_incident(task["id"]) else f"task {task['id']} has no open incident",
        supervisor,
    )


def _deemed_consent(s: Situation) -> str | None:
    task = s.task
    assert task is not None
    step = s.definition.steps_by_id.get(task["step_id"])

    def enabled() -> str | None:
        if getattr(step, "deemed_consent", False):
            return None
        return f"step {task['step_id']} does not deem a silent department to consent (no deemed_consent)"

    def overdue() -> str | None:
        due = task["due_at"]
        if due is not None and due <= s.facts.now:
            return None
        shown = f" (due {due.astimezone(_tz()):%Y-%m-%d %H:%M})" if due is not None else ""
        return f"task {task['id']} is not past its limit{shown}"

    return _first(
        lambda: None if s.actor == DEEMED_CONSENT else f"only the rule {DEEMED_CONSENT} (逾期视为同意) completes it so",
        lambda: _case_rule(s, "work"),
        lambda: _task_rule(s, "complete"),
        enabled,
        lambda: f"task {task['id']} waits for the applicant's 补正 materials" if task["waiting"] else None,
        overdue,
    )


# ------------------------------------------------------------------------------------------------
# the table

WINDOW = "a member of the entry step's department (the window)"
ASSIGNEE_OR_MEMBER = "the assignee, or a member of its department (ready task)"
WORKER_OR_SIGNER = "the assignee, a member (ready task), or a signer"
LEADER_NOT_PROPOSER = "the deciding department's supervisor role (its leader), not the one who proposed the refusal"
_ACTIONS = [
    # case: the window (综合窗口)
    Action("accept", "受理", "case", WINDOW, _accept),
    Action("request_supplement", "一次性告知补正", "case", WINDOW, _request_supplement),
    Action("refuse", "不予受理", "case", WINDOW, _refuse),
    # case: whoever works it
    Action("suspend", "特别程序（暂停计时）", "case", "a member of a department with open work on the case", _suspend),
    Action("resume", "恢复计时", "case", "a member of a department with open work on the case", _resume),
    Action("extend", "延长审批", "case", "a member of a department with open work on the case", _extend),
    Action("urge_case", "催办/督办", "case", "any registered user", _urge_case),
    # case: the applicant
    Action("supply", "补齐材料", "case", "the applicant", _supply),
    Action("withdraw", "撤回申请", "case", "the applicant", _withdraw),
    Action("evaluate", "好差评", "case", "the applicant", _evaluate),
    # task
    Action("claim", "签收", "task", "a member of the task's department", _claim),
    Action("approve", "通过", "task", WORKER_OR_SIGNER, _completion("approve")),
    Action("reject", "不予许可", "task", WORKER_OR_SIGNER, _completion("reject")),
    Action("return", "退回补正", "task", ASSIGNEE_OR_MEMBER, _completion("return")),
    Action("issue", "出件（证照发放）", "task", ASSIGNEE_OR_MEMBER, _issue),
    Action("send_back", "退回上一步", "task", ASSIGNEE_OR_MEMBER, _send_back),
    Action("take_back", "撤回", "task", "whoever completed it, while the next steps are untouched", _take_back),
    Action("release", "放回待办", "task", "the assignee", _release),
    Action("transfer", "转办", "task", "the assignee", _transfer),
    Action("delegate", "委派", "task", "the assignee", _delegate),
    Action("add_signer", "加签", "task", "the assignee", _add_signer),
    Action("reassign", "改派", "task", "the department's supervisor", _reassign),
    Action("urge_task", "催办/督办", "task", "any registered user", _urge_task),
    # task: a refusal report (不予审批报告制), for the leader of the deciding department
    Action("confirm_refusal", "确认不予决定", "task", LEADER_NOT_PROPOSER, _decide_refusal("confirm_refusal")),
    Action("send_back_refusal", "退回重新决定", "task", LEADER_NOT_PROPOSER, _decide_refusal("send_back_refusal")),
    # automatic steps whose attempts ran out; 逾期视为同意
    Action("retry_incident", "重试自动步骤", "task", "the department's supervisor", lambda s: _incident(s, "retry it")),
    Action(
        "hand_over", "转人工办理", "task", "the department's supervisor", lambda s: _incident(s, "hand it to a person")
    ),
    Action("deemed_consent", "逾期视为同意", "task", f"the rule ({DEEMED_CONSENT}), past the limit", _deemed_consent),
]
ACTIONS: dict[str, Action] = {a.name: a for a in _ACTIONS}
