"""The ``tongban`` command. Imports stay inside commands so ``tongban --help`` starts fast."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

DEFAULT_DEFINITIONS = "definitions"


class _Tongban(click.Group):
    """Every command's refusals and database errors end as one line and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            message = _refusal(exc)
            if message is None:
                raise
            raise click.ClickException(message) from None


def _refusal(exc: Exception) -> str | None:
    """The one-line message for an engine refusal (TongbanError) or a database error; None for others."""
    if isinstance(exc, click.ClickException | click.exceptions.Exit | click.Abort):
        return None
    from .engine.errors import TongbanError
    from .engine.unit import database_error

    typed = exc if isinstance(exc, TongbanError) else database_error(exc)
    if typed is None:
        return None
    return " ".join(f"{typed.code}: {typed.message}".split())


@click.group(cls=_Tongban, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="tongban")
def main() -> None:
    """通办 Tongban: cross-department 'one thing' (一件事) processes."""


departments_option = click.option(
    "--departments",
    "departments_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="departments.yaml to check against (default: the one beside the definitions or above them)",
)


def _calendar_problems(paths: tuple[Path, ...], calendar_file: Path | None, *, configured: bool) -> list[str]:
    """What is wrong with the calendar files `tongban timers` would load: the calendar.yaml beside or
    above the definitions, and the configured one (TONGBAN_CALENDAR_FILE, else definitions/calendar.yaml
    in TONGBAN_HOME) — ``configured``: a configured file that is missing is a problem too."""
    from .calendar import BusinessCalendar, CalendarError
    from .definition.validator import CALENDAR_FILE, definition_files
    from .settings import SettingsError, load_calendar

    problems: list[str] = []
    settings = _settings(calendar_file=calendar_file)
    chosen = settings.calendar_path
    if chosen is not None and (configured or calendar_file is not None or chosen.is_file()):
        try:
            load_calendar(settings)
        except SettingsError as exc:
            problems.append(str(exc))
    seen = {chosen.resolve()} if chosen is not None else set()
    for file in definition_files(paths):
        for folder in [file.parent, *file.resolve().parent.parents]:
            candidate = folder / CALENDAR_FILE
            if candidate.is_file():
                if candidate.resolve() not in seen:
                    seen.add(candidate.resolve())
                    try:
                        BusinessCalendar.from_file(candidate)
                    except CalendarError as exc:
                        problems.append(f"calendar file {candidate}: {str(exc).removeprefix(f'{CALENDAR_FILE}: ')}")
                break
    return problems


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@departments_option
@click.option(
    "--calendar",
    "calendar_file",
    type=click.Path(dir_okay=False, path_type=Path),  # or none
    help="the operator calendar file to check too (default: $TONGBAN_CALENDAR_FILE, else definitions/calendar.yaml)",
)
def validate(paths: tuple[Path, ...], departments_file: Path | None, calendar_file: Path | None) -> None:
    """Check definitions; print file:line:column: message for every problem (exit 1 if any).

    The calendar.yaml beside the definitions and the configured calendar file are checked too: a
    broken one would stop `tongban timers`.
    """
    from .definition.validator import check_paths

    results = check_paths(paths or (Path(DEFAULT_DEFINITIONS),), departments_file)
    if not results:
        raise click.ClickException(f"no definition files under {', '.join(map(str, paths or ['definitions']))}")
    failed = False
    for result in results:
        if result.problems:
            failed = True
            for problem in result.problems:
                click.echo(str(problem), err=True)
        elif result.definition is not None:
            for warning in result.warnings:  # printed, but the file is valid
                click.echo(str(warning), err=True)
            d = result.definition
            limit = f"承诺 {d.limits.promised}" if d.limits.promised else "即办件"
            click.echo(
                f"{result.path}: ok  {d.key} {d.name} · {len(d.steps)} steps · "
                f"{len(d.departments)} departments · {limit}"
            )
    for problem in _calendar_problems(paths or (Path(DEFAULT_DEFINITIONS),), calendar_file, configured=False):
        failed = True
        click.echo(problem, err=True)
    if failed:
        sys.exit(1)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="OUT.svg, OUT.png or OUT.dot"
)
@departments_option
def render(file: Path, output: Path, departments_file: Path | None) -> None:
    """Draw a definition's flowchart (swimlanes per department)."""
    from .definition.source import SourceError
    from .definition.validator import find_departments_file, load_definition, load_departments
    from .render import FORMATS
    from .render import render as render_bytes

    fmt = output.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise click.BadParameter(f"write to a .svg, .png or .dot file, not {output.name}", param_hint="-o")
    found = departments_file or find_departments_file(file)
    try:
        departments = load_departments(found) if found else {}
        definition = load_definition(file, departments)
    except SourceError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(render_bytes(definition, departments, fmt))  # type: ignore[arg-type]
    click.echo(f"{file} → {output}")


