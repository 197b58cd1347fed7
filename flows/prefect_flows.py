"""The jobs as Prefect flows, for a Prefect server with work pools and workers (``tongban deploy``,
``tongban worker``; docs/operations.md). Each flow is thin: its tasks call one job of flows/jobs.py
(which calls the engine) and log what it did; retries with backoff are Prefect's, on top of the engine's
own (a batch that met a busy database is run again: every decision is its own transaction, so nothing
is decided twice).

A periodic flow run keeps polling for ``duration_s`` (its deployment's interval) every ``every_s``
seconds, so a worker starts one flow-run process per interval instead of one per poll; several
``auto_steps`` runs at once (``prefect_auto_runs``) share the queue through ``FOR UPDATE SKIP LOCKED``.

Importing this module sets telemetry off (DO_NOT_TRACK, PREFECT_SERVER_ANALYTICS_ENABLED=false) before
Prefect is imported: government networks are closed.
"""

from __future__ import annotations

import os

os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

import threading
import time
from dataclasses import asdict
from datetime import date
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from .jobs import Jobs

_jobs: Jobs | None = None
_lock = threading.Lock()


def jobs() -> Jobs:
    """The jobs of this flow-run process, made once from the TONGBAN_* settings it inherited."""
    global _jobs
    with _lock:
        if _jobs is None:
            _jobs = Jobs()
        return _jobs


# Prefect's retries with backoff; no caching (a batch with the same arguments is new work every time) and
# no stored results (the database holds the outcome).
TASK_OPTIONS: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
    "cache_policy": NO_CACHE,
    "persist_result": False,
}
FLOW_OPTIONS: dict[str, Any] = {"persist_result": False, "log_prints": False}


@task(name="close-stale-incidents", **TASK_OPTIONS)
def close_stale_incidents() -> int:
    return jobs().engine.close_stale_incidents()


@task(name="auto-batch", **TASK_OPTIONS)
def auto_batch(limit: int) -> dict[str, int]:
    batch = jobs().auto_batch(limit)
    result = {**asdict(batch), "attempts": batch.attempts}
    if batch.attempts:
        get_run_logger().info("auto batch: %s", result)
    return result


@flow(name="auto_steps", **FLOW_OPTIONS)
def auto_steps(
    batch_size: int | None = None, max_batches: int | None = None, duration_s: float = 0.0, every_s: float = 2.0
) -> dict[str, int]:
    """Waiting automatic (秒批) steps in batches of ``batch_size``, each batch a task, until nothing is
    due (or ``max_batches``); then again every ``every_s`` seconds until ``duration_s`` has passed."""
    limit = batch_size or jobs().settings.auto_batch
    totals = {"batches": 0, "decided": 0, "failed": 0, "incidents": 0, "lost": 0}
    totals["stale_closed"] = close_stale_incidents()
    deadline = time.monotonic() + duration_s
    while True:
        while jobs().auto_pending() and (max_batches is None or totals["batches"] < max_batches):
            result = auto_batch(limit)
            totals["batches"] += 1
            for key in ("decided", "failed", "incidents", "lost"):
                totals[key] += result[key]
            if result["attempts"] < limit:
                break
        if (max_batches is not None and totals["batches"] >= max_batches) or time.monotonic() >= deadline:
            break
        time.sleep(every_s)
    get_run_logger().info("auto_steps: %s", totals)
    return totals


def _repeat(run: Any, duration_s: float, every_s: float) -> list[Any]:
    """Run a task now and every ``every_s`` seconds until ``duration_s`` has passed."""
    results = []
    deadline = time.monotonic() + duration_s
    while True:
        results.append(run())
        if time.monotonic() + every_s >= deadline:
            return results
        time.sleep(every_s)


@task(name="timers", **TASK_OPTIONS)
def run_timers() -> dict[str, Any]:
    result = jobs().timers()
    return {"terminated": result.terminated, **result.sweep}


@flow(name="timers", **FLOW_OPTIONS)
def timers(duration_s: float = 0.0, every_s: float = 60.0) -> list[dict[str, Any]]:
    """The 容缺 timer, then the SLA sweep (``tongban timers``), every ``every_s`` for ``duration_s``."""
    results = _repeat(run_timers, duration_s, every_s)
    get_run_logger().info("timers: %s", results)
    return results


@task(name="notify", **TASK_OPTIONS)
def run_notify() -> dict[str, dict[str, int]]:
    return {name: asdict(result) for name, result in jobs().notify().channels.items()}


@flow(name="notify", **FLOW_OPTIONS)
def notify(duration_s: float = 0.0, every_s: float = 10.0) -> list[dict[str, dict[str, int]]]:
    """The notification outbox through the in-app inbox, e-mail and the signed webhook."""
    results = _repeat(run_notify, duration_s, every_s)
    get_run_logger().info("notify: %s", results)
    return results


@task(name="deemed-consent", **TASK_OPTIONS)
def run_deemed_consent() -> list[int]:
    return jobs().deemed_consent()


@flow(name="deemed_consent", **FLOW_OPTIONS)
def deemed_consent(duration_s: float = 0.0, every_s: float = 300.0) -> list[list[int]]:
    """逾期视为同意 where a step enables it."""
    results = _repeat(run_deemed_consent, duration_s, every_s)
    get_run_logger().info("deemed_consent: %s", results)
    return results


@task(name="daily-report", **TASK_OPTIONS)
def write_daily_report(day: str | None) -> dict[str, str]:
    files = jobs().daily_report(date.fromisoformat(day) if day else None)
    return {"csv": str(files.csv), "html": str(files.html)}


@flow(name="daily_report", **FLOW_OPTIONS)
def daily_report(day: str | None = None) -> dict[str, str]:
    """The day's report (default: yesterday, Asia/Shanghai) as CSV and HTML under ``reports_dir``."""
    files = write_daily_report(day)
    get_run_logger().info("daily_report: %s", files)
    return files


FLOWS = {
    "auto_steps": auto_steps,
    "timers": timers,
    "notify": notify,
    "deemed_consent": deemed_consent,
    "daily_report": daily_report,
}
