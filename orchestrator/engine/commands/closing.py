"""Closing a case and after: 撤回申请, certificates (证照发放 / 出件), 好差评 with its rectification,
催办 / 督办."""

from __future__ import annotations

from sqlalchemy import insert

from ...definition.limits import Limit
from ...store import prepared
from ...store.models import Evaluation, Urge
from ..errors import Conflict, InvalidData
from ..progress import cancel_open, complete, issuable, progress, start_work
from ..rules import RECTIFICATION_STEP, TASK_OPEN, require
from ..tasks import new_task
from ..unit import Tx
from .clock import end_suspension

EVALUATION_LEVELS = {1: "非常满意", 2: "满意", 3: "基本满意", 4: "不满意", 5: "非常不满意"}
EVALUATION_CHANNELS = ("pc", "mobile", "qrcode", "hall", "phone", "sms", "other")


def withdraw_case(tx: Tx, case_id: int, applicant_id: str, reason: str) -> None:
    """撤回申请: the applicant stops the case; open tasks are cancelled."""
    tx.lock_case(case_id)
    require("withdraw", tx.situation(applicant_id))
    cancel_open(tx, applicant_id, "withdrawn")
    end_suspension(tx, "撤回申请")
    tx.set_case_state("withdraw", applicant_id, outcome="withdrawn", reason=reason or None, closed_at=tx.now)


def issue_certificates(
    tx: Tx,
    task_id: int,
    actor: str,
    delivery: str,
    numbers: dict[str, str],
    tracking_number: str | None,
    electronic: bool,
) -> list[str]:
    """证照发放 / 出件: record the certificates of the issue step and complete it. Returns the numbers.

    A certificate is issued only if one of its producing steps approved in this case (progress.issuable).
    """
    _, member = tx.lock_case_of_task(task_id, actor)
    task = tx.task(task_id)
    require("issue", tx.situation(actor, task, member))
    case = tx.case
    definition = tx.definition()
    step = definition.steps_by_id[task["step_id"]]
    if delivery not in step.delivery:
        raise InvalidData(f"delivery {delivery!r}: this step delivers by {', '.join(step.delivery)}")
    if delivery == "mail" and not tracking_number:
        raise InvalidData("mail delivery (免费邮寄) needs the tracking number")
    unknown = [k for k in numbers if k not in {c.key for c in step.certificates}]
    if unknown:
        raise InvalidData("unknown certificates", [f"{k!r} is not issued by step {step.id}" for k in unknown])
    rows = [
        {
            "case_id": case["id"],
            "key": c.key,
            "name": c.name,
            "issuer": c.issuer,
            "number": numbers.get(c.key) or f"{case['number']}-{c.key}".upper(),
            "electronic": electronic,
            "delivery": delivery,
            "tracking_number": tracking_number,
            "issued_at": tx.now,
        }
        for c in issuable(definition, step.certificates, tx.tasks())
    ]
    try:  # no savepoint: the refusal rolls the whole transition back anyway
        prepared.execute_many(tx.conn, tx.sql("insert_certificates"), rows)
    except tx.conn.dialect.loaded_dbapi.IntegrityError:
        raise Conflict("a certificate number is already in use; give unique numbers") from None
    tx.event(
        "certificates_issued",
        task=task,
        actor=actor,
        data={"numbers": [r["number"] for r in rows], "delivery": delivery},
    )
    start_work(tx, task, actor)
    complete(tx, task, actor, "approve", f"出件：{len(rows)} 件，{delivery}")
    progress(tx, definition, task["id"])
    tx.save_form()
    return [r["number"] for r in rows]


def evaluate_case(tx: Tx, case_id: int, rater: str, level: int, channel: str, comment: str) -> int:
    """好差评: one per case; 不满意 or worse opens a rectification task with its own deadline."""
    case = tx.lock_case(case_id)
    require("evaluate", tx.situation(rater))
    definition = tx.definition()
    rectification = None
    if level >= 4:
        department = definition.entry.department
        new = new_task(
            tx.env,
            case,
            None,
            "ready",
            tx.now,
            None,
            definition=definition,
            limit=tx.env.rectification_limit,
            step_id=RECTIFICATION_STEP,
            kind="rectification",
            name=f"差评整改：{EVALUATION_LEVELS[level]}",
            department=department,
            opinion=comment or None,
        )
        tx.insert_tasks([new])
        rectification = new.row["id"]
        tx.event("task_ready", task=new.row, to_state="ready", data={"level": level})
        tx.notify(
            "rectification",
            f"差评整改：{case['number']}（{EVALUATION_LEVELS[level]}）{comment}",
            task=new.row,
            department=department,
            role=tx.supervisor_role(department),
        )
    evaluation_id = tx.conn.execute(
        insert(Evaluation.__table__).returning(Evaluation.id),
        {
            "case_id": case_id,
            "level": level,
            "channel": channel,
            "comment": comment or None,
            "rater": rater,
            "at": tx.now,
            "rectification_task": rectification,
        },
    ).scalar_one()
    tx.event("evaluated", actor=rater, data={"level": level, "channel": channel})
    return evaluation_id


def urge(
    tx: Tx, actor: str, message: str, task_id: int | None, case_id: int | None, level: str, within: Limit | None
) -> int:
    """催办 (urge) or 督办 (supervise): recorded with its own due time; the assignee is notified."""
    if task_id is not None:
        tx.lock_case_of_task(task_id, actor)
        task = tx.task(task_id)
        require("urge_task", tx.situation(actor, task))
    else:
        assert case_id is not None
        tx.lock_case(case_id)
        task = None
        require("urge_case", tx.situation(actor))
    case = tx.case
    due = tx.env.calendar.add(tx.now, within.amount, within.unit).at if within else None
    urge_id = tx.conn.execute(
        insert(Urge.__table__).returning(Urge.id),
        {
            "case_id": case["id"],
            "task_id": task_id,
            "level": level,
            "by": actor,
            "message": message,
            "due_at": due,
            "created_at": tx.now,
        },
    ).scalar_one()
    label = "督办" if level == "supervise" else "催办"
    tx.event(level, task=task, actor=actor, data={"message": message, "due_at": str(due)})
    # whoever holds the work is told: the assignee, else the department queue
    holders = [task] if task is not None else [t for t in tx.tasks() if t["state"] in TASK_OPEN]
    for held in holders:
        tx.notify(
            level,
            f"{label}：{case['number']} {held['name']}：{message}",
            task=held,
            user=held["assignee"],
            department=None if held["assignee"] else held["department"],
        )
    if not holders:
        tx.notify(level, f"{label}：{case['number']}：{message}")
    return urge_id
