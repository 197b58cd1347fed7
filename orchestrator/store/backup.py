"""Backups that finish while Tongban runs, are verified before they count, and restore safely.

``backup(url, dest)``
    SQLite: ``VACUUM INTO`` a temporary file beside ``dest`` (one read transaction: it never restarts
    when another process writes, unlike ``sqlite3 .backup``, and it never blocks a writer).
    PostgreSQL: ``pg_dump --format=custom`` of a snapshot exported by a transaction that counts the
    rows of that same snapshot. Then the copy is verified: SQLite's ``integrity_check`` or
    ``pg_restore --list`` and every table's data read back, the schema revision, and the row counts
    (PostgreSQL: equal to the snapshot's; SQLite: between the counts read just before and just after
    the copy, for the tables that only grow). Only then is it renamed to ``dest``, atomically: a
    backup killed at any moment leaves no ``dest`` (and an older ``dest`` untouched).
``restore(url, source)``
    The source is verified first. SQLite: refused while any process has the database open (the
    message names it); otherwise the file's content is replaced through SQLite's backup API inside
    one write transaction, so a restore killed half-way leaves the old database as it was.
    PostgreSQL: refused while other sessions are connected; otherwise ``pg_restore --clean
    --if-exists --single-transaction`` (all or nothing).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
import struct
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from .migrate import schema_revisions
from .models import Base

# Tables whose rows are never deleted: a copy taken between two counts holds between those counts.
GROWING_TABLES = ("definition_versions", "cases", "tasks", "events")
PARTIAL = ".partial-"  # temporary files are named .<dest name>.partial-<pid>


class BackupError(Exception):
    """A backup or restore that could not be made or verified; the message says what to do."""


@dataclass(frozen=True)
class Verified:
    """What a verified copy holds."""

    path: str  # the file (or the database, after a restore)
    revision: str
    head: str  # the newest revision this Tongban knows
    counts: dict[str, int]  # rows per table
    checks: list[str] = field(default_factory=list)  # what was verified, in words
    seconds: float = 0.0

    def summary(self) -> str:
        main = ", ".join(f"{table} {self.counts.get(table, 0)}" for table in GROWING_TABLES)
        return f"revision {self.revision}; {main}"


# ------------------------------------------------------------------------------------------------
# entry points


def backup(url: str, dest: str | Path) -> Verified:
    """Copy the database at ``url`` into the file ``dest``, verified; raises BackupError."""
    started = time.monotonic()
    dest = Path(dest)
    if dest.is_dir():
        raise BackupError(f"{dest} is a folder: give the backup file's name, e.g. {dest / 'tongban-backup'}")
    if not dest.parent.is_dir():
        raise BackupError(f"folder {dest.parent} does not exist: create it first")
    _remove_stale_partials(dest)
    partial = dest.parent / f".{dest.name}{PARTIAL}{os.getpid()}"
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            verified = _backup_sqlite(_sqlite_path(parsed), partial)
        elif parsed.get_backend_name() == "postgresql":
            verified = _backup_postgres(url, partial)
        else:
            raise BackupError(f"cannot back up a {parsed.get_backend_name()} database: use SQLite or PostgreSQL")
        _fsync(partial)
        os.replace(partial, dest)
        _fsync(dest.parent)
    finally:
        for leftover in (partial, Path(f"{partial}-journal")):  # VACUUM INTO journals its output too
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return Verified(str(dest), verified.revision, verified.head, verified.counts, verified.checks, _since(started))


def restore(url: str, source: str | Path) -> Verified:
    """Replace the database at ``url`` with the verified backup ``source``; raises BackupError."""
    started = time.monotonic()
    source = Path(source)
    if not source.is_file():
        raise BackupError(f"no backup file {source}")
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        verified = _restore_sqlite(source, _sqlite_path(parsed))
    elif parsed.get_backend_name() == "postgresql":
        verified = _restore_postgres(url, source)
    else:
        raise BackupError(f"cannot restore into a {parsed.get_backend_name()} database: use SQLite or PostgreSQL")
    return Verified(verified.path, verified.revision, verified.head, verified.counts, verified.checks, _since(started))


# ------------------------------------------------------------------------------------------------
# SQLite


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database has nothing to back up or restore into")
    return Path(url.database)


def _open_existing(path: Path, **options: object) -> sqlite3.Connection:
    """A connection to a database file that must exist (never creates one)."""
    if not path.is_file():
        raise BackupError(f"no database file {path}")
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, **options)  # type: ignore[arg-type]


def _backup_sqlite(path: Path, partial: Path) -> Verified:
    head, _known = schema_revisions()
    with contextlib.closing(_open_existing(path, timeout=30, isolation_level=None)) as source:
        revision = _sqlite_revision(source)
        if revision is None:
            raise BackupError(f"{path} has no schema: nothing to back up (run `tongban db upgrade` first)")
        before = _sqlite_counts(source)
        # one read transaction: writers go on, and the copy is the database as of its start
        source.execute("VACUUM INTO ?", (str(partial),))
        after = _sqlite_counts(source)
    copy = _verify_sqlite_file(partial)
    if copy.revision != revision:
        raise BackupError(f"the copy is at revision {copy.revision}, the database at {revision}: try again")
    for table in GROWING_TABLES:
        low, high, held = before.get(table, 0), after.get(table, 0), copy.counts.get(table, 0)
        if not low <= held <= high:
            raise BackupError(f"the copy holds {held} rows of {table}, the database {low}–{high}: try again")
    checks = [
        *copy.checks,
        f"row counts between the database's before and after the copy ({', '.join(GROWING_TABLES)})",
    ]
    return Verified(str(partial), copy.revision, head, copy.counts, checks)


def _verify_sqlite_file(path: Path) -> Verified:
    head, known = schema_revisions()
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as copy:
            result = [row[0] for row in copy.execute("PRAGMA integrity_check")]
            if result != ["ok"]:
                raise BackupError(f"{path} is damaged (integrity_check: {'; '.join(result[:3])})")
            revision = _sqlite_revision(copy)
            counts = _sqlite_counts(copy)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is no readable SQLite database ({exc})") from None
    _check_revision(path, revision, head, known, counts)
    return Verified(str(path), revision, head, counts, ["integrity_check ok", f"schema revision {revision}"])  # type: ignore[arg-type]


def _sqlite_revision(conn: sqlite3.Connection) -> str | None:
    has = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'").fetchone()
    if not has:
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


def _sqlite_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows of every Tongban table the database has, in one read transaction."""
    present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    tables = [t.name for t in Base.metadata.sorted_tables if t.name in present]
    in_transaction = conn.in_transaction
    if not in_transaction:
        conn.execute("BEGIN")
    try:
        return {table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}
    finally:
        if not in_transaction:
            conn.execute("COMMIT")


