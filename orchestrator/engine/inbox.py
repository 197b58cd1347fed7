"""站内信: the in-app inbox, the channel every notification is delivered to.

A notification names a person (``recipient_user``: staff, or the applicant by their id), or a
department and perhaps a role in it; delivering it to the inbox writes one ``inbox`` row per person it
reaches (a department's notice reaches its members, a role's notice the members holding the role).
``UNIQUE (notification_id, user_id)`` makes a second delivery of the same notification a no-op, so the
inbox receives each notification at most once per person even if a worker's claim lapsed and another
worker delivers it again. The notify flow delivers and marks the outbox in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..store.models import InboxMessage, Membership

_inbox = InboxMessage.__table__


@dataclass(frozen=True)
class InboxEntry:
    id: int
    notification_id: int
    case_id: int | None
    task_id: int | None
    kind: str
    message: str
    created_at: datetime
    read_at: datetime | None


def recipients(conn: Connection, items: Iterable[Any]) -> dict[int, list[str]]:
    """Notification id → the people it reaches (its user, else its department's members, of its role)."""
    members: dict[tuple[str, str | None], list[str]] = {}
    reached: dict[int, list[str]] = {}
    for item in items:
        if item.recipient_user:
            reached[item.id] = [item.recipient_user]
            continue
        if not item.recipient_department:
            reached[item.id] = []
            continue
        key = (item.recipient_department, item.recipient_role)
        if key not in members:
            query = select(Membership.user_id).where(Membership.department == key[0]).distinct()
            if key[1]:
                query = query.where(Membership.role == key[1])
            members[key] = sorted(conn.execute(query).scalars())
        reached[item.id] = members[key]
    return reached


def deliver(conn: Connection, items: Sequence[Any], now: datetime) -> int:
    """Write the notifications into their recipients' inboxes (in the caller's transaction). Returns
    the rows written; one already there is left alone."""
    reached = recipients(conn, items)
    rows = [
        {
            "notification_id": item.id,
            "user_id": user,
            "case_id": item.case_id,
            "task_id": item.task_id,
            "kind": item.kind,
            "message": item.message,
            "created_at": item.created_at,
            "delivered_at": now,
            "read_at": None,
        }
        for item in items
        for user in reached[item.id]
    ]
    if not rows:
        return 0
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = dialect_insert(_inbox).on_conflict_do_nothing(index_elements=["notification_id", "user_id"])
    return sum(conn.execute(statement, rows[i : i + 1000]).rowcount or 0 for i in range(0, len(rows), 1000))


def messages(
    conn: Connection, user: str, *, unread_only: bool = False, before_id: int | None = None, limit: int = 50
) -> list[InboxEntry]:
    """A person's inbox, newest first, a page at a time (``before_id``: the last id of the page before)."""
    query = select(
        _inbox.c.id,
        _inbox.c.notification_id,
        _inbox.c.case_id,
        _inbox.c.task_id,
        _inbox.c.kind,
        _inbox.c.message,
        _inbox.c.created_at,
        _inbox.c.read_at,
    ).where(_inbox.c.user_id == user)
    if unread_only:
        query = query.where(_inbox.c.read_at.is_(None))
    if before_id is not None:
        query = query.where(_inbox.c.id < before_id)
    rows = conn.execute(query.order_by(_inbox.c.id.desc()).limit(limit))
    return [InboxEntry(**row._mapping) for row in rows]


def unread(conn: Connection, user: str) -> int:
    query = select(func.count()).select_from(_inbox).where(_inbox.c.user_id == user, _inbox.c.read_at.is_(None))
    return conn.execute(query).scalar_one()


def mark_read(conn: Connection, user: str, ids: Sequence[int], now: datetime) -> int:
    """Mark a person's own messages read; another person's ids are ignored. Returns how many."""
    if not ids:
        return 0
    return conn.execute(
        update(_inbox)
        .where(_inbox.c.user_id == user, _inbox.c.id.in_(list(ids)), _inbox.c.read_at.is_(None))
        .values(read_at=now)
    ).rowcount
