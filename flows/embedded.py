"""The embedded scheduler: the jobs of flows/jobs.py on their intervals, on threads of this process, for
one machine (``tongban run-jobs``) and the web process (``tongban serve``). It never enters the Prefect
runtime — a process that touches it without a configured server starts a temporary server of its own
(about 200 MB and 7–21 s) — and imports nothing of Prefect (a test checks it in a subprocess).

    handle = start_scheduler(settings)          # or start_scheduler(settings, engine=the_web_engine)
    …
    handle.stop()                               # waits for the running rounds to end

One thread per job. A round that fails is logged and the next round tries again: every job may run twice,
or in two processes at once, without doing anything twice (the engine's guarantees), so several web
processes may each run the scheduler. A round of ``auto_steps`` runs batches until nothing is due; the
daily report is written at ``daily_report_at`` (Asia/Shanghai), and at
start-up for yesterday if that report is missing (the machine was off at the time).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from orchestrator.calendar import TZ
from orchestrator.settings import Settings, load_settings

from .jobs import JOB_NAMES, Jobs

if TYPE_CHECKING:
    from orchestrator.engine import Engine

log = logging.getLogger("tongban.flows.embedded")


@dataclass
class JobThread:
    name: str
    run: Callable[[], Any]
    wait_s: Callable[[Any], float]  # seconds to the next round, given what this one returned
    rounds: int = 0
    failures: int = 0
    last_error: str | None = None
    thread: threading.Thread | None = field(default=None, repr=False)


class Scheduler:
    """The running embedded scheduler: ``stop()`` ends it; ``rounds`` counts each job's rounds."""

    def __init__(self, jobs: Jobs, threads: list[JobThread]) -> None:
        self.jobs = jobs
        self.threads = threads
        self._stop = threading.Event()

    def start(self) -> Scheduler:
        for job in self.threads:
            job.thread = threading.Thread(target=self._loop, args=(job,), name=f"tongban-{job.name}", daemon=True)
            job.thread.start()
        return self

    def _loop(self, job: JobThread) -> None:
        while not self._stop.is_set():
            outcome = None
            try:
                outcome = job.run()
            except Exception as exc:  # logged; the next round tries again
                job.failures += 1
                job.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("%s: the round failed; the next one tries again", job.name)
            finally:
                job.rounds += 1
            self._stop.wait(max(0.0, job.wait_s(outcome)))

    @property
    def rounds(self) -> dict[str, int]:
        return {job.name: job.rounds for job in self.threads}

    def wait_for_rounds(self, count: int = 1, timeout: float = 60.0) -> bool:
        """Wait until every job ran ``count`` rounds (for tests and the CLI's --once)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(job.rounds >= count for job in self.threads):
                return True
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every thread (a round in progress ends first) and close the engine if it is ours."""
        self._stop.set()
        for job in self.threads:
            if job.thread is not None:
                job.thread.join(timeout)
        self.jobs.close()

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def seconds_until(at: str, now: datetime) -> float:
    """Seconds from ``now`` to the next ``HH:MM`` in Asia/Shanghai."""
    hour, minute = (int(x) for x in at.split(":"))
    local = now.astimezone(TZ)
    target = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if target <= local:
        target += timedelta(days=1)
    return (target - local).total_seconds()


def build(jobs: Jobs, names: Iterable[str] = JOB_NAMES) -> Scheduler:
    """The scheduler of the named jobs (not started)."""
    settings = jobs.settings
    threads: list[JobThread] = []
    for name in names:
        if name not in JOB_NAMES:
            raise ValueError(f"no job {name!r}; the jobs are {', '.join(JOB_NAMES)}")
        if name == "daily_report":
            threads.append(JobThread(name, _daily(jobs), lambda _r: seconds_until(settings.daily_report_at, _wall())))
        else:
            interval = getattr(settings, f"{name}_interval_s")
            threads.append(JobThread(name, getattr(jobs, name), lambda _r, i=interval: i))
    return Scheduler(jobs, threads)


def _wall() -> datetime:
    return datetime.now(TZ)


def _daily(jobs: Jobs) -> Callable[[], Any]:
    """The first round writes yesterday's report only if it is missing; later rounds always write."""
    first = [True]

    def run() -> Any:
        if first[0]:
            first[0] = False
            day = jobs.report_day()
            path = jobs.settings.path(jobs.settings.reports_dir) / f"daily-{day.isoformat()}.html"
            if path.exists():
                return None
        return jobs.daily_report()

    return run


def start_scheduler(
    settings: Settings | None = None, *, engine: Engine | None = None, jobs: Iterable[str] = JOB_NAMES
) -> Scheduler:
    """Start the embedded scheduler: every job (or those named) on its interval, on threads of this
    process. ``engine``: share the caller's engine (the web app's); otherwise one is made from the
    settings and closed by ``stop()``."""
    return build(Jobs(settings or load_settings(), engine), jobs).start()
