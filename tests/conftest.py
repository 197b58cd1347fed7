from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.definition import load_departments

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
DEFINITIONS = ROOT / "definitions"


@pytest.fixture(scope="session")
def departments():
    return load_departments(FIXTURES / "departments.yaml")


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request, tmp_path):
    """The URL of an empty database (no schema): a new SQLite file, or a fresh PostgreSQL database on
    the test server (dropped afterwards; skipped when the server is away, failed in CI)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    import contextlib
    import os

    import sqlalchemy as sa

    from orchestrator.store.db import scratch_postgres, test_server_url

    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(scratch_postgres("tongban_empty"))
        except sa.exc.OperationalError as exc:
            message = f"PostgreSQL is required at {test_server_url()} ({exc.orig})"
            if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                pytest.fail(message)
            pytest.skip(message)
        yield url
