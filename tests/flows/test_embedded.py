"""The embedded scheduler: the jobs on their intervals in this process, without the Prefect runtime; the
老年人优待证 runs from submission to its e-certificate with nobody acting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

from flows.embedded import JobThread, Scheduler, seconds_until
from flows.jobs import Jobs

from ..conftest import ROOT

ELDER = {"id": "110101195001011234", "name": "王五"}
ELDER_FORM = {
    "applicant_name": "王五",
    "id_number": ELDER["id"],
    "age": 76,
    "identity_verified": True,
    "card_form": "电子证",
    "phone": "13800000000",
}

SCRIPT = """
import json, sys, time
from datetime import UTC, datetime
from orchestrator.engine import publish_paths
from orchestrator.engine.lookups import load_records
from orchestrator.settings import load_settings
from orchestrator.store import connect, upgrade
from flows.embedded import start_scheduler

settings = load_settings()
db = connect(settings.resolved_database_url)
upgrade(db)
published = publish_paths(db, [settings.path("definitions/laonianren-youdaizheng.yaml")], datetime.now(UTC))
assert not published[0].problems, published
load_records(db, "hukou", [(ELDER["id"], {"hukou_local": True})], datetime.now(UTC))
db.dispose()

scheduler = start_scheduler(settings)
engine = scheduler.jobs.engine
case_id = engine.submit_case("laonianren-youdaizheng", ELDER, FORM, ["id_card"])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    with engine.db.connect() as conn:
        state = conn.exec_driver_sql("SELECT state FROM cases WHERE id = ?", (case_id,)).scalar()
    if state == "completed":
        break
    time.sleep(0.1)
scheduler.wait_for_rounds(2, timeout=30)
scheduler.stop()
with engine.db.connect() as conn:
    actors = sorted({a for (a,) in conn.exec_driver_sql("SELECT DISTINCT actor FROM events WHERE actor IS NOT NULL")})
    certificates = conn.exec_driver_sql("SELECT delivery FROM certificates").scalars().all()
    inbox = conn.exec_driver_sql("SELECT count(*) FROM inbox").scalar()
print(json.dumps({
    "state": state,
    "actors": actors,
    "certificates": certificates,
    "inbox": inbox,
    "rounds": scheduler.rounds,
    "failures": {t.name: t.last_error for t in scheduler.threads if t.failures},
    "prefect": sorted(m for m in sys.modules if m == "prefect" or m.startswith("prefect.")),
}))
"""


def test_the_embedded_scheduler_runs_a_case_to_its_certificate_without_entering_prefect(tmp_path):
    environment = {
        **os.environ,
        "TONGBAN_HOME": str(ROOT),
        "TONGBAN_DATABASE_URL": f"sqlite:///{tmp_path / 'embedded.sqlite'}",
        "TONGBAN_REPORTS_DIR": str(tmp_path / "reports"),
        "TONGBAN_AUTO_STEPS_INTERVAL_S": "0.1",
        "TONGBAN_TIMERS_INTERVAL_S": "0.2",
        "TONGBAN_NOTIFY_INTERVAL_S": "0.2",
        "TONGBAN_DEEMED_CONSENT_INTERVAL_S": "0.2",
    }
    script = f"ELDER = {ELDER!r}\nFORM = {ELDER_FORM!r}\n" + SCRIPT
    done = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=180, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["prefect"] == [], "the embedded scheduler imported the Prefect runtime"
    assert result["failures"] == {}, result["failures"]
    assert result["inbox"] > 0  # the notify job delivered the case's notices to the inbox
    assert result["state"] == "completed"
    assert result["certificates"] == ["online"]
    assert set(result["actors"]) <= {"system", ELDER["id"]}, "someone but the applicant and the system acted"
    assert all(result["rounds"][job] >= 2 for job in ("auto_steps", "timers", "notify", "deemed_consent"))
    assert result["rounds"]["daily_report"] >= 1
    assert (tmp_path / "reports").is_dir()


def test_a_round_that_fails_is_logged_and_the_next_round_runs(engine, caplog):
    calls: list[int] = []
    ran_twice = threading.Event()

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        ran_twice.set()

    scheduler = Scheduler(Jobs(engine=engine), [JobThread("flaky", flaky, lambda _r: 0.01)]).start()
    try:
        assert ran_twice.wait(10)
    finally:
        scheduler.stop()
    (job,) = scheduler.threads
    assert job.failures == 1 and "the database went away" in job.last_error
    assert "flaky: the round failed" in caplog.text
    assert not job.thread.is_alive()


def test_the_daily_report_waits_for_its_time_of_day():
    from datetime import datetime

    from orchestrator.calendar import TZ

    assert seconds_until("00:30", datetime(2026, 3, 2, 0, 0, tzinfo=TZ)) == 30 * 60
    assert seconds_until("00:30", datetime(2026, 3, 2, 0, 30, tzinfo=TZ)) == 24 * 3600
    assert seconds_until("00:30", datetime(2026, 3, 1, 16, 0, tzinfo=TZ).astimezone(TZ)) == 8.5 * 3600
