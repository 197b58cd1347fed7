"""The commands of what runs by itself: ``tongban run-jobs`` (the embedded scheduler), ``deploy`` and
``worker`` (scaled out on a Prefect server), ``incidents``, ``report`` and ``lookups load``. Only click is
imported at load time, so ``tongban --help`` stays fast; nothing but ``deploy`` and ``worker`` imports
Prefect."""

from __future__ import annotations

import json
import signal
import threading
from datetime import date
from pathlib import Path
from typing import Any

import click

url_option = click.option("--url", metavar="URL", help="database URL (default: $TONGBAN_DATABASE_URL)")


def _settings(url: str | None = None) -> Any:
    from orchestrator.settings import SettingsError, load_settings

    try:
        return load_settings(database_url=url)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _jobs(url: str | None) -> Any:
    from orchestrator.settings import SettingsError

    from .jobs import Jobs

    try:
        return Jobs(_settings(url))
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _job_names(only: str | None) -> tuple[str, ...]:
    from .jobs import JOB_NAMES

    if not only:
        return JOB_NAMES
    names = tuple(n.strip() for n in only.split(",") if n.strip())
    unknown = [n for n in names if n not in JOB_NAMES]
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: the jobs are {', '.join(JOB_NAMES)}", param_hint="--only")
    return names


@click.command("run-jobs")
@url_option
@click.option(
    "--only", metavar="JOB,…", help="run these jobs only: auto_steps, timers, notify, deemed_consent, daily_report"
)
@click.option("--once", is_flag=True, help="run each job once and exit (for cron), instead of on its interval")
def run_jobs(url: str | None, only: str | None, once: bool) -> None:
    """Run what runs by itself on this machine, without a Prefect server: automatic steps, the timers,
    notifications, 逾期视为同意 and the daily report, each on its interval (TONGBAN_*_INTERVAL_S), until
    stopped (Ctrl-C, SIGTERM)."""
    names = _job_names(only)
    jobs = _jobs(url)
    if once:
        try:
            for name in names:
                click.echo(f"{name}: {_shown(jobs.run(name))}")
        finally:
            jobs.close()
        return
    from .embedded import build

    scheduler = build(jobs, names).start()
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    click.echo(f"running {', '.join(names)} (Ctrl-C to stop)")
    stopped.wait()
    click.echo("stopping: waiting for the rounds in progress")
    scheduler.stop()


def _shown(result: Any) -> str:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(result) and not isinstance(result, type):
        return json.dumps(asdict(result), ensure_ascii=False, default=str)
    return json.dumps(result, ensure_ascii=False, default=str)


@click.command()
@click.option("--paused", is_flag=True, help="register the deployments with their schedules paused")
def deploy(paused: bool) -> None:
    """Register the flows as deployments with their schedules on the Prefect server at PREFECT_API_URL,
    in the work pool TONGBAN_PREFECT_WORK_POOL (default tongban); run them with `tongban worker`."""
    from orchestrator.settings import SettingsError

    from . import deploy as scaled

    settings = _settings()
    try:
        done = scaled.deploy(settings, paused=paused)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    for name, deployment_id in done:
        click.echo(f"{name}: {deployment_id}")
    pool = settings.prefect_work_pool
    click.echo(f"{len(done)} deployments in work pool {pool}; start workers with `tongban worker`")


@click.command()
@click.option("--limit", type=click.IntRange(1), help="flow runs this worker runs at once")
@click.option("--name", help="the worker's name on the server")
def worker(limit: int | None, name: str | None) -> None:
    """Become a Prefect worker of the work pool (`prefect worker start --pool tongban --type process`),
    telemetry off. Needs PREFECT_API_URL and the TONGBAN_* settings every flow run inherits."""
    from orchestrator.settings import SettingsError

    from . import deploy as scaled

    try:
        scaled.exec_worker(_settings(), limit=limit, name=name)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def incidents() -> None:
    """Automatic steps whose attempts ran out: list them, retry them, hand them to a person."""


@incidents.command("list")
@url_option
@click.option("--department", help="one department's incidents")
def incidents_list(url: str | None, department: str | None) -> None:
    """The open incidents, oldest first."""
    jobs = _jobs(url)
    try:
        found = jobs.engine.open_incidents(department)
    finally:
        jobs.close()
    for i in found:
        click.echo(
            f"task {i.task_id}  {i.case_number} {i.task_name} ({i.department})  {i.kind}, {i.attempts} attempts, "
            f"since {i.raised_at:%Y-%m-%d %H:%M}: {i.error}"
        )
    click.echo(f"{len(found)} open incident(s)")


def _act(url: str | None, task_id: int, actor: str, note: str, what: str) -> None:
    from orchestrator.engine import TongbanError

    jobs = _jobs(url)
    try:
        getattr(jobs.engine, what)(task_id, actor, note)
    except TongbanError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        jobs.close()


@incidents.command("retry")
@url_option
@click.argument("task_id", type=int)
@click.option("--as", "actor", required=True, help="the supervisor's user id")
@click.option("--note", default="", help="why (kept in the case history)")
def incidents_retry(url: str | None, task_id: int, actor: str, note: str) -> None:
    """Try the automatic step again (its attempts start from nothing)."""
    _act(url, task_id, actor, note, "retry_incident")
    click.echo(f"task {task_id}: will be tried again by the next auto_steps run")


@incidents.command("hand-over")
@url_option
@click.argument("task_id", type=int)
@click.option("--as", "actor", required=True, help="the supervisor's user id")
@click.option("--note", default="", help="why, and what to check (shown with the task)")
def incidents_hand_over(url: str | None, task_id: int, actor: str, note: str) -> None:
    """Hand the step to a person: it becomes a manual task in the department's queue."""
    _act(url, task_id, actor, note, "hand_over")
    click.echo(f"task {task_id}: in the department's queue as a manual task")


@click.command()
@url_option
@click.option("--day", metavar="YYYY-MM-DD", help="the day to report (default: yesterday, Asia/Shanghai)")
def report(url: str | None, day: str | None) -> None:
    """Write the daily report (CSV and HTML) under TONGBAN_REPORTS_DIR."""
    try:
        chosen = date.fromisoformat(day) if day else None
    except ValueError:
        raise click.BadParameter(f"{day!r} is no date like 2026-03-02", param_hint="--day") from None
    jobs = _jobs(url)
    try:
        files = jobs.daily_report(chosen)
    finally:
        jobs.close()
    click.echo(f"{files.csv}\n{files.html}")


@click.group()
def lookups() -> None:
    """The local shared-data table that automatic steps look up (the default source)."""


@lookups.command("load")
@url_option
@click.argument("source")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def lookups_load(url: str | None, source: str, file: Path) -> None:
    """Load records of SOURCE from FILE, JSON lines: {"key": "110101195001011234", "hukou_local": true}.
    A record with a key already there replaces it."""
    from orchestrator.engine import TongbanError
    from orchestrator.engine.lookups import load_records

    records = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise click.ClickException(f"{file}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("key"), str):
            raise click.ClickException(f'{file}:{number}: a record is an object with a "key" string')
        key = record.pop("key")
        records.append((key, record))
    jobs = _jobs(url)
    try:
        count = load_records(jobs.engine.db, source, records, jobs.now())
    except TongbanError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        jobs.close()
    click.echo(f"{count} record(s) of {source} loaded")


def commands() -> list[click.Command]:
    return [run_jobs, deploy, worker, incidents, report, lookups]
