"""`tongban demo` (what `make run` calls): an empty database gets its schema, engine-made cases and a
log-in per demo person; a second run adds nothing."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import func, select

from orchestrator.cli import main
from orchestrator.store import connect
from orchestrator.store.models import Account, Case

from ..conftest import ROOT


def test_demo_fills_an_empty_database_once_and_lists_one_log_in_per_role(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    monkeypatch.setenv("TONGBAN_HOME", str(ROOT))  # the shipped definitions and calendar
    first = CliRunner().invoke(main, ["demo", "--url", url, "--cases", "30"])
    assert first.exit_code == 0, first.output
    assert first.output.startswith("demo: 30 cases (")
    for login in ("manager", "designer", "admin", "zwfw-1", "scjg-1", "scjg-boss"):
        assert f"  {login} " in first.output
    db = connect(url)
    with db.connect() as conn:
        cases = conn.execute(select(func.count()).select_from(Case)).scalar_one()
        channels = set(conn.execute(select(Case.channel).distinct()).scalars())
        accounts = conn.execute(select(func.count()).select_from(Account)).scalar_one()
    db.dispose()
    assert cases == 30 and channels == {"online", "window"} and accounts > 20
    again = CliRunner().invoke(main, ["demo", "--url", url, "--cases", "30"])
    assert again.exit_code == 0 and again.output.startswith("demo data already there")