@main.command()
def schema() -> None:
    """Print the JSON Schema of the definition language (for editor completion and checks)."""
    from .definition.model import Definition

    document = Definition.model_json_schema(mode="validation")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "Tongban process definition (一件事)"
    click.echo(json.dumps(document, ensure_ascii=False, indent=2))


# --------------------------------------------------------------------------------------------------
# database: tongban db upgrade / current, tongban publish

url_option = click.option(
    "--url",
    metavar="URL",
    help="database URL (default: $TONGBAN_DATABASE_URL, else sqlite:///tongban.sqlite in $TONGBAN_HOME or here)",
)


def _settings(url: str | None = None, calendar_file: Path | None = None) -> Any:
    """The process settings (environment), with the command-line flags given."""
    from .settings import SettingsError, load_settings

    try:
        return load_settings(database_url=url, calendar_file=str(calendar_file) if calendar_file else None)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _shown(url: str) -> str:
    """A URL fit to print: the password hidden."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _make_engine(url: str | None = None, calendar_file: Path | None = None, **options: Any) -> Any:
    """The engine of the settings (environment and flags); a bad URL or calendar is a clear error."""
    from sqlalchemy.exc import ArgumentError

    from .settings import SettingsError, make_engine

    settings = _settings(url, calendar_file)
    try:
        return make_engine(settings, **options)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    except (ArgumentError, ImportError, ValueError) as exc:
        raise click.ClickException(
            f"cannot use database URL {_shown(settings.resolved_database_url)}: {exc} "
            "(use sqlite:///file.sqlite or postgresql://user:password@host/db)"
        ) from None


def _open_database(url: str | None, timeout: int | None = None) -> tuple[Any, str]:
    """(SQLAlchemy engine, URL to print); a bad URL is a clear error. ``timeout``: seconds to connect."""
    from sqlalchemy.exc import ArgumentError

    from .settings import connect_database

    settings = _settings(url)
    resolved = settings.resolved_database_url
    try:
        database = connect_database(settings)
        if timeout is not None and resolved.startswith("postgres"):
            database.dispose()
            from .store import connect

            database = connect(resolved, connect_args={"connect_timeout": timeout})
        return database, _shown(resolved)
    except (ArgumentError, ImportError, ValueError) as exc:
        raise click.ClickException(
            f"cannot use database URL {_shown(resolved)}: {exc} "
            "(use sqlite:///file.sqlite or postgresql://user:password@host/db)"
        ) from None


def _revisions(db: Any) -> tuple[str | None, str | None]:
    """(current revision, head revision); raises ClickException when the database cannot be reached."""
    from sqlalchemy.exc import DBAPIError

    from .store.migrate import current, head_revision

    head = head_revision()
    try:
        return current(db), head
    except DBAPIError as exc:
        raise click.ClickException(f"cannot reach the database {_shown(str(db.url))}: {_db_message(exc)}") from None


def _db_message(exc: Exception) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


def _upgrade(db: Any) -> tuple[str | None, str | None]:
    """(revision before, revision after), read under the lock that serializes upgrades."""
    from sqlalchemy.exc import DBAPIError

    from .store import upgrade

    try:
        return upgrade(db)
    except DBAPIError as exc:
        raise click.ClickException(f"cannot upgrade {_shown(str(db.url))}: {_db_message(exc)}") from None


def _schema_revision(db: Any, shown: str) -> tuple[str | None, str | None]:
    """(the database's revision, the newest): the newest one, or None for an empty database; an older
    one is a clear error (the code would not match its tables)."""
    revision, head = _revisions(db)
    if revision is not None and revision != head:
        raise click.ClickException(
            f"{shown} is at schema revision {revision}, this tongban needs {head}: run `tongban db upgrade`"
        )
    return revision, head


@main.group()
def db() -> None:
    """Create or inspect the database schema (Alembic migrations)."""


@db.command("upgrade")
@url_option
def db_upgrade(url: str | None) -> None:
    """Create the schema, or bring it up to the newest revision."""
    database, shown = _open_database(url)
    try:
        before, after = _upgrade(database)
    finally:
        database.dispose()
    if before == after:
        click.echo(f"{shown}: schema already at revision {after} (head)")
    else:
        click.echo(f"{shown}: schema upgraded from {before or '(empty)'} to revision {after} (head)")


@db.command("current")
@url_option
def db_current(url: str | None) -> None:
    """Print the database's schema revision and whether it is the newest (head)."""
    database, shown = _open_database(url)
    try:
        revision, head = _revisions(database)
    finally:
        database.dispose()
    if revision is None:
        click.echo(f"{shown}: empty (no schema yet); run `tongban db upgrade` (head is {head})")
    elif revision == head:
        click.echo(f"{shown}: revision {revision} (head, up to date)")
    else:
        click.echo(f"{shown}: revision {revision}, head is {head}; run `tongban db upgrade`")


@db.command("backup")
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@url_option
def db_backup(dest: Path, url: str | None) -> None:
    """Copy the database into the file DEST, verified, while Tongban keeps running.

    SQLite: VACUUM INTO (it does not stop writers and is not restarted by them); PostgreSQL: pg_dump
    --format=custom. The copy is written under a temporary name beside DEST and checked (integrity,
    schema revision, row counts) before it is renamed to DEST: a backup that fails or is killed
    leaves no DEST, and an older DEST as it was.
    """
    from .store.backup import BackupError, backup

    settings = _settings(url)
    shown = _shown(settings.resolved_database_url)
    try:
        with _stopping_cleanly():
            verified = backup(settings.resolved_database_url, dest)
    except BackupError as exc:
        raise click.ClickException(f"backup of {shown} failed, no {dest} written: {exc}") from None
    click.echo(f"{shown} → {dest}: {verified.summary()}  ({verified.seconds:.1f} s)")
    click.echo(f"verified: {'; '.join(verified.checks)}")


@db.command("restore")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@url_option
@click.option("--yes", is_flag=True, help="do not ask before replacing the database")
def db_restore(source: Path, url: str | None, yes: bool) -> None:
    """Replace the database with the backup SOURCE (made by `tongban db backup`).

    SOURCE is verified first. Refused while a Tongban process uses the database: stop the web
    service and workers and pause the cron line of `tongban timers` first. SQLite: the content is
    replaced in one transaction (a restore interrupted half-way changes nothing); PostgreSQL:
    pg_restore --clean --if-exists --single-transaction.
    """
    from .store.backup import BackupError, restore

    settings = _settings(url)
    shown = _shown(settings.resolved_database_url)
    if not yes:
        click.confirm(f"Replace everything in {shown} with the backup {source}?", abort=True)
    try:
        with _stopping_cleanly():
            verified = restore(settings.resolved_database_url, source)
    except BackupError as exc:
        raise click.ClickException(f"{shown} not restored (it is as it was): {exc}") from None
    click.echo(f"{shown} restored from {source}: {verified.summary()}  ({verified.seconds:.1f} s)")
    click.echo(f"verified: {'; '.join(verified.checks)}")
    if verified.revision != verified.head:
        head = verified.head
        click.echo(f"the backup is at schema revision {verified.revision}: run `tongban db upgrade` (head is {head})")
    click.echo("start the Tongban processes again and re-enable the cron line of `tongban timers`")


@contextmanager
def _stopping_cleanly() -> Iterator[None]:
    """SIGTERM and SIGHUP (cron's `timeout`, a closed terminal) end the command through its cleanup
    (temporary files removed, pg_dump stopped) instead of killing it on the spot."""
    import signal

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@url_option
def publish(paths: tuple[Path, ...], url: str | None) -> None:
    """Store every valid definition as a new version (unchanged files stay at their version).

    An invalid file is refused with file:line:column: message for each problem and nothing of it is
    stored; the exit status is 1 if any file was refused. An empty database gets its schema first.
    """
    from datetime import datetime

    from sqlalchemy.exc import DBAPIError

    from .calendar import TZ
    from .engine import publish_paths

    targets = paths or (Path(DEFAULT_DEFINITIONS),)
    missing = [str(p) for p in targets if not p.exists()]
    if missing:
        raise click.ClickException(f"no such file or folder: {', '.join(missing)}")
    calendar_problems = _calendar_problems(targets, None, configured=True)
    if calendar_problems:  # `tongban timers` would fail on it every minute: nothing is published
        for problem in calendar_problems:
            click.echo(problem, err=True)
        raise click.ClickException("fix the calendar file first (see above); nothing was published")
    database, shown = _open_database(url)
    try:
        revision, head = _schema_revision(database, shown)
        if revision is None and _upgrade(database)[0] is None:  # another process may have just made it
            click.echo(f"{shown}: empty database, schema created (revision {head})")
        try:
            results = publish_paths(database, list(targets), datetime.now(TZ))
        except DBAPIError as exc:
            raise click.ClickException(f"cannot publish into {shown}: {_db_message(exc)}") from None
    finally:
        database.dispose()
    if not results:
        raise click.ClickException(f"no definition files under {', '.join(map(str, targets))}")
    refused = 0
    for result in results:
        if result.problems:
            refused += 1
            for problem in result.problems:
                click.echo(str(problem), err=True)
            count = len(result.problems)
            click.echo(f"{result.path}: refused ({count} problem{'s' if count > 1 else ''}), nothing stored", err=True)
        else:
            for warning in result.warnings:
                click.echo(str(warning), err=True)
            verb = "published" if result.changed else "unchanged"
            click.echo(f"{result.path}: {verb} {result.key} v{result.version}")
    stored = len(results) - refused
    click.echo(f"{stored} of {len(results)} definitions in {shown}" + (f"; {refused} refused" if refused else ""))
    if refused:
        sys.exit(1)


# --------------------------------------------------------------------------------------------------
# tongban calendar add / between

WEEKDAYS = "一二三四五六日"


def _calendar_option(function: Any) -> Any:
    return click.option(
        "--calendar",
        "calendar_file",
        type=click.Path(dir_okay=False, path_type=Path),  # or none
        help="operator calendar file (default: $TONGBAN_CALENDAR_FILE, else definitions/calendar.yaml; "
        "'none' for the library's holiday data alone)",
    )(function)


def _load_calendar(calendar_file: Path | None) -> tuple[Any, str]:
    """(BusinessCalendar, what was loaded); a broken file is a clear error."""
    from .settings import SettingsError, load_calendar

    settings = _settings(calendar_file=calendar_file)
    try:
        calendar = load_calendar(settings)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    chosen = settings.calendar_path
    return calendar, str(chosen) if chosen else "chinesecalendar data only (TONGBAN_CALENDAR_FILE=none)"


def _parse_day(value: str, what: str) -> Any:
    from datetime import date

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date; write YYYY-MM-DD, e.g. 2026-09-30", param_hint=what
        ) from None


