"""The copy of a case and its tasks an engine keeps between transitions (Engine._snapshots).

A transition's lock bumps ``cases.revision``; the engine uses its copy only when it holds the revision
just before, so whatever another process (here: a second Engine on the same database) did is read
afresh, and a refused transition, which may have changed the copy before it was refused, leaves none.
"""

from __future__ import annotations

import sqlalchemy as sa

from orchestrator.engine import Conflict, Engine, NotAllowed

from .helpers import (
    accepted_kaiban,
    assert_kept_copy_is_true,
    case_row,
    open_tasks,
    refused,
    sign_chain,
    signoffs,
    submit_kaiban,
    surveyed,
    task_row,
    tasks_of,
)


def _kept_matches_database(engine: Engine, case_id: int) -> None:
    assert case_id in engine._snapshots
    tasks = tasks_of(engine, case_id)
    slots = [row for task in tasks for row in signoffs(engine, task["id"])]
    assert_kept_copy_is_true(engine, case_row(engine, case_id), tasks, slots)


def test_what_another_engine_did_is_seen(engine):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    engine.claim_task(licence, "scjg1")
    other = Engine(engine.db, engine.calendar, engine.clock)  # another process, as far as the cache goes
    other.definitions = engine.definitions
    other.complete_task(licence, "scjg1", "approve", "同意")
    with refused(engine, Conflict, f"task {licence}", "already completed by scjg1"):
        engine.complete_task(licence, "scjg1", "approve", "同意")  # its copy still had the task claimed
    seal = open_tasks(engine, case_id)["seal"]
    engine.complete_task(seal, "gaj1", "approve", "同意")
    assert task_row(engine, seal)["state"] == "completed"
    _kept_matches_database(engine, case_id)
    other.close()


def test_a_new_application_is_kept_for_its_acceptance(engine):
    case_id = submit_kaiban(engine)
    _kept_matches_database(engine, case_id)  # JSON values as a read returns them
    engine.accept_case(case_id, "zwfw1")
    assert case_row(engine, case_id)["state"] == "accepted"
    _kept_matches_database(engine, case_id)


def test_each_transition_moves_the_revision_and_keeps_a_true_copy(engine):
    case_id = accepted_kaiban(engine)
    before = case_row(engine, case_id)["revision"]
    licence = open_tasks(engine, case_id)["licence"]
    engine.claim_task(licence, "scjg1")
    engine.complete_task(licence, "scjg1", "approve", "同意")
    assert case_row(engine, case_id)["revision"] == before + 2
    _kept_matches_database(engine, case_id)


def test_a_refused_transition_leaves_no_copy_behind(engine):
    case_id = surveyed(engine)
    chain = open_tasks(engine, case_id)["chain"]
    # the form edit is applied to the copy first; the refusal comes after it
    with refused(engine, NotAllowed, "scjg1 is not a member of department zjj"):
        engine.complete_task(chain, "scjg1", "approve", "同意", form_updates={"phone": "021-9"})
    assert case_id not in engine._snapshots
    sign_chain(engine, chain)
    assert case_row(engine, case_id)["form"]["phone"] != "021-9"
    _kept_matches_database(engine, case_id)


# ----------------------------------------------------------------------------------------------
# hand edits: a change made in SQL, not by the engine, bumps the case's revision (the triggers of
# store/models.py), so a running engine reads the case afresh instead of writing its old view back


def _by_hand(engine: Engine, sql: str, **values: object) -> None:
    with engine.db.begin() as conn:
        conn.execute(sa.text(sql), values)


def test_an_operators_fix_of_an_assignee_is_kept_by_a_running_engine(engine):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    engine.claim_task(licence, "scjg1")
    assert case_id in engine._snapshots  # the engine keeps the case, with scjg1 as the assignee
    revision = case_row(engine, case_id)["revision"]
    _by_hand(engine, "UPDATE tasks SET assignee = 'scjg2' WHERE id = :id", id=licence)
    assert case_row(engine, case_id)["revision"] == revision + 1
    with refused(engine, NotAllowed, f"task {licence} is claimed by scjg2"):
        engine.complete_task(licence, "scjg1", "approve", "同意")  # the old copy would have let scjg1 finish
    engine.complete_task(licence, "scjg2", "approve", "同意")
    task = task_row(engine, licence)
    assert (task["state"], task["assignee"], task["completed_by"]) == ("completed", "scjg2", "scjg2")
    _kept_matches_database(engine, case_id)


def test_hand_edits_of_a_case_and_of_a_signature_are_seen_too(engine):
    case_id = surveyed(engine)
    chain = open_tasks(engine, case_id)["chain"]
    engine.complete_task(chain, "zjj1", "approve", "拟同意")
    _by_hand(engine, "UPDATE signoffs SET signed_by = 'zjj3' WHERE task_id = :id AND position = 0", id=chain)
    with refused(engine, NotAllowed, "zjj3 already signed a level of this review chain"):
        engine.complete_task(chain, "zjj3", "approve", "同意")
    _by_hand(engine, "UPDATE cases SET form = :form WHERE id = :id", id=case_id, form='{"project_name": "改"}')
    engine.complete_task(chain, "zjj1", "approve", "审核同意")  # zjj1 no longer signed level 1
    assert case_row(engine, case_id)["form"] == {"project_name": "改"}
    _kept_matches_database(engine, case_id)


def test_the_engine_and_the_sla_sweep_leave_the_revision_to_the_case_lock(engine, clock):
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    revision = case_row(engine, case_id)["revision"]
    engine.claim_task(licence, "scjg1")  # one transition: one bump, by its lock (the triggers stay quiet)
    assert case_row(engine, case_id)["revision"] == revision + 1
    clock.advance(days=3)
    assert engine.sweep().changed > 0  # sla_state only: no bump, the kept copy stays usable
    assert case_row(engine, case_id)["revision"] == revision + 1
    hits = engine.kept_copy_stats.hits
    engine.complete_task(licence, "scjg1", "approve", "同意")
    assert engine.kept_copy_stats.hits == hits + 1
