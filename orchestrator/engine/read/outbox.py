"""The notification outbox: workers claim what a channel still owes, deliver it, and say how it went.

Choice: **one delivery row per notification and channel** (``notification_deliveries``, unique on
``(notification_id, channel)``) rather than columns on ``notifications``. Channels (站内信 inbox, SMTP,
webhooks …) come and go and fail independently: each needs its own attempts, lease, retry time and
error, and the unique key is what makes "at most once per channel" a database fact instead of a
convention. The engine only ever appends ``notifications`` rows in its transitions, unchanged; a
delivery row is made by the first claim of that notification on that channel. A notification owes
something to every *enabled* channel in ``notification_channels`` until it is **settled**
(``settled_at``: every enabled channel delivered it or gave up on it); ``delivered_at`` is set when every
one of them delivered it. Claims read only unsettled notifications (the partial index
``ix_notifications_unsettled``), so the work of a claim grows with the backlog, not with the history.

Protocol (every function runs in the caller's write transaction: ``with db.begin() as conn``):

1. ``claim(conn, channel, now=…, limit=…, lease=…)`` picks the oldest notifications this channel has not
   delivered or given up on, that no live lease holds and whose retry time has come, and takes a lease
   (``claimed_until``) under a fresh token, counting an attempt. The claim is one ``INSERT … ON CONFLICT
   (notification_id, channel) DO UPDATE … WHERE <no live lease, due> RETURNING``: whichever transaction
   writes the delivery row first wins it, and a second claimer's conflicting row is neither updated nor
   returned, so no notification is held by two claimers. On PostgreSQL the candidates are also read
   ``FOR NO KEY UPDATE SKIP LOCKED``, so concurrent claimers take different rows instead of queueing
   on one another; on SQLite ``BEGIN IMMEDIATE`` makes one writer at a time.
2. ``mark_delivered(conn, channel, token, ids, now=…)``: delivered, for the rows this token still holds.
3. ``mark_failed(conn, channel, token, id, error, now=…, retry_at=…)``: the error is kept; the row waits
   until ``retry_at``, or becomes ``failed`` for good after the channel's ``max_attempts`` (it stays
   visible: ``failed_deliveries``).

A worker that crashes leaves its lease to lapse; the next claim after ``claimed_until`` takes the row again
(one more attempt). A worker that outlives its lease has lost the row: its ``mark_*`` calls report 0 rows
and it must not count the delivery as done. Delivery is thus at most once per channel while leases hold,
and at least once across a crash between sending and ``mark_delivered`` (channels that cannot tolerate a
repeat, e.g. webhooks, pass the notification id as an idempotency key).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ...store.models import Notification, NotificationChannel, NotificationDelivery, Timestamp
from .common import aware

DEFAULT_LEASE = timedelta(minutes=5)
DEFAULT_MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class OutboxItem:
    """A notification claimed for one channel."""

    id: int
    channel: str
    attempt: int  # 1 on the first claim
    case_id: int | None
    task_id: int | None
    recipient_user: str | None
    recipient_department: str | None
    recipient_role: str | None
    kind: str
    message: str
    created_at: datetime


@dataclass(frozen=True)
class Claim:
    """A batch claimed under one token until ``until``."""

    channel: str
    token: str
    until: datetime
    items: tuple[OutboxItem, ...]


@dataclass(frozen=True)
class FailedDelivery:
    notification_id: int
    channel: str
    attempts: int
    last_error: str | None
    kind: str
    message: str
    created_at: datetime


def register_channel(
    conn: Connection, channel: str, *, now: datetime, enabled: bool = True, max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> None:
    """Put a channel in operation (or change it). Notifications settled before it was registered are not
    owed to it."""
    if not channel or len(channel) > 32:
        raise ValueError(f"channel name {channel!r}: 1 to 32 characters")
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    table = NotificationChannel.__table__
    values = {"channel": channel, "enabled": enabled, "max_attempts": max_attempts, "registered_at": aware(now)}
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(  # one statement: two workers starting together do not collide
        dialect_insert(table)
        .values(values)
        .on_conflict_do_update(index_elements=["channel"], set_={"enabled": enabled, "max_attempts": max_attempts})
    )


_CLAIM = """
WITH candidates AS (
  SELECT n.id FROM notifications n
  WHERE n.settled_at IS NULL AND NOT EXISTS (
    SELECT 1 FROM notification_deliveries d
    WHERE d.notification_id = n.id AND d.channel = :channel
      AND (d.state <> 'pending' OR d.next_attempt_at > :now OR d.claimed_until > :now))
  ORDER BY n.id LIMIT :limit {lock}
)
INSERT INTO notification_deliveries
  (notification_id, channel, state, attempts, next_attempt_at, claimed_until, claim_token)
SELECT id, :channel, 'pending', 1, :now, :until, :token FROM candidates WHERE true
ON CONFLICT (notification_id, channel) DO UPDATE SET
  attempts = notification_deliveries.attempts + 1,
  claimed_until = excluded.claimed_until,
  claim_token = excluded.claim_token
WHERE notification_deliveries.state = 'pending'
  AND notification_deliveries.next_attempt_at <= :now
  AND (notification_deliveries.claimed_until IS NULL OR notification_deliveries.claimed_until <= :now)
