"""Demo data for a first start is made by running the engine: cases at every stage a page shows."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from orchestrator.calendar import TZ, BusinessCalendar
from orchestrator.engine import Engine
from orchestrator.simulation.demo import seed_demo
from orchestrator.simulation.simulate import SimClock
from orchestrator.store import connect, upgrade

from .conftest import DEFINITIONS


def test_demo_cases_cover_the_stages_and_cards(tmp_path):
    db = connect(f"sqlite:///{tmp_path / 'demo.sqlite'}", sqlite_synchronous="NORMAL")
    upgrade(db)
    clock = SimClock()
    engine = Engine(db, BusinessCalendar.from_file(DEFINITIONS / "calendar.yaml"), clock)
    now = datetime(2026, 12, 2, 10, tzinfo=TZ)
    report = seed_demo(engine, DEFINITIONS, now, cases=80, weeks=3)
    assert clock.now == now
    assert report.cases == 80
    assert {"completed", "in_progress", "submitted"} <= set(report.by_state)
    assert report.rated > 0
    with db.connect() as conn:
        keys = set(conn.execute(sa.text("SELECT DISTINCT definition_key FROM cases")).scalars())
        cards = dict(conn.execute(sa.text("SELECT kind, count(*) FROM alerts GROUP BY kind")).all())
        open_sla = set(
            conn.execute(sa.text("SELECT DISTINCT sla_state FROM tasks WHERE state IN ('ready', 'claimed')")).scalars()
        )
        events = conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
    assert len(keys) >= 5  # across the definitions
    assert cards.get("overdue", 0) > 0
    assert {"on_track", "overdue"} <= open_sla
    assert events > report.cases * 3  # made by transitions, each with its history
    engine.dispose()
