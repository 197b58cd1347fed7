"""The state machine on one screen: which transition is allowed from which states, to which state.

Every service function names its rule; a refused transition says which rule refused it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .errors import NotAllowed

CASE_STATES = ("submitted", "accepted", "in_progress", "suspended", "completed", "not_accepted", "rejected",
               "withdrawn", "terminated")  # fmt: skip
CASE_FINAL = frozenset({"completed", "not_accepted", "rejected", "withdrawn", "terminated"})
TASK_STATES = ("ready", "claimed", "completed", "skipped", "cancelled")
TASK_OPEN = frozenset({"ready", "claimed"})
TASK_DONE = frozenset({"completed", "skipped"})
OUTCOMES = ("approve", "reject", "return")


def deferral_lapsed(deferred: list[str], deferred_due_at: datetime | None, now: datetime) -> bool:
    """容缺 materials still owed after their supply deadline: the case is to be terminated."""
    return bool(deferred) and deferred_due_at is not None and deferred_due_at < now


@dataclass(frozen=True)
class Rule:
    name: str
    label: str  # Chinese name of the operation, for messages
    from_states: frozenset[str]
    to_state: str | None  # None: the state does not change

    def check(self, current: str, subject: str) -> None:
        if current not in self.from_states:
            allowed = ", ".join(sorted(self.from_states))
            raise NotAllowed(
                f"{self.label} ({self.name}) is not allowed: {subject} is {current}; it must be one of: {allowed}"
            )


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
    "evaluate": _rule("evaluate", "好差评", {"completed"}, None),
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
}
