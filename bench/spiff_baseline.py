"""SpiffWorkflow 3.x baseline for the engine benchmark (bench/engine.py imports ``run_spiff``).

The two benchmark processes are hand-written BPMN 2.0 in ``bench/bpmn/``:

* ``kaiban-qiye.bpmn`` (definitions/kaiban-qiye.yaml, 9 steps): accept -> licence -> parallel split
  -> {seal, invoice, social, medical, housing_fund, bank} -> parallel join -> issue. issue's ``after``
  also names licence directly, so there is also an empty flow from the split straight to the join.
* ``gongcheng-shigong-xuke.bpmn`` (definitions/gongcheng-shigong-xuke.yaml, 13 steps): accept ->
  joint_survey -> split -> {planning_permit, fire_design_review, air_defence_review, lightning_review}
  -> join -> stage_copy -> split -> {construction_permit -> notify_supervision, drainage_permit,
  waste_permit, air_defence_fee} -> join -> issue.

Modelling:

* Every YAML step, whatever its kind (acceptance, survey, approval, notify, issue), is a
  ``bpmn:userTask`` whose id is the step id, so one user-task completion = one step completion and
  the number of userTasks equals the number of steps (checked against the YAML at load time).
  Neither definition has ``kind: auto`` steps, so there are no scriptTasks. The two notify steps
  (stage_copy, notify_supervision) are userTasks too, i.e. they each cost one completion request.
* A fan-out in ``after`` is a parallelGateway split; a step with several ``after`` entries sits behind
  a parallelGateway join.
* ``when`` conditions are NOT modelled: the benchmark runs every optional step (all ``when`` true),
  so conditional steps are plain parallel branches. (In gongcheng, air_defence_review and
  air_defence_fee have mutually exclusive conditions in the YAML; the benchmark runs both anyway.)
* No form data is put into the workflow, so the serialized JSON is the minimum SpiffWorkflow stores.

Each completion behaves like one web request of a deployment that keeps the workflow as JSON in one
SQLite row per case (WAL, synchronous=NORMAL): BEGIN IMMEDIATE; SELECT the JSON;
``BpmnWorkflowSerializer.deserialize_json``; pick a READY ``UserTask``; ``task.run()``;
``workflow.do_engine_steps()`` (runs the gateways and end event, and refreshes timers, which replaces
the deprecated ``refresh_waiting_tasks``); ``serialize_json``; UPDATE; COMMIT. The default serializer
embeds the process spec in every JSON document, as SpiffWorkflow does out of the box.

Only the completion loops are timed: parsing the BPMN and creating/inserting each case are not.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import tempfile
import time
from functools import cache
from pathlib import Path

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnParser, BpmnValidator
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.defaults import UserTask
from SpiffWorkflow.util.task import TaskState

BENCH_DIR = Path(__file__).resolve().parent
BPMN_DIR = BENCH_DIR / "bpmn"
DEFINITIONS_DIR = BENCH_DIR.parent / "definitions"

# definition key -> BPMN process id (the .bpmn file is named after the definition key)
PROCESSES = {
    "kaiban-qiye": "kaiban_qiye",
    "gongcheng-shigong-xuke": "gongcheng_shigong_xuke",
}
ALIASES = {
    "kaiban": "kaiban-qiye",
    "gongcheng": "gongcheng-shigong-xuke",
    **{bpmn_id: key for key, bpmn_id in PROCESSES.items()},
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


def _yaml_step_ids(key: str) -> list[str] | None:
    """Step ids of definitions/<key>.yaml, or None if the file is not there."""
    path = DEFINITIONS_DIR / f"{key}.yaml"
    if not path.exists():
        return None
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    return [step["id"] for step in data["steps"]]


@cache
def load_spec(process: str):
    """Parse (and XSD-validate) bench/bpmn/<key>.bpmn once; return (spec, subprocess_specs, user task ids)."""
    key = _resolve(process)
    parser = BpmnParser(validator=BpmnValidator())
    parser.add_bpmn_file(str(BPMN_DIR / f"{key}.bpmn"))
    spec = parser.get_spec(PROCESSES[key])
    subprocess_specs = parser.get_subprocess_specs(PROCESSES[key])
    user_tasks = sorted(name for name, ts in spec.task_specs.items() if isinstance(ts, UserTask))
    steps = _yaml_step_ids(key)
    if steps is not None and sorted(steps) != user_tasks:
        raise AssertionError(f"{key}: BPMN userTasks {user_tasks} != YAML steps {sorted(steps)}")
    return spec, subprocess_specs, tuple(user_tasks)


def _connect(db_path: str) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; each completion is an explicit BEGIN IMMEDIATE .. COMMIT
    # so that the SELECT and the UPDATE are in one write transaction (as a real request would need).
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
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


def run_spiff(process: str, cases: int, db_path: str) -> dict:
    """Run ``cases`` workflows of ``process`` to completion, one SQLite round trip per user-task completion.

    ``process`` is a definition key ("kaiban-qiye", "gongcheng-shigong-xuke"), a short alias ("kaiban",
    "gongcheng") or the BPMN process id. Only the completion loops are timed.
    """
    key = _resolve(process)
    spec, subprocess_specs, user_tasks = load_spec(key)
    serializer = BpmnWorkflowSerializer()
    conn = _connect(db_path)
    completions = 0
    seconds = 0.0
    try:
        for _ in range(cases):
            # create the case (not timed)
            workflow = BpmnWorkflow(spec, subprocess_specs)
            workflow.do_engine_steps()
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute(
                "INSERT INTO spiff_case (process, state) VALUES (?, ?)", (key, serializer.serialize_json(workflow))
            )
            case_id = cur.lastrowid
            conn.execute("COMMIT")

            # complete every user task, one transaction each (timed)
            done_tasks: list[str] = []
            done = False
            start = time.perf_counter()
            while not done:
                name, done = _complete_one(conn, serializer, case_id)
                done_tasks.append(name)
                if len(done_tasks) > len(user_tasks):
                    raise AssertionError(f"case {case_id}: more completions than user tasks: {done_tasks}")
            seconds += time.perf_counter() - start

            # check (not timed)
            (state,) = conn.execute("SELECT state FROM spiff_case WHERE id = ?", (case_id,)).fetchone()
            assert serializer.deserialize_json(state).is_completed(), f"case {case_id} not completed"
            assert len(done_tasks) == len(user_tasks), f"case {case_id}: {len(done_tasks)} != {len(user_tasks)}"
            assert sorted(done_tasks) == list(user_tasks), f"case {case_id}: completed {sorted(done_tasks)}"
            completions += len(done_tasks)
    finally:
        conn.close()
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
