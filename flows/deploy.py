"""Scaled out: the flows registered as deployments on a Prefect server, and the worker that runs them.

``tongban deploy`` registers one deployment per flow (``<flow>/tongban``) in the work pool
``prefect_work_pool`` (a ``process`` pool, made if missing) with its schedule:

* ``auto_steps/tongban``, ``timers/tongban``, ``notify/tongban``, ``deemed_consent/tongban``: every
  ``prefect_shift_s``; a run polls for one shift, every ``auto_steps_interval_s``, ``timers_interval_s``,
  ``notify_interval_s``, ``deemed_consent_interval_s``; ``prefect_auto_runs`` auto_steps runs at once;
* ``daily_report/tongban``: daily at ``daily_report_at`` (Asia/Shanghai), yesterday's report.

A run that would overlap a run still going beyond its concurrency limit is cancelled, not queued
(``CANCEL_NEW``): the next shift comes soon enough. Deployments name their flows by module path
(``flows.prefect_flows.<flow>``), so a worker needs the tongban package installed, nothing else: no
image, no code storage.

``tongban worker`` replaces itself (exec, same process id) with ``prefect worker start --pool …
--type process``, telemetry off. Both need PREFECT_API_URL: without it Prefect would try a temporary
server of its own.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from typing import Any

from orchestrator.settings import Settings, SettingsError

DEPLOYMENT = "tongban"
QUIET = {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def api_url() -> str:
    """PREFECT_API_URL, or a SettingsError saying what to set."""
    url = os.environ.get("PREFECT_API_URL", "").strip()
    if not url:
        raise SettingsError(
            "PREFECT_API_URL is not set: point it at the Prefect server, e.g. "
            "PREFECT_API_URL=http://prefect.internal:4200/api (docs/operations.md)"
        )
    return url


def quiet_environment() -> dict[str, str]:
    """This process's environment with Prefect's telemetry off."""
    os.environ.update(QUIET)
    return dict(os.environ)


def ensure_work_pool(name: str) -> bool:
    """Make the process work pool if it does not exist; returns whether it was made."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    async def ensure() -> bool:
        async with get_client() as client:
            try:
                await client.read_work_pool(name)
                return False
            except ObjectNotFound:
                await client.create_work_pool(WorkPoolCreate(name=name, type="process"))
                return True

    return asyncio.run(ensure())


def deployments(settings: Settings) -> list[Any]:
    """The RunnerDeployments of every flow, with their schedules and parameters."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    from . import prefect_flows as f

    shift = timedelta(seconds=settings.prefect_shift_s)
    hour, minute = (int(x) for x in settings.daily_report_at.split(":"))

    def limit(n: int) -> ConcurrencyLimitConfig:
        return ConcurrencyLimitConfig(limit=n, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)

    common: dict[str, Any] = {"entrypoint_type": EntrypointType.MODULE_PATH, "tags": ["tongban"]}
    periodic = {
        "auto_steps": (settings.auto_steps_interval_s, settings.prefect_auto_runs),
        "timers": (settings.timers_interval_s, 1),
        "notify": (settings.notify_interval_s, 1),
        "deemed_consent": (settings.deemed_consent_interval_s, 1),
    }
    made = [
        f.FLOWS[name].to_deployment(
            DEPLOYMENT,
            interval=shift,
            parameters={"duration_s": settings.prefect_shift_s, "every_s": every},
            concurrency_limit=limit(runs),
            **common,
        )
        for name, (every, runs) in periodic.items()
    ]
    made.append(
        f.daily_report.to_deployment(
            DEPLOYMENT,
            schedule=Cron(f"{minute} {hour} * * *", timezone="Asia/Shanghai"),
            concurrency_limit=limit(1),
            **common,
        )
    )
    return made


def deploy(settings: Settings, *, paused: bool = False) -> list[tuple[str, str]]:
    """Register every deployment on the server at PREFECT_API_URL. Returns (name, id) pairs."""
    api_url()
    quiet_environment()
    pool = settings.prefect_work_pool
    ensure_work_pool(pool)
    done = []
    for deployment in deployments(settings):
        if paused:
            deployment.paused = True
        deployment_id = deployment.apply(work_pool_name=pool)
        done.append((f"{deployment.flow_name}/{deployment.name}", str(deployment_id)))
    return done


def worker_command(settings: Settings, *, limit: int | None = None, name: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", settings.prefect_work_pool]
    command += ["--type", "process"]
    if limit is not None:
        command += ["--limit", str(limit)]
    if name:
        command += ["--name", name]
    return command


def exec_worker(settings: Settings, *, limit: int | None = None, name: str | None = None) -> None:
    """Become the Prefect worker of the work pool (never returns)."""
    api_url()
    environment = quiet_environment()
    command = worker_command(settings, limit=limit, name=name)
    os.execve(command[0], command, environment)
