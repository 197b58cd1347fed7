"""Engine fixtures: every test runs on SQLite and on PostgreSQL, with a clock the test moves.

PostgreSQL: $TONGBAN_TEST_POSTGRES_URL (default postgres@127.0.0.1:5432). A fresh database is made
for the test run and dropped after it; tables are emptied between tests. In CI (CI=true) a missing
server fails the run; elsewhere the PostgreSQL half is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator.calendar import TZ, BusinessCalendar
from orchestrator.definition.validator import check_paths, load_departments
from orchestrator.engine import Engine
from orchestrator.engine.publish import store_definition, sync_departments
from orchestrator.store import connect, upgrade
from orchestrator.store.db import scratch_postgres, test_server_url
from orchestrator.store.models import Base, Membership, User

from ..conftest import FIXTURES
from .single_writer import SingleWriter

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
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(scratch_postgres("tongban_test", durable=False))
        except sa.exc.OperationalError as exc:
            message = f"PostgreSQL is required at {test_server_url()} ({exc.orig})"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
        db = connect(url)
        upgrade(db)
        db.dispose()
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite"
    db = connect(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    with contextlib.closing(sqlite3.connect(path)) as raw:  # all of it in the file itself: it is copied
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


RESTART_SEQUENCES = """SELECT setval(c.oid, 1, false) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'S' AND n.nspname = current_schema()"""


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path):
    if request.param == "sqlite":
        path = tmp_path / "tongban.sqlite"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        # every statement prepared afresh, so the single-writer check sees each one (single_writer.py)
        database = connect(f"sqlite:///{path}", connect_args={"cached_statements": 0})
        writer = SingleWriter()
        sa.event.listen(database, "connect", writer.install)
        yield database
        database.dispose()
        assert not writer.violations, "cases, tasks and sign-offs written outside unit.py:\n" + "\n".join(
            sorted(set(writer.violations))
        )
        return
    database = connect(request.getfixturevalue("postgres_url"))
    with database.begin() as conn:  # DELETE + setval: far faster than TRUNCATE … RESTART IDENTITY on small tables
        conn.exec_driver_sql("; ".join(f"DELETE FROM {t.name}" for t in reversed(Base.metadata.sorted_tables)))
        conn.exec_driver_sql(RESTART_SEQUENCES)
    yield database
    database.dispose()


@pytest.fixture
def clock():
    return Clock()


DEPARTMENT_CODES = ["zwfw", "scjg", "gaj", "swj", "rsj", "zjj", "xf"]


@pytest.fixture(scope="session")
def fixture_definitions():
    """tests/fixtures checked once per run (what publish_paths would check for every test)."""
    checked = check_paths([FIXTURES])
    problems = [str(p) for item in checked for p in item.problems]
    assert not problems, problems
    departments = list(load_departments(FIXTURES / "departments.yaml").values())
    return departments, [(item.definition, item.path.read_text(encoding="utf-8")) for item in checked]


@pytest.fixture
def engine(db, clock, fixture_definitions) -> Engine:
    """An engine with the test definitions published and staff in every department:
    ``<code>1``, ``<code>2``, ``<code>3`` (handlers) and ``<code>_boss`` (the supervisor)."""
    departments, definitions = fixture_definitions
    users, memberships = [], []
    for code in DEPARTMENT_CODES:
        for n in (1, 2, 3):
            users.append({"id": f"{code}{n}", "name": f"{code} 办理人 {n}"})
            memberships.append({"user_id": f"{code}{n}", "department": code, "role": "handler"})
        users.append({"id": f"{code}_boss", "name": f"{code} 负责人"})
        memberships.append({"user_id": f"{code}_boss", "department": code, "role": f"{code}_supervisor"})
    with db.begin() as tx:  # publish_paths and add_user, in one transaction (test set-up speed)
        sync_departments(tx, departments)
        versions = [store_definition(tx, definition, text, clock())[0] for definition, text in definitions]
        tx.execute(User.__table__.insert(), users)
        tx.execute(Membership.__table__.insert(), memberships)
    tongban = Engine(db, BusinessCalendar(), clock)
    for (definition, _), version in zip(definitions, versions, strict=True):  # parsed once per run, not per test
        tongban.definitions._parsed[(definition.key, version)] = definition
    return tongban


def fixture_path(name: str) -> Path:
    return FIXTURES / name
