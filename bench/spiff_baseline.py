"""SpiffWorkflow 3.x baseline for the engine benchmark (bench/engine.py imports ``run_spiff``).

The BPMN is generated from the definition itself (bench/spiff_bpmn.py), so Spiff runs the process our engine
runs: one userTask per signature (each review-chain level, survey participant and countersign signer), notify
and auto steps as scriptTasks (no completion request), ``when`` conditions on inclusive gateways, evaluated
over the case's form, which is put into the start task's data, so it travels with the workflow as a
deployment's case data would. Each case's form is ``sample_form(definition, rng)``, as in our benchmark, so
the optional steps vary per case; every case must end completed after exactly the completions our engine's
DAG rules call for (bench/spiff_bpmn.py ``expected_user_tasks``).

Each completion behaves like one web request of a deployment that keeps the workflow as JSON in one SQLite row
per case (WAL, synchronous as given: FULL by default, as ours): BEGIN IMMEDIATE; SELECT the JSON;
``BpmnWorkflowSerializer.deserialize_json``;
pick a READY ``UserTask``; ``task.run()``; ``workflow.do_engine_steps()`` (gateways, script tasks, end events,
timers); ``serialize_json``; UPDATE; COMMIT. The default serializer embeds the process spec in every JSON
document, as SpiffWorkflow does out of the box.

All cases are created first (not timed); then, like our benchmark, a random open case gets its next completion
until all are done, as a department works many cases at once. Only the completions are timed.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from functools import cache
from pathlib import Path

from spiff_bpmn import bpmn_for, expected_user_tasks, process_id
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnParser, BpmnValidator
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.defaults import UserTask
from SpiffWorkflow.util.task import TaskState

from orchestrator.definition.model import Definition
from orchestrator.definition.validator import load_definition, load_departments
from orchestrator.simulation.samples import sample_form

DEFINITIONS_DIR = Path(__file__).resolve().parent.parent / "definitions"
PROCESSES = ("kaiban-qiye", "gongcheng-shigong-xuke")
ALIASES = {
    "kaiban": "kaiban-qiye",
    "gongcheng": "gongcheng-shigong-xuke",
    **{key.replace("-", "_"): key for key in PROCESSES},  # the BPMN process ids
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS spiff_case (
    id INTEGER PRIMARY KEY,
    process TEXT NOT NULL,
    state TEXT NOT NULL,
    completed INTEGER NOT NULL DEFAULT 0
)
"""


def _resolve(process: str) -> str:
    key = ALIASES.get(process, process)
    if key not in PROCESSES:
        raise ValueError(f"unknown process {process!r}; expected one of {sorted(PROCESSES)} or {sorted(ALIASES)}")
    return key


@cache
def load_spec(process: str) -> tuple[Definition, object, dict]:
    """Load the definition, generate its BPMN and parse (XSD-validated) it once: (definition, spec, subprocesses)."""
    key = _resolve(process)
    definition = load_definition(
        DEFINITIONS_DIR / f"{key}.yaml", load_departments(DEFINITIONS_DIR / "departments.yaml")
    )
    parser = BpmnParser(validator=BpmnValidator())
    parser.add_bpmn_str(bpmn_for(definition).encode(), filename=f"{key}.bpmn")
    return definition, parser.get_spec(process_id(definition)), parser.get_subprocess_specs(process_id(definition))


SYNCHRONOUS = "FULL"  # set by bench/engine.py to the mode our engine runs in, so the ratio compares like with like


def _connect(db_path: str) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; each completion is an explicit BEGIN IMMEDIATE .. COMMIT
    # so that the SELECT and the UPDATE are in one write transaction (as a real request would need).
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
    conn.execute(SCHEMA)
    return conn


