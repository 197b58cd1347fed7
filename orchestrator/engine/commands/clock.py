"""The clock: 特别程序 (suspend, resume: 行政许可法 Art. 45, the applicant is told the expected time),
延长审批 (extend: Art. 42, once per case), and the 容缺 timer's termination."""

from __future__ import annotations

from sqlalchemy import insert, select, update

from ...calendar import TZ
from ...definition.limits import Limit
from ...store.models import Extension, Suspension
from ..errors import InvalidData
from ..progress import cancel_open, negative_decision
from ..rules import CASE_RULES, TASK_OPEN, deferral_lapsed, require
from ..tasks import SYSTEM, parse_limit
from ..unit import Tx

SUSPENSION_KINDS = {
    "expert_review": "专家评审",
    "hearing": "听证",
    "inspection": "检验",
    "testing": "检测",
    "quarantine": "检疫",
    "appraisal": "鉴定",
    "tender": "招标",
    "auction": "拍卖",
    "site_check": "现场核查",
    "supplement": "补正",
    "other": "其他特别程序",
}


def suspend_case(tx: Tx, case_id: int, actor: str, kind: str, reason: str, expected: str | None) -> int:
    """特别程序 (专家评审, 听证, 检验 …): the clock stops until resume_case."""
    tx.lock_case(case_id)
    require("suspend", tx.situation(actor))
    return suspend(tx, actor, kind, reason, expected)


def suspend(tx: Tx, actor: str, kind: str, reason: str, expected: str | None) -> int:
    case = tx.case
    tx.set_case_state("suspend", actor, sla_state="paused" if case["due_at"] else None)
    suspension_id = tx.conn.execute(
        insert(Suspension.__table__).returning(Suspension.id),
        {
            "case_id": case["id"],
            "kind": kind,
            "reason": reason,
            "expected": expected,
            "requested_by": actor,
            "started_at": tx.now,
            "ended_at": None,
            "result": None,
        },
    ).scalar_one()
    tx.update_tasks([(t, {"sla_state": "paused"}) for t in tx.tasks() if t["state"] in TASK_OPEN and t["due_at"]])
    tx.event("clock_stopped", actor=actor, data={"kind": kind, "reason": reason, "expected": expected})
    told = f"您的办件 {case['number']} 进入{SUSPENSION_KINDS[kind]}，期间不计时：{reason}"
    if expected is not None:
        told += f"；预计 {expected_label(parse_limit(expected, 'expected'))}"
    tx.tell_applicant("case_suspended", told)
    return suspension_id


def expected_label(limit: Limit) -> str:
    """How long a 特别程序 is expected to take, as the applicant's notice says it: 预计 10 个工作日."""
    unit = {"d": "个工作日", "h": "个工作小时", "n": "日"}[limit.unit]
    return f"{limit.amount:g} {unit}"


def resume_case(tx: Tx, case_id: int, actor: str, result: str) -> None:
    """特别程序结束: the clock runs again; due times move out by the working time it stood still."""
    tx.lock_case(case_id)
    require("resume", tx.situation(actor))
    resume(tx, actor, result)


