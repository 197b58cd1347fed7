"""Scaled out, for real: a Prefect server on loopback (``prefect server start`` on a PostgreSQL database of
its own), ``tongban deploy``, a ``tongban worker``, flow runs of every deployment, and the tongban
database checked afterwards. The 老年人优待证 runs from submission to its e-certificate with nobody
acting; automatic steps, the 容缺 timer, 逾期视为同意, notifications through a webhook receiver that
verifies every signature, and the daily report all run through the worker.

Everything runs once per test run (one module-scoped server, about 10–60 s to come up) and stops only
the processes it started, by their process ids. The pytest process itself never imports Prefect: the
deployments are triggered from a subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from flows.channels import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, BadSignature, ReplayGuard, verify
from orchestrator.calendar import TZ, BusinessCalendar
from orchestrator.engine import Engine, publish_paths
from orchestrator.engine.lookups import load_records
from orchestrator.store import connect, upgrade
from orchestrator.store.db import scratch_postgres
from orchestrator.store.db import test_server_url as postgres_server_url

from ..conftest import DEFINITIONS, FIXTURES, ROOT
from ..engine.conftest import IN_CI
from ..engine.helpers import AUTO_APPLICANT

SECRET = "a-webhook-secret-long-enough-for-hmac"
BOOT_TIMEOUT = 240
RUN_TIMEOUT = 600
PAST = datetime(2026, 3, 2, 10, 0, tzinfo=TZ)  # the cases are made on this clock; the worker runs on the real one
ELDER = {"id": "110101195001011234", "name": "王五"}


class Receiver(BaseHTTPRequestHandler):
    """A webhook receiver (an SMS gateway, say): checks every signature, remembers delivery ids."""

    guard = ReplayGuard()
    accepted: ClassVar[list[dict[str, Any]]] = []
    refused: ClassVar[list[str]] = []
    repeated: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            verify(SECRET, body, self.headers.get(TIMESTAMP_HEADER), self.headers.get(SIGNATURE_HEADER))
        except BadSignature as exc:
            self.refused.append(str(exc))
            self.send_response(401)
            self.end_headers()
            return
        delivery = self.headers.get(DELIVERY_HEADER, "")
        if self.guard.first_time(delivery):
            self.accepted.append(json.loads(body))
        else:
            self.repeated.append(delivery)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(process: subprocess.Popen, grace: float = 20) -> None:
    """Stop a process this test started (and the children in its own session), by its id."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@pytest.fixture(scope="module")
