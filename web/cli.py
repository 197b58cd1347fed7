"""The web's commands: ``tongban serve``, ``tongban demo``, ``tongban users …`` and ``tongban centres …``.
Only click is imported at load time (``tongban --help`` stays fast)."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any

import click

url_option = click.option("--url", metavar="URL", help="database URL (default: $TONGBAN_DATABASE_URL)")


def _settings(url: str | None = None, **overrides: Any) -> Any:
    from orchestrator.settings import SettingsError, load_settings

    try:
        return load_settings(database_url=url, **overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _engine(url: str | None) -> Any:
    from orchestrator.settings import SettingsError, make_engine

    try:
        return make_engine(_settings(url))
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _refused(exc: Exception) -> click.ClickException:
    return click.ClickException(" ".join(str(getattr(exc, "message", exc)).split()))


def _pairs(values: tuple[str, ...]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        department, _, role = value.partition(":")
        if not department or not role:
            raise click.BadParameter(f"{value!r}: write department:role, e.g. scjg:handler", param_hint="--member")
        pairs.append((department, role))
    return pairs


def _password(given: str | None) -> str:
    if given:
        return given
    if os.environ.get("TONGBAN_PASSWORD"):
        return os.environ["TONGBAN_PASSWORD"]
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise click.ClickException("the two passwords differ: nothing changed")
    return first


@click.command()
@url_option
@click.option("--host", help="address to listen on (default: $TONGBAN_WEB_HOST or 127.0.0.1)")
@click.option("--port", type=int, help="port (default: $TONGBAN_WEB_PORT or 8000)")
@click.option("--workers", type=int, help="uvicorn worker processes (default: $TONGBAN_WEB_WORKERS or 1)")
@click.option(
    "--jobs/--no-jobs",
    default=True,
    show_default=True,
    help="run the embedded scheduler (automatic steps, timers, notices) in this process; "
    "--no-jobs when `tongban run-jobs` or Prefect workers run them",
)
@click.option("--demo", is_flag=True, help="show the demo log-ins on the log-in page")
def serve(url: str | None, host: str | None, port: int | None, workers: int | None, jobs: bool, demo: bool) -> None:
    """Serve the web pages and the REST API (uvicorn)."""
    import uvicorn

    settings = _settings(url, web_host=host, web_port=port, web_workers=workers, demo=demo or None)
    _engine(url).dispose()  # the calendar and the database checked before any worker starts
    os.environ["TONGBAN_DATABASE_URL"] = settings.resolved_database_url
    os.environ["TONGBAN_WEB_JOBS"] = "1" if jobs else "0"
    if demo:
        os.environ["TONGBAN_DEMO"] = "true"
    click.echo(f"通办 on http://{settings.web_host}:{settings.web_port}/  (API docs: /api/docs)")
    if settings.web_workers > 1 and jobs:
        click.echo("the scheduler runs in the first worker only (jobs are shared through the database anyway)")
    uvicorn.run(
        "web.serve:app",
        factory=True,
        host=settings.web_host,
        port=settings.web_port,
        workers=settings.web_workers,
        log_level="info",
        proxy_headers=False,
    )


@click.command()
@url_option
@click.option("--cases", type=click.IntRange(1, 100_000), default=300, show_default=True)
def demo(url: str | None, cases: int) -> None:
    """Fill an empty database with demo cases (made by running the engine) and demo log-ins."""
    from .demo import demo_logins, seed

    settings = _settings(url)
    click.echo(seed(settings, cases=cases))
    engine = _engine(url)
    click.echo(f"demo log-ins (password {settings.demo_password}):")
    for login in demo_logins(engine):
        click.echo(f"  {login.user_id:<16} {login.name}  {login.what}")
    engine.dispose()


@click.group()
def users() -> None:
    """Log-ins: add, import, change a password, list; API tokens."""


@users.command("add")
@click.argument("user_id")
@click.option("--name", required=True, help="the person's name as pages show it")
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(["window", "manager", "designer", "admin"]),
    help="a city-wide role (repeat for several)",
)
@click.option(
    "--member",
    "members",
    multiple=True,
    metavar="DEPT:ROLE",
    help="a role in a department, e.g. scjg:handler or scjg:scjg_supervisor (repeat)",
)
@click.option("--centre", help="a window's service centre (see `tongban centres list`)")
@click.option("--password", help="default: $TONGBAN_PASSWORD, else asked twice")
@url_option
def users_add(
    user_id: str,
    name: str,
    roles: tuple[str, ...],
    members: tuple[str, ...],
    centre: str | None,
    password: str | None,
    url: str | None,
) -> None:
    from orchestrator.engine.errors import TongbanError

    from .accounts import add_account

    engine = _engine(url)
    try:
        add_account(
            engine,
            user_id,
            name,
            _password(password),
            roles=roles,
            memberships=_pairs(members),
            centre=centre,
            actor=getpass.getuser(),
        )
    except TongbanError as exc:
        raise _refused(exc) from None
    finally:
        engine.dispose()
    click.echo(f"{user_id} ({name}) can log in")


@users.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@url_option
def users_import(csv_file: Path, url: str | None) -> None:
    """Accounts from a CSV file: user_id,name,password,roles,memberships,centre (roles and memberships
    space-separated; a membership is department:role). Every row is checked before any is added."""
    from orchestrator.engine.errors import TongbanError

    from .accounts import import_accounts

    engine = _engine(url)
    try:
        count = import_accounts(engine, csv_file, getpass.getuser())
    except TongbanError as exc:
        raise _refused(exc) from None
    finally:
        engine.dispose()
    click.echo(f"{count} account(s) added")


@users.command("passwd")
@click.argument("user_id")
@click.option("--password", help="default: $TONGBAN_PASSWORD, else asked twice")
@url_option
def users_passwd(user_id: str, password: str | None, url: str | None) -> None:
    """A new password (the person's open sessions end)."""
    from orchestrator.engine.errors import TongbanError

    from .accounts import set_password

    engine = _engine(url)
    try:
        set_password(engine.db, user_id, _password(password), getpass.getuser())
    except TongbanError as exc:
        raise _refused(exc) from None
    finally:
        engine.dispose()
    click.echo(f"password of {user_id} changed; their sessions ended")


@users.command("list")
@url_option
def users_list(url: str | None) -> None:
    from .accounts import list_accounts

    engine = _engine(url)
    for row in list_accounts(engine.db):
        members = " ".join(f"{d}:{r}" for d, r in row.memberships)
        state = "" if row.active else "  (blocked)"
        click.echo(f"{row.user_id:<18} {row.name}  roles: {' '.join(row.roles) or '—'}  {members}{state}")
    engine.dispose()


@users.command("token")
@click.argument("user_id")
@click.option("--name", required=True, help="what the token is for (the client's name)")
@click.option("--days", type=click.IntRange(1, 3650), help="valid this many days (default: until revoked)")
@url_option
def users_token(user_id: str, name: str, days: int | None, url: str | None) -> None:
    """Make an API token for a client acting as USER_ID (shown once)."""
    from orchestrator.engine.errors import TongbanError

    from .accounts import create_api_token

    engine = _engine(url)
    try:
        token = create_api_token(engine.db, user_id, name, getpass.getuser(), days)
    except TongbanError as exc:
        raise _refused(exc) from None
    finally:
        engine.dispose()
    click.echo(token)


@click.group()
def centres() -> None:
    """Service centres (政务服务中心) whose windows accept applications."""


@centres.command("add")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--level", type=click.Choice(["city", "district", "community"]), required=True)
@click.option("--parent", help="the centre above it")
@url_option
def centres_add(code: str, name: str, level: str, parent: str | None, url: str | None) -> None:
    from orchestrator.engine.errors import TongbanError

    from .accounts import add_centre

    engine = _engine(url)
    try:
        add_centre(engine.db, code, name, level, parent)
    except TongbanError as exc:
        raise _refused(exc) from None
    finally:
        engine.dispose()
    click.echo(f"centre {code} ({name}) added")


@centres.command("list")
@url_option
def centres_list(url: str | None) -> None:
    from .accounts import centres as all_centres

    engine = _engine(url)
    for centre in all_centres(engine.db).values():
        click.echo(
            f"{centre.code:<20} {centre.level:<10} {centre.name}" + (f"  (in {centre.parent})" if centre.parent else "")
        )
    engine.dispose()


def commands() -> list[click.Command]:
    return [serve, demo, users, centres]
