"""Automatic (秒批) steps run by themselves: 10,000 waiting tasks decided embedded and through a Prefect worker.

Each task is a case of a small 秒批 definition (auto_accept → an ``auto`` rule over the form → a person only
when it says no → auto_issue), submitted with ``auto_inline=False`` so that its rule waits for a worker.
Deciding one is one transaction: the rule, the skipped review, the e-certificate, the case closed.
For scale, the same machine's engine rate is measured too: a person completing review tasks whose
completion does the same work after it (``engine_completions_per_s_sqlite``).

* **embedded, SQLite** (the one-machine default, durable commits: synchronous=FULL): the ``auto_steps``
  job the embedded scheduler runs (flows/jobs.py), in this process, timed from start to empty queue;
* **in process, PostgreSQL**: the same job on the PostgreSQL database the Prefect run uses;
* **Prefect**: a real ``prefect server start`` on loopback (its own scratch PostgreSQL database), the
  deployments registered (``tongban deploy``), one ``tongban worker``, one ``auto_steps`` flow run of
  batches of ``--batch`` tasks, each batch a Prefect task. Prefect's overhead per batch is the flow
  run's running time less its batches' own running times (both from Prefect's API), per batch; the wait
  from the trigger to the flow starting (worker polling, a new process, imports) is reported apart, as
  ``prefect_flow_run_start_s``.

    .venv/bin/python bench/auto_steps.py [--tasks 10000] [--batch 500] [--no-prefect]

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flows.jobs import Jobs  # noqa: E402
from orchestrator.engine import publish_paths  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402
from orchestrator.store import connect, upgrade  # noqa: E402
from orchestrator.store.db import scratch_postgres  # noqa: E402

DEFINITION = """
key: bench-miaopi
name: 秒批基准
summary: 网上申报，规则秒批，在线签发
case_kind: promised
limits: {promised: 5d, warning: 0.25}
form:
  - {key: age, label: 年龄, type: int, min: 0, max: 150, required: true}
  - {key: local, label: 本市户籍, type: bool, default: true}
  - {key: ok, label: 秒批结果, type: bool, default: false}
materials:
  - {key: id_card, label: 居民身份证, required: true, source: government}
steps:
  - {id: accept, kind: acceptance, name: 网上受理, department: zwfw, limit: 1h, auto_accept: true}
  - {id: check, kind: auto, name: 秒批, department: lnb, after: [accept], limit: 1h, rule: age >= 60 and local,
     result_field: ok, on_false: continue}
  - {id: review, kind: approval, name: 人工审核, department: lnb, after: [check], when: not ok, limit: 3d}
  - {id: issue, kind: issue, name: 在线签发, department: lnb, after: [check, review], limit: 2h,
     certificates: [{key: card, name: 优待证, issuer: lnb}], delivery: [online], auto_issue: true}
