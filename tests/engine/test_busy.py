"""What the database cannot do now reaches the caller as one typed, retryable error (``Busy``, which the
API answers with 503 and Retry-After), never a raw driver exception; the engine retries a transition
once itself first, and nothing of a failed attempt is written."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from orchestrator.calendar import BusinessCalendar
from orchestrator.engine import Busy, Engine
from orchestrator.engine import unit as unit_module
from orchestrator.store import connect

from .helpers import accepted_kaiban, open_tasks, task_row


def _impatient_engine(db: sa.Engine, clock) -> Engine:
    """A second engine on the same database that gives up on a held lock after 0.2 s."""
    url = db.url.render_as_string(hide_password=False)
    if db.dialect.name == "sqlite":
        other = connect(url, connect_args={"timeout": 0.2})
    else:
        other = connect(url, connect_args={"options": "-c lock_timeout=200"})
    return Engine(other, BusinessCalendar(), clock)


class _CaseHolder:
    """Another connection holding the write lock on a case (PostgreSQL: its row; SQLite: the database)."""

    def __init__(self, db: sa.Engine, case_id: int) -> None:
        self.conn = db.connect()
        self.tx = self.conn.begin()
        if db.dialect.name == "sqlite":
            self.conn.exec_driver_sql("UPDATE cases SET revision = revision WHERE id = ?", (case_id,))
        else:
            self.conn.exec_driver_sql("SELECT id FROM cases WHERE id = %s FOR UPDATE", (case_id,))

    def release(self) -> None:
        if self.tx.is_active:
            self.tx.rollback()
        self.conn.close()


def test_a_held_lock_is_busy_after_one_retry_and_nothing_is_written(engine, db, clock):
    """The lock is the prepared hot path's first statement, run on the driver cursor outside SQLAlchemy's
    error wrapping: the driver's own error still comes out typed."""
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    impatient = _impatient_engine(db, clock)
    attempts = []
    run_once = impatient.core._run_once
    impatient.core._run_once = lambda *a: (attempts.append(1), run_once(*a))[1]
    holder = _CaseHolder(db, case_id)
    try:
        with pytest.raises(Busy) as info:
            impatient.claim_task(licence, "scjg1")
    finally:
        holder.release()
    assert len(attempts) == 2  # tried, waited, tried once more
    assert info.value.retry_after > 0
    assert "busy" in info.value.message and "try again" in info.value.message
    assert task_row(engine, licence)["state"] == "ready"
    impatient.claim_task(licence, "scjg1")  # the lock is free again: it goes through
    assert task_row(engine, licence)["assignee"] == "scjg1"
    impatient.dispose()


def test_the_retry_succeeds_when_the_lock_is_let_go_in_between(engine, db, clock, monkeypatch):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    impatient = _impatient_engine(db, clock)
    holder = _CaseHolder(db, case_id)
    monkeypatch.setattr(unit_module.time, "sleep", lambda _s: holder.release())  # let go before the retry
    impatient.claim_task(licence, "scjg1")
    assert task_row(engine, licence)["state"] == "claimed"
    impatient.dispose()


def test_the_errors_map_by_kind():
    assert isinstance(unit_module.database_error(sqlite3.OperationalError("database is locked")), Busy)
    assert unit_module.database_error(ValueError("not a database error")) is None
    assert isinstance(unit_module.database_error(sa.exc.TimeoutError("QueuePool limit")), Busy)


def test_a_pool_with_no_free_connection_is_busy_not_a_hang(tmp_path, fixture_definitions, clock):
    """Every connection taken and none coming back within the pool timeout: Busy, quickly."""
    db = connect(f"sqlite:///{tmp_path / 'x.sqlite'}", pool_size=1, max_overflow=0, pool_timeout=0.2)
    taken = db.connect()
    engine = Engine(db, BusinessCalendar(), clock)
    try:
        with pytest.raises(Busy, match="no free connection"):
            engine.add_user("u1", "一")
    finally:
        taken.close()
        db.dispose()


def test_warm_connections_follow_the_pool_they_draw_from(tmp_path):
    """WarmConnections reads QueuePool's size, overflow and timeout (the last two are private: pinned)."""
    db = connect(f"sqlite:///{tmp_path / 'x.sqlite'}", pool_size=3, max_overflow=4, pool_timeout=2.5)
    warm = unit_module.WarmConnections(db)
    assert (warm.keep, warm.limit, warm.timeout) == (3, 7, 2.5)
    taken = [warm.take() for _ in range(7)]
    for conn in taken:
        warm.give(conn)
    assert len(warm._idle) == 3 and warm._open == 3  # the overflow went back to the pool and closed
    warm.drop_idle()
    assert warm._open == 0
    db.dispose()
