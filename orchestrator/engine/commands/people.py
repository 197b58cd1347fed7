"""People: staff and their (department, role) memberships."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ...store.models import Department, Membership, User
from ..errors import InvalidData
from ..unit import Tx


def add_user(tx: Tx, user_id: str, name: str, memberships: Sequence[tuple[str, str]]) -> None:
    """Register a member of staff with (department, role) pairs; re-adding updates the name and adds roles."""
    known = {code for code in tx.conn.execute(select(Department.code)).scalars()}
    unknown = [d for d, _ in memberships if d not in known]
    if unknown:
        raise InvalidData("unknown departments", [f"{d!r} is not a published department" for d in unknown])
    dialect_insert = pg_insert if tx.conn.dialect.name == "postgresql" else sqlite_insert
    tx.conn.execute(
        dialect_insert(User.__table__)
        .values(id=user_id, name=name)
        .on_conflict_do_update(index_elements=["id"], set_={"name": name})
    )
    if memberships:
        tx.conn.execute(
            dialect_insert(Membership.__table__).on_conflict_do_nothing(),
            [{"user_id": user_id, "department": d, "role": r} for d, r in memberships],
        )
