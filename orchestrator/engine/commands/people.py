"""People: staff and their (department, role) memberships.

``add_user`` only adds roles; ``set_memberships`` sets them exactly (people change departments), checks
each against the department's roles (departments.yaml: ``handler``, its ``roles`` and its
``supervisor_role``) and records every change in ``membership_changes``. Tasks a person still holds in
a department they left stay claimed by them, in that department, where its supervisor sees them and
reassigns them (改派); the person can no longer complete them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ...definition.model import HANDLER_ROLE
from ...definition.source import did_you_mean
from ...store.models import Department, Membership, MembershipChange, Task, User
from ..errors import InvalidData, NotFound
from ..unit import Tx

_memberships = Membership.__table__


def add_user(tx: Tx, user_id: str, name: str, memberships: Sequence[tuple[str, str]]) -> None:
    """Register a member of staff with (department, role) pairs; re-adding updates the name and adds roles."""
    known = {code for code in tx.conn.execute(select(Department.code)).scalars()}
    unknown = [d for d, _ in memberships if d not in known]
    if unknown:
        raise InvalidData("unknown departments", [f"{d!r} is not a published department" for d in unknown])
    _upsert_user(tx, user_id, name)
    if memberships:
        tx.conn.execute(
            _dialect_insert(tx)(_memberships).on_conflict_do_nothing(),
            [{"user_id": user_id, "department": d, "role": r} for d, r in memberships],
        )


def set_memberships(tx: Tx, user_id: str, name: str, memberships: Sequence[tuple[str, str]], actor: str) -> list[int]:
    """Give a person exactly these (department, role) pairs, removing the others, and record the change.
    Returns the ids of the tasks they still hold in departments they left (for 改派)."""
    wanted = sorted(set(memberships))
    query = select(Department.code, Department.supervisor_role, Department.roles)
    departments = {row.code: row for row in tx.conn.execute(query)}
    problems = []
    for department, role in wanted:
        spec = departments.get(department)
        if spec is None:
            problems.append(f"{department!r} is not a published department{did_you_mean(department, departments)}")
            continue
        roles = {HANDLER_ROLE, spec.supervisor_role, *(spec.roles or ())}
        if role not in roles:
            problems.append(
                f"{role!r} is no role of {department} (its roles: {', '.join(sorted(roles))})"
                f"{did_you_mean(role, roles)}; roles are declared in departments.yaml"
            )
    if problems:
        raise InvalidData(f"cannot set the memberships of {user_id}", problems)
    before = sorted(
        (r.department, r.role)
        for r in tx.conn.execute(
            select(_memberships.c.department, _memberships.c.role).where(_memberships.c.user_id == user_id)
        )
    )
    _upsert_user(tx, user_id, name)
    gone = [pair for pair in before if pair not in wanted]
    new = [pair for pair in wanted if pair not in before]
    if gone:
        tx.conn.execute(
            delete(_memberships).where(
                _memberships.c.user_id == user_id,
                tuple_(_memberships.c.department, _memberships.c.role).in_(gone),
            )
        )
    if new:
        tx.conn.execute(insert(_memberships), [{"user_id": user_id, "department": d, "role": r} for d, r in new])
    if gone or new:
        tx.conn.execute(
            insert(MembershipChange.__table__),
            {
                "user_id": user_id,
                "actor": actor,
                "at": tx.now,
                "before": [list(p) for p in before],
                "after": [list(p) for p in wanted],
            },
        )
    left = {d for d, _ in before} - {d for d, _ in wanted}
    if not left:
        return []
    tasks = Task.__table__
    held = tx.conn.execute(
        select(tasks.c.id, tasks.c.case_id, tasks.c.name, tasks.c.department)
        .where(tasks.c.assignee == user_id, tasks.c.state == "claimed", tasks.c.department.in_(sorted(left)))
        .order_by(tasks.c.id)
    ).all()
    for task in held:  # the department's supervisor reassigns them (改派)
        tx.notifications.append(
            {
                "case_id": task.case_id,
                "task": {"id": task.id},
                "recipient_user": None,
                "recipient_department": task.department,
                "recipient_role": departments[task.department].supervisor_role,
                "kind": "member_left",
                "message": f"{name}（{user_id}）已不在本部门，其在办任务「{task.name}」（任务 {task.id}）请改派",
                "created_at": tx.now,
                "delivered_at": None,
            }
        )
    return [task.id for task in held]


@dataclass(frozen=True)
class StaffRecord:
    """A person as operators see them: roles, the history of their roles, the tasks they hold."""

    user_id: str
    name: str
    memberships: list[tuple[str, str]]
    changes: list[Any]  # membership_changes rows, oldest first
    held: list[Any]  # claimed tasks: id, case_id, name, department


def read_staff(conn: Connection, user_id: str) -> StaffRecord:
    user = conn.execute(select(User.id, User.name).where(User.id == user_id)).first()
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    memberships = sorted(
        (r.department, r.role)
        for r in conn.execute(select(Membership.department, Membership.role).where(Membership.user_id == user_id))
    )
    changes = MembershipChange.__table__
    history = list(conn.execute(select(changes).where(changes.c.user_id == user_id).order_by(changes.c.id)))
    tasks = Task.__table__
    held = list(
        conn.execute(
            select(tasks.c.id, tasks.c.case_id, tasks.c.name, tasks.c.department)
            .where(tasks.c.assignee == user_id, tasks.c.state == "claimed")
            .order_by(tasks.c.id)
        )
    )
    return StaffRecord(user.id, user.name, memberships, history, held)


def _dialect_insert(tx: Tx) -> Any:
    return pg_insert if tx.conn.dialect.name == "postgresql" else sqlite_insert


def _upsert_user(tx: Tx, user_id: str, name: str) -> None:
    tx.conn.execute(
        _dialect_insert(tx)(User.__table__)
        .values(id=user_id, name=name)
        .on_conflict_do_update(index_elements=["id"], set_={"name": name})
    )
