"""One settings object for every process that runs Tongban: the CLI, the web app, the flows, cron.

Settings come from the environment (``TONGBAN_*``), so a web worker, a Prefect worker and a cron job
started anywhere read the same values; a command-line flag overrides its variable. ``make_engine()``
turns them into an :class:`~orchestrator.engine.Engine`, and refuses to start on a calendar file that
is configured but missing or broken (a process that silently ran without it would compute other
deadlines than its neighbours).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from sqlalchemy import Engine as Database

    from .calendar import BusinessCalendar
    from .engine import Engine

NO_CALENDAR = "none"  # TONGBAN_CALENDAR_FILE=none: the library's holiday data only, on purpose


class SettingsError(ValueError):
    """A setting that cannot work; the message names the variable and what to set it to."""


class LookupSourceSetting(BaseModel):
    """A shared-data source reached over HTTP (engine/lookups.py HttpSource)."""

    url: str = Field(description="GET address with {key} (and optionally {source}) put in, e.g. http://dsp/hukou/{key}")
    timeout_s: float | None = Field(None, gt=0, description="default: lookup_timeout_s")
    headers: dict[str, str] | None = Field(None, description="sent with every request (an API key, say)")


class WebhookSetting(BaseModel):
    """A department's webhook (an SMS gateway, 政务 IM): JSON, signed with HMAC-SHA256 (flows/channels.py)."""

    url: str
    secret: SecretStr = Field(description="shared with the receiver, which checks every signature")


