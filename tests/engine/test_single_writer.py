"""The single-writer rule (single_writer.py) is checked on every SQLite engine test; here, that the
check itself sees what it must: the core's writes, and a write from anywhere else in Tongban."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator.store import connect

from .helpers import accepted_kaiban, open_tasks
from .single_writer import PACKAGE, SingleWriter


def _watched(path: Path) -> tuple[sa.Engine, SingleWriter]:
    database = connect(f"sqlite:///{path}", connect_args={"cached_statements": 0})
    writer = SingleWriter()
    sa.event.listen(database, "connect", writer.install)
    return database, writer


def test_a_write_to_tasks_from_another_module_is_caught(tmp_path, sqlite_template):
    path = tmp_path / "db.sqlite"
    path.write_bytes(sqlite_template.read_bytes())
    database, writer = _watched(path)
    rogue = compile(
        "def mark_claimed(conn):\n    conn.exec_driver_sql(\"UPDATE tasks SET assignee = 'x' WHERE id = 1\")\n",
        str(Path(PACKAGE) / "engine" / "commands" / "rogue.py"),  # as if a command wrote tasks itself
        "exec",
    )
    namespace: dict = {}
    exec(rogue, namespace)
    with database.begin() as conn:
        namespace["mark_claimed"](conn)
    database.dispose()
    assert writer.violations == ["UPDATE tasks.assignee from orchestrator/engine/commands/rogue.py:2 (mark_claimed)"]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # the authorizer is SQLite's
def test_the_engines_writes_are_seen_and_all_come_from_the_core(engine, db):
    counted = SingleWriter()
    sa.event.listen(db, "connect", counted.install)
    db.dispose()  # connections opened from now on carry this checker too
    case_id = accepted_kaiban(engine)
    engine.complete_task(open_tasks(engine, case_id)["licence"], "scjg1", "approve", "同意")
    assert counted.writes > 5 and not counted.violations
