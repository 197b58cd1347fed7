"""The daily report against a hand count, on SQLite and PostgreSQL; CSV and HTML written whole."""

from __future__ import annotations

import csv
from datetime import date

from orchestrator.reports import daily_report, write_report
from orchestrator.store.db import reading

from ..engine.helpers import AUTO_APPLICANT, at, open_tasks

CONSENT_APPLICANT = {"id": "91310000MA1K000009", "name": "丙公司"}
MONDAY, FRIDAY = date(2026, 3, 2), date(2026, 3, 6)


def report_of(engine, day):
    with reading(engine.db) as conn:
        return daily_report(conn, day)


def figures(report, key, department=""):
    (row,) = [d for d in report.definitions if d.definition_key == key]
    if not department:
        return row.figures
    (dept,) = [d for d in row.departments if d.department == department]
    return dept.figures


def test_a_day_and_the_open_overdue_work_at_its_end(engine, clock, tmp_path):
    late = engine.submit_case("consent-mini", CONSENT_APPLICANT, {"name": "丙"}, ["id_card"])
    engine.accept_case(late, "zwfw1")  # Mon 10:00; its reviews are due Tue 17:00, the case Thu 17:00
    done = engine.submit_case("auto-mini", AUTO_APPLICANT, {"age": 70}, ["id_card"])
    engine.accept_case(done, "zwfw1")  # 秒批 inline; the review is next
    engine.submit_case("auto-mini", {"id": "X3", "name": "赵六"}, {"age": 80}, ["id_card"])  # not accepted
    clock.set(at(2, 11))
    engine.complete_task(open_tasks(engine, done)["review"], "rsj1", "approve", "同意")
    clock.set(at(2, 11, 30))
    engine.issue_certificates(open_tasks(engine, done)["issue"], "zwfw1")

    monday = report_of(engine, MONDAY)
    assert [d.definition_key for d in monday.definitions] == ["auto-mini", "consent-mini"]
    auto = figures(monday, "auto-mini")
    assert (auto.intake, auto.completed, auto.completed_on_time, auto.on_time_rate, auto.open_overdue) == (
        2,
        1,
        1,
        1.0,
        0,
    )
    consent = figures(monday, "consent-mini")
    assert (consent.intake, consent.completed, consent.on_time_rate, consent.open_overdue) == (1, 0, None, 0)
    window = figures(monday, "auto-mini", "zwfw")  # two acceptances and the issue reached the window
    assert (window.intake, window.completed, window.completed_on_time) == (3, 2, 2)
    rsj = figures(monday, "auto-mini", "rsj")  # the 秒批 step and the review
    assert (rsj.intake, rsj.completed) == (2, 2)
    assert figures(monday, "consent-mini", "gaj").intake == 1

    clock.set(at(6, 9))
    friday = report_of(engine, FRIDAY)
    assert figures(friday, "consent-mini").open_overdue == 1  # due Thu 17:00, still open
    assert figures(friday, "consent-mini", "gaj").open_overdue == 1
    assert figures(friday, "consent-mini", "swj").open_overdue == 1
    assert figures(friday, "auto-mini").open_overdue == 0  # the unaccepted application has no deadline
    assert figures(friday, "auto-mini").intake == 0

    files = write_report(monday, tmp_path / "reports")
    assert files.csv.name == "daily-2026-03-02.csv" and files.html.name == "daily-2026-03-02.html"
    rows = list(csv.DictReader(files.csv.open(encoding="utf-8")))
    whole = [r for r in rows if r["definition_key"] == "auto-mini" and not r["department"]]
    assert [(r["intake"], r["completed"], r["on_time_rate"]) for r in whole] == [("2", "1", "1.0000")]
    html = files.html.read_text(encoding="utf-8")
    assert "秒批测试一件事" in html and "人力资源和社会保障局" in html and "100.0%" in html
    assert [p.name for p in files.csv.parent.iterdir() if p.name.startswith(".")] == []  # no half-written file
