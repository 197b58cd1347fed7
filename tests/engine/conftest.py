"""Engine fixtures: every test runs on SQLite and on PostgreSQL, with a clock the test moves.

PostgreSQL: $TONGBAN_TEST_POSTGRES_URL (default postgres@127.0.0.1:5432). A fresh database is made
for the test run and dropped after it; tables are emptied between tests. In CI (CI=true) a missing
server fails the run; elsewhere the PostgreSQL half is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator.calendar import TZ, BusinessCalendar
from orchestrator.engine import Engine, publish_paths
from orchestrator.store import connect, upgrade
from orchestrator.store.models import Base

from ..conftest import FIXTURES

POSTGRES_SERVER = os.environ.get("TONGBAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Monday 2026-03-02 10:00 in Shanghai: an ordinary working week.
START = datetime(2026, 3, 2, 10, 0, tzinfo=TZ)


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def set(self, moment: datetime) -> datetime:
        self.now = moment
        return moment


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh, migrated PostgreSQL database for this test run."""
    name = f"tongban_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    server = sa.create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        message = f"PostgreSQL is required at {POSTGRES_SERVER} ({exc.orig})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    url = POSTGRES_SERVER.rsplit("/", 1)[0] + f"/{name}"
    db = connect(url)
    upgrade(db)
    db.dispose()
    yield url
    with server.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    server.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite"
    db = connect(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path):
    if request.param == "sqlite":
        path = tmp_path / "tongban.sqlite"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        database = connect(f"sqlite:///{path}")
        yield database
        database.dispose()
        return
    database = connect(request.getfixturevalue("postgres_url"))
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with database.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    yield database
    database.dispose()


@pytest.fixture
def clock():
    return Clock()


DEPARTMENT_CODES = ["zwfw", "scjg", "gaj", "swj", "rsj", "zjj", "xf"]


@pytest.fixture
def engine(db, clock) -> Engine:
    """An engine with the test definitions published and staff in every department:
    ``<code>1``, ``<code>2``, ``<code>3`` (handlers) and ``<code>_boss`` (the supervisor)."""
    results = publish_paths(db, [FIXTURES], clock())
    problems = [str(p) for r in results for p in r.problems]
    assert not problems, problems
    tongban = Engine(db, BusinessCalendar(), clock)
    for code in DEPARTMENT_CODES:
        for n in (1, 2, 3):
            tongban.add_user(f"{code}{n}", f"{code} 办理人 {n}", [(code, "handler")])
        tongban.add_user(f"{code}_boss", f"{code} 负责人", [(code, f"{code}_supervisor")])
    return tongban


def fixture_path(name: str) -> Path:
    return FIXTURES / name
