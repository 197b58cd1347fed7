"""bench/web.py --quick runs end to end (PostgreSQL, uvicorn with two workers, the pages and the API): its
figures are printed by the benchmark, never judged here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_web_benchmark_runs_end_to_end(postgres_url):  # postgres_url: the server is there (CI: required)
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "web.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["workers"] == 2 and figures["tasks"] >= 20_000
    assert figures["completions"] == 100  # 20 clients × 5 tasks, each claimed and completed over the API
    for key in ("queue_p50_ms", "task_page_p50_ms", "api_completions_per_s", "api_complete_p95_ms"):
        assert figures[key] > 0, key
