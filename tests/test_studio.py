"""The studio's work on a text, without the web: problems at their lines, a bounded simulation, and
what changed between two versions."""

from __future__ import annotations

import threading

import pytest

from orchestrator.definition.compare import compare
from orchestrator.definition.validator import load_definition
from orchestrator.engine.errors import Busy, InvalidData
from orchestrator.studio import check_text, simulate_text

from .conftest import FIXTURES

TEXT = (FIXTURES / "kaiban-mini.yaml").read_text(encoding="utf-8")


def test_a_text_is_checked_without_a_file_name(departments):
    checked = check_text(TEXT.replace("department: gaj", "department: gongan"), departments)
    assert not checked.ok
    assert [(p.line, p.message) for p in checked.problems] == [
        (19, "step 'seal': unknown department 'gongan'; departments are listed in departments.yaml")
    ]
    assert check_text(TEXT.replace("key: kaiban-mini", "key: another-key"), departments).ok  # no file to match
    assert check_text("", departments).problems[0].message.startswith("the text is empty")


def test_a_simulation_that_takes_too_long_is_stopped(departments):
    with pytest.raises(Busy, match=r"took longer than 0\.01 seconds and was stopped"):
        simulate_text(TEXT, departments, cases=200, timeout_s=0.01)


def test_one_simulation_at_a_time_and_none_of_a_text_with_problems(departments, monkeypatch):
    import orchestrator.studio as studio

    with pytest.raises(InvalidData) as refused:
        simulate_text(TEXT.replace("department: gaj", "department: gongan"), departments)
    assert "unknown department 'gongan'" in refused.value.problems[0]
    held = threading.Lock()
    held.acquire()
    monkeypatch.setattr(studio, "_one_at_a_time", held)
    with pytest.raises(Busy, match="another simulation is running"):
        simulate_text(TEXT, departments)


def test_a_small_simulation_reports_each_step(departments):
    report = simulate_text(TEXT, departments, cases=5)
    assert report.cases == 5 and [f.step_id for f in report.steps] == [
        "accept",
        "licence",
        "seal",
        "invoice",
        "social",
        "issue",
    ]


def test_compare_names_what_was_added_removed_and_changed(departments):
    old = load_definition("kaiban-mini.yaml", departments, text=TEXT)
    new_text = (
        TEXT.replace("limit: 0.5d, lead: true", "limit: 4h, lead: true")
        .replace("{key: employees, label: 参保职工人数, type: int, min: 0}", "{key: staff, label: 职工人数, type: int}")
        .replace("required: true, deferrable: true}", "required: true, deferrable: false}")
        .replace("promised: 1d", "promised: 2d")
        .replace("when: employees > 0", "when: staff > 0")
    )
    comparison = compare(old, load_definition("kaiban-mini.yaml", departments, text=new_text))
    assert comparison.steps.added == () and comparison.steps.removed == ()
    assert [(c.id, c.keys) for c in comparison.steps.changed] == [("licence", ("limit",)), ("social", ("when",))]
    assert comparison.steps.changed[0].changes == ("limit: 0.5d → 4h",)
    assert comparison.form.added == (("staff", "职工人数"),) and comparison.form.removed == (
        ("employees", "参保职工人数"),
    )
    assert [(c.id, c.changes) for c in comparison.materials.changed] == [("lease", ("deferrable: true → false",))]
    assert comparison.limits == ("promised: 1d → 2d",)
    assert not compare(old, old)
