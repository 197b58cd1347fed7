"""综合受理: an application arrives, the window accepts it (容缺 where allowed), asks for 补正 once, or
refuses it (a refusal waits for the leader, refusals.py); the applicant supplies what was asked for.

行政许可法 Art. 32: the 补正 notice comes within 5 working days of receiving the application (or the
materials a notice asked for); after that no notice may go out, and an acceptance counts the promised
limit from the receipt."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, update

from ...calendar import TZ
from ...definition.model import Definition
from ...store.models import Supplement
from ..errors import InvalidData
from ..forms import check_form, check_materials, missing_materials
from ..progress import cancel_open, complete, progress
from ..refusals import propose_refusal
from ..rules import CASE_RULES, INTAKE_NOTICE_LIMIT, LEADER, TASK_OPEN, require
from ..tasks import SYSTEM, Row, new_task, parse_limit
from ..unit import Tx, find_case_by_idempotency_key


def submit_case(
    tx: Tx,
    definition_key: str,
    applicant: dict[str, Any],
    form: dict[str, Any],
    materials: Sequence[str],
    idempotency_key: str | None,
    channel: str = "window",
    centre: str | None = None,
) -> int:
    """An application arrives; a repeated idempotency key returns the case it made before."""
    if idempotency_key is not None:
        found = find_case_by_idempotency_key(tx.conn, idempotency_key)
        if found is not None:
            return found
    version, definition = tx.env.definitions.latest(tx.conn, definition_key)
    values = check_form(definition, form)
    supplied = check_materials(definition, list(materials))
    case_id = tx.insert_case(
        {
            "number": f"TB{tx.now.astimezone(TZ):%Y%m%d}-{uuid.uuid4().hex[:10].upper()}",
            "definition_key": definition.key,
            "definition_version": version,
            "state": "submitted",
            "outcome": None,
            "applicant": applicant,
            "form": values,
            "materials": supplied,
            "deferred": [],
            "deferred_due_at": None,
            "idempotency_key": idempotency_key,
            "submitted_at": tx.now,
            "accepted_at": None,
            "closed_at": None,
            "due_at": None,
            "warn_at": None,
            "sla_state": None,
            "provisional": False,
            "reason": None,
            "remedy": None,
            "channel": channel,
            "centre": centre,
            "version": 1,
            "revision": 1,
        }
    )
    tx.event("submitted", actor=applicant["id"], to_state="submitted", data={"definition_version": version})
    open_acceptance(tx, definition, f"新申请待受理：{tx.case['number']}")
    if definition.entry.auto_accept and not missing_materials(definition, supplied):
        CASE_RULES["accept"].check(tx.case["state"], f"case {tx.case['number']}")
        accept(tx, definition, SYSTEM, (), None, "网上申报材料齐全，系统自动受理")
    return case_id


def open_acceptance(tx: Tx, definition: Definition, notice: str) -> None:
    """A window task for the application (on arrival, and again when 补正 materials arrive)."""
    new = new_task(tx.env, tx.case, definition.entry, "ready", tx.now, None, definition=definition)
    tx.insert_tasks([new])
    tx.event("task_ready", task=new.row, to_state="ready")
    tx.notify("task_ready", notice, task=new.row, department=new.row["department"])


def _entry(tx: Tx, definition: Definition) -> Row | None:
    entry = definition.entry.id
    return next((t for t in reversed(tx.tasks()) if t["step_id"] == entry and t["state"] in TASK_OPEN), None)


def accept_case(
    tx: Tx, case_id: int, actor: str, deferred: Sequence[str], deferred_limit: str | None, opinion: str | None
) -> None:
    """受理. Missing deferrable materials may be accepted with a supply deadline (容缺受理)."""
    tx.lock_case(case_id)
    require("accept", tx.situation(actor))
    accept(tx, tx.definition(), actor, deferred, deferred_limit, opinion)


def accept(
    tx: Tx,
    definition: Definition,
    actor: str,
    deferred: Sequence[str],
    deferred_limit: str | None,
    opinion: str | None,
) -> None:
    """受理 of the locked case, its rule checked: by the window, or by the system (``auto_accept``)."""
    case = tx.case
    entry = _entry(tx, definition)
    assert entry is not None
    received = entry["ready_at"]
    deemed = tx.now > tx.due(received, INTAKE_NOTICE_LIMIT)  # Art. 32: accepted from its receipt
    deferred = sorted(set(deferred))
    missing = missing_materials(definition, case["materials"])
    materials = {m.key: m for m in definition.materials}
    problems = [  # after the 5 days the application counts as accepted whatever is missing (Art. 32)
        f"{m!r} ({materials[m].label}) is missing and may not be deferred"
        for m in missing
        if (m in deferred and not materials[m].deferrable) or (m not in deferred and not deemed)
    ]
    problems += [f"{m!r} is no missing material of this case" for m in deferred if m not in missing]
    if problems:
        raise InvalidData("cannot accept: request 补正 for these materials or refuse", problems)
    deferred_due = None
    if deferred:
        if deferred_limit is None:
            raise InvalidData("容缺受理 needs deferred_limit, the time the applicant has to supply them")
        limit = parse_limit(deferred_limit, "deferred_limit")
        promised = definition.limits.promised
        if promised is not None and limit.working_hours > promised.working_hours:
            raise InvalidData(f"the supply deadline {limit} may not exceed the promised limit {promised}")
        deferred_due = tx.env.calendar.add(tx.now, limit.amount, limit.unit).at
    accepted_at = received if deemed else tx.now
    limits = definition.limits
    due_at, warn_at, provisional = tx.env.deadlines.of(accepted_at, limits.promised, limits.warning)
    complete(tx, entry, actor, "approve", opinion or "受理")
    tx.set_case_state(
        "accept",
        actor,
        accepted_at=accepted_at,
        due_at=due_at,
        warn_at=warn_at,
        sla_state="on_track" if due_at else None,
        provisional=provisional,
        deferred=deferred,
        deferred_due_at=deferred_due,
    )
    if provisional:
        tx.alert(
            "provisional_deadline",
            f"{case['number']} 的期限跨入尚无官方节假日数据的年份，按周末推算",
            task=None,
            department=definition.entry.department,
            role=None,
        )
    if deemed:
        tx.event(
            "deemed_accepted",
            actor=actor,
            data={
                "received_at": received.astimezone(TZ).isoformat(),
                "missing": missing,
                "law": "行政许可法第三十二条",
            },
        )
        tx.tell_applicant(
            "case_accepted",
            f"您的办件 {case['number']} 已受理：未在五个工作日内告知补正，自收到申请材料之日"
            f"（{received.astimezone(TZ):%Y-%m-%d}）起即为受理",
        )
    else:
        tx.tell_applicant("case_accepted", f"您的办件 {case['number']} 已受理")
    progress(tx, definition, entry["id"])
    tx.save_form()


def refuse_case(tx: Tx, case_id: int, actor: str, reason: str, remedy: str | None) -> None:
    """不予受理, proposed to the window's leader with the written reason and the remedy (行政复议 /
    行政诉讼) the applicant has (the definition's when none is given); it takes effect when confirmed."""
    tx.lock_case(case_id)
    require("refuse", tx.situation(actor))
    definition = tx.definition()
    remedy = (remedy or "").strip() or definition.remedy
    if not remedy:
        raise InvalidData(f"不予受理 needs the remedy the applicant has (行政复议或者行政诉讼, and where): {NO_REMEDY}")
    entry = _entry(tx, definition)
    if entry is not None:
        tx.update_task(entry, waiting=LEADER)
    else:  # a 补正 notice is out: the acceptance task it closed is the one refused
        entry = next(t for t in reversed(tx.tasks()) if t["step_id"] == definition.entry.id)
    propose_refusal(tx, entry, actor, "not_accepted", reason, remedy, department=entry["department"])


NO_REMEDY = "give remedy, or add remedy: to the definition (行政许可法 Art. 38)"


def not_accepted(tx: Tx, proposer: str, leader: str, reason: str, remedy: str) -> None:
    """A confirmed 不予受理 takes effect: the application is closed and the applicant told."""
    definition = tx.definition()
    entry = _entry(tx, definition)
    if entry is not None:
        complete(tx, entry, proposer, "reject", reason, waiting=None)
    cancel_open(tx, leader, "not_accepted")
    tx.set_case_state("refuse", leader, outcome="not_accepted", reason=reason, remedy=remedy, closed_at=tx.now)
    tx.tell_applicant("case_not_accepted", f"您的办件 {tx.case['number']} 不予受理：{reason}。{remedy}")


def request_supplement(tx: Tx, case_id: int, actor: str, missing: Sequence[str], notice: str) -> int:
    """一次性告知: one notice listing every missing material; the clock has not started yet."""
    tx.lock_case(case_id)
    require("request_supplement", tx.situation(actor))
    definition = tx.definition()
    entry = _entry(tx, definition)
    assert entry is not None
    return open_supplement(tx, definition, entry, actor, missing, notice, before_acceptance=True)


def open_supplement(
    tx: Tx,
    definition: Definition,
    task: Row,
    actor: str,
    missing: Sequence[str],
    notice: str,
    *,
    before_acceptance: bool,
) -> int:
    """A 补正 notice: before acceptance (the acceptance task is done, a new one comes with the
    materials) or after it (the task waits for the applicant)."""
    case = tx.case
    missing = sorted(set(missing))
    if not missing or not (notice or "").strip():
        raise InvalidData("a 补正 notice lists the missing materials and says what to supply")
    known = {m.key for m in definition.materials}
    problems = [f"{m!r} is no material of {definition.key}" for m in missing if m not in known]
    if before_acceptance:
        unlisted = [m for m in missing_materials(definition, case["materials"]) if m not in missing]
        problems += [f"{m!r} is missing too: 一次性告知 means one notice lists everything" for m in unlisted]
    if problems:
        raise InvalidData("the 补正 notice is incomplete", problems)
    supplement_id = tx.conn.execute(
        insert(Supplement.__table__).returning(Supplement.id),
        {
            "case_id": case["id"],
            "task_id": task["id"],
            "missing": missing,
            "notice": notice,
            "requested_by": actor,
            "requested_at": tx.now,
            "supplied_at": None,
        },
    ).scalar_one()
    if before_acceptance:
        complete(tx, task, actor, "return", notice)
    else:
        tx.update_task(task, waiting="applicant", opinion=notice)
    tx.event("supplement_requested", task=task, actor=actor, data={"missing": missing})
    tx.tell_applicant("supplement_requested", f"办件 {case['number']} 需补正：{notice}")
    return supplement_id


def supply_materials(tx: Tx, case_id: int, applicant_id: str, materials: Sequence[str]) -> None:
    """The applicant supplies what a 补正 notice asked for (before acceptance, or while suspended), or
    the materials owed under 容缺."""
    from .clock import resume

    case = tx.lock_case(case_id)
    require("supply", tx.situation(applicant_id))
    definition = tx.definition()
    supplied = check_materials(definition, list(materials))
    open_notice = tx.open_supplement()
    owed = set(open_notice.missing if open_notice else case["deferred"])
    still = sorted(owed - set(supplied))
    if open_notice is not None and still:
        raise InvalidData("the 补正 notice asked for more", [f"{m!r} is still missing" for m in still])
    all_materials = sorted(set(case["materials"]) | set(supplied))
    if open_notice is not None:
        tx.conn.execute(update(Supplement.__table__).where(Supplement.id == open_notice.id).values(supplied_at=tx.now))
    tx.event("materials_supplied", actor=applicant_id, data={"materials": supplied})
    if case["state"] == "submitted":
        CASE_RULES["supply_before_acceptance"].check(case["state"], f"case {case['number']}")
        tx.update_case(materials=all_materials)
        open_acceptance(tx, definition, f"补正材料已到，待受理：{case['number']}")
    elif case["state"] == "suspended" and open_notice is not None:
        tx.update_case(materials=all_materials)
        waiting = [t for t in tx.tasks() if t["waiting"] == "applicant" and t["state"] in TASK_OPEN]
        tx.update_tasks([(t, {"waiting": None}) for t in waiting])
        resume(tx, applicant_id, "补正材料已补齐")
    else:
        deferred_left = sorted(set(case["deferred"]) - set(supplied))
        tx.update_case(
            materials=all_materials,
            deferred=deferred_left,
            deferred_due_at=case["deferred_due_at"] if deferred_left else None,
        )