def _complete_one(conn: sqlite3.Connection, serializer: BpmnWorkflowSerializer, case_id: int) -> tuple[str, bool]:
    """One 'request': load, complete one READY user task, run the engine, store. Returns (task id, completed)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        (state,) = conn.execute("SELECT state FROM spiff_case WHERE id = ?", (case_id,)).fetchone()
        workflow = serializer.deserialize_json(state)
        task = workflow.get_next_task(state=TaskState.READY, spec_class=UserTask)
        if task is None:
            raise AssertionError(f"case {case_id}: no READY user task but the workflow is not completed")
        task.run()
        workflow.do_engine_steps()
        done = workflow.is_completed()
        conn.execute(
            "UPDATE spiff_case SET state = ?, completed = ? WHERE id = ?",
            (serializer.serialize_json(workflow), int(done), case_id),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return task.task_spec.name, done


def run_spiff(process: str, cases: int, db_path: str, *, seed: int = 0) -> dict:
    """Run ``cases`` workflows of ``process`` to completion, one SQLite round trip per user-task completion.

    ``process`` is a definition key ("kaiban-qiye", "gongcheng-shigong-xuke"), a short alias ("kaiban",
    "gongcheng") or the BPMN process id. ``seed`` drives the forms and the order of work. Only the completions
    are timed.
    """
    key = _resolve(process)
    definition, spec, subprocess_specs = load_spec(key)
    serializer = BpmnWorkflowSerializer()
    rng = random.Random(seed)
    conn = _connect(db_path)
    expected: dict[int, list[str]] = {}
    done_tasks: dict[int, list[str]] = {}
    seconds = 0.0
    try:
        for _ in range(cases):  # create every case (not timed)
            form = sample_form(definition, rng)
            workflow = BpmnWorkflow(spec, subprocess_specs)
            # the form is the start task's data: every later task inherits it, so the gateways see it
            workflow.get_next_task(state=TaskState.READY).set_data(**form)
            workflow.do_engine_steps()
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute(
                "INSERT INTO spiff_case (process, state) VALUES (?, ?)", (key, serializer.serialize_json(workflow))
            )
            conn.execute("COMMIT")
            expected[cur.lastrowid] = expected_user_tasks(definition, form)
            done_tasks[cur.lastrowid] = []

        open_cases = list(expected)
        while open_cases:  # interleave cases, as a department works many at once (each completion timed)
            case_id = rng.choice(open_cases)
            start = time.perf_counter()
            name, done = _complete_one(conn, serializer, case_id)
            seconds += time.perf_counter() - start
            done_tasks[case_id].append(name)
            if done:
                open_cases.remove(case_id)
            elif len(done_tasks[case_id]) > len(expected[case_id]):
                raise AssertionError(f"case {case_id}: more completions than expected: {done_tasks[case_id]}")

        # check (not timed): every case completed, with exactly the completions our engine would need
        for case_id, tasks in done_tasks.items():
            (state,) = conn.execute("SELECT state FROM spiff_case WHERE id = ?", (case_id,)).fetchone()
            assert serializer.deserialize_json(state).is_completed(), f"case {case_id} not completed"
            assert len(tasks) == len(expected[case_id]), f"case {case_id}: {len(tasks)} != {len(expected[case_id])}"
            assert Counter(tasks) == Counter(expected[case_id]), f"case {case_id}: completed {sorted(tasks)}"
    finally:
        conn.close()
    completions = sum(len(tasks) for tasks in done_tasks.values())
    return {
        "process": key,
        "cases": cases,
        "completions": completions,
        "seconds": seconds,
        "completions_per_s": completions / seconds if seconds else 0.0,
    }


def main() -> None:
    fd, db_path = tempfile.mkstemp(prefix="spiff_baseline_", suffix=".sqlite3")
    os.close(fd)
    try:
        kaiban = run_spiff("kaiban-qiye", 20, db_path)
        print(kaiban)
        gongcheng = run_spiff("gongcheng-shigong-xuke", 20, db_path)
        print(gongcheng)
        sys.stdout.flush()
        print(
            json.dumps(
                {
                    "spiff_completions_per_s_kaiban": round(kaiban["completions_per_s"], 1),
                    "spiff_completions_per_s_gongcheng": round(gongcheng["completions_per_s"], 1),
                }
            )
        )
    finally:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db_path + suffix):
                os.remove(db_path + suffix)


if __name__ == "__main__":
    main()