remedy: 如不服本决定，可在收到之日起六十日内向市人民政府申请行政复议，或者六个月内向区人民法院提起行政诉讼。
"""
READY = "SELECT count(*) FROM tasks WHERE state = 'ready' AND kind = 'auto'"


def definitions(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "definitions" / "departments.yaml", folder / "departments.yaml")
    (folder / "bench-miaopi.yaml").write_text(DEFINITION, encoding="utf-8")
    return folder


def settings_for(url: str, **values: object) -> Settings:
    return Settings(home=ROOT, database_url=url, auto_inline=False, **values)


def populate(url: str, folder: Path, tasks: int, jobs: Jobs | None = None) -> float:
    """``tasks`` accepted cases each with its 秒批 task waiting; returns the seconds it took. ``jobs``:
    submit through the engine that will decide them (the embedded set-up: the web process and the
    scheduler share one engine), else through an engine of its own (another process)."""
    db = connect(url)
    upgrade(db)
    published = publish_paths(db, [folder], datetime.now(UTC))
    assert not [p for p in published if p.problems], published
    db.dispose()
    submitter = jobs or Jobs(settings_for(url))
    started = time.perf_counter()
    for n in range(tasks):
        applicant = {"id": f"B{n:08d}", "name": "申请人"}
        submitter.engine.submit_case("bench-miaopi", applicant, {"age": 60 + n % 40}, ["id_card"])
    took = time.perf_counter() - started
    if jobs is None:
        submitter.close()
    return took


def person_baseline(url: str, folder: Path, count: int) -> float:
    """The engine's own rate on the same database and machine: a person completes ``count`` review tasks
    (the rule said no), each one transaction doing the same work after it as a 秒批 decision (the skipped
    or finished review, the e-certificate, the case closed). Returns completions per second."""
    jobs = Jobs(settings_for(url))
    engine = jobs.engine
    engine.add_user("lnb-bench", "审核人", [("lnb", "handler")])
    for n in range(count):
        engine.submit_case("bench-miaopi", {"id": f"P{n:08d}", "name": "申请人"}, {"age": 30}, ["id_card"])
    jobs.auto_steps()  # every rule says no: the review steps wait in lnb's queue
    with engine.db.connect() as conn:
        reviews = conn.exec_driver_sql("SELECT id FROM tasks WHERE step_id = 'review' AND state = 'ready'").scalars()
        reviews = list(reviews)
    assert len(reviews) == count
    started = time.perf_counter()
    for task_id in reviews:
        engine.complete_task(task_id, "lnb-bench", "approve", "同意")
    took = time.perf_counter() - started
    jobs.close()
    return count / took


def waiting(url: str) -> int:
    db = connect(url)
    with db.connect() as conn:
        count = conn.exec_driver_sql(READY).scalar_one()
    db.dispose()
    return count


def in_process(url: str, batch: int, jobs: Jobs | None = None) -> tuple[float, int]:
    """The auto_steps job as the embedded scheduler runs it; (seconds, tasks decided)."""
    runner = jobs or Jobs(settings_for(url, auto_batch=batch))
    started = time.perf_counter()
    result = runner.auto_steps(batch_size=batch)
    took = time.perf_counter() - started
    if jobs is None:
        runner.close()
    return took, result.decided


# ------------------------------------------------------------------------------------------------
# Prefect


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(api + "/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@contextlib.contextmanager
def prefect_server(home: Path, environment: dict[str, str]) -> Iterator[tuple[dict[str, str], float]]:
    """A Prefect server on loopback with its own scratch PostgreSQL database; (environment, seconds to boot)."""
    with scratch_postgres("bench_prefect_server") as prefect_db:
        port = _free_port()
        api = f"http://127.0.0.1:{port}/api"
        environment = {
            **environment,
            "PREFECT_HOME": str(home / "prefect"),
            "PREFECT_API_URL": api,
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": prefect_db.replace("postgresql+psycopg", "postgresql+asyncpg"),
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        started = time.perf_counter()
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=environment,
            stdout=(home / "server.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            while not _healthy(api):
                if server.poll() is not None or time.perf_counter() - started > 300:
                    raise RuntimeError("the Prefect server did not come up:\n" + (home / "server.log").read_text())
                time.sleep(0.5)
            yield environment, time.perf_counter() - started
        finally:
            _stop(server)


TRIGGER = """
import json, sys, time
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.deployments import run_deployment
run = run_deployment("auto_steps/tongban", parameters={"batch_size": int(sys.argv[1])}, timeout=0, as_subflow=False)
with get_client(sync_client=True) as client:
    while True:
        run = client.read_flow_run(run.id)
        if run.state.is_final():
            break
        time.sleep(0.5)
    tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
batches = [t for t in tasks if t.task_key.startswith("auto_batch") or t.name.startswith("auto-batch")]
print(json.dumps({"state": run.state.type.value, "created": run.created.timestamp(),
                  "start": run.start_time.timestamp(), "end": run.end_time.timestamp(),
                  "run_time": run.total_run_time.total_seconds(), "batches": len(batches),
                  "in_batches": sum(t.total_run_time.total_seconds() for t in batches)}))
