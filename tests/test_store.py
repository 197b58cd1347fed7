"""The embedded SQLite store: its WAL is copied back into the database file by a background thread,
not inside whichever commit happens to cross SQLite's checkpoint threshold; a database with cases in
it upgrades to the newest schema."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import sqlite3
import threading
import time

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from orchestrator.store import connect, upgrade
from orchestrator.store import db as store_db
from orchestrator.store.db import CHECKPOINT_INTERVAL_S, _checkpointer, scratch_postgres
from orchestrator.store.migrate import current, head_revision
from orchestrator.store.models import Base


def _wait_for(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_the_wal_is_checkpointed_in_the_background(tmp_path):
    path = tmp_path / "store.sqlite"
    db = connect(f"sqlite:///{path}")
    with db.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE blobs (id INTEGER PRIMARY KEY, body TEXT)")
    with db.begin() as conn:  # 2 MB: far below the 64 MB at which SQLite would checkpoint by itself
        conn.execute(sa.text("INSERT INTO blobs (body) VALUES (:body)"), [{"body": "x" * 1000}] * 2000)
    db_file_holds_the_rows = _wait_for(lambda: path.stat().st_size > 2_000_000)
    assert db_file_holds_the_rows, "the background checkpoint never copied the WAL into the database file"
    raw = sqlite3.connect(path)  # and what was copied is the data
    assert raw.execute("SELECT count(*) FROM blobs").fetchone() == (2000,)
    raw.close()
    db.dispose()


def test_connections_leave_checkpoints_to_the_background_thread(tmp_path):
    db = connect(f"sqlite:///{tmp_path / 'store.sqlite'}")
    with db.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 2048  # the tail, past 8 MiB
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    db.dispose()


def test_a_database_nobody_uses_is_no_longer_watched(tmp_path):
    path = str(tmp_path / "gone.sqlite")
    db = connect(f"sqlite:///{path}")
    with db.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    assert path in _checkpointer.paths()
    db.dispose()
    del db, conn
    gc.collect()
    assert path not in _checkpointer.paths()


def test_the_checkpointer_lets_go_of_a_file_once_its_engine_is_disposed(tmp_path, monkeypatch):
    """The studio's simulation deletes its scratch folder right after dispose(); a checkpoint opening the
    file meanwhile made its WAL again and removing the folder failed with 'Directory not empty'."""
    path = str(tmp_path / "scratch.sqlite")
    checkpointed: list[str] = []

    def slow_checkpoint(file: str) -> None:  # as on a busy disk: the round is still running at dispose
        time.sleep(CHECKPOINT_INTERVAL_S)
        checkpointed.append(file)

    monkeypatch.setattr(store_db, "_checkpoint", slow_checkpoint)
    db = connect(f"sqlite:///{path}")
    with db.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    assert _wait_for(lambda: path in checkpointed)
    db.dispose()  # db itself stays referenced, as in a caller that deletes the folder next
    after_dispose = len(checkpointed)
    time.sleep(5 * CHECKPOINT_INTERVAL_S)
    assert checkpointed[after_dispose:] == []
    with db.connect() as conn:  # used again after dispose: watched again
        conn.execute(sa.text("SELECT 1"))
    assert _wait_for(lambda: len(checkpointed) > after_dispose)
    db.dispose()


def test_an_engine_collected_while_the_checkpointer_holds_its_lock_does_not_hang(tmp_path):
    """The garbage collector frees engines on whichever thread allocates next, possibly the checkpointer
    holding its lock; a finalizer taking that lock again once hung the whole test run."""
    db = connect(f"sqlite:///{tmp_path / 'cyclic.sqlite'}")
    db.itself = db  # only the cyclic collector frees it
    del db

    def collect_holding_the_lock() -> None:
        with _checkpointer._lock:
            gc.collect()

    collector = threading.Thread(target=collect_holding_the_lock, daemon=True)
    collector.start()
    collector.join(10)
    assert not collector.is_alive(), "collecting an engine under the checkpointer's lock deadlocked"
    other = tmp_path / "after.sqlite"
    connect(f"sqlite:///{other}").dispose()  # and the checkpointer still takes new databases


def _fill(conn: sa.Connection, table: str, values: dict) -> int:
    """Insert a row giving every NOT NULL column without a default a value of its type."""
    columns = sa.inspect(conn).get_columns(table)
    row = dict(values)
    for column in columns:
        if column["name"] in row or column["nullable"] or column.get("default") is not None:
            continue
        if column["name"] == "id":
            continue
        kind = str(column["type"]).upper()
        if "INT" in kind:
            row[column["name"]] = 1
        elif "BOOL" in kind:
            row[column["name"]] = False
        elif "DATETIME" in kind or "TIMESTAMP" in kind:
            row[column["name"]] = "2026-03-02 02:00:00.000000"
        elif "JSON" in kind:
            row[column["name"]] = "{}"
        else:
            row[column["name"]] = f"{table}-{column['name']}"
    names = ", ".join(row)
    marks = ", ".join(f":{n}" for n in row)
    return conn.execute(sa.text(f"INSERT INTO {table} ({names}) VALUES ({marks}) RETURNING id"), row).scalar_one()


def test_a_database_with_cases_upgrades_from_0003(tmp_path):
    db = connect(f"sqlite:///{tmp_path / 'old.sqlite'}")
    upgrade(db, "0003")
    with db.begin() as conn:  # a case with a task: the task's foreign key points at the case
        case_id = _fill(conn, "cases", {"number": "TB-OLD-1", "state": "in_progress"})
        _fill(conn, "tasks", {"case_id": case_id, "state": "ready", "department": "scjg"})
    upgrade(db)
    with db.connect() as conn:
        assert conn.exec_driver_sql("SELECT number, revision FROM cases").all() == [("TB-OLD-1", 1)]
        assert conn.exec_driver_sql("SELECT count(*) FROM tasks WHERE case_id = ?", (case_id,)).scalar() == 1
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert current(db) == head_revision()
    db.dispose()


def test_the_migrations_build_the_schema_the_models_describe(tmp_path):
    """A column or index added to the models without its migration (or the reverse) shows up here."""
    db = connect(f"sqlite:///{tmp_path / 'schema.sqlite'}")
    upgrade(db)
    with db.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    db.dispose()


def _triggers(db: sa.Engine) -> dict[str, str]:
    """Every trigger (and trigger function) of the database, by name, whitespace normalized."""
    with db.connect() as conn:
        if db.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").all()
        else:
            rows = conn.exec_driver_sql(
                "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal"
                " UNION ALL SELECT proname, prosrc FROM pg_proc WHERE starts_with(proname, 'tongban')"
            ).all()
    return {name: " ".join(text.split()) for name, text in rows}


@pytest.fixture(params=["sqlite", "postgres"])
def two_databases(request, tmp_path):
    """Two empty databases of one backend: (one for the migrations, one for the models)."""
    if request.param == "sqlite":
        yield connect(f"sqlite:///{tmp_path / 'migrated.sqlite'}"), connect(f"sqlite:///{tmp_path / 'models.sqlite'}")
        return
    with contextlib.ExitStack() as stack:
        try:
            urls = [stack.enter_context(scratch_postgres(f"tongban_schema_{n}", durable=False)) for n in (1, 2)]
        except sa.exc.OperationalError as exc:
            if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                pytest.fail(f"PostgreSQL is required: {exc.orig}")
            pytest.skip(f"PostgreSQL is not reachable: {exc.orig}")
        databases = [connect(url) for url in urls]
        yield tuple(databases)
        for database in databases:
            database.dispose()


def test_migrations_and_models_build_the_same_tables_and_hand_edit_triggers(two_databases):
    migrated, modelled = two_databases
    upgrade(migrated)
    Base.metadata.create_all(modelled)
    with migrated.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    triggers = _triggers(migrated)
    assert {"tr_cases_edited", "tr_tasks_edited", "tr_tasks_deleted", "tr_signoffs_edited"} <= set(triggers)
    assert triggers == _triggers(modelled)
    for database in two_databases:
        database.dispose()


def _upgrade_from_the_cli(url: str, barrier, out) -> None:
    """One `tongban db upgrade` in a process of its own, started with the others at a barrier."""
    from click.testing import CliRunner

    from orchestrator.cli import main
    from orchestrator.store.migrate import MIGRATIONS  # noqa: F401  (imported before the race, as a warm process)

    CliRunner().invoke(main, ["db", "current", "--url", "sqlite://"])  # the lazy imports, done before the race
    barrier.wait(timeout=60)
    result = CliRunner().invoke(main, ["db", "upgrade", "--url", url])
    out.put((result.exit_code, result.output))


def test_two_upgrades_at_once_on_an_empty_database_create_the_schema_once(empty_url):
    """Both used to read "(empty)" before either had migrated, and both said they upgraded from it."""
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(2), context.Queue()
    racers = [context.Process(target=_upgrade_from_the_cli, args=(empty_url, barrier, out)) for _ in range(2)]
    for racer in racers:
        racer.start()
    results = [out.get(timeout=120) for _ in racers]
    for racer in racers:
        racer.join(60)
    assert [code for code, _ in results] == [0, 0], results
    outputs = sorted(output for _, output in results)
    assert f"schema already at revision {head_revision()} (head)" in outputs[0], outputs
    assert f"schema upgraded from (empty) to revision {head_revision()} (head)" in outputs[1], outputs
    db = connect(empty_url)
    assert current(db) == head_revision()
    db.dispose()
