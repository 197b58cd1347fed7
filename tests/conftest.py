from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.definition import load_departments

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
DEFINITIONS = ROOT / "definitions"


@pytest.fixture(scope="session")
def departments():
    return load_departments(FIXTURES / "departments.yaml")
