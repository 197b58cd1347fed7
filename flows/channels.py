"""Delivery channels of the notify job: e-mail over SMTP and a signed JSON webhook, configured per
department (Settings ``notify_email``, ``notify_webhooks``, ``smtp_*``; ``"*"`` serves the departments
not listed and notices with no department, e.g. to an applicant). The in-app inbox is the third channel,
always on (orchestrator/engine/inbox.py). No Prefect here: the embedded scheduler uses these as they are.

**The webhook signature.** Each POST carries

* ``X-Tongban-Delivery``: ``<notification id>`` — the same on every attempt, so a receiver drops a
  notification it has seen (a delivery repeated after a lapsed lease, or a replay);
* ``X-Tongban-Timestamp``: Unix seconds when this attempt was signed;
* ``X-Tongban-Signature``: ``sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``.

The timestamp is inside the signature, so a captured request cannot be re-sent later with a fresh
timestamp: a receiver refuses a timestamp more than ``tolerance`` seconds away from its clock and
remembers delivery ids for at least that long (``verify`` and ``ReplayGuard`` below do both).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import smtplib
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import orjson

log = logging.getLogger("tongban.flows.channels")
SIGNATURE_HEADER = "X-Tongban-Signature"
TIMESTAMP_HEADER = "X-Tongban-Timestamp"
DELIVERY_HEADER = "X-Tongban-Delivery"
DEFAULT_TOLERANCE_S = 300
ANY_DEPARTMENT = "*"


class DeliveryFailed(Exception):
    """A channel could not deliver a notification now (the outbox retries it with backoff)."""


def for_department(configured: Mapping[str, Any], department: str | None) -> Any:
    """The department's entry, else the ``"*"`` entry, else None."""
    if department is not None and department in configured:
        return configured[department]
    return configured.get(ANY_DEPARTMENT)


# ------------------------------------------------------------------------------------------------
# the webhook


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class BadSignature(ValueError):
    """A webhook request a receiver must refuse: unsigned, wrongly signed, or too old or new (a replay)."""


def verify(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    now: float | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> int:
    """Check a webhook request as a receiver must; returns its timestamp, or raises BadSignature."""
    if not timestamp or not signature:
        raise BadSignature("missing timestamp or signature header")
    try:
        stamp = int(timestamp)
    except ValueError:
        raise BadSignature(f"timestamp {timestamp!r} is no Unix time") from None
    if abs((time.time() if now is None else now) - stamp) > tolerance_s:
        raise BadSignature(f"timestamp {stamp} is more than {tolerance_s:g} s away: a replay or a wrong clock")
    if not hmac.compare_digest(sign(secret, stamp, body), signature):
        raise BadSignature("the signature does not match the body")
    return stamp


class ReplayGuard:
    """A receiver's memory of the delivery ids it accepted within the tolerance window: a request signed
    correctly but seen before is a replay (or a repeated delivery) and is acknowledged without effect."""

    def __init__(self, tolerance_s: float = DEFAULT_TOLERANCE_S) -> None:
        self.tolerance_s = tolerance_s
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_time(self, delivery: str, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        with self._lock:
            for key in [k for k, at in self._seen.items() if now - at > 2 * self.tolerance_s]:
                del self._seen[key]
            if delivery in self._seen:
                return False
            self._seen[delivery] = now
            return True


def webhook_body(item: Any, department: str | None, channel: str = "webhook") -> bytes:
    """The JSON a webhook receives for a notification."""
    return orjson.dumps(
        {
            "id": item.id,
            "channel": channel,
            "kind": item.kind,
            "message": item.message,
            "case_id": item.case_id,
            "task_id": item.task_id,
            "department": department,
            "recipient": {
                "user": item.recipient_user,
                "department": item.recipient_department,
                "role": item.recipient_role,
            },
            "created_at": _iso(item.created_at),
        }
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


class WebhookSender:
    """POSTs signed notifications; one HTTP client (connection pool) per batch."""

    def __init__(self, timeout_s: float) -> None:
        import httpx

        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)

    def send(self, url: str, secret: str, item: Any, department: str | None) -> None:
        import httpx

        body = webhook_body(item, department)
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            DELIVERY_HEADER: str(item.id),
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(secret, stamp, body),
        }
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"webhook {url.split('?', 1)[0]}: {type(exc).__name__}: {exc}") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"webhook {url.split('?', 1)[0]} answered HTTP {response.status_code}")

    def close(self) -> None:
        self._client.close()


# ------------------------------------------------------------------------------------------------
# e-mail


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 25
    security: str = "none"  # none | starttls | ssl
    username: str | None = None
    password: str | None = None
    sender: str = "tongban@localhost"
    timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Any) -> SmtpConfig | None:
        if not settings.smtp_host:
            return None
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_security,
            settings.smtp_username,
            password,
            settings.smtp_sender,
            settings.smtp_timeout_s,
        )


KIND_SUBJECTS = {
    "task_ready": "新待办",
    "warning": "即将到期（黄牌）",
    "overdue": "已逾期（红牌）",
    "negative_decision": "否定报备",
    "incident": "自动步骤异常",
    "deemed_consent": "逾期视为同意",
}


class MailSender:
    """Sends notices over one SMTP connection per batch (opened on the first message)."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._smtp: smtplib.SMTP | None = None

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            c = self.config
            try:
                if c.security == "ssl":
                    smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                        c.host, c.port, timeout=c.timeout_s, context=ssl.create_default_context()
                    )
                else:
                    smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout_s)
                    if c.security == "starttls":
                        smtp.starttls(context=ssl.create_default_context())
                if c.username:
                    smtp.login(c.username, c.password or "")
            except (OSError, smtplib.SMTPException) as exc:
                raise DeliveryFailed(f"SMTP {c.host}:{c.port}: {type(exc).__name__}: {exc}") from None
            self._smtp = smtp
        return self._smtp

    def send(self, addresses: list[str], item: Any) -> None:
        message = EmailMessage()
        message["From"] = self.config.sender
        message["To"] = ", ".join(addresses)
        message["Subject"] = f"[通办] {KIND_SUBJECTS.get(item.kind, '通知')}"
        message["Date"] = format_datetime(item.created_at)
        message["Message-ID"] = make_msgid(idstring=f"tongban-{item.id}")
        message["X-Tongban-Notification"] = str(item.id)
        message.set_content(item.message)
        try:
            refused = self._connection().send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            self.close()  # a broken connection is not reused
            raise DeliveryFailed(f"SMTP: {type(exc).__name__}: {exc}") from None
        if refused:  # the others have it: sending again would repeat it to them; the bad addresses are logged
            log.warning("notification %s: SMTP refused %s", item.id, ", ".join(sorted(refused)))

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                self._smtp.close()
            self._smtp = None
