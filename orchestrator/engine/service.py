"""``Engine``: the engine's public face. Each method checks its input, then runs one command
(``commands/``) as one transaction through the transaction core (``unit.Core``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine as Database
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..calendar import TZ, BusinessCalendar
from ..definition.limits import Limit
from ..store.models import Case
from .actions import AvailableActions, available_actions
from .commands import acceptance, auto, clock, closing, consent, incidents, people, queue, redo, report, work
from .commands.auto import AutoBatch, RunPolicy
from .commands.clock import SUSPENSION_KINDS
from .commands.closing import EVALUATION_CHANNELS, EVALUATION_LEVELS
from .errors import Conflict, InvalidData, NotAllowed
from .forms import checked
from .lookups import Sources
from .publish import DefinitionCache
from .rules import CASE_RULES, RECTIFICATION_STEP
from .tasks import SYSTEM, Env, parse_limit
from .unit import Core, KeptCopyStats, Snapshot, database_error, find_case_by_idempotency_key

if TYPE_CHECKING:
    from .sla import SweepResult

__all__ = ["EVALUATION_CHANNELS", "EVALUATION_LEVELS", "RECTIFICATION_STEP", "SUSPENSION_KINDS", "SYSTEM", "Engine"]


class Engine:
    """Tongban's service functions. ``clock`` is injected so tests move time instead of sleeping."""

    def __init__(
        self,
        db: Database,
        calendar: BusinessCalendar | None = None,
        clock: Callable[[], datetime] | None = None,
        *,
        auto_inline: bool = True,
        rectification_limit: str = "5d",
        negative_report_limit: str = "1d",
    ) -> None:
        self.db = db
        self.calendar = calendar or BusinessCalendar()
        self.clock = clock or (lambda: datetime.now(TZ))
        self.definitions = DefinitionCache()
        self.env = Env(
            self.calendar,
            self.definitions,
            self.clock,
            auto_inline,
            rectification_limit=Limit.parse(rectification_limit),
            negative_report_limit=Limit.parse(negative_report_limit),
        )
        self.core = Core(db, self.clock, self.env)

    @property
    def auto_inline(self) -> bool:
        return self.env.auto_inline

    @property
    def _snapshots(self) -> dict[int, Snapshot]:
        return self.core.snapshots

    @property
    def kept_copy_stats(self) -> KeptCopyStats:
        """Transitions that found their case kept in this process (hits) or read it afresh (misses)."""
        return self.core.stats

    def close(self) -> None:
        """Close the connections this engine keeps warm between transitions (the database object, which
        the caller may share, stays open)."""
        self.core.connections.drop_idle()

    def dispose(self) -> None:
        """Close every pooled connection (the process is done with the database)."""
        self.close()
        self.db.dispose()

    # ------------------------------------------------------------------------------------------
    # people

    @checked
    def add_user(self, user_id: str, name: str, memberships: Sequence[tuple[str, str]] = ()) -> None:
        """Register a member of staff with (department, role) pairs; re-adding adds roles (never removes)."""
        self.core.run(people.add_user, user_id, name, list(memberships))

    @checked
    def set_memberships(self, user_id: str, name: str, memberships: Sequence[tuple[str, str]], actor: str) -> list[int]:
        """Set a person's (department, role) pairs exactly, removing the others; the change is recorded
        (membership_changes: who, when, before, after). Returns the tasks they still hold in departments
        they left, for the supervisor to reassign (改派)."""
        if not (user_id or "").strip() or not (name or "").strip() or not (actor or "").strip():
            raise InvalidData("set_memberships needs the user id, the name and who makes the change")
        return self.core.run(people.set_memberships, user_id, name, list(memberships), actor)

    @checked
    def staff(self, user_id: str) -> people.StaffRecord:
        """A person's roles, the history of their roles and the tasks they hold."""
        from ..store.db import reading

        with reading(self.db) as conn:
            return people.read_staff(conn, user_id)

    # ------------------------------------------------------------------------------------------
    # what a person may do

    @checked
    def available_actions(
        self, user: str, *, task_id: int | None = None, case_id: int | None = None
    ) -> AvailableActions:
        """The actions ``user`` may take on a task (with its case's) or on a case: exactly the buttons a
        page may show, decided by the same guards the commands check."""
        return available_actions(
            self.db, self.definitions, self.env.deadlines, self.clock(), user, task_id=task_id, case_id=case_id
        )

    # ------------------------------------------------------------------------------------------
    # application and acceptance (综合受理)

    @checked
    def submit_case(
        self,
        definition_key: str,
        applicant: dict[str, Any],
        form: dict[str, Any],
        materials: Sequence[str] = (),
        idempotency_key: str | None = None,
        *,
        channel: str = "window",
        centre: str | None = None,
    ) -> int:
        """An application arrives; a repeated idempotency key returns the case it made before. ``channel``:
        ``window`` (at ``centre``, a service centre's code: any centre accepts any 一件事) or ``online``."""
        if not isinstance(applicant, dict) or not applicant.get("id") or not applicant.get("name"):
            raise InvalidData("the applicant needs an id (身份证号/统一社会信用代码) and a name")
        if channel not in ("window", "online"):
            raise InvalidData(f"channel {channel!r}: window or online")
        try:
            return self.core.run(
                acceptance.submit_case, definition_key, applicant, form, materials, idempotency_key, channel, centre
            )
        except Exception as exc:
            if idempotency_key is None or not _is_integrity_error(exc):
                raise
            with self.db.connect() as conn:  # a concurrent submit with the same key won
                found = find_case_by_idempotency_key(conn, idempotency_key)
            if found is None:
                raise
            return found

    @checked
    def accept_case(
        self,
        case_id: int,
        actor: str,
        *,
        deferred: Sequence[str] = (),
        deferred_limit: str | None = None,
        opinion: str | None = None,
    ) -> None:
        """受理. Missing deferrable materials may be accepted with a supply deadline (容缺受理)."""
        self.core.run(acceptance.accept_case, case_id, actor, deferred, deferred_limit, opinion)

    @checked
    def refuse_case(self, case_id: int, actor: str, reason: str, remedy: str | None = None) -> None:
        """不予受理, with the written reason and the remedy (行政复议 / 行政诉讼) the applicant has (default: the
        definition's ``remedy``). It goes to the window's leader, who confirms it (confirm_refusal) before
        the applicant is told, or sends it back (不予审批报告制)."""
        if not (reason or "").strip():
            raise InvalidData("不予受理 needs a written reason and the remedy (行政复议或者行政诉讼) the applicant has")
        self.core.run(acceptance.refuse_case, case_id, actor, reason, remedy)

    @checked
    def request_supplement(self, case_id: int, actor: str, missing: Sequence[str], notice: str) -> int:
        """一次性告知: one notice listing every missing material; the clock has not started yet."""
        return self.core.run(acceptance.request_supplement, case_id, actor, missing, notice)

    @checked
    def supply_materials(self, case_id: int, applicant_id: str, materials: Sequence[str]) -> None:
        """The applicant supplies what a 补正 notice asked for (before acceptance, or while suspended)."""
        self.core.run(acceptance.supply_materials, case_id, applicant_id, materials)

    # ------------------------------------------------------------------------------------------
    # the task queue

    @checked
    def claim_task(self, task_id: int, actor: str) -> None:
        """签收: take a ready task of my department."""
        self.core.run(queue.claim_task, task_id, actor)

    @checked
    def release_task(self, task_id: int, actor: str) -> None:
        """Put a claimed task back into the department's queue."""
        self.core.run(queue.release_task, task_id, actor)

    @checked
    def reassign_task(self, task_id: int, actor: str, to_user: str, reason: str = "") -> None:
        """改派: the department's supervisor gives the task to another member."""
        self.core.run(queue.reassign_task, task_id, actor, to_user, reason)

    @checked
    def transfer_task(self, task_id: int, actor: str, to_user: str, reason: str = "") -> None:
        """转办: hand my task to another member of the department; it is theirs from now on."""
        self.core.run(queue.transfer_task, task_id, actor, to_user, reason)

    @checked
    def delegate_task(self, task_id: int, actor: str, to_user: str, note: str = "") -> None:
        """委派: someone works my task for me; their completion comes back to me for approval."""
        self.core.run(queue.delegate_task, task_id, actor, to_user, note)

    @checked
    def add_signer(self, task_id: int, actor: str, signer: str, note: str = "") -> None:
        """加签: one more person must sign this task before it can be completed."""
        self.core.run(queue.add_signer, task_id, actor, signer, note)

    # ------------------------------------------------------------------------------------------
    # completing work

    @checked
    def complete_task(
        self,
        task_id: int,
        actor: str,
        outcome: str = "approve",
        opinion: str = "",
        *,
        form_updates: dict[str, Any] | None = None,
        missing: Sequence[str] = (),
        remedy: str | None = None,
    ) -> None:
        """办理: approve, reject (with a written reason and the remedy, default the definition's) or return
        (补正: the clock stops; once per case unless ``limits.returns`` allows more).

        A survey needs every participant department's sign-off, a review chain each level in order,
        a countersign every (会签) or any (或签) signer; each call signs once. A reject goes to the
        deciding department's leader first (不予审批报告制): the task waits until it is confirmed
        (confirm_refusal) or sent back (send_back_refusal).
        """
        if outcome not in ("approve", "reject", "return"):
            raise InvalidData(f"outcome {outcome!r}: use approve, reject or return")
        if outcome in ("reject", "return") and not (opinion or "").strip():
            raise InvalidData(f"{'不予许可' if outcome == 'reject' else '补正'} needs a written opinion that says why")
        self.core.run(work.complete_task, task_id, actor, outcome, opinion, form_updates, missing, remedy)

    # ------------------------------------------------------------------------------------------
    # 不予审批报告制: the leader decides on a proposed refusal

    @checked
    def confirm_refusal(self, task_id: int, actor: str, opinion: str = "", *, remedy: str | None = None) -> None:
        """The leader of the deciding department confirms the refusal of report task ``task_id``: it takes
        effect and the applicant is told, with the remedy (``remedy`` replaces the proposed one)."""
        self.core.run(report.confirm_refusal, task_id, actor, opinion, remedy)

    @checked
    def send_back_refusal(self, task_id: int, actor: str, opinion: str) -> None:
        """The leader sends the refusal back to the handler, who decides again (an automatic refusal goes
        to the department's handlers)."""
        if not (opinion or "").strip():
            raise InvalidData("sending a refusal back needs the leader's opinion (why it is not upheld)")
        self.core.run(report.send_back_refusal, task_id, actor, opinion)

    # ------------------------------------------------------------------------------------------
    # 退回 and 撤回

    @checked
    def send_back(self, task_id: int, actor: str, reason: str, to_step: str | None = None) -> int:
        """退回: back to the previous (or any earlier completed) step, which gets a new task; the steps
        in between are redone. Returns the new task's id."""
        if not (reason or "").strip():
            raise InvalidData("退回 needs a reason")
        return self.core.run(redo.send_back, task_id, actor, reason, to_step)

    @checked
    def take_back(self, task_id: int, actor: str) -> int:
        """撤回: undo my own completion while the tasks it created are still untouched. Returns the
        id of my task, open again."""
        return self.core.run(redo.take_back, task_id, actor)

    # ------------------------------------------------------------------------------------------
    # the clock: 特别程序, 延长审批, timers

    @checked
    def suspend_case(self, case_id: int, actor: str, kind: str, reason: str, expected: str | None = None) -> int:
        """特别程序 (专家评审, 听证, 检验 …): the clock stops until resume_case. ``expected`` (required, e.g.
        ``10d``) is the time it is expected to take, which the applicant is told (行政许可法 Art. 45)."""
        clock.check_suspension(kind, reason, expected)
        return self.core.run(clock.suspend_case, case_id, actor, kind, reason, expected)

    @checked
    def resume_case(self, case_id: int, actor: str, result: str = "") -> None:
        """特别程序结束: the clock runs again; due times move out by the working time it stood still."""
        self.core.run(clock.resume_case, case_id, actor, result)

    @checked
    def extend_case(self, case_id: int, actor: str, amount: str, approver: str, reason: str) -> None:
        """延长审批 (Art. 42): the case limit grows, once per case, within the statutory cap plus its legal
        extension."""
        limit = parse_limit(amount, "amount")
        if not (reason or "").strip() or not (approver or "").strip():
            raise InvalidData("延长审批 needs the approver (负责人) and a reason the applicant is told")
        self.core.run(clock.extend_case, case_id, actor, limit, approver, reason)

    def terminate_lapsed_deferrals(self) -> list[int]:
        """容缺受理's timer: every open case whose 容缺 materials are still owed after their supply
        deadline is terminated (终止办理), each in a transaction of its own. Returns their ids.

        Run it on the schedule of the SLA sweep. The deadline is the applicant's pledge, so a
        suspension does not stop it; a case supplied or closed in the meantime is left alone.
        """
        lapsable = sorted(CASE_RULES["terminate"].from_states)
        cases = Case.__table__
        with self.db.connect() as conn:
            lapsed = conn.execute(
                select(cases.c.id)
                .where(cases.c.deferred_due_at < self.clock(), cases.c.state.in_(lapsable))
                .order_by(cases.c.id)
            ).scalars()
            lapsed = list(lapsed)
        return [case_id for case_id in lapsed if self.core.run(clock.terminate_if_lapsed, case_id)]

    def sweep(self, now: datetime | None = None) -> SweepResult:
        """The SLA sweep (黄牌/红牌 alerts, owner notifications, escalation) at ``now`` (default: the clock).

        One set-based transaction; returns ``sla.SweepResult``. See ``orchestrator/engine/sla.py``.
        """
        from .sla import sweep

        try:
            return sweep(self.db, now or self.clock())
        except Exception as exc:
            typed = database_error(exc)
            if typed is None:
                raise
            raise typed from exc

    def run_timers(self) -> tuple[list[int], SweepResult]:
        """The scheduled work, in its order: the 容缺 timer (a terminated case raises no SLA card), then
        the SLA sweep. Returns the terminated case ids and the sweep's result."""
        terminated = self.terminate_lapsed_deferrals()
        return terminated, self.sweep()

    # ------------------------------------------------------------------------------------------
    # closing: withdrawal, certificates, evaluation, 催办

    @checked
    def withdraw_case(self, case_id: int, applicant_id: str, reason: str = "") -> None:
        """撤回申请: the applicant stops the case; open tasks are cancelled."""
        self.core.run(closing.withdraw_case, case_id, applicant_id, reason)

    @checked
    def issue_certificates(
        self,
        task_id: int,
        actor: str,
        delivery: str = "window",
        *,
        numbers: dict[str, str] | None = None,
        tracking_number: str | None = None,
        electronic: bool = True,
    ) -> list[str]:
        """证照发放 / 出件: record the certificates of the issue step and complete it. Returns the numbers.

        A certificate is issued only if its issuing department approved its own step in this case.
        """
        return self.core.run(
            closing.issue_certificates, task_id, actor, delivery, numbers or {}, tracking_number, electronic
        )

    @checked
    def evaluate_case(self, case_id: int, rater: str, level: int, channel: str = "pc", comment: str = "") -> int:
        """好差评: one per case once it has ended, whatever the outcome (不予受理, 不予许可, 终止办理, 撤回
        included); 不满意 or worse opens a rectification task with its own deadline."""
        if level not in EVALUATION_LEVELS:
            raise InvalidData("level is 1 非常满意, 2 满意, 3 基本满意, 4 不满意 or 5 非常不满意")
        if channel not in EVALUATION_CHANNELS:
            raise InvalidData(f"channel {channel!r}: use one of {', '.join(EVALUATION_CHANNELS)}")
        return self.core.run(closing.evaluate_case, case_id, rater, level, channel, comment)

    @checked
    def urge(
        self,
        actor: str,
        message: str,
        *,
        task_id: int | None = None,
        case_id: int | None = None,
        level: str = "urge",
        within: str | None = None,
    ) -> int:
        """催办 (urge) or 督办 (supervise): recorded with its own due time; the assignee is notified."""
        if level not in ("urge", "supervise"):
            raise InvalidData("level is urge (催办) or supervise (督办)")
        if (task_id is None) == (case_id is None):
            raise InvalidData("urge a task or a case: give exactly one of task_id and case_id")
        if not (message or "").strip():
            raise InvalidData("an urge needs a message")
        limit = parse_limit(within, "within") if within else None
        return self.core.run(closing.urge, actor, message, task_id, case_id, level, limit)

    # ------------------------------------------------------------------------------------------
    # automatic steps, incidents, 逾期视为同意 (commands/auto.py, incidents.py, consent.py)

    @checked
    def run_auto_batch(
        self, limit: int = 100, *, sources: Sources | None = None, policy: RunPolicy | None = None
    ) -> AutoBatch:
        """Up to ``limit`` attempts at waiting `auto` tasks, oldest first, each decided (or counted as a
        failed attempt, with backoff, an incident after the last) in a transaction of its own. On
        PostgreSQL the case is picked with ``FOR UPDATE SKIP LOCKED``, so several workers share the queue
        without two deciding the same task. ``sources``: the shared-data sources (default: the local table)."""
        return auto.run_batch(self.core, limit, sources or Sources(self.db), policy or RunPolicy())

    @checked
    def run_auto_tasks(
        self, limit: int = 100, *, sources: Sources | None = None, policy: RunPolicy | None = None
    ) -> int:
        """``run_auto_batch``; returns how many tasks were decided."""
        return self.run_auto_batch(limit, sources=sources, policy=policy).decided

    @checked
    def run_auto_task(self, task_id: int, *, sources: Sources | None = None, policy: RunPolicy | None = None) -> str:
        """Decide one waiting `auto` task (its backoff does not apply). Returns "decided", "failed" or
        "incident"; Conflict if it is no waiting auto task, NotAllowed if it is an open incident."""
        return auto.run_one(self.core, task_id, sources or Sources(self.db), policy or RunPolicy())

    @checked
    def retry_incident(self, task_id: int, actor: str, note: str = "") -> None:
        """The department's supervisor has an automatic step whose attempts ran out tried again."""
        self.core.run(incidents.retry_incident, task_id, actor, note)

    @checked
    def hand_over(self, task_id: int, actor: str, note: str = "") -> None:
        """The department's supervisor hands an automatic step whose attempts ran out to a person: it
        becomes a manual approval task in the department's queue."""
        self.core.run(incidents.hand_over, task_id, actor, note)

    @checked
    def open_incidents(self, department: str | None = None) -> list[incidents.IncidentView]:
        from ..store.db import reading

        with reading(self.db) as conn:
            return incidents.open_incidents(conn, department)

    def close_stale_incidents(self) -> int:
        """Close the incidents of tasks no longer waiting (their case closed meanwhile). Returns how many."""
        with self.db.begin() as conn:
            return incidents.close_stale(conn, self.clock())

    def deem_consent_overdue(self) -> list[int]:
        """逾期视为同意: every open task past its limit whose step deems silence consent is completed as
        approved by the rule, each in a transaction of its own. Returns their ids."""
        from ..store.db import reading

        with reading(self.db) as conn:
            candidates = consent.overdue_candidates(conn, self.definitions, self.clock())
        done = []
        for task_id in candidates:
            try:
                self.core.run(consent.deem_consent, task_id)
            except (NotAllowed, Conflict):  # a person answered, or the case stopped, in the meantime
                continue
            done.append(task_id)
        return done


def _is_integrity_error(exc: BaseException) -> bool:
    return isinstance(exc, IntegrityError | Conflict) or isinstance(exc.__cause__, IntegrityError)
