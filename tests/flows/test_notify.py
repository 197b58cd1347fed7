"""The notify job: the outbox delivered to the in-app inbox, by e-mail to a real SMTP server on loopback
(aiosmtpd) and to a webhook receiver on loopback that verifies every signature; failures retried with
backoff and left visible; each notification delivered at most once per channel, also with two workers."""

from __future__ import annotations

import email
import multiprocessing
import socket
import threading
import traceback
from collections.abc import Iterator
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from flows.channels import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, BadSignature, ReplayGuard, verify
from flows.jobs import Jobs
from orchestrator.settings import Settings

from ..engine.helpers import AUTO_APPLICANT, open_tasks, rows_of

SECRET = "webhook-secret-for-the-tests-0123456789"


class Mailbox:
    """aiosmtpd's handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content, policy=default)))
        return "250 Message accepted for delivery"


class Receiver(BaseHTTPRequestHandler):
    guard: ClassVar[ReplayGuard]
    accepted: ClassVar[list[dict[str, Any]]]
    repeated: ClassVar[list[str]]
    refused: ClassVar[list[str]]
    failing: ClassVar[set[str]]  # departments whose deliveries this receiver answers with 503

    def do_POST(self) -> None:
        import json

        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            verify(SECRET, body, self.headers.get(TIMESTAMP_HEADER), self.headers.get(SIGNATURE_HEADER))
        except BadSignature as exc:
            self.refused.append(str(exc))
            self.send_response(401)
            self.end_headers()
            return
        payload = json.loads(body)
        if payload["department"] in self.failing:
            self.send_response(503)
            self.end_headers()
            return
        if self.guard.first_time(self.headers[DELIVERY_HEADER]):
            self.accepted.append(payload)
        else:
            self.repeated.append(self.headers[DELIVERY_HEADER])
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.guard = ReplayGuard()
    Receiver.accepted, Receiver.repeated, Receiver.refused, Receiver.failing = [], [], [], set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def settings_for(engine: Any, mail_port: int, hook: str, **values: Any) -> Settings:
    return Settings(
        database_url=engine.db.url.render_as_string(hide_password=False),
        smtp_host="127.0.0.1",
        smtp_port=mail_port,
        smtp_sender="tongban@gov.example",
        notify_email={"rsj": ["banjian@rsj.gov.example"], "*": ["zwfw@gov.example"]},
        notify_webhooks={"*": {"url": hook, "secret": SECRET}},
        notify_backoff_s=60,
        **values,
    )


def some_notifications(engine: Any) -> list[dict[str, Any]]:
    """A 秒批 case: its application, its acceptance, the review in rsj's queue."""
    case_id = engine.submit_case("auto-mini", AUTO_APPLICANT, {"age": 70}, ["id_card"])
    engine.accept_case(case_id, "zwfw1")
    assert "review" in open_tasks(engine, case_id)
    return rows_of(engine, "notifications")


def test_every_notification_reaches_the_inbox_the_mail_and_the_webhook_once(engine, mailbox, receiver):
    box, port = mailbox
    sent = some_notifications(engine)
    jobs = Jobs(settings_for(engine, port, receiver), engine)
    result = jobs.notify()
    assert {name: r.delivered for name, r in result.channels.items()} == {
        "inbox": len(sent),
        "email": len(sent),
        "webhook": len(sent),
    }
    inbox = rows_of(engine, "inbox")
    ready = next(n for n in sent if n["kind"] == "task_ready" and n["recipient_department"] == "rsj")
    reached = sorted(r["user_id"] for r in inbox if r["notification_id"] == ready["id"])
    assert reached == ["rsj1", "rsj2", "rsj3", "rsj_boss"]  # every member of the department
    accepted = next(n for n in sent if n["kind"] == "case_accepted")
    assert [r["user_id"] for r in inbox if r["notification_id"] == accepted["id"]] == [AUTO_APPLICANT["id"]]
    by_id = {m["X-Tongban-Notification"]: (to, m) for to, m in box.messages}
    assert len(by_id) == len(sent) == len(box.messages)
    assert by_id[str(ready["id"])][0] == ["banjian@rsj.gov.example"]
    assert by_id[str(accepted["id"])][0] == ["zwfw@gov.example"]  # no department: the "*" addresses
    assert "新待办" in by_id[str(ready["id"])][1]["Subject"]
    assert Receiver.refused == [] and Receiver.repeated == []
    assert sorted(p["id"] for p in Receiver.accepted) == sorted(n["id"] for n in sent)
    with engine.db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM notifications WHERE delivered_at IS NULL")).scalar() == 0
    again = jobs.notify()  # nothing is delivered twice
    assert all(r.delivered == 0 for r in again.channels.values())
    assert len(box.messages) == len(sent) and len(rows_of(engine, "inbox")) == len(inbox)