class Settings(BaseSettings):
    """Every setting, with its environment variable ``TONGBAN_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="TONGBAN_", extra="ignore")

    home: Path = Field(default_factory=Path.cwd, description="folder the relative paths below start from")
    database_url: str = Field("sqlite:///tongban.sqlite", description="SQLite file or postgresql://…")
    calendar_file: str = Field(
        "definitions/calendar.yaml",
        description="the operator's calendar file (holidays of new years, closures); 'none' for library data only",
    )
    definitions_dir: str = Field("definitions", description="the definitions published by `make run` and the web")
    pool_size: int = Field(10, ge=1, le=500, description="database connections kept open per process")
    pool_overflow: int = Field(20, ge=0, le=1000, description="connections opened beyond pool_size under load")
    pool_timeout_s: float = Field(10.0, gt=0, description="how long a call waits for a free connection")
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="FULL: a commit is on disk before it returns; NORMAL: a power cut may lose the last "
        "commits (never corrupts) — faster, and only safe where losing acknowledged work is acceptable",
    )
    auto_inline: bool = Field(True, description="decide `auto` (秒批) steps inside the transition that reaches them")
    negative_report_limit: str = Field(
        "1d",
        description="the time a department's leader has to confirm or send back a proposed refusal "
        "(不予审批报告制), e.g. 1d, 4h; the SLA sweep watches it",
    )

    # what runs by itself (flows/): the embedded scheduler, `tongban run-jobs`, the Prefect deployments
    auto_steps_interval_s: float = Field(5.0, gt=0, description="how often waiting automatic steps are run")
    auto_batch: int = Field(200, ge=1, le=100_000, description="automatic tasks one batch (one Prefect task) decides")
    auto_max_attempts: int = Field(
        5, ge=1, le=100, description="failed attempts before an automatic step is an incident"
    )
    auto_backoff_s: float = Field(30.0, ge=0, description="wait after a failed attempt, doubled after each further one")
    auto_backoff_cap_s: float = Field(3600.0, ge=0, description="the longest wait between two attempts")
    auto_lease_s: float = Field(120.0, gt=0, description="how long a worker fetching shared data holds a task")
    lookup_sources: dict[str, LookupSourceSetting] = Field(
        default_factory=dict,
        description='shared-data sources over HTTP, JSON: {"hukou": {"url": "http://dsp.example/hukou/{key}"}}; '
        "a source not named here reads the local table shared_data",
    )
    lookup_timeout_s: float = Field(5.0, gt=0, description="how long a shared-data look-up may take")
    timers_interval_s: float = Field(60.0, gt=0, description="how often the 容缺 timer and the SLA sweep run")
    deemed_consent_interval_s: float = Field(300.0, gt=0, description="how often 逾期视为同意 is applied")
    notify_interval_s: float = Field(10.0, gt=0, description="how often the notification outbox is delivered")
    notify_batch: int = Field(100, ge=1, le=10_000, description="notifications one channel claims at a time")
    notify_max_attempts: int = Field(
        8, ge=1, le=100, description="failed deliveries before one is given up (stays visible)"
    )
    notify_backoff_s: float = Field(30.0, ge=0, description="wait after a failed delivery, doubled after each")
    notify_lease_s: float = Field(300.0, gt=0, description="how long a worker holds the notifications it claimed")
    notify_email: dict[str, list[str]] = Field(
        default_factory=dict,
        description='e-mail addresses per department code, JSON: {"scjg": ["banjian@scjg.example"], "*": [...]}; '
        '"*" serves departments not listed',
    )
    notify_webhooks: dict[str, WebhookSetting] = Field(
        default_factory=dict,
        description='signed JSON webhooks per department code, JSON: {"scjg": {"url": "https://…", "secret": "…"}}; '
        '"*" serves departments not listed (and notices to applicants)',
    )
    webhook_timeout_s: float = Field(10.0, gt=0, description="how long a webhook delivery may take")
    smtp_host: str | None = Field(None, description="the SMTP server for e-mail notices; unset: no e-mail")
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "ssl"] = Field("none", description="starttls (587) or ssl (465)")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str = Field("tongban@localhost", description="the From address of e-mail notices")
    smtp_timeout_s: float = Field(10.0, gt=0)
    daily_report_at: str = Field(
        "00:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="when the day before is reported (Asia/Shanghai)"
    )
    reports_dir: str = Field("reports", description="where daily reports (CSV and HTML) are written")
    prefect_work_pool: str = Field("tongban", description="the Prefect work pool the deployments and workers use")
    prefect_shift_s: float = Field(
        60.0, ge=10, description="a periodic flow run polls this long; its deployment is scheduled at this interval"
    )
    prefect_auto_runs: int = Field(2, ge=1, le=100, description="auto_steps flow runs at once (queue consumers)")

    # the web (web/): `tongban serve`
    web_host: str = Field("127.0.0.1", description="the address `tongban serve` listens on")
    web_port: int = Field(8000, ge=1, le=65535)
    web_workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes (each with its own pool)")
    secret_key: SecretStr | None = Field(
        None,
        description="signs session cookies and CSRF tokens; unset: one is made once and kept in "
        "<home>/.tongban/secret.key (every worker of one machine reads the same file)",
    )
    session_minutes: int = Field(600, ge=5, le=7 * 24 * 60, description="a log-in lasts at most this long")
    session_idle_minutes: int = Field(60, ge=1, le=24 * 60, description="a session unused this long ends")
    login_max_failures: int = Field(
        5, ge=1, le=1000, description="failed log-ins per user name or address within 15 minutes before a wait"
    )
    max_body_bytes: int = Field(1_000_000, ge=10_000, description="the largest request body the web accepts")
    secure_cookies: bool = Field(False, description="mark cookies Secure (set when served over HTTPS)")
    demo: bool = Field(False, description="show the demo log-ins on the log-in page (`make run`)")
    demo_password: str = Field("tongban-demo", min_length=8, description="the password of every demo log-in")

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("negative_report_limit")
    @classmethod
    def _limit(cls, value: str) -> str:
        from .definition.limits import Limit, LimitSyntaxError

        try:
            return str(Limit.parse(value))
        except LimitSyntaxError as exc:
            raise ValueError(str(exc)) from None

    def path(self, value: str | Path) -> Path:
        """A configured path, relative ones taken from ``home``."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.home / path

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file of ``database_url`` (relative to ``home``), or None for PostgreSQL/memory."""
        if not self.database_url.startswith("sqlite"):
            return None
        rest = self.database_url.split("///", 1)[1] if "///" in self.database_url else ""
        if not rest or rest == ":memory:":
            return None
        return self.path(rest)

    @property
    def resolved_database_url(self) -> str:
        """``database_url`` with a relative SQLite path made absolute against ``home``."""
        path = self.sqlite_path
        return f"sqlite:///{path}" if path is not None else self.database_url

    @property
    def calendar_path(self) -> Path | None:
        if self.calendar_file.strip().lower() == NO_CALENDAR:
            return None
        return self.path(self.calendar_file)

    def with_overrides(self, **values: Any) -> Settings:
        """A copy with the values given that are not None (command-line flags)."""
        given = {k: v for k, v in values.items() if v is not None}
        return self.model_copy(update=given) if given else self


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment; keyword arguments that are not None win (command-line flags)."""
    try:
        return Settings().with_overrides(**overrides)
    except ValueError as exc:  # pydantic's ValidationError
        raise SettingsError(_explain(exc)) from None