def _restore_sqlite(source: Path, target: Path) -> Verified:
    verified = _verify_sqlite_file(source)
    if not target.parent.is_dir():
        raise BackupError(f"folder {target.parent} does not exist")
    # a short wait rides over another process's momentary connection (its WAL checkpointer); a process
    # that keeps the database open (a web server's pool) holds it for good and is named in the refusal
    with contextlib.closing(sqlite3.connect(target, timeout=2, isolation_level=None)) as conn:
        # held until this connection closes: no other process can open the database meanwhile
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        try:
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("ROLLBACK")
        except sqlite3.OperationalError:
            raise BackupError(_in_use(target)) from None
        with contextlib.closing(sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)) as copy:
            copy.backup(conn)  # one write transaction: all of it or, if interrupted, none
        conn.execute("PRAGMA journal_mode=WAL")
        counts = _sqlite_counts(conn)
        revision = _sqlite_revision(conn)
    if revision != verified.revision or counts != verified.counts:
        raise BackupError(f"{target} does not hold what {source} holds after the restore: restore it again")
    checks = [*verified.checks, "the restored database holds the backup's row counts"]
    return Verified(str(target), verified.revision, verified.head, counts, checks)


def _in_use(path: Path) -> str:
    holders = sorted(_sqlite_holders(path))
    who = f" by process {', '.join(map(str, holders))}" if holders else ""
    return (
        f"{path} is in use{who}: stop every Tongban process that uses it (the web service, workers) and "
        "pause the cron line of `tongban timers` (comment it out with `crontab -e`), then run the restore again"
    )


