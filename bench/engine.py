"""Engine throughput: task completions per second on SQLite and PostgreSQL, against SpiffWorkflow.

For 开办企业 (kaiban-qiye) and 工程建设项目施工许可 (gongcheng-shigong-xuke):

* our engine drives cases to the end with simulated staff (orchestrator/simulation/simulate.py, every
  decision an approval) and times only the completing calls — ``accept_case`` (the window's step),
  ``complete_task`` (a signature of a review chain, survey or countersign counts as one) and
  ``issue_certificates``; each is one transaction, as one web request would be. Claims and the
  staff's own reads are not timed.
* SpiffWorkflow runs the same processes (bench/spiff_baseline.py, BPMN generated from the same YAML:
  a userTask per signature, the same ``when`` conditions over the same kind of form): for every
  completion it loads the workflow's JSON from SQLite, completes the task, serializes and stores it.
* SQL statements per completion: each execute or executemany call (a round trip) counts once;
  BEGIN/COMMIT and savepoints are not counted.
* ``sweep_1m_s`` comes from bench/sweep.py (the SLA sweep over 1,000,000 open tasks).

Each figure is the median of RUNS runs (the machines are shared and noisy). The last line printed is
one JSON object with the figures.

    .venv/bin/python bench/engine.py [--cases 150] [--runs 3] [--skip-sweep]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from orchestrator.calendar import BusinessCalendar  # noqa: E402
from orchestrator.definition.validator import load_departments  # noqa: E402
from orchestrator.engine import Engine, publish_paths  # noqa: E402
from orchestrator.simulation.simulate import EVERYONE_APPROVES, SimClock, act, create_staff, submit_case  # noqa: E402
from orchestrator.store import connect, prepared, upgrade  # noqa: E402
from orchestrator.store.db import scratch_postgres  # noqa: E402

PROCESSES = ("kaiban-qiye", "gongcheng-shigong-xuke")
DEFINITIONS = ROOT / "definitions"
COMPLETING = ("accept_case", "complete_task", "issue_certificates")
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


class Meter:
    """Times the completing calls of one engine and counts the SQL they issue (SQLite)."""

    def __init__(self, engine: Engine) -> None:
        self.seconds = 0.0
        self.completions = 0
        self.statements = 0
        self._inside = False
        for name in COMPLETING:
            setattr(engine, name, self._timed(getattr(engine, name)))
        # one count per execute or executemany call: a round trip to the database
        prepared.statement_hook = self._count
        sa.event.listen(engine.db, "before_cursor_execute", self._count_statement)

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._inside = True
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.completions += 1
                self._inside = False

        return timed

    def _count(self) -> None:
        if self._inside:
            self.statements += 1

    def _count_statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip().upper().startswith(TRANSACTION_CONTROL):
            self._count()


def run_ours(url: str, process: str, cases: int, seed: int, synchronous: str = "FULL") -> dict[str, float]:
    db = connect(url, sqlite_synchronous=synchronous)
    upgrade(db)
    clock = SimClock()
    path = DEFINITIONS / f"{process}.yaml"
    published = publish_paths(db, [path], clock())
    assert not published[0].problems, published[0].problems
    engine = Engine(db, BusinessCalendar.from_file(DEFINITIONS / "calendar.yaml"), clock)
    with db.connect() as conn:
        _, definition = engine.definitions.latest(conn, process)
    staff = create_staff(engine, definition, load_departments(DEFINITIONS / "departments.yaml"))
    rng = random.Random(seed)
    case_ids = [submit_case(engine, definition, rng, n, EVERYONE_APPROVES) for n in range(cases)]
    meter = Meter(engine)
    open_cases = list(case_ids)
    while open_cases:  # interleave cases, as a department works many at once
        case_id = rng.choice(open_cases)
        if not act(engine, case_id, rng, staff, EVERYONE_APPROVES):
            open_cases.remove(case_id)
        clock.advance(engine.calendar, 0.5)
    with db.connect() as conn:
        states = dict(
            conn.execute(sa.text("SELECT state, count(*) FROM cases GROUP BY state")).all()  # type: ignore[arg-type]
        )
    assert states == {"completed": cases}, states
    stats = engine.kept_copy_stats
    engine.dispose()
    return {
        "kept_copy_hit_rate": stats.hit_rate,
        "completions": meter.completions,
        "seconds": meter.seconds,
        "completions_per_s": meter.completions / meter.seconds,
        "sql_per_completion": meter.statements / meter.completions if meter.statements else float("nan"),
    }


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / f'bench-{uuid.uuid4().hex[:8]}.sqlite'}"


def median_of(runs: int, measure: Callable[[int], dict[str, float]]) -> dict[str, float]:
    results = [measure(run) for run in range(runs)]
    return {key: statistics.median(r[key] for r in results) for key, value in results[0].items() if _is_number(value)}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def sweep_figure() -> float | None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "sweep.py")], capture_output=True, text=True, check=False
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        print(result.stdout[-2000:], result.stderr[-2000:], file=sys.stderr)
        return None
    print(result.stdout.strip())
    return json.loads(lines[-1])["sweep_1m_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=150, help="cases per run (default 150)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the median is reported")
    parser.add_argument("--skip-sweep", action="store_true", help="leave out the 1M-task sweep")
    parser.add_argument(
        "--synchronous",
        choices=("FULL", "NORMAL"),
        default="FULL",
        help="SQLite durability for both engines (FULL, the default: a commit is on disk when it returns)",
    )
    parser.add_argument("--only", choices=PROCESSES, help="measure one process")
    parser.add_argument("--skip-postgres", action="store_true", help="leave out PostgreSQL")
    args = parser.parse_args()

    import spiff_baseline
    from spiff_baseline import run_spiff

    spiff_baseline.SYNCHRONOUS = args.synchronous

    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for process in [args.only] if args.only else PROCESSES:
            short = process.split("-")[0]
            sqlite = median_of(
                args.runs, lambda run, p=process: run_ours(sqlite_url(folder), p, args.cases, run, args.synchronous)
            )
            print(f"{process} SQLite: {sqlite['completions_per_s']:.0f} completions/s, "
                  f"{sqlite['sql_per_completion']:.2f} SQL statements per completion")  # fmt: skip

            def on_postgres(run: int, p: str = process) -> dict[str, float]:
                with scratch_postgres("tongban_bench") as url:
                    return run_ours(url, p, args.cases, run)

            postgres: dict[str, float | None] = {"completions_per_s": None}  # null in the JSON, not NaN
            if not args.skip_postgres:
                postgres = median_of(args.runs, on_postgres)
                print(f"{process} PostgreSQL: {postgres['completions_per_s']:.0f} completions/s")
            spiff = median_of(
                args.runs,
                lambda run, p=process: run_spiff(p, args.cases, str(folder / f"spiff-{p}-{run}.sqlite"), seed=run),
            )
            ratio = sqlite["completions_per_s"] / spiff["completions_per_s"]
            print(f"{process} SpiffWorkflow (JSON persisted per completion): {spiff['completions_per_s']:.0f} "
                  f"completions/s; ours on SQLite is {ratio:.1f}x")  # fmt: skip
            figures[f"completions_per_s_sqlite_{short}"] = round(sqlite["completions_per_s"], 1)
            figures[f"completions_per_s_postgres_{short}"] = _rounded(postgres["completions_per_s"])
            figures[f"spiff_completions_per_s_{short}"] = round(spiff["completions_per_s"], 1)
            figures[f"spiff_ratio_{short}"] = round(ratio, 2)
            figures[f"sql_per_completion_{short}"] = round(sqlite["sql_per_completion"], 2)
            figures[f"kept_copy_hit_rate_{short}"] = round(sqlite["kept_copy_hit_rate"], 3)
    # the headline keys: the slower process of the two (the conservative figure)
    shorts = [p.split("-")[0] for p in ([args.only] if args.only else PROCESSES)]
    figures["completions_per_s_sqlite"] = min(figures[f"completions_per_s_sqlite_{s}"] for s in shorts)
    measured = [figures[f"completions_per_s_postgres_{s}"] for s in shorts if not args.skip_postgres]
    figures["completions_per_s_postgres"] = min(measured) if measured else None
    figures["spiff_completions_per_s"] = max(figures[f"spiff_completions_per_s_{s}"] for s in shorts)
    figures["spiff_ratio"] = min(figures[f"spiff_ratio_{s}"] for s in shorts)
    figures["sql_per_completion"] = max(figures[f"sql_per_completion_{s}"] for s in shorts)
    figures["sqlite_synchronous"] = args.synchronous
    figures["sweep_1m_s"] = None if args.skip_sweep else sweep_figure()
    figures["cases_per_run"] = args.cases
    figures["runs"] = args.runs
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
