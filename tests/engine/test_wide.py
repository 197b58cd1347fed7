"""A definition far wider than any real one: 3,000 parallel steps after the window. Accepting a case
makes all their tasks in one transition; PostgreSQL takes at most 65,535 bind parameters per statement,
so the tasks go in in chunks (unit.TASKS_PER_INSERT), which used to fail from about 2,850 steps."""

from __future__ import annotations

from pathlib import Path

from orchestrator.definition import load_definition
from orchestrator.engine.publish import store_definition
from orchestrator.engine.unit import TASKS_PER_INSERT

from .helpers import case_row, tasks_of

WIDTH = 3_000


def wide_definition() -> str:
    lines = [
        "key: wide",
        "name: 三千个并联步骤",
        "limits: {promised: 5d}",
        "remedy: 可申请行政复议或者提起行政诉讼",
        "steps:",
        "  - {id: accept, kind: acceptance, name: 受理, department: zwfw, limit: 1h}",
        *(f"  - {{id: s{n}, kind: approval, name: 审查{n}, department: scjg, after: [accept], limit: 4h}}"
          for n in range(WIDTH)),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def test_a_case_of_3000_parallel_steps_is_accepted(engine, clock, departments):
    assert WIDTH > TASKS_PER_INSERT  # more than one INSERT
    text = wide_definition()
    definition = load_definition(Path("wide.yaml"), departments, text=text)
    with engine.db.begin() as tx:
        store_definition(tx, definition, text, clock())
    case_id = engine.submit_case("wide", {"id": "W1", "name": "宽"}, {}, [])
    engine.accept_case(case_id, "zwfw1")
    assert case_row(engine, case_id)["state"] == "accepted"
    tasks = tasks_of(engine, case_id)
    ready = [t for t in tasks if t["state"] == "ready"]
    assert len(ready) == WIDTH
    assert len({t["id"] for t in ready}) == WIDTH and {t["step_id"] for t in ready} == {f"s{n}" for n in range(WIDTH)}
    engine.complete_task(ready[-1]["id"], "scjg1", "approve", "同意")  # the kept copy holds them all
    assert engine.kept_copy_stats.hits >= 1