def _sqlite_holders(path: Path) -> set[int]:
    """Processes that have the database open: the holder of a WAL connection's lock on the -shm file
    (seen across users), and processes of this user with the file open (from /proc)."""
    holders: set[int] = set()
    shm = Path(f"{path}-shm")
    with contextlib.suppress(OSError):
        fd = os.open(shm, os.O_RDONLY)
        try:
            # byte 128 of the -shm file (SQLite's "DMS" lock): every open WAL connection holds it shared
            probe = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 128, 1, 0)
            kind, _, _, _, pid = struct.unpack("hhqqi", fcntl.fcntl(fd, fcntl.F_GETLK, probe))
            if kind != fcntl.F_UNLCK and pid > 0:
                holders.add(pid)
        finally:
            os.close(fd)
    names = {str(path.resolve()), f"{path.resolve()}-wal", f"{path.resolve()}-shm"}
    for process in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in names for fd in (process / "fd").iterdir()):
                holders.add(int(process.name))
    holders.discard(os.getpid())
    return holders


# ------------------------------------------------------------------------------------------------
# PostgreSQL


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """(connection URI for pg_dump/pg_restore without the password, environment with PGPASSWORD)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
    if found is None:
        raise BackupError(
            f"{name} not found: install the PostgreSQL client of your server's version (postgresql-client)"
        )
    return found


def _backup_postgres(url: str, partial: Path) -> Verified:
    from . import connect

    head, _known = schema_revisions()
    uri, env = _libpq(url)
    database = connect(url, poolclass=_null_pool())
    try:
        with database.connect().execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True) as conn:
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            revision = _pg_revision(conn)
            if revision is None:
                raise BackupError("the database has no schema: nothing to back up (run `tongban db upgrade` first)")
            counts = _pg_counts(conn)
            # the dump reads the snapshot this transaction exported, so it holds exactly what was counted
            command = [_tool("pg_dump"), "--format=custom", f"--snapshot={snapshot}", f"--file={partial}", uri]
            _run(command, env, "pg_dump")
            conn.rollback()
    finally:
        database.dispose()
    copy = _verify_dump(partial)
    if copy.revision != revision or copy.counts != counts:
        differ = [t for t in counts if copy.counts.get(t) != counts[t]]
        raise BackupError(f"the dump does not hold what the database held (tables {', '.join(differ)}): try again")
    return Verified(str(partial), revision, head, counts, [*copy.checks, "row counts equal to the snapshot dumped"])


def _verify_dump(path: Path) -> Verified:
    head, known = schema_revisions()
    listing = _run([_tool("pg_restore"), "--list", str(path)], None, "pg_restore --list", what=path)
    entries = [line for line in listing.splitlines() if line and not line.startswith(";")]
    counts, revision = _dump_rows(path)
    _check_revision(path, revision, head, known, counts)
    checks = [
        f"pg_restore --list reads {len(entries)} entries",
        "every table's data read back",
        f"schema revision {revision}",
    ]
    return Verified(str(path), revision, head, counts, checks)  # type: ignore[arg-type]


def _dump_rows(path: Path) -> tuple[dict[str, int], str | None]:
    """Rows per table in a custom-format dump (its COPY data, read back through pg_restore), and the
    schema revision it holds."""
    tables = {t.name for t in Base.metadata.sorted_tables}
    counts: dict[str, int] = {}
    revision: str | None = None
    command = [_tool("pg_restore"), "--data-only", "--file=-", str(path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        current: str | None = None
        for line in process.stdout:
            if current is None:
                if line.startswith("COPY ") and line.rstrip().endswith("FROM stdin;"):
                    current = line.split()[1].rsplit(".", 1)[-1].strip('"')
                    counts.setdefault(current, 0)
            elif line == "\\.\n":
                current = None
            else:
                counts[current] += 1
                if current == "alembic_version":
                    revision = line.rstrip("\n")
        error = process.stderr.read() if process.stderr else ""
    if process.returncode != 0:
        raise BackupError(f"{path} cannot be read back: {_last_line(error)}")
    return {t: n for t, n in counts.items() if t in tables}, revision


def _restore_postgres(url: str, source: Path) -> Verified:
    from . import connect

    verified = _verify_dump(source)
    uri, env = _libpq(url)
    database = connect(url, poolclass=_null_pool())
    try:
        with database.connect() as conn:
            others = conn.execute(
                text(
                    "SELECT pid, coalesce(nullif(application_name, ''), usename), coalesce(host(client_addr), 'local')"
                    " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).all()
        if others:
            sessions = "; ".join(f"pid {pid} ({name}, {host})" for pid, name, host in others[:5])
            raise BackupError(
                f"{len(others)} other session(s) are connected to the database ({sessions}): stop every Tongban "
                "process that uses it (web service, workers) and pause the cron line of `tongban timers`, then "
                "run the restore again"
            )
        command = [
            _tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
            f"--dbname={uri}",
            str(source),
        ]
        _run(command, env, "pg_restore")
        with database.connect() as conn:
            revision, counts = _pg_revision(conn), _pg_counts(conn)
    finally:
        database.dispose()
    if revision != verified.revision or counts != verified.counts:
        raise BackupError("the database does not hold what the dump holds after the restore: restore it again")
    shown = make_url(url).render_as_string(hide_password=True)
    checks = [*verified.checks, "the restored database holds the dump's row counts"]
    return Verified(shown, revision, verified.head, counts, checks)  # type: ignore[arg-type]


def _pg_revision(conn: object) -> str | None:
    has = conn.execute(text("SELECT to_regclass('alembic_version') IS NOT NULL")).scalar_one()  # type: ignore[attr-defined]
    if not has:
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()  # type: ignore[attr-defined]


def _pg_counts(conn: object) -> dict[str, int]:
    present = set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")).scalars())  # type: ignore[attr-defined]
    tables = [t.name for t in Base.metadata.sorted_tables if t.name in present]
    return {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables}  # type: ignore[attr-defined]


def _null_pool() -> type:
    from sqlalchemy.pool import NullPool

    return NullPool


# ------------------------------------------------------------------------------------------------
# shared


def _check_revision(path: Path, revision: str | None, head: str, known: set[str], counts: Mapping[str, int]) -> None:
    if revision is None:
        raise BackupError(f"{path} holds no Tongban schema (no schema revision): it is no usable backup")
    if revision not in known:
        raise BackupError(f"{path} is at schema revision {revision}, which this Tongban does not know (newer?)")
    if revision == head:
        missing = [t.name for t in Base.metadata.sorted_tables if t.name not in counts]
        if missing:
            raise BackupError(f"{path} lacks the tables {', '.join(missing)}: it is no usable backup")


def _run(command: list[str], env: dict[str, str] | None, name: str, what: object = None) -> str:
    """Run a PostgreSQL client tool to the end (it is killed if we are interrupted); its output."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as process:
        try:
            out, err = process.communicate()
        except BaseException:
            process.kill()
            raise
    if process.returncode != 0:
        subject = f" {what}" if what is not None else ""
        raise BackupError(f"{name}{subject} failed: {_last_line(err)}")
    return out


def _last_line(text_: str) -> str:
    lines = [line.strip() for line in text_.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _remove_stale_partials(dest: Path) -> None:
    """Temporary files of earlier backups to the same name whose process is gone (killed)."""
    for stale in dest.parent.glob(f".{dest.name}{PARTIAL}*"):
        pid = stale.name.rsplit(PARTIAL, 1)[-1].split("-")[0]  # .<dest>.partial-<pid>[-journal]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _since(started: float) -> float:
    return time.monotonic() - started