"""


def through_prefect(url: str, batch: int, home: Path) -> dict[str, float]:
    environment = {**os.environ, "TONGBAN_HOME": str(ROOT), "TONGBAN_DATABASE_URL": url, "TONGBAN_AUTO_INLINE": "false"}
    with prefect_server(home, environment) as (environment, boot_s):
        deployed = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "deploy", "--paused"],
            env=environment,
            capture_output=True,
            text=True,
        )
        if deployed.returncode:
            raise RuntimeError(deployed.stderr)
        worker = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "worker", "--limit", "1"],
            env=environment,
            stdout=(home / "worker.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            done = subprocess.run(
                [sys.executable, "-c", TRIGGER, str(batch)], env=environment, capture_output=True, text=True
            )
            if done.returncode:
                raise RuntimeError(done.stderr + (home / "worker.log").read_text())
            run = json.loads(done.stdout.strip().splitlines()[-1])
        finally:
            _stop(worker)
    if run["state"] != "COMPLETED":
        raise RuntimeError(f"the flow run ended {run['state']}:\n" + (home / "worker.log").read_text())
    return {**run, "boot_s": boot_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500, help="tasks per batch (one Prefect task each)")
    parser.add_argument("--no-prefect", action="store_true", help="embedded and in-process figures only")
    parser.add_argument("--baseline", type=int, default=2000, help="a person's completions timed for comparison")
    args = parser.parse_args()
    figures: dict[str, object] = {"tasks": args.tasks, "batch": args.batch, "sqlite_synchronous": "FULL"}
    with tempfile.TemporaryDirectory(prefix="bench-auto-") as scratch:
        home = Path(scratch)
        folder = definitions(home / "definitions")

        url = f"sqlite:///{home / 'embedded.sqlite'}"
        embedded = Jobs(settings_for(url, auto_batch=args.batch))  # one engine, as in `tongban serve`
        setup = populate(url, folder, args.tasks, embedded)
        took, decided = in_process(url, args.batch, embedded)
        embedded.close()
        assert decided == args.tasks and waiting(url) == 0, (decided, waiting(url))
        figures["auto_jobs_per_s_embedded"] = round(args.tasks / took, 1)
        print(f"embedded, SQLite:      {args.tasks} tasks in {took:.2f} s = {args.tasks / took:.0f}/s "
              f"(set-up {setup:.1f} s)", flush=True)  # fmt: skip
        baseline = person_baseline(url, folder, args.baseline)
        figures["engine_completions_per_s_sqlite"] = round(baseline, 1)
        print(f"  the engine's own rate: a person's {args.baseline} completions at {baseline:.0f}/s", flush=True)

        with scratch_postgres("bench_auto_steps") as pg:
            populate(pg, folder, args.tasks)
            took_pg, decided = in_process(pg, args.batch)
            assert decided == args.tasks and waiting(pg) == 0
            figures["auto_jobs_per_s_postgres_in_process"] = round(args.tasks / took_pg, 1)
            print(f"in process, PostgreSQL: {args.tasks} tasks in {took_pg:.2f} s = {args.tasks / took_pg:.0f}/s",
                  flush=True)  # fmt: skip
            if not args.no_prefect:
                populate(pg, folder, args.tasks)
                run = through_prefect(pg, args.batch, home)
                assert waiting(pg) == 0, "the flow run left tasks waiting"
                batches = run["batches"]
                # time the flow run spent outside its batches' bodies: Prefect's task orchestration (task run
                # created, moved to Running and Completed through the API), the check for work before each batch
                overhead = (run["run_time"] - run["in_batches"]) / batches
                figures.update(
                    auto_jobs_per_s_prefect=round(args.tasks / run["run_time"], 1),
                    prefect_overhead_per_batch_s=round(overhead, 4),
                    prefect_batches=batches,
                    prefect_flow_run_s=round(run["run_time"], 2),
                    prefect_flow_run_start_s=round(run["start"] - run["created"], 2),
                    prefect_server_boot_s=round(run["boot_s"], 1),
                )
                print(f"Prefect worker:        {args.tasks} tasks in {run['run_time']:.2f} s of flow run "
                      f"({batches} batches) = {args.tasks / run['run_time']:.0f}/s; overhead {overhead:.3f} s "
                      f"per batch; flow run started {run['start'] - run['created']:.1f} s after the trigger",
                      flush=True)  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
