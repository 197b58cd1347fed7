"""What the packaging promises: the CLI starts without Prefect, and the dependency set is consistent."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_engine_and_cli_does_not_import_prefect():
    code = (
        "import sys, orchestrator, orchestrator.cli, orchestrator.engine, orchestrator.render, orchestrator.store;"
        "print('prefect' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_tongban_command_is_installed():
    result = subprocess.run([sys.executable, "-m", "orchestrator.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("validate", "render", "schema", "publish", "simulate", "calendar", "doctor", "db"):
        assert command in result.stdout
