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

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from sqlalchemy import Engine as Database

    from .calendar import BusinessCalendar
    from .engine import Engine

NO_CALENDAR = "none"  # TONGBAN_CALENDAR_FILE=none: the library's holiday data only, on purpose


class SettingsError(ValueError):
    """A setting that cannot work; the message names the variable and what to set it to."""


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

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

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

    options: dict[str, Any] = {}
    url = settings.resolved_database_url
    if url.startswith("postgres"):
        options.update(
            pool_size=settings.pool_size, max_overflow=settings.pool_overflow, pool_timeout=settings.pool_timeout_s
        )
    else:
        options.update(
            pool_size=settings.pool_size,
            max_overflow=settings.pool_overflow,
            pool_timeout=settings.pool_timeout_s,
            sqlite_synchronous=settings.sqlite_synchronous,
        )
    return connect(url, **options)


def make_engine(
    settings: Settings | None = None, *, clock: Callable[[], datetime] | None = None, **engine_options: Any
) -> Engine:
    """The engine every process uses: the settings' database, calendar and pool. Raises SettingsError
    on a calendar that is configured but missing or broken."""
    from .engine import Engine

    settings = settings or load_settings()
    calendar = load_calendar(settings)
    options = {"auto_inline": settings.auto_inline, **engine_options}
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
