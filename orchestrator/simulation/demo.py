"""Demo data for a first start (`make run`): a few hundred cases across every published definition, made by
running the engine with simulated people — never by inserting rows — and left at every stage a page
should show: waiting at the window, in a department's queue, claimed, suspended for a 特别程序, returned
for 补正, on time, in warning (黄牌) and overdue (红牌), closed in each way, and rated.

The clock starts some working weeks before ``now`` and moves forward as people work; cases submitted
early and left open are late by ``now``, when the SLA sweep runs and raises their cards.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from ..definition.validator import load_departments
from ..engine import Engine, TongbanError, publish_paths
from ..engine.rules import CASE_FINAL
from ..store.models import Case
from .simulate import Behaviour, SimClock, Staff, act, create_staff, submit_case

# livelier than the default: more 补正, 特别程序 and refusals, so every page has something to show
DEMO_BEHAVIOUR = Behaviour(
    incomplete_materials=0.15,
    refuse=0.03,
    reject_continue=0.10,
    reject_stop=0.03,
    give_back=0.06,
    suspend=0.06,
    withdraw=0.004,
    supply_deferred=0.3,
    minutes=(3.0, 25.0),
    sweep_every=0,
)
RATINGS = (1, 1, 1, 2, 2, 2, 3, 4, 5)  # mostly satisfied; some bad ones open a rectification task


@dataclass
class DemoReport:
    cases: int = 0
    actions: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    rated: int = 0
    staff: dict[str, Staff] = field(default_factory=dict)  # definition key -> its simulated staff


def seed_demo(
    engine: Engine,
    definitions_dir: Path,
    now: datetime,
    *,
    cases: int = 300,
    weeks: int = 5,
    seed: int = 20261202,
    centres: tuple[str, ...] = (),
) -> DemoReport:
    """Publish every definition under ``definitions_dir`` and run ``cases`` cases on a clock that ends at
    ``now``. ``centres``: the service centres whose windows take the applications that do not come online
    (four in ten do, then). ``engine.clock`` must be a ``SimClock`` (it is moved here); afterwards it stands
    at ``now``."""
    clock = engine.clock
    if not isinstance(clock, SimClock):
        raise TypeError("seed_demo moves the engine's clock: build the Engine with a SimClock")
    rng = random.Random(seed)
    behaviour = replace(DEMO_BEHAVIOUR, online=0.4, centres=centres) if centres else DEMO_BEHAVIOUR
    clock.now = now - timedelta(weeks=weeks)
    published = [p for p in publish_paths(engine.db, [definitions_dir], clock()) if not p.problems and p.key]
    if not published:
        raise ValueError(f"no valid definition under {definitions_dir}")
    departments_file = definitions_dir / "departments.yaml"
    departments = load_departments(departments_file) if departments_file.is_file() else {}
    report = DemoReport()
    definitions = {}
    with engine.db.connect() as conn:
        for item in published:
            _, definitions[item.key] = engine.definitions.latest(conn, item.key)
    for key, definition in definitions.items():
        report.staff[key] = create_staff(engine, definition, departments)
    # each case gets a number of actions: some none (at the window), most enough to finish
    open_cases: dict[int, tuple[str, int]] = {}
    submitted = 0
    while submitted < cases or open_cases:
        if submitted < cases and (not open_cases or rng.random() < 0.08):
            key = rng.choice(sorted(definitions))
            case_id = submit_case(engine, definitions[key], rng, 900000 + submitted, behaviour)
            # recent applications stop at any stage (on time or nearly due); a few old ones stall (overdue)
            recent = submitted >= cases * 0.8
            stalls = rng.random() < (0.9 if recent else 0.12)
            budget = rng.choice((0, 1, 2, 3, 4, 6, 9)) if stalls else 400
            open_cases[case_id] = (key, budget)
            submitted += 1
            # spread what is left of the period over the cases still to come, so work goes on until now
            left = engine.calendar.working_time_between(clock.now, now).total_seconds() / 60
            clock.advance(engine.calendar, max(0.0, left / (cases - submitted + 2)) * rng.uniform(0.2, 0.9))
            continue
        case_id = rng.choice(sorted(open_cases))
        key, budget = open_cases[case_id]
        if budget <= 0 or clock.now >= now:
            del open_cases[case_id]
            continue
        try:
            moved = act(engine, case_id, rng, report.staff[key], behaviour)
        except TongbanError:
            moved = True  # a refusal is part of a day's work too; the case goes on
        report.actions += 1
        if not moved:
            del open_cases[case_id]
            _rate(engine, case_id, rng, report)
            continue
        open_cases[case_id] = (key, budget - 1)
        if clock.now < now:
            clock.advance(engine.calendar, rng.uniform(0.2, 1.0))
    clock.now = max(clock.now, now)
    engine.run_timers()
    report.cases = submitted
    with engine.db.connect() as conn:
        report.by_state = dict(conn.execute(select(Case.state, func.count()).group_by(Case.state)).all())
    return report


def _rate(engine: Engine, case_id: int, rng: random.Random, report: DemoReport) -> None:
    """Most applicants rate the service when their case ends (好差评)."""
    if rng.random() > 0.6:
        return
    with engine.db.connect() as conn:
        row = conn.execute(select(Case.state, Case.applicant).where(Case.id == case_id)).first()
    if row is None or row.state not in CASE_FINAL:
        return
    try:
        engine.evaluate_case(case_id, row.applicant["id"], rng.choice(RATINGS), rng.choice(("pc", "mobile", "hall")))
        report.rated += 1
    except TongbanError:
        pass  # this outcome cannot be rated (yet): nothing to show for it