def _day(d: Any) -> str:
    return f"{d:%Y-%m-%d} (周{WEEKDAYS[d.weekday()]})"


def _provisional_note(calendar: Any, start: Any, end: Any) -> str | None:
    years = calendar.provisional_years(start, end)
    if not years:
        return None
    names = ", ".join(map(str, years))
    verb = "has" if len(years) == 1 else "have"
    return f"(provisional: {names} {verb} no official holiday data)"


@main.group("calendar")
def calendar_group() -> None:
    """Working-day arithmetic on the business calendar (holidays, 调休 make-up workdays, local closures)."""


@calendar_group.command("add")
@click.argument("start_date", metavar="DATE")
@click.argument("amount", metavar="LIMIT")
@click.option("--from-time", metavar="HH:MM", help="time of day of the start (default: the opening time, 09:00)")
@_calendar_option
def calendar_add(start_date: str, amount: str, from_time: str | None, calendar_file: Path | None) -> None:
    """Due date of LIMIT (5d working days, 4h working hours, 7n natural days) counted from DATE.

    Day 1 is the first working day after DATE (民法典 Art. 201); a day limit ends at closing time.
    """
    import re
    from datetime import datetime

    from .calendar import TZ, CalendarError
    from .definition.limits import Limit, LimitSyntaxError

    day = _parse_day(start_date, "DATE")
    try:
        limit = Limit.parse(amount)
    except LimitSyntaxError as exc:
        raise click.BadParameter(str(exc), param_hint="LIMIT") from None
    calendar, _ = _load_calendar(calendar_file)
    if from_time is None:
        clock = calendar.work_start
    else:
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", from_time.strip())
        if match is None or int(match[1]) > 23 or int(match[2]) > 59:
            raise click.BadParameter(
                f"{from_time!r} is not a time of day; write HH:MM, e.g. 14:30", param_hint="--from-time"
            )
        from datetime import time

        clock = time(int(match[1]), int(match[2]))
    start = datetime.combine(day, clock, tzinfo=TZ)
    try:
        due = calendar.add(start, limit.amount, limit.unit)
    except CalendarError as exc:
        raise click.ClickException(str(exc)) from None
    at = due.at
    click.echo(f"{_day(day)} {clock:%H:%M} + {limit} ({limit.label}) → {_day(at.date())} {at:%H:%M} Asia/Shanghai")
    if due.provisional:
        click.echo(_provisional_note(calendar, day, at.date()) or "(provisional)")
        click.echo("  counted Monday–Friday for those years; add the State Council holiday notice to the calendar file")