def _explain(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if errors is None:
        return str(exc)
    parts = []
    for err in errors(include_url=False):
        name = "TONGBAN_" + "_".join(str(x) for x in err["loc"]).upper()
        parts.append(f"{name}={err.get('input')!r}: {err['msg']}")
    return "bad setting: " + "; ".join(parts)


def load_calendar(settings: Settings) -> BusinessCalendar:
    """The business calendar the settings name: a missing or broken file is an error, not a fallback."""
    from .calendar import BusinessCalendar, CalendarError

    path = settings.calendar_path
    if path is None:
        return BusinessCalendar()
    if not path.is_file():
        raise SettingsError(
            f"calendar file {path} not found: set TONGBAN_CALENDAR_FILE to the operator's calendar.yaml "
            f"(or TONGBAN_HOME to the folder holding definitions/), or TONGBAN_CALENDAR_FILE={NO_CALENDAR} "
            "to count on the library's holiday data alone"
        )
    try:
        return BusinessCalendar.from_file(path)
    except CalendarError as exc:
        raise SettingsError(f"calendar file {path}: {str(exc).removeprefix(f'{path.name}: ')}") from None


def connect_database(settings: Settings) -> Database:
    """The SQLAlchemy engine of the settings' database, with the pool sized for this process."""
    from .store import connect

    url = settings.resolved_database_url
    options: dict[str, Any] = {
        "pool_size": settings.pool_size,
        "max_overflow": settings.pool_overflow,
        "pool_timeout": settings.pool_timeout_s,
    }
    if not url.startswith("postgres"):
        options["sqlite_synchronous"] = settings.sqlite_synchronous
    return connect(url, **options)


def make_engine(
    settings: Settings | None = None, *, clock: Callable[[], datetime] | None = None, **engine_options: Any
) -> Engine:
    """The engine every process uses: the settings' database, calendar and pool. Raises SettingsError
    on a calendar that is configured but missing or broken."""
    from .engine import Engine

    settings = settings or load_settings()
    calendar = load_calendar(settings)
    options = {
        "auto_inline": settings.auto_inline,
        "negative_report_limit": settings.negative_report_limit,
        **engine_options,
    }
    return Engine(connect_database(settings), calendar, clock, **options)


def environment_summary(settings: Settings) -> dict[str, str]:
    """What a process runs with, fit to print (the database password hidden)."""
    from sqlalchemy.engine import make_url

    try:
        shown = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
    except Exception:
        shown = settings.resolved_database_url
    return {
        "database": shown,
        "calendar": str(settings.calendar_path or "library data only"),
        "sqlite_synchronous": settings.sqlite_synchronous,
        "pool": f"{settings.pool_size}+{settings.pool_overflow}",
        "pid": str(os.getpid()),
    }
