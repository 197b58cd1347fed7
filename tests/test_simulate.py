"""The simulator keeps up with the law: leaders confirm or send back refusals (不予审批报告制), a return
for 补正 stays within limits.returns, special procedures give their expected time — and every case ends."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from orchestrator.engine.rules import CASE_FINAL
from orchestrator.simulation.simulate import Behaviour, simulate
from orchestrator.store import connect

from .conftest import DEFINITIONS

HARSH = Behaviour(refuse=0.2, reject_continue=0.3, reject_stop=0.05, give_back=0.2, suspend=0.2, overrule=0.4)


@pytest.mark.parametrize("name", ["kaiban-qiye", "gongcheng-shigong-xuke"])
def test_harsh_simulated_staff_bring_every_case_to_an_end(tmp_path, name):
    url = f"sqlite:///{tmp_path / 'sim.sqlite'}"
    report = simulate(DEFINITIONS / f"{name}.yaml", 30, seed=3, url=url, behaviour=HARSH)
    assert set(report.by_state) <= CASE_FINAL and sum(report.by_state.values()) == 30
    assert report.by_state.get("not_accepted", 0) > 0
    db = connect(url)
    with db.connect() as conn:
        decisions = dict(
            conn.execute(sa.text("SELECT decision, count(*) FROM negative_reports GROUP BY decision")).all()
        )
        returns = conn.execute(
            sa.text(
                "SELECT max(n) FROM (SELECT count(*) AS n FROM suspensions WHERE kind = 'supplement'"
                " GROUP BY case_id) AS per_case"
            )
        ).scalar()
        unexpected = conn.execute(
            sa.text("SELECT count(*) FROM suspensions WHERE kind <> 'supplement' AND expected IS NULL")
        ).scalar()
    db.dispose()
    assert decisions.get("confirmed", 0) > 0 and decisions.get("sent_back", 0) > 0
    assert None not in decisions  # no refusal left undecided
    assert returns == 1  # limits.returns: once per case
    assert unexpected == 0