def test_a_failing_webhook_is_retried_with_backoff_then_given_up_and_visible(engine, clock, mailbox, receiver):
    from orchestrator.engine.read import failed_deliveries

    _, port = mailbox
    sent = some_notifications(engine)
    Receiver.failing = {"rsj"}
    jobs = Jobs(settings_for(engine, port, receiver, notify_max_attempts=2), engine)
    first = jobs.notify().channels["webhook"]
    to_rsj = [n for n in sent if n["recipient_department"] == "rsj" or n["task_id"] in _rsj_tasks(engine)]
    assert first.failed == len(to_rsj) > 0 and first.delivered == len(sent) - len(to_rsj)
    assert jobs.notify().channels["webhook"].failed == 0  # backing off: nothing claimed
    clock.advance(seconds=61)
    second = jobs.notify().channels["webhook"]
    assert second.given_up == len(to_rsj)
    with engine.db.connect() as conn:
        visible = failed_deliveries(conn, "webhook")
    assert sorted(f.notification_id for f in visible) == sorted(n["id"] for n in to_rsj)
    assert all("HTTP 503" in f.last_error and f.attempts == 2 for f in visible)


def _rsj_tasks(engine: Any) -> set[int]:
    return {t["id"] for t in rows_of(engine, "tasks") if t["department"] == "rsj"}


def _notify_worker(url: str, mail_port: int, hook: str, barrier: Any, out: Any) -> None:
    try:
        from orchestrator.settings import Settings

        settings = Settings(
            database_url=url,
            smtp_host="127.0.0.1",
            smtp_port=mail_port,
            notify_email={"*": ["zwfw@gov.example"]},
            notify_webhooks={"*": {"url": hook, "secret": SECRET}},
            notify_batch=3,  # many small claims, so the two workers interleave
        )
        jobs = Jobs(settings)
        barrier.wait(60)
        result = jobs.notify()
        jobs.close()
        out.put({name: r.delivered for name, r in result.channels.items()})
    except Exception:
        out.put({"error": traceback.format_exc(limit=4)})


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
def test_two_workers_deliver_each_notification_once_per_channel(db, engine, mailbox, receiver):
    box, port = mailbox
    for n in range(15):
        case_id = engine.submit_case("auto-mini", {"id": f"P{n}", "name": "申请人"}, {"age": 70}, ["id_card"])
        engine.accept_case(case_id, "zwfw1")
    sent = rows_of(engine, "notifications")
    url = db.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_notify_worker, args=(url, port, receiver, barrier, out)) for _ in range(2)]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=180) for _ in workers]
    for worker in workers:
        worker.join(60)
    assert not [r for r in results if "error" in r], results
    for channel in ("inbox", "email", "webhook"):
        assert sum(r[channel] for r in results) == len(sent), (channel, results)
    assert Receiver.repeated == [] and Receiver.refused == []
    assert sorted(p["id"] for p in Receiver.accepted) == sorted(n["id"] for n in sent)
    mailed = [m["X-Tongban-Notification"] for _, m in box.messages]
    assert len(mailed) == len(set(mailed)) == len(sent)
    inbox = rows_of(engine, "inbox")
    assert len({(r["notification_id"], r["user_id"]) for r in inbox}) == len(inbox)
