"""Database connections: the embedded SQLite file by default, PostgreSQL when scaled out."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event

DEFAULT_URL = "sqlite:///tongban.sqlite"
URL_VARIABLE = "TONGBAN_DATABASE_URL"


def database_url(url: str | None = None) -> str:
    """The URL given, else $TONGBAN_DATABASE_URL, else a SQLite file in the working directory."""
    return url or os.environ.get(URL_VARIABLE) or DEFAULT_URL


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def connect(url: str | None = None, *, sqlite_synchronous: str = "FULL", **engine_options: Any) -> Engine:
    """An engine with the settings each backend needs for one-transaction-per-transition.

    ``sqlite_synchronous``: FULL (the default) makes every commit durable before it returns; NORMAL may
    lose the last commits on a power cut (see the operator's guide) and is only ever chosen explicitly.
    """
    url = database_url(url)
    engine_options = {"json_serializer": _json_text, "json_deserializer": orjson.loads, **engine_options}
    if url.startswith("sqlite"):
        if sqlite_synchronous not in SQLITE_SYNCHRONOUS:
            raise ValueError(f"sqlite_synchronous {sqlite_synchronous!r}: use FULL or NORMAL")
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"timeout": 30, "check_same_thread": False, **engine_options.pop("connect_args", {})}
        engine = create_engine(url, connect_args=connect_args, **engine_options)
        _sqlite_setup(engine, sqlite_synchronous, int(float(connect_args["timeout"]) * 1000))
        if path and path != ":memory:":
            _checkpoint_while_open(engine, path)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, **engine_options)


SQLITE_SYNCHRONOUS = ("FULL", "NORMAL")


def _into_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """``PRAGMA journal_mode=WAL``, waiting like any writer. On a new file still in rollback mode, the
    switch needs the exclusive lock while another process may hold the write lock (two `db upgrade`s
    at once): SQLite then answers "database is locked" at once, without its busy handler, to avoid a
    deadlock, so the wait is done here."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_setup(engine: Engine, synchronous: str, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        _into_wal(cursor, busy_timeout_ms)
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        # the checkpointer thread (below) copies the WAL back; SQLite's own checkpoint finishes the tail
        cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_CHECKPOINT_PAGES[synchronous]}")
        cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")  # a writer waits this long for the lock
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock up front, so two writers serialize instead of failing
        # with "database is locked" when the first read is upgraded to a write.
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.connection.driver_connection.execute(f"BEGIN {mode}")  # type: ignore[union-attr]


# The background checkpoint never finishes while writers keep writing, so the WAL only starts again from
# its beginning after SQLite's own checkpoint (run by the commit that crosses this many pages) completes.
# Until then every commit makes the file longer, and with FULL the fsync of a longer file also commits
# the file system's journal: commits cost about a third more (bench/engine.py, 开办企业: 1,470 against
# 1,560 completions/s with 2,048). NORMAL has no fsync per commit, so the inline checkpoint is what costs:
# it keeps 64 MiB (2,900 against 2,700).
BACKSTOP_CHECKPOINT_PAGES = {"FULL": 2048, "NORMAL": 16384}  # of 4 KiB pages: 8 MiB, 64 MiB
WAL_SIZE_LIMIT = 64 * 1024 * 1024
CHECKPOINT_INTERVAL_S = 0.1