def resume(tx: Tx, actor: str, result: str) -> None:
    case = tx.case
    CASE_RULES["resume"].check(case["state"], f"case {case['number']}")
    suspension = tx.conn.execute(
        select(Suspension.__table__).where(Suspension.case_id == case["id"], Suspension.ended_at.is_(None))
    ).one()
    tx.conn.execute(
        update(Suspension.__table__).where(Suspension.id == suspension.id).values(ended_at=tx.now, result=result)
    )
    deadlines = tx.env.deadlines
    stopped = tx.env.calendar.working_time_between(suspension.started_at, tx.now)
    values = {}
    if case["due_at"] is not None:
        values = {
            "due_at": deadlines.push(case["due_at"], stopped),
            "warn_at": deadlines.push(case["warn_at"], stopped),
            "sla_state": "on_track",
        }
    tx.update_case(state="in_progress" if case["accepted_at"] is not None else case["state"], **values)
    paused = int(stopped.total_seconds() // 60)  # not the open tasks' working time (tasks.work_minutes)
    changes = [
        (
            t,
            {
                "due_at": deadlines.push(t["due_at"], stopped),
                "warn_at": deadlines.push(t["warn_at"], stopped),
                "sla_state": "on_track",
                "paused_minutes": t["paused_minutes"] + paused,
            }
            if t["due_at"]
            else {"paused_minutes": t["paused_minutes"] + paused},
        )
        for t in tx.tasks()
        if t["state"] in TASK_OPEN
    ]
    tx.update_tasks(changes)
    tx.event(
        "clock_resumed",
        actor=actor,
        from_state="suspended",
        to_state=case["state"],
        data={"kind": suspension.kind, "stopped_minutes": int(stopped.total_seconds() // 60), "result": result},
    )


def extend_case(tx: Tx, case_id: int, actor: str, limit: Limit, approver: str, reason: str) -> None:
    """延长审批 (Art. 42): the case limit grows, within the statutory cap plus its legal extension."""
    case = tx.lock_case(case_id)
    require("extend", tx.situation(actor))
    definition = tx.definition()
    statutory, promised = definition.limits.statutory, definition.limits.promised
    assert statutory is not None and promised is not None
    allowance = definition.limits.extension or Limit(15 if len(definition.departments) > 1 else 10, "d")
    if promised.working_hours + limit.working_hours > statutory.working_hours + allowance.working_hours + 1e-9:
        raise InvalidData(
            f"extension {limit} exceeds the statutory cap: promised {promised} + extension may not pass "
            f"{statutory} + {allowance} (行政许可法 Art. 42); it is granted once, so ask for all that is needed"
        )
    calendar = tx.env.calendar
    due = calendar.add(case["due_at"], limit.amount, limit.unit)
    moved = calendar.working_time_between(case["due_at"], due.at)  # the warning keeps its lead
    tx.conn.execute(
        insert(Extension.__table__),
        {"case_id": case_id, "amount": str(limit), "approver": approver, "reason": reason, "at": tx.now},
    )
    sla = "paused" if case["state"] == "suspended" else "on_track"  # a suspended case's clock stands
    tx.update_case(
        due_at=due.at,
        warn_at=tx.env.deadlines.push(case["warn_at"], moved),
        sla_state=sla,
        provisional=case["provisional"] or due.provisional,
    )
    tx.event("extended", actor=actor, data={"amount": str(limit), "approver": approver, "reason": reason})
    tx.tell_applicant("case_extended", f"您的办件 {case['number']} 经批准延长 {limit.label}：{reason}")


def end_suspension(tx: Tx, result: str) -> None:
    """A suspended case that closes ends its open 特别程序 with it."""
    if tx.case["state"] == "suspended":
        tx.conn.execute(
            update(Suspension.__table__)
            .where(Suspension.case_id == tx.case["id"], Suspension.ended_at.is_(None))
            .values(ended_at=tx.now, result=result)
        )


def terminate_if_lapsed(tx: Tx, case_id: int) -> bool:
    """容缺受理's timer, for one case: terminated (终止办理) if its 容缺 materials are still owed after
    their supply deadline. A case supplied or closed meanwhile is left alone. Returns whether it was."""
    case = tx.lock_case(case_id)
    if not deferral_lapsed(case["deferred"], case["deferred_due_at"], tx.now):
        return False
    if case["state"] not in CASE_RULES["terminate"].from_states:
        return False
    definition = tx.definition()
    labels = {m.key: m.label for m in definition.materials}
    owed = "、".join(labels.get(m, m) for m in case["deferred"])
    deadline = case["deferred_due_at"].astimezone(TZ)
    reason = f"容缺受理的材料逾期未补齐：{owed}（补齐期限 {deadline:%Y-%m-%d %H:%M}）"
    tasks = tx.tasks()
    cancel_open(tx, SYSTEM, "deferral_lapsed")
    end_suspension(tx, "终止办理")
    tx.set_case_state("terminate", SYSTEM, outcome="terminated", reason=reason, closed_at=tx.now)
    window = next((t for t in tasks if t["kind"] == "acceptance"), None)  # it accepted under the pledge
    negative_decision(tx, window, f"终止办理：{reason}")
    tx.tell_applicant("case_terminated", f"您的办件 {case['number']} 已终止办理：{reason}")
    return True


def check_suspension(kind: str, reason: str, expected: str | None) -> None:
    """The input of a 特别程序, checked before any transaction."""
    if kind not in SUSPENSION_KINDS or kind == "supplement":
        choices = ", ".join(k for k in SUSPENSION_KINDS if k != "supplement")
        raise InvalidData(f"unknown suspension kind {kind!r}: use one of {choices} (补正 is a task's return)")
    if not (reason or "").strip():
        raise InvalidData("特别程序 needs a reason (the applicant is told in writing)")
    if not (expected or "").strip():
        raise InvalidData(
            "特别程序 needs expected, the time it is expected to take, e.g. 10d (行政许可法 Art. 45: the applicant "
            "is told it in writing)"
        )
    parse_limit(expected, "expected")  # type: ignore[arg-type]