def scaled_out(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The Prefect server, the tongban database with the definitions, a webhook receiver, and the
    environment every process of the set-up shares."""
    home = tmp_path_factory.mktemp("scaled")
    with contextlib.ExitStack() as stack:
        try:
            prefect_db = stack.enter_context(scratch_postgres("prefect_server"))
            tongban_url = stack.enter_context(scratch_postgres("tongban_prefect"))
        except sa.exc.OperationalError as exc:
            message = f"PostgreSQL is required at {postgres_server_url()} ({exc.orig})"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
        db = connect(tongban_url)
        upgrade(db)
        for path in (DEFINITIONS, FIXTURES):
            assert not [p for p in publish_paths(db, [path], datetime.now(UTC)) if p.problems]
        db.dispose()

        receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        stack.callback(receiver.server_close)
        stack.callback(receiver.shutdown)

        port = _free_port()
        api = f"http://127.0.0.1:{port}/api"
        environment = {
            **os.environ,
            "PREFECT_HOME": str(home / "prefect"),
            "PREFECT_API_URL": api,
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": prefect_db.replace("postgresql+psycopg", "postgresql+asyncpg"),
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "TONGBAN_HOME": str(ROOT),
            "TONGBAN_DATABASE_URL": tongban_url,
            "TONGBAN_AUTO_INLINE": "false",
            "TONGBAN_REPORTS_DIR": str(home / "reports"),
            "TONGBAN_NOTIFY_WEBHOOKS": json.dumps(
                {"*": {"url": f"http://127.0.0.1:{receiver.server_address[1]}/hook", "secret": SECRET}}
            ),
            "TONGBAN_PREFECT_WORK_POOL": "tongban-test",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=environment,
            stdout=(home / "server.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        stack.callback(_stop, server)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while not _healthy(api):
            assert server.poll() is None, (home / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the Prefect server did not come up"
            time.sleep(0.5)
        yield {"env": environment, "url": tongban_url, "home": home}


def _tongban(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


TRIGGER = """
import json, sys
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
names = json.loads(sys.argv[1])
runs = [run_deployment(name, parameters=parameters, timeout=0, as_subflow=False) for name, parameters in names]
import time
states = {}
deadline = time.monotonic() + float(sys.argv[2])
with get_client(sync_client=True) as client:
    while time.monotonic() < deadline:
        states = {name: client.read_flow_run(run.id).state for (name, _), run in zip(names, runs)}
        if all(s.is_final() for s in states.values()):
            break
        time.sleep(1)
    deployments = [len(d.schedules) for d in client.read_deployments()]
print(json.dumps({"states": {n: s.type.value for n, s in states.items()}, "schedules": deployments}))
"""


def _cases(url: str) -> dict[str, Any]:
    """Work for every flow, made on a clock in the past: the worker (real clock) finds it all due."""
    clock = [PAST]
    engine = Engine(connect(url), BusinessCalendar(), lambda: clock[0], auto_inline=False)
    load_records(engine.db, "hukou", [(ELDER["id"], {"hukou_local": True})], PAST)
    form = {"applicant_name": "王五", "id_number": ELDER["id"], "age": 76, "identity_verified": True,
            "card_form": "电子证", "phone": "13800000000"}  # fmt: skip
    made: dict[str, Any] = {"elder": engine.submit_case("laonianren-youdaizheng", ELDER, form, ["id_card"])}
    engine.add_user("zwfw1", "窗口", [("zwfw", "handler")])
    made["auto"] = []
    for n in range(20):
        case_id = engine.submit_case("auto-mini", {"id": f"A{n}", "name": "申请人"}, {"age": 61 + n}, ["id_card"])
        engine.accept_case(case_id, "zwfw1")
        made["auto"].append(case_id)
    case_id = engine.submit_case("lookup-mini", AUTO_APPLICANT, {"id_number": "9", "age": 70}, ["id_card"])
    engine.accept_case(case_id, "zwfw1", deferred=["photo"], deferred_limit="1h")  # owed by 11:00 that day
    made["lapsed"] = case_id
    case_id = engine.submit_case("consent-mini", {"id": "C1", "name": "丙公司"}, {"name": "丙"}, ["id_card"])
    engine.accept_case(case_id, "zwfw1")
    made["consent"] = case_id
    engine.dispose()
    return made


@pytest.fixture(scope="module")
def worker(scaled_out) -> Iterator[subprocess.Popen]:
    """The cases of every flow, the deployments registered (paused: the test triggers each run), and
    one `tongban worker`, stopped by its process id at the end."""
    environment, home = scaled_out["env"], scaled_out["home"]
    scaled_out["made"] = _cases(scaled_out["url"])
    deployed = _tongban(environment, "deploy", "--paused")
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    assert "5 deployments in work pool tongban-test" in deployed.stdout
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "worker", "--limit", "5", "--name", "test-worker"],
        env=environment,
        stdout=(home / "worker.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield process
    _stop(process)


def test_every_job_runs_through_a_worker_on_a_real_prefect_server(scaled_out, worker):
    environment, home, made = scaled_out["env"], scaled_out["home"], scaled_out["made"]
    names = [
        ["auto_steps/tongban", {"batch_size": 7}],
        ["timers/tongban", {}],
        ["deemed_consent/tongban", {}],
        ["daily_report/tongban", {"day": "2026-03-02"}],
    ]
    runs = _trigger(environment, names)
    assert runs["states"] == {name: "COMPLETED" for name, _ in names}, (home / "worker.log").read_text()[-5000:]
    assert len(runs["schedules"]) == 5 and all(n == 1 for n in runs["schedules"])  # registered, paused
    assert worker.poll() is None, "the worker stopped"

    db = connect(scaled_out["url"])
    with db.connect() as conn:

        def one(sql: str, **params: Any) -> Any:
            return conn.execute(sa.text(sql), params).scalar()

        assert one("SELECT state FROM cases WHERE id = :i", i=made["elder"]) == "completed"
        assert one("SELECT delivery FROM certificates WHERE case_id = :i", i=made["elder"]) == "online"
        actors = set(conn.execute(sa.text("SELECT DISTINCT actor FROM events WHERE case_id = :i AND actor IS NOT NULL"),
                                  {"i": made["elder"]}).scalars())  # fmt: skip
        assert actors <= {"system", ELDER["id"]}, "someone but the applicant and the system acted"
        completions = (
            "SELECT t.id, count(e.id) FROM tasks t JOIN events e ON e.task_id = t.id AND e.kind = 'task_completed'"
            " WHERE t.step_id = 'check' AND t.case_id = ANY(:ids) GROUP BY t.id"
        )
        decided = conn.execute(sa.text(completions), {"ids": made["auto"]}).all()
        assert len(decided) == 20 and all(n == 1 for _, n in decided)
        assert one("SELECT state FROM cases WHERE id = :i", i=made["lapsed"]) == "terminated"
        police = "SELECT completed_by FROM tasks WHERE case_id = :i AND step_id = 'police'"
        assert one(police, i=made["consent"]) == "rule:deemed_consent"
        assert one("SELECT state FROM tasks WHERE case_id = :i AND step_id = 'tax'", i=made["consent"]) == "ready"
    db.dispose()
    assert (home / "reports" / "daily-2026-03-02.csv").is_file()
    assert (home / "reports" / "daily-2026-03-02.html").is_file()


def test_notifications_are_delivered_through_a_worker_each_once(scaled_out, worker):
    environment, home = scaled_out["env"], scaled_out["home"]
    runs = _trigger(environment, [["notify/tongban", {}]])
    assert runs["states"] == {"notify/tongban": "COMPLETED"}, (home / "worker.log").read_text()[-5000:]
    db = connect(scaled_out["url"])
    with db.connect() as conn:
        sent = conn.execute(sa.text("SELECT id FROM notifications")).scalars().all()
        undelivered = conn.execute(sa.text("SELECT count(*) FROM notifications WHERE delivered_at IS NULL")).scalar()
        inbox = conn.execute(sa.text("SELECT count(*) FROM inbox")).scalar()
    db.dispose()
    assert sent and undelivered == 0 and inbox > 0
    assert Receiver.refused == [] and Receiver.repeated == []
    assert sorted(m["id"] for m in Receiver.accepted) == sorted(sent)


def _trigger(environment: dict[str, str], names: list[list[Any]]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", TRIGGER, json.dumps(names), str(RUN_TIMEOUT)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT + 60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
