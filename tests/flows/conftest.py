"""The flows' tests use the engine's fixtures: the ``db`` on SQLite and PostgreSQL, the moved ``clock``,
the ``engine`` with the test definitions and staff."""

from ..engine.conftest import (  # noqa: F401 - fixtures
    clock,
    db,
    engine,
    fixture_definitions,
    postgres_url,
    sqlite_template,
)