RETURNING notification_id, attempts
"""


def _statement(sql: str) -> text:
    times = [bindparam(name, type_=Timestamp) for name in ("now", "until", "retry_at") if f":{name}" in sql]
    return text(sql).bindparams(*times)


_CLAIMS = {
    "postgresql": _statement(_CLAIM.format(lock="FOR NO KEY UPDATE OF n SKIP LOCKED")),
    "sqlite": _statement(_CLAIM.format(lock="")),
}


def claim(
    conn: Connection, channel: str, *, now: datetime, limit: int = 100, lease: timedelta = DEFAULT_LEASE
) -> Claim:
    """Claim up to ``limit`` notifications the channel owes, oldest first, under a lease until now + lease."""
    aware(now)
    if lease <= timedelta(0):
        raise ValueError("the lease must be positive")
    channels = NotificationChannel.__table__
    known = conn.execute(select(channels.c.enabled).where(channels.c.channel == channel)).scalar()
    if known is None:
        raise ValueError(f"channel {channel!r} is not registered (register_channel)")
    until = now + lease
    token = uuid.uuid4().hex
    if not known:
        return Claim(channel, token, until, ())
    params = {"channel": channel, "now": now, "until": until, "token": token, "limit": limit}
    won = {r.notification_id: r.attempts for r in conn.execute(_CLAIMS[conn.dialect.name], params)}
    if not won:
        return Claim(channel, token, until, ())
    n = Notification.__table__
    rows = conn.execute(select(n).where(n.c.id.in_(won)).order_by(n.c.id)).all()
    items = tuple(
        OutboxItem(
            id=r.id,
            channel=channel,
            attempt=won[r.id],
            case_id=r.case_id,
            task_id=r.task_id,
            recipient_user=r.recipient_user,
            recipient_department=r.recipient_department,
            recipient_role=r.recipient_role,
            kind=r.kind,
            message=r.message,
            created_at=r.created_at,
        )
        for r in rows
    )
    return Claim(channel, token, until, items)


_HELD = "channel = :channel AND claim_token = :token AND state = 'pending' AND claimed_until > :now"


def mark_delivered(conn: Connection, channel: str, token: str, ids: Sequence[int], *, now: datetime) -> int:
    """Delivered on this channel: the rows this claim still holds. Returns how many were marked."""
    aware(now)
    if not ids:
        return 0
    statement = _statement(
        "UPDATE notification_deliveries SET state = 'delivered', delivered_at = :now, claimed_until = NULL,"
        f" claim_token = NULL, last_error = NULL WHERE {_HELD} AND notification_id IN :ids"
    ).bindparams(bindparam("ids", expanding=True))
    marked = conn.execute(statement, {"channel": channel, "token": token, "now": now, "ids": list(ids)}).rowcount
    _settle(conn, list(ids), now)
    return marked


def mark_failed(
    conn: Connection,
    channel: str,
    token: str,
    notification_id: int,
    error: str,
    *,
    now: datetime,
    retry_at: datetime,
) -> str | None:
    """A failed attempt: keep the error and wait until ``retry_at``, or fail for good after the channel's
    ``max_attempts``. Returns the new state ('pending' or 'failed'), or None if the claim no longer holds."""
    aware(now), aware(retry_at)
    statement = _statement(
        "UPDATE notification_deliveries SET last_error = :error, claimed_until = NULL, claim_token = NULL,"
        " next_attempt_at = :retry_at, state = CASE WHEN attempts >= (SELECT max_attempts FROM"
        " notification_channels c WHERE c.channel = notification_deliveries.channel) THEN 'failed' ELSE 'pending'"
        f" END WHERE {_HELD} AND notification_id = :id RETURNING state"
    )
    params = {"channel": channel, "token": token, "now": now, "id": notification_id}
    state = conn.execute(statement, {**params, "error": error[:4000], "retry_at": retry_at}).scalar()
    if state == "failed":
        _settle(conn, [notification_id], now)
    return state


_SETTLE = _statement(
    "UPDATE notifications SET settled_at = :now,"
    " delivered_at = CASE WHEN NOT EXISTS (SELECT 1 FROM notification_channels c WHERE c.enabled AND NOT EXISTS"
    " (SELECT 1 FROM notification_deliveries d WHERE d.notification_id = notifications.id AND d.channel = c.channel"
    " AND d.state = 'delivered')) THEN :now END"
    " WHERE id IN :ids AND settled_at IS NULL AND NOT EXISTS (SELECT 1 FROM notification_channels c WHERE c.enabled"
    " AND NOT EXISTS (SELECT 1 FROM notification_deliveries d WHERE d.notification_id = notifications.id"
    " AND d.channel = c.channel AND d.state IN ('delivered', 'failed')))"
).bindparams(bindparam("ids", expanding=True))


def _settle(conn: Connection, ids: list[int], now: datetime) -> None:
    """Notifications every enabled channel has delivered or given up on leave the outbox."""
    conn.execute(_SETTLE, {"ids": ids, "now": now})


def failed_deliveries(conn: Connection, channel: str | None = None, limit: int = 100) -> tuple[FailedDelivery, ...]:
    """Deliveries given up on (newest notification first), for an operator to look at."""
    d, n = NotificationDelivery.__table__, Notification.__table__
    query = (
        select(d.c.notification_id, d.c.channel, d.c.attempts, d.c.last_error, n.c.kind, n.c.message, n.c.created_at)
        .join(n, n.c.id == d.c.notification_id)
        .where(d.c.state == "failed")
        .order_by(d.c.notification_id.desc())
        .limit(limit)
    )
    if channel is not None:
        query = query.where(d.c.channel == channel)
    return tuple(FailedDelivery(**r._mapping) for r in conn.execute(query))


__all__ = [
    "Claim",
    "FailedDelivery",
    "OutboxItem",
    "claim",
    "failed_deliveries",
    "mark_delivered",
    "mark_failed",
    "register_channel",
]
