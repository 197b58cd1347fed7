"""The jobs that run by themselves, as plain functions over one Engine: what the embedded scheduler calls
on its intervals (flows/embedded.py) and what the Prefect flows wrap (flows/prefect_flows.py). Each
calls orchestrator functions and holds no business rule; nothing here imports Prefect.

* ``auto_steps`` — waiting automatic (秒批) steps, in batches, each task in a transaction of its own;
  failures back off and end as incidents (orchestrator/engine/commands/auto.py);
* ``timers`` — the 容缺 timer, then the SLA sweep (``Engine.run_timers``);
* ``notify`` — the notification outbox through the in-app inbox (always), e-mail and the signed webhook,
  configured per department (flows/channels.py); a failed delivery is retried with backoff and, after
  ``notify_max_attempts``, given up and left visible (``failed_deliveries``);
* ``deemed_consent`` — 逾期视为同意 where a step enables it (``Engine.deem_consent_overdue``);
* ``daily_report`` — yesterday's figures as CSV and HTML under ``reports_dir`` (orchestrator/reports.py),
  after adding the closed days to the dashboards' summary (``engine.read.refresh_work_summary``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from orchestrator.calendar import TZ
from orchestrator.engine.commands.auto import AutoBatch, RunPolicy
from orchestrator.engine.lookups import Sources
from orchestrator.settings import Settings, load_settings, make_engine

from .channels import DeliveryFailed, MailSender, SmtpConfig, WebhookSender, for_department

if TYPE_CHECKING:
    from orchestrator.engine import Engine
    from orchestrator.reports import ReportFiles

log = logging.getLogger("tongban.flows")

JOB_NAMES = ("auto_steps", "timers", "notify", "deemed_consent", "daily_report")
INBOX, EMAIL, WEBHOOK = "inbox", "email", "webhook"
NOTIFY_ROUNDS = 50  # claims per channel in one notify run, so that a run ends


@dataclass
class AutoStepsResult:
    batches: int = 0
    decided: int = 0
    failed: int = 0
    incidents: int = 0
    lost: int = 0
    stale_closed: int = 0

    def add(self, batch: AutoBatch) -> None:
        self.batches += 1
        self.decided += batch.decided
        self.failed += batch.failed
        self.incidents += batch.incidents
        self.lost += batch.lost


@dataclass
class ChannelResult:
    delivered: int = 0  # sent (inbox: written) and marked delivered
    not_applicable: int = 0  # nothing configured for the notification's department: marked delivered, not sent
    failed: int = 0  # will be retried
    given_up: int = 0  # failed for good after notify_max_attempts (outbox: failed_deliveries)
    lease_lost: int = 0  # marked by nobody: this worker's lease lapsed before it could mark them


@dataclass
class NotifyResult:
    channels: dict[str, ChannelResult] = field(default_factory=dict)


@dataclass
class TimersResult:
    terminated: list[int]
    sweep: dict[str, Any]


def run_policy(settings: Settings) -> RunPolicy:
    return RunPolicy(
        max_attempts=settings.auto_max_attempts,
        backoff_s=settings.auto_backoff_s,
        backoff_cap_s=settings.auto_backoff_cap_s,
        lease_s=settings.auto_lease_s,
    )


class Jobs:
    """The jobs of one process, sharing one Engine (thread-safe: the embedded scheduler runs each job on a
    thread of its own)."""

    def __init__(self, settings: Settings | None = None, engine: Engine | None = None) -> None:
        self.settings = settings or load_settings()
        self.owns_engine = engine is None
        self.engine = engine or make_engine(self.settings)
        self.sources = Sources.from_settings(self.engine.db, self.settings)
        self.policy = run_policy(self.settings)
        self._channels_registered = False
        self._lock = threading.Lock()

    def close(self) -> None:
        if self.owns_engine:
            self.engine.dispose()

    def now(self) -> datetime:
        return self.engine.clock()

    # -- automatic steps ---------------------------------------------------------------------------

    def auto_batch(self, limit: int | None = None) -> AutoBatch:
        """One batch: up to ``limit`` (default ``auto_batch``) attempts."""
        return self.engine.run_auto_batch(limit or self.settings.auto_batch, sources=self.sources, policy=self.policy)

    def auto_pending(self) -> bool:
        """Whether a waiting automatic task is due for an attempt (a cheap read, no lock)."""
        from orchestrator.engine.commands.auto import has_due_task
        from orchestrator.store.db import reading

        with reading(self.engine.db) as conn:
            return has_due_task(conn, self.now())

    def auto_steps(self, max_batches: int | None = None, batch_size: int | None = None) -> AutoStepsResult:
        """Batches until the queue holds nothing due (or ``max_batches``); stale incidents closed first."""
        result = AutoStepsResult(stale_closed=self.engine.close_stale_incidents())
        limit = batch_size or self.settings.auto_batch
        while max_batches is None or result.batches < max_batches:
            batch = self.auto_batch(limit)
            result.add(batch)
            if batch.attempts < limit:
                break
        if result.decided or result.failed:
            log.info("auto_steps: %s", asdict(result))
        return result

    # -- timers, 逾期视为同意 -------------------------------------------------------------------------

    def timers(self) -> TimersResult:
        terminated, swept = self.engine.run_timers()
        result = TimersResult(terminated, swept.as_dict())
        if terminated or swept.alerts:
            log.info("timers: %d case(s) terminated; sweep %s", len(terminated), result.sweep)
        return result

    def deemed_consent(self) -> list[int]:
        done = self.engine.deem_consent_overdue()
        if done:
            log.info("deemed_consent: task(s) %s completed by 逾期视为同意", done)
        return done

    # -- the daily report -----------------------------------------------------------------------------

    def report_day(self) -> date:
        """The day a report run now covers: yesterday (Asia/Shanghai)."""
        return (self.now().astimezone(TZ) - timedelta(days=1)).date()

    def daily_report(self, day: date | None = None) -> ReportFiles:
        from orchestrator.engine.read import refresh_work_summary
        from orchestrator.reports import daily_report, write_report
        from orchestrator.store.db import reading

        with self.engine.db.begin() as conn:  # first the dashboards' summary of closed days (效能监察)
            summarized = refresh_work_summary(conn, self.now())
        if summarized:
            log.info("daily_report: %d closed day(s) added to the dashboards' summary", summarized)
        day = day or self.report_day()
        with reading(self.engine.db) as conn:
            report = daily_report(conn, day)
        files = write_report(report, self.settings.path(self.settings.reports_dir))
        log.info("daily_report: %s written (%s)", day, files.html)
        return files

    # -- notifications ------------------------------------------------------------------------------------

    def channels(self) -> dict[str, bool]:
        """Each channel and whether it is in operation (the inbox always)."""
        s = self.settings
        return {
            INBOX: True,
            EMAIL: bool(s.smtp_host and s.notify_email),
            WEBHOOK: bool(s.notify_webhooks),
        }

    def _register_channels(self) -> None:
        from orchestrator.engine.read import outbox

        with self._lock:
            if self._channels_registered:
                return
            with self.engine.db.begin() as conn:
                for name, enabled in self.channels().items():
                    outbox.register_channel(
                        conn, name, now=self.now(), enabled=enabled, max_attempts=self.settings.notify_max_attempts
                    )
            self._channels_registered = True

    def notify(self) -> NotifyResult:
        """Deliver what the outbox owes each channel in operation."""
        self._register_channels()
        result = NotifyResult()
        for name, enabled in self.channels().items():
            if enabled:
                result.channels[name] = self._deliver_inbox() if name == INBOX else self._deliver(name)
        shown = {k: asdict(v) for k, v in result.channels.items() if any(asdict(v).values())}
        if shown:
            log.info("notify: %s", shown)
        return result

    def _lease(self) -> timedelta:
        return timedelta(seconds=self.settings.notify_lease_s)

    def _deliver_inbox(self) -> ChannelResult:
        """Claim, write into the inboxes and mark delivered, in one transaction per claim: exactly once."""
        from orchestrator.engine import inbox
        from orchestrator.engine.read import outbox

        result = ChannelResult()
        for _ in range(NOTIFY_ROUNDS):
            with self.engine.db.begin() as conn:
                now = self.now()
                claim = outbox.claim(conn, INBOX, now=now, limit=self.settings.notify_batch, lease=self._lease())
                if claim.items:
                    inbox.deliver(conn, claim.items, now)
                    marked = outbox.mark_delivered(conn, INBOX, claim.token, [i.id for i in claim.items], now=now)
                    result.delivered += marked
            if len(claim.items) < self.settings.notify_batch:
                break
        return result

    def _deliver(self, channel: str) -> ChannelResult:
        """Claim (one transaction), send outside any transaction, mark how each went (another)."""
        from orchestrator.engine.read import outbox

        result = ChannelResult()
        sender = self._sender(channel)
        try:
            for _ in range(NOTIFY_ROUNDS):
                with self.engine.db.begin() as conn:
                    claim = outbox.claim(
                        conn, channel, now=self.now(), limit=self.settings.notify_batch, lease=self._lease()
                    )
                if not claim.items:
                    break
                departments = self._departments(claim.items)
                delivered: list[int] = []
                failed: list[tuple[Any, str]] = []
                for item in claim.items:
                    department = departments.get(item.id)
                    try:
                        if self._send(channel, sender, item, department):
                            result.delivered += 1
                        else:
                            result.not_applicable += 1
                        delivered.append(item.id)
                    except DeliveryFailed as exc:
                        log.warning("notify: %s of notification %s failed: %s", channel, item.id, exc)
                        failed.append((item, str(exc)))
                self._mark(channel, claim, delivered, failed, result)
                if len(claim.items) < self.settings.notify_batch:
                    break
        finally:
            sender.close()
        return result

    def _mark(self, channel: str, claim: Any, delivered: list[int], failed: list[tuple[Any, str]], result: Any) -> None:
        from orchestrator.engine.read import outbox

        with self.engine.db.begin() as conn:
            now = self.now()
            marked = outbox.mark_delivered(conn, channel, claim.token, delivered, now=now)
            result.lease_lost += len(delivered) - marked
            for item, error in failed:
                wait = min(self.settings.notify_backoff_s * 2 ** max(0, item.attempt - 1), 3600.0)
                state = outbox.mark_failed(
                    conn, channel, claim.token, item.id, error, now=now, retry_at=now + timedelta(seconds=wait)
                )
                if state == "failed":
                    result.given_up += 1
                elif state is None:
                    result.lease_lost += 1
                else:
                    result.failed += 1

    def _sender(self, channel: str) -> Any:
        if channel == EMAIL:
            config = SmtpConfig.from_settings(self.settings)
            assert config is not None
            return MailSender(config)
        return WebhookSender(self.settings.webhook_timeout_s)

    def _send(self, channel: str, sender: Any, item: Any, department: str | None) -> bool:
        """Send one notification; False when nothing is configured for its department."""
        if channel == EMAIL:
            addresses = for_department(self.settings.notify_email, department)
            if not addresses:
                return False
            sender.send(list(addresses), item)
            return True
        target = for_department(self.settings.notify_webhooks, department)
        if target is None:
            return False
        sender.send(target.url, target.secret.get_secret_value(), item, department)
        return True

    def _departments(self, items: Any) -> dict[int, str | None]:
        """The department a notification concerns: its recipient department, else its task's."""
        from orchestrator.store.db import reading
        from orchestrator.store.models import Task

        need = sorted({i.task_id for i in items if not i.recipient_department and i.task_id})
        of_task: dict[int, str] = {}
        if need:
            with reading(self.engine.db) as conn:
                of_task = dict(conn.execute(select(Task.id, Task.department).where(Task.id.in_(need))).all())
        return {i.id: i.recipient_department or of_task.get(i.task_id) for i in items}

    # -- by name ----------------------------------------------------------------------------------------

    def run(self, name: str) -> Any:
        if name not in JOB_NAMES:
            raise ValueError(f"no job {name!r}; the jobs are {', '.join(JOB_NAMES)}")
        return getattr(self, name)()
