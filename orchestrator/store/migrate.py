"""Alembic, driven from code: `tongban db upgrade` and the tests use the same migrations.

An upgrade is serialized across processes: it reads the current revision and migrates inside one
transaction that holds SQLite's write lock (``BEGIN IMMEDIATE``) or a PostgreSQL advisory lock, so
two upgrades started at once on an empty database create the schema once; the second finds it at
the newest revision and does nothing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, text

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key of `tongban db upgrade` (any constant; "tongban" in ASCII, shortened)
UPGRADE_LOCK = 0x746F6E6762616E


def alembic_config(engine: Engine, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def schema_revisions() -> tuple[str, set[str]]:
    """(head, every revision) of this Tongban's migrations."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    assert head is not None
    return head, {r.revision for r in script.walk_revisions()}


def head_revision() -> str:
    """The newest revision of this Tongban's migrations."""
    return schema_revisions()[0]


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema up to date (creates it on an empty database). Returns (revision before,
    revision after), both read under the lock that serializes upgrades."""
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        if sqlite:
            # a batch migration copies a table and drops the old one, which the other tables' foreign keys
            # would refuse while they are enforced; they are checked before the commit instead. (The
            # pragma is a no-op inside a transaction, so it comes first.)
            raw.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with connection.begin():  # SQLite: BEGIN IMMEDIATE (orchestrator.store.db), the write lock
                if not sqlite:
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK})
                before = MigrationContext.configure(connection).get_current_revision()
                command.upgrade(alembic_config(engine, connection), revision)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {broken[:5]}")
                after = MigrationContext.configure(connection).get_current_revision()
        finally:
            if sqlite:  # the pooled connection goes back enforcing them, whatever happened
                raw.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
    return before, after


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
