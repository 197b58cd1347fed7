"""The embedded SQLite store: its WAL is copied back into the database file by a background thread,
not inside whichever commit happens to cross SQLite's checkpoint threshold."""

from __future__ import annotations

import gc
import sqlite3
import time

import sqlalchemy as sa

from orchestrator.store import connect
from orchestrator.store.db import _checkpointer


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
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 16384  # only a backstop
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    db.dispose()


def test_a_database_nobody_uses_is_no_longer_watched(tmp_path):
    db = connect(f"sqlite:///{tmp_path / 'gone.sqlite'}")
    with db.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    key = id(db)
    assert key in _checkpointer._paths
    db.dispose()
    del db, conn
    gc.collect()
    assert key not in _checkpointer._paths
