"""Statements compiled once per dialect and run on the driver's cursor.

The engine's hot path (lock a case, read its tasks, write a task, append history) runs thousands
of times a second. SQLAlchemy builds the SQL and supplies each column type's own bind and result
processors; this module only skips the per-call execution machinery around them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import ClauseElement


class Prepared:
    """One statement, compiled for one dialect, with its parameter order and type processors."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        names = list(compiled.positiontup or []) if self.positional else list(compiled.binds)
        self.names = names
        self.bind_processors = {name: compiled.binds[name].type._cached_bind_processor(dialect) for name in set(names)}
        columns = getattr(compiled, "_result_columns", None) or []
        self.columns = [column[0] for column in columns]
        self.result_processors = [column[3]._cached_result_processor(dialect, None) for column in columns]
        self.has_defaults = {n: compiled.binds[n].value for n in names if compiled.binds[n].value is not None}
        # the positions whose type converts the value (timestamps, JSON, booleans on some drivers)
        self._converted = [(i, self.bind_processors[n]) for i, n in enumerate(names) if self.bind_processors[n]]

    def params(self, values: Mapping[str, Any]) -> Any:
        """The driver's parameters: a list (qmark, SQLite) or a dict (pyformat, psycopg). A name the
        values lack is bound to its default, else NULL."""
        if self.has_defaults:
            values = {**self.has_defaults, **values}
        get = values.get
        out = [get(name) for name in self.names]
        for index, processor in self._converted:
            value = out[index]
            if value is not None:
                out[index] = processor(value)
        return out if self.positional else dict(zip(self.names, out, strict=True))

    def rows(self, cursor: Any) -> list[dict[str, Any]]:
        columns, processors = self.columns, self.result_processors
        out = []
        for raw in cursor.fetchall():
            out.append(
                {
                    name: (proc(value) if proc is not None else value)
                    for name, proc, value in zip(columns, processors, raw, strict=True)
                }
            )
        return out


class Statements:
    """The prepared statements of one database, compiled lazily for its dialect."""

    def __init__(self, sources: Mapping[str, ClauseElement]) -> None:
        self._sources = dict(sources)
        self._compiled: dict[tuple[str, str], Prepared] = {}

    def get(self, name: str, dialect: Dialect) -> Prepared:
        key = (dialect.name, name)
        prepared = self._compiled.get(key)
        if prepared is None:
            prepared = self._compiled[key] = Prepared(self._sources[name], dialect)
        return prepared

    def add(self, name: str, statement: ClauseElement) -> None:
        self._sources.setdefault(name, statement)


# Set by benchmarks to count statements (each execute or executemany call is one round trip).
statement_hook: Any = None


def cursor_of(conn: Connection) -> Any:
    """The driver cursor of a SQLAlchemy connection, inside its current transaction."""
    if statement_hook is not None:
        statement_hook()
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


def fetch(conn: Connection, prepared: Prepared, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    cursor = cursor_of(conn)
    cursor.execute(prepared.sql, prepared.params(values))
    return prepared.rows(cursor)


def execute(conn: Connection, prepared: Prepared, values: Mapping[str, Any]) -> int:
    cursor = cursor_of(conn)
    cursor.execute(prepared.sql, prepared.params(values))
    return cursor.rowcount


def execute_many(conn: Connection, prepared: Prepared, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        cursor_of(conn).executemany(prepared.sql, [prepared.params(row) for row in rows])