@calendar_group.command("between")
@click.argument("first", metavar="A")
@click.argument("second", metavar="B")
@_calendar_option
def calendar_between(first: str, second: str, calendar_file: Path | None) -> None:
    """Number of working days d with A < d ≤ B (so `between DATE (add DATE Nd)` is N)."""
    a, b = _parse_day(first, "A"), _parse_day(second, "B")
    calendar, _ = _load_calendar(calendar_file)
    count = calendar.working_days_between(a, b)
    click.echo(f"{count} working days (工作日) after {_day(a)} up to and including {_day(b)}")
    if b < a:
        click.echo("  (B is before A: nothing is counted; swap them to count forwards)")
    note = _provisional_note(calendar, min(a, b), max(a, b))
    if note:
        click.echo(note)


# --------------------------------------------------------------------------------------------------
# tongban doctor


@main.command()
@url_option
@_calendar_option
@click.option("--today", "today_text", hidden=True, help="pretend today is YYYY-MM-DD (for tests)")
def doctor(url: str | None, calendar_file: Path | None, today_text: str | None) -> None:
    """Check the installation: Python, graphviz, a CJK font, the database, the holiday data.

    Exit status 1 on a hard failure: no graphviz `dot`, a broken calendar file, or a database that
    cannot be used yet (unreachable, empty, an older schema, no definition published).
    """
    import platform
    import shutil
    import subprocess
    from datetime import datetime

    from .calendar import TZ

    failures = 0

    def report(mark: str, text: str) -> None:
        click.echo(f"{mark} {text}")

    version = sys.version_info
    if version >= (3, 11):
        report("✓", f"Python {platform.python_version()}")
    else:
        failures += 1
        report("✗", f"Python {platform.python_version()}: Tongban needs 3.11 or newer")

    dot = shutil.which("dot")
    if dot:
        try:
            out = subprocess.run([dot, "-V"], capture_output=True, text=True, timeout=10)
            report("✓", f"graphviz: {(out.stderr or out.stdout).strip() or dot}")
        except (OSError, subprocess.SubprocessError) as exc:
            failures += 1
            report("✗", f"graphviz `dot` at {dot} does not run: {exc}")
    else:
        failures += 1
        report("✗", "graphviz `dot` not found: flowcharts cannot be drawn; run  sudo apt-get install -y graphviz")

    font = _cjk_font()
    if font:
        report("✓", f"CJK font: {font}")
    else:
        hint = "run  sudo apt-get install -y fonts-noto-cjk"
        report("!", f"no CJK font (fc-list :lang=zh is empty): Chinese labels render as boxes; {hint}")

    failures += _doctor_database(url, report)

    try:
        calendar, loaded = _load_calendar(calendar_file)
    except click.ClickException as exc:
        failures += 1
        report("✗", f"calendar: {exc.message}")
    else:
        today = _parse_day(today_text, "--today") if today_text else datetime.now(TZ).date()
        years = calendar.official_years()
        report("✓", f"calendar: {loaded}; official holiday data for {_year_ranges(years)}")
        for year in (today.year, today.year + 1):
            if year in years:
                continue
            when = "this year" if year == today.year else "next year"
            report(
                "!",
                f"WARNING: {year} ({when}) has NO official holiday data. Deadlines reaching {year} are computed "
                f"on weekends alone (Mon–Fri as working days) and flagged provisional. Add the State Council "
                f"notice for {year} (国务院办公厅关于{year}年部分节假日安排的通知) under `years:` in "
                f"{_settings(calendar_file=calendar_file).calendar_path}, or upgrade chinesecalendar.",
            )
    if failures:
        click.echo(f"{failures} hard failure(s)", err=True)
        sys.exit(1)


