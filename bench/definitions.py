"""Designer-facing speed: `tongban validate definitions/` and `tongban render` of one definition, as a
person runs them (whole command, interpreter start included). Median of RUNS runs; the last line is
one JSON object.

    .venv/bin/python bench/definitions.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TONGBAN = Path(sys.executable).parent / "tongban"


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([str(TONGBAN), *args], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        validate = [timed(["validate", "definitions/"]) for _ in range(args.runs)]
        png = Path(scratch) / "g.png"
        render = [
            timed(["render", "definitions/gongcheng-shigong-xuke.yaml", "-o", str(png)]) for _ in range(args.runs)
        ]
    sys.path.insert(0, str(ROOT))
    from orchestrator.definition.validator import check_paths, load_departments
    from orchestrator.render import render as render_bytes

    departments = load_departments(ROOT / "definitions" / "departments.yaml")
    (checked,) = check_paths([ROOT / "definitions" / "gongcheng-shigong-xuke.yaml"])
    in_process = []
    for _ in range(args.runs):
        start = time.perf_counter()
        render_bytes(checked.definition, departments, "png")
        in_process.append(time.perf_counter() - start)
    figures = {
        "validate_all_s": round(statistics.median(validate), 3),
        "render_one_png_s": round(statistics.median(render), 3),
        "render_one_png_in_process_s": round(statistics.median(in_process), 3),
        "runs": args.runs,
    }
    print(f"tongban validate definitions/: median {figures['validate_all_s']} s (target < 1 s)")
    print(f"tongban render gongcheng-shigong-xuke -o .png: median {figures['render_one_png_s']} s (target < 0.5 s)")
    print(
        "render() of gongcheng-shigong-xuke to PNG in a running process: median "
        f"{figures['render_one_png_in_process_s']} s"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
