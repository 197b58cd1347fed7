"""The transaction core (orchestrator/engine/unit.py) is the only code that writes cases, tasks and
sign-offs: the kept copy of a case is only true while that holds.

Checked on the database itself: SQLite calls an authorizer for every statement it prepares, naming
the table and, for an UPDATE, the column. The statement cache is off, so every execution is prepared
(and seen). The innermost frame of Tongban's own code that issued a write to one of these tables must be
unit.py — or sla.py, which writes ``sla_state`` only (the engine never reads that column). Writes made
by test code itself (a hand edit a test sets up on purpose) are left alone, and so are the writes of the
hand-edit triggers (store/models.py: a change without the engine's version bump bumps the case's
revision), which the database makes, not Tongban's code.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

import orchestrator

GUARDED = {"cases", "tasks", "signoffs"}
PACKAGE = str(Path(orchestrator.__file__).resolve().parent)
WRITER = str(Path(PACKAGE) / "engine" / "unit.py")
SWEEP = str(Path(PACKAGE) / "engine" / "sla.py")
MIGRATIONS = str(Path(PACKAGE) / "store" / "migrations")
PLUMBING = (str(Path(PACKAGE) / "store" / "prepared.py"), str(Path(PACKAGE) / "store" / "db.py"))


class SingleWriter:
    """Collects every write to a guarded table made from anywhere in Tongban but the core."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.writes = 0

    def authorizer(
        self, action: int, table: str | None, column: str | None, _db: str | None, trigger: str | None
    ) -> int:
        if trigger is not None:
            return sqlite3.SQLITE_OK
        if action in (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE) and table in GUARDED:
            self._check(action, table, column)
        return sqlite3.SQLITE_OK

    def _check(self, action: int, table: str, column: str | None) -> None:
        frame = sys._getframe(2)
        while frame is not None:
            path = frame.f_code.co_filename
            if path.startswith(PACKAGE) and not path.startswith(PLUMBING):
                break
            frame = frame.f_back
        if frame is None:
            return  # not Tongban's code: a test's own set-up
        path = frame.f_code.co_filename
        self.writes += 1
        if path == WRITER or path.startswith(MIGRATIONS):
            return
        if path == SWEEP and action == sqlite3.SQLITE_UPDATE and column == "sla_state":
            return
        verb = {sqlite3.SQLITE_INSERT: "INSERT", sqlite3.SQLITE_UPDATE: "UPDATE", sqlite3.SQLITE_DELETE: "DELETE"}
        where = f"{Path(path).relative_to(Path(PACKAGE).parent)}:{frame.f_lineno} ({frame.f_code.co_name})"
        self.violations.append(f"{verb[action]} {table}{'.' + column if column else ''} from {where}")

    def install(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_authorizer(self.authorizer)