def _cjk_font() -> str | None:
    import shutil
    import subprocess

    fc_list = shutil.which("fc-list")
    if not fc_list:
        return None
    try:
        out = subprocess.run([fc_list, ":lang=zh", "family"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    families = sorted({line.split(",")[0].strip() for line in out.splitlines() if line.strip()})
    return (
        ", ".join(families[:3]) + (f" (+{len(families) - 3} more)" if len(families) > 3 else "") if families else None
    )


def _doctor_database(url: str | None, report: Any) -> int:
    """Report on the database; returns 1 on a hard failure."""
    from sqlalchemy.engine import make_url

    resolved = _settings(url).resolved_database_url
    try:
        parsed = make_url(resolved)
    except Exception as exc:
        report("✗", f"database URL {resolved!r} is not a URL: {exc}")
        return 1
    shown = _shown(resolved)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        if not path.exists():
            folder = path.resolve().parent
            while not folder.exists():
                folder = folder.parent
            if not os.access(folder, os.W_OK):
                report("✗", f"database {shown}: no file, and {folder} is not writable")
                return 1
            report("✗", f"database {shown}: no file yet; {EMPTY_ADVICE}")
            return 1
    try:
        database, shown = _open_database(url, timeout=5)
    except click.ClickException as exc:
        report("✗", f"database: {exc.message}")
        return 1
    try:
        revision, head = _revisions(database)
        published = _published_count(database) if revision == head else 0
    except click.ClickException as exc:
        report("✗", exc.message)
        return 1
    finally:
        database.dispose()
    if revision is None:
        report("✗", f"database {shown}: reachable but empty; {EMPTY_ADVICE}")
    elif revision != head:
        report("✗", f"database {shown}: schema revision {revision}, head is {head}; run `tongban db upgrade`")
    elif not published:
        report("✗", f"database {shown}: no definition published; run `tongban publish definitions/`")
    else:
        report("✓", f"database {shown}: reachable, schema revision {revision} (head), {published} definition(s)")
        return 0
    return 1


EMPTY_ADVICE = "run `tongban db upgrade` and `tongban publish definitions/`"


def _published_count(database: Any) -> int:
    from sqlalchemy import func, select
    from sqlalchemy.exc import DBAPIError

    from .store.models import DefinitionVersion

    try:
        with database.connect() as conn:
            return conn.execute(select(func.count(func.distinct(DefinitionVersion.key)))).scalar_one()
    except DBAPIError as exc:
        raise click.ClickException(
            f"cannot read the database {_shown(str(database.url))}: {_db_message(exc)}"
        ) from None


def _year_ranges(years: list[int]) -> str:
    if not years:
        return "no year"
    parts: list[str] = []
    start = previous = years[0]
    for year in [*years[1:], None]:
        if year is not None and year == previous + 1:
            previous = year
            continue
        parts.append(f"{start}–{previous}" if previous != start else str(start))
        if year is not None:
            start = previous = year
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------------
# tongban timers


@main.command()
@url_option
@_calendar_option
def timers(url: str | None, calendar_file: Path | None) -> None:
    """Run the scheduled work once: the 容缺 timer, then the SLA sweep.

    The 容缺 timer terminates (终止办理) every case whose deferred materials are past their supply
    deadline; the sweep raises the yellow (黄牌) and red (红牌) cards that have come due, notifies the
    owners and escalates overdue tasks. Run it every minute from cron or a systemd timer. Running it
    twice changes nothing the second time.
    """
    from sqlalchemy.exc import DBAPIError

    engine = _make_engine(url, calendar_file)
    shown = _shown(str(engine.db.url))
    try:
        if _schema_revision(engine.db, shown)[0] is None:
            raise click.ClickException(f"{shown} has no schema yet: run `tongban db upgrade` and `tongban publish`")
        try:
            terminated, swept = engine.run_timers()
        except DBAPIError as exc:
            raise click.ClickException(f"cannot run the timers on {shown}: {_db_message(exc)}") from None
    finally:
        engine.dispose()
    ids = f": case {', '.join(map(str, terminated))}" if terminated else ""
    click.echo(f"容缺 timer: {len(terminated)} case(s) terminated (终止办理){ids}")
    click.echo(
        f"SLA sweep: {swept.tasks_warning} task(s) and {swept.cases_warning} case(s) turned yellow (黄牌), "
        f"{swept.tasks_overdue} task(s) and {swept.cases_overdue} case(s) red (红牌); "
        f"{swept.alerts} alert(s), {swept.notifications} notification(s), {swept.escalations} escalation(s)"
    )


# --------------------------------------------------------------------------------------------------
# tongban staff (people and their roles; `tongban users` is the web's)


@main.group()
def staff() -> None:
    """People and their roles in departments: set them exactly (people change departments), show them.

    Every change is recorded (who, when, the roles before and after). Use these instead of editing the
    memberships table by hand.
    """


def _pairs(values: tuple[str, ...]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        department, _, role = value.partition(":")
        if not department or not role:
            raise click.BadParameter(f"{value!r}: write DEPARTMENT:ROLE, e.g. scjg:handler", param_hint="DEPT:ROLE")
        pairs.append((department.strip(), role.strip()))
    return pairs


def _staff_engine(url: str | None) -> Any:
    engine = _make_engine(url)
    shown = _shown(str(engine.db.url))
    if _schema_revision(engine.db, shown)[0] is None:
        engine.dispose()
        raise click.ClickException(f"{shown} has no schema yet: run `tongban db upgrade` and `tongban publish`")
    return engine


def _roles(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(f"{d}:{r}" for d, r in pairs) or "no roles"


@staff.command("set")
@click.argument("user")
@click.argument("name")
@click.argument("memberships", nargs=-1, metavar="[DEPT:ROLE]...")
@click.option("--by", "actor", metavar="WHO", help="who makes the change, for the record (default: cli:<login>)")
@url_option
def staff_set(user: str, name: str, memberships: tuple[str, ...], actor: str | None, url: str | None) -> None:
    """Give USER (called NAME) exactly these roles, removing the others; none: they leave every department.

    A role is `handler`, the department's supervisor_role, or one of its `roles` (departments.yaml). Tasks
    USER still holds in a department they leave stay there, for its supervisor to reassign (改派).
    """
    import getpass

    pairs = _pairs(memberships)
    engine = _staff_engine(url)
    try:
        before = _roles(engine.staff(user).memberships) if _known(engine, user) else "a new user"
        held = engine.set_memberships(user, name, pairs, actor or f"cli:{getpass.getuser()}")
    finally:
        engine.dispose()
    click.echo(f"{user} ({name}): {_roles(sorted(set(pairs)))} (was {before})")
    for task_id in held:
        click.echo(f"  still holds task {task_id}: its department's supervisor reassigns it (改派)")


def _known(engine: Any, user: str) -> bool:
    from .engine.errors import NotFound

    try:
        engine.staff(user)
    except NotFound:
        return False
    return True


@staff.command("show")
@click.argument("user")
@url_option
def staff_show(user: str, url: str | None) -> None:
    """USER's roles, the history of their roles and the tasks they hold."""
    from .calendar import TZ

    engine = _staff_engine(url)
    try:
        record = engine.staff(user)
    finally:
        engine.dispose()
    click.echo(f"{record.user_id} ({record.name}): {_roles(record.memberships)}")
    for change in record.changes:
        before, after = (_roles([tuple(p) for p in pairs]) for pairs in (change.before, change.after))
        click.echo(f"  {change.at.astimezone(TZ):%Y-%m-%d %H:%M} by {change.actor}: {before} → {after}")
    for task in record.held:
        click.echo(f"  holds task {task.id} ({task.name}, {task.department}) of case {task.case_id}")


# --------------------------------------------------------------------------------------------------
# tongban simulate

STATE_LABELS = {
    "completed": "办结",
    "rejected": "不予许可",
    "not_accepted": "不予受理",
    "withdrawn": "撤回",
    "terminated": "终止办理",
    "in_progress": "办理中",
    "suspended": "暂停计时",
    "accepted": "已受理",
    "submitted": "待受理",
    "approved": "准予许可",
    "partly_approved": "部分许可",
}


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--cases", type=click.IntRange(min=1), required=True, help="how many cases to run to the end")
@click.option("--seed", type=int, default=0, show_default=True, help="same seed, same cases, same counts")
@click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True, help="cases in flight")
@click.option(
    "--url",
    metavar="URL",
    help="database to run in (default: a scratch SQLite file, deleted afterwards; $TONGBAN_DATABASE_URL is "
    "not used, so a simulation never writes into the real database)",
)
@click.option(
    "--calendar",
    "calendar_file",
    type=click.Path(dir_okay=False, path_type=Path),  # or none
    help="operator calendar file (default: the calendar.yaml beside FILE, else $TONGBAN_CALENDAR_FILE, else "
    "definitions/calendar.yaml; 'none' for the library's holiday data alone)",
)
def simulate(file: Path, cases: int, seed: int, concurrency: int, url: str | None, calendar_file: Path | None) -> None:
    """Run cases of a definition to the end with simulated staff, and print the figures.

    Publishes FILE (and its departments.yaml) into a scratch SQLite file (or --url), registers staff in
    every department, then accepts, claims, signs, approves — now and then rejects or returns for
    补正 — on a clock that moves in working time.
    """
    from .simulation.simulate import DefinitionRefused, SimulationStuck
    from .simulation.simulate import simulate as run

    calendar, _ = _load_calendar(calendar_file or _beside(file, "calendar.yaml"))
    try:
        report = run(file, cases, seed, url, calendar=calendar, concurrency=concurrency)
    except DefinitionRefused as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise click.ClickException(f"{file} is not a valid definition; nothing was simulated") from None
    except SimulationStuck as exc:
        raise click.ClickException(f"simulation stuck: {exc}") from None
    for line in report.lines(labels=STATE_LABELS):
        click.echo(line)


def _beside(file: Path, name: str) -> Path | None:
    candidate = file.parent / name
    return candidate if candidate.is_file() else None


# what runs by itself (tongban run-jobs, deploy, worker, incidents, report, lookups); flows/cli.py imports
# only click at load time
from flows.cli import commands as _flow_commands  # noqa: E402

for _command in _flow_commands():
    main.add_command(_command)

# the web: tongban serve, demo, users, centres (web/cli.py; only click at load time)
from web.cli import commands as _web_commands  # noqa: E402

for _command in _web_commands():
    main.add_command(_command)

if __name__ == "__main__":
    main()