class _Checkpointer:
    """Copies each SQLite file's WAL back into the database on a thread of its own.

    SQLite's automatic checkpoint runs inside whichever commit crosses 1,000 WAL pages: that commit
    copies the pages and waits for two fsyncs (about 10 ms here), which averaged over the commits
    between was most of a task completion's time. A PASSIVE checkpoint on another connection does
    the same work without blocking writers, and sqlite3 releases the GIL while it runs. The fsyncs
    are the same as before, so durability does not change.
    """

    def __init__(self) -> None:
        # id(engine) -> (weak reference to the engine, its file). No finalizer callbacks: the garbage
        # collector runs them on whichever thread allocates, possibly one holding self._lock, and a
        # callback taking that lock again deadlocked the process.
        self._watched: dict[int, tuple[weakref.ref[Engine], str]] = {}
        self._lock = threading.Lock()
        self._round = threading.Lock()  # held while a round of checkpoints runs
        self._thread: threading.Thread | None = None

    def watch(self, engine: Engine, path: str) -> None:
        with self._lock:
            self._watched[id(engine)] = (weakref.ref(engine), path)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="tongban-wal-checkpoint", daemon=True)
                self._thread.start()

    def forget(self, engine: Engine) -> None:
        """Stop checkpointing for ``engine``; returns once no checkpoint of its file is running, so the
        caller may delete the file (a checkpoint opening it after its WAL was deleted makes a new one)."""
        with self._lock:
            self._watched.pop(id(engine), None)
        with self._round:
            pass

    def paths(self) -> set[str]:
        """The files of the engines still alive; the entries of collected ones are dropped."""
        with self._lock:
            watched = list(self._watched.items())
        alive = set()
        for key, (ref, path) in watched:
            if ref() is not None:
                alive.add(path)
                continue
            with self._lock:
                if self._watched.get(key, (None, ""))[0] is ref:
                    del self._watched[key]
        return alive

    def _run(self) -> None:
        while True:
            time.sleep(CHECKPOINT_INTERVAL_S)
            with self._round:
                for path in self.paths():
                    _checkpoint(path)


def _checkpoint(path: str) -> None:
    """One PASSIVE checkpoint on a connection of its own, closed again: an open one would keep the WAL
    file alive after the application closed the database, and would outlive a file replaced under it."""
    try:
        conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=rw", uri=True, timeout=0)
    except sqlite3.Error:  # the file is gone (mode=rw never creates one)
        return
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sqlite3.Error:  # busy: the next round tries again
        pass
    finally:
        conn.close()


_checkpointer = _Checkpointer()


def _checkpoint_while_open(engine: Engine, path: str) -> None:
    """Checkpoint ``path`` while ``engine`` is in use: from its creation and again from the first
    connection after a dispose, never after ``engine.dispose()`` returned."""
    _checkpointer.watch(engine, path)
    event.listen(engine, "engine_disposed", _checkpointer.forget)
    reference = weakref.ref(engine)  # the listener lives on the engine: no cycle keeping it alive

    def watch_again(*_: Any) -> None:
        if (alive := reference()) is not None:
            _checkpointer.watch(alive, path)

    event.listen(engine, "connect", watch_again)


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction that sees one state of the database in all its statements: SQLite's
    deferred transaction (which never takes the write lock) or PostgreSQL's REPEATABLE READ (READ
    COMMITTED would show each statement a newer state, e.g. a case still submitted beside its tasks
    already accepted)."""
    options: dict[str, Any] = {"sqlite_begin": "DEFERRED"}
    if engine.dialect.name == "postgresql":
        options.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    with engine.connect().execution_options(**options) as connection, connection.begin():
        yield connection


TEST_SERVER_VARIABLE = "TONGBAN_TEST_POSTGRES_URL"
DEFAULT_TEST_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def test_server_url() -> str:
    """The PostgreSQL server tests and benchmarks make their scratch databases on."""
    return os.environ.get(TEST_SERVER_VARIABLE, DEFAULT_TEST_SERVER)


@contextmanager
def scratch_postgres(prefix: str, *, durable: bool = True) -> Iterator[str]:
    """A fresh database on the test server, dropped afterwards; yields its URL.

    ``durable=False`` lets commits skip the WAL flush (a throw-away test database).
    Raises sqlalchemy's OperationalError when the server cannot be reached.
    """
    server_url = test_server_url()
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    server = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            if not durable:
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        try:
            yield server_url.rsplit("/", 1)[0] + f"/{name}"
        finally:  # a failed run too: the shared test server would collect its databases
            with server.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        server.dispose()


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
