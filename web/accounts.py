"""People as the web knows them: accounts (argon2 password hashes), access tokens (browser sessions and
API tokens, only their SHA-256 stored), failed log-ins counted to slow down guessing, the audit log and
the case views log.

A person's departments and their roles there stay the engine's (``memberships``, changed through
``Engine.set_memberships``); an account adds the password and the roles that belong to no department:
``window`` (综合窗口, at a service centre), ``manager`` (city-wide, reads everything), ``designer``,
``admin``. ``staff`` and ``supervisor`` follow from the memberships.

Every function takes the database and runs its own short transaction, so any web worker, on any
process, sees the same accounts and tokens (no state is kept in a process).
"""

from __future__ import annotations

import csv
import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine as Database
from sqlalchemy import delete, func, insert, select, update

from orchestrator.definition.model import HANDLER_ROLE
from orchestrator.engine import Engine
from orchestrator.engine.errors import InvalidData, NotAllowed, NotFound
from orchestrator.store.models import (
    AccessToken,
    Account,
    AuditEntry,
    CaseView,
    Department,
    LoginAttempt,
    Membership,
    ServiceCentre,
    User,
)

CITY_ROLES = ("window", "manager", "designer", "admin")
ROLE_LABELS = {
    "staff": "承办人员",
    "supervisor": "部门负责人",
    "window": "综合窗口",
    "manager": "效能监察",
    "designer": "流程设计",
    "admin": "系统管理",
}
CENTRE_LEVELS = ("city", "district", "community")
MIN_PASSWORD = 8
IP_FAILURES_FACTOR = 10
_hasher = PasswordHasher()  # argon2id with the library's current parameters
_DUMMY_HASH = _hasher.hash("a password nobody has")  # verified against when the user is unknown (same time)


class LoginRefused(Exception):
    """Wrong name or password (one message for both), or too many failed attempts (``retry_after`` s)."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Viewer:
    """The person behind a request, as the permission checks need them."""

    user_id: str
    name: str
    roles: frozenset[str]  # staff | supervisor | window | manager | designer | admin
    departments: frozenset[str]  # where they hold any role (staff and supervisors)
    supervises: frozenset[str]  # departments they lead
    centre: str | None  # a window's service centre
    token_id: int

    def has(self, *roles: str) -> bool:
        return any(role in self.roles for role in roles)

    @property
    def reads_everything(self) -> bool:
        """Managers and admins read every department's cases; nobody else does."""
        return self.has("manager", "admin")

    @property
    def sees_identities(self) -> bool:
        """身份证号 and phone numbers unmasked: the people who work the case (staff, window), not managers."""
        return self.has("staff", "supervisor", "window")

    def role_labels(self) -> list[str]:
        return [ROLE_LABELS[r] for r in ROLE_LABELS if r in self.roles]


def _now() -> datetime:
    return datetime.now(UTC)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise InvalidData(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > 200:
        raise InvalidData("a password may have at most 200 characters")


def _check_roles(roles: Iterable[str]) -> list[str]:
    roles = sorted(set(roles))
    unknown = [r for r in roles if r not in CITY_ROLES]
    if unknown:
        raise InvalidData(
            f"unknown role(s) {', '.join(unknown)}: an account's own roles are {', '.join(CITY_ROLES)} "
            "(staff and supervisor come from the department memberships)"
        )
    return roles


# ---------------------------------------------------------------------------------------------------
# accounts


def add_account(
    engine: Engine,
    user_id: str,
    name: str,
    password: str,
    *,
    roles: Sequence[str] = (),
    memberships: Sequence[tuple[str, str]] = (),
    centre: str | None = None,
    actor: str = "operator",
) -> None:
    """A new person with a log-in: their user row and memberships (through the engine) and the account."""
    check_password(password)
    roles = _check_roles(roles)
    db = engine.db
    with db.connect() as conn:
        if conn.execute(select(Account.user_id).where(Account.user_id == user_id)).first():
            raise InvalidData(f"user {user_id} already has an account: `tongban users passwd` changes the password")
        if (
            centre is not None
            and not conn.execute(select(ServiceCentre.code).where(ServiceCentre.code == centre)).first()
        ):
            raise InvalidData(f"service centre {centre!r} does not exist: add it with `tongban centres add`")
    if "window" in roles and centre is None:
        raise InvalidData("a window account needs its service centre (--centre)")
    engine.set_memberships(user_id, name, list(memberships), actor)
    now = _now()
    with db.begin() as conn:
        conn.execute(
            insert(Account).values(
                user_id=user_id,
                password_hash=_hasher.hash(password),
                roles=roles,
                centre=centre,
                active=True,
                created_at=now,
                password_changed_at=now,
            )
        )
        _audit(conn, actor, "account_added", user_id, None, {"roles": roles, "centre": centre})


def set_password(db: Database, user_id: str, password: str, actor: str = "operator") -> None:
    """A new password; every session of the person ends (API tokens stay)."""
    check_password(password)
    now = _now()
    with db.begin() as conn:
        changed = conn.execute(
            update(Account)
            .where(Account.user_id == user_id)
            .values(password_hash=_hasher.hash(password), password_changed_at=now)
        ).rowcount
        if not changed:
            raise NotFound(f"user {user_id} has no account: `tongban users add` makes one")
        _end_sessions(conn, user_id, now)
        _audit(conn, actor, "password_changed", user_id, None, {})


def set_account(
    db: Database, user_id: str, *, roles: Sequence[str], centre: str | None, active: bool, actor: str
) -> None:
    """An admin changes a person's city-wide roles, centre, or blocks them (their sessions end)."""
    roles = _check_roles(roles)
    if "window" in roles and centre is None:
        raise InvalidData("a window account needs its service centre")
    now = _now()
    with db.begin() as conn:
        changed = conn.execute(
            update(Account).where(Account.user_id == user_id).values(roles=roles, centre=centre, active=active)
        ).rowcount
        if not changed:
            raise NotFound(f"user {user_id} has no account")
        if not active:
            _end_sessions(conn, user_id, now)
        _audit(conn, actor, "account_changed", user_id, None, {"roles": roles, "centre": centre, "active": active})


@dataclass(frozen=True)
class AccountRow:
    user_id: str
    name: str
    roles: list[str]
    centre: str | None
    active: bool
    memberships: list[tuple[str, str]]


def list_accounts(db: Database) -> list[AccountRow]:
    with db.connect() as conn:
        members: dict[str, list[tuple[str, str]]] = {}
        for m in conn.execute(select(Membership.user_id, Membership.department, Membership.role)):
            members.setdefault(m.user_id, []).append((m.department, m.role))
        rows = conn.execute(
            select(Account.user_id, User.name, Account.roles, Account.centre, Account.active)
            .join(User, User.id == Account.user_id)
            .order_by(Account.user_id)
        ).all()
    return [
        AccountRow(r.user_id, r.name, list(r.roles), r.centre, r.active, sorted(members.get(r.user_id, [])))
        for r in rows
    ]


def account_of(db: Database, user_id: str) -> AccountRow:
    """One person's account (NotFound if they have none)."""
    with db.connect() as conn:
        row = conn.execute(
            select(Account.user_id, User.name, Account.roles, Account.centre, Account.active)
            .join(User, User.id == Account.user_id)
            .where(Account.user_id == user_id)
        ).first()
        if row is None:
            raise NotFound(f"user {user_id} has no account")
        pairs = conn.execute(select(Membership.department, Membership.role).where(Membership.user_id == user_id)).all()
    return AccountRow(row.user_id, row.name, list(row.roles), row.centre, row.active, sorted(map(tuple, pairs)))


def change_person(
    engine: Engine,
    user_id: str,
    name: str,
    *,
    roles: Sequence[str],
    memberships: Sequence[tuple[str, str]],
    centre: str | None,
    actor: str,
) -> list[int]:
    """An admin sets a person's name, department memberships (through ``Engine.set_memberships``, whose
    history records the change) and city-wide roles and centre together. Returns the tasks they still
    hold in departments they left (their supervisors reassign them). Nobody takes their own admin role
    away (the last admin would lock everyone out)."""
    roles = _check_roles(roles)
    if "window" in roles and centre is None:
        raise InvalidData("a window account needs its service centre")
    if actor == user_id and "admin" not in roles:
        raise NotAllowed("you cannot take away your own admin role: ask another admin")
    with engine.db.connect() as conn:
        if not conn.execute(select(Account.user_id).where(Account.user_id == user_id)).first():
            raise NotFound(f"user {user_id} has no account")
        if (
            centre is not None
            and not conn.execute(select(ServiceCentre.code).where(ServiceCentre.code == centre)).first()
        ):
            raise InvalidData(f"service centre {centre!r} does not exist")
    held = engine.set_memberships(user_id, name, list(memberships), actor)
    with engine.db.begin() as conn:
        conn.execute(update(Account).where(Account.user_id == user_id).values(roles=roles, centre=centre))
        _audit(
            conn,
            actor,
            "account_changed",
            user_id,
            None,
            {"roles": roles, "centre": centre, "memberships": [list(p) for p in sorted(set(memberships))]},
        )
    return held


def set_active(db: Database, user_id: str, active: bool, actor: str) -> None:
    """Block (their sessions end, their API tokens stop working) or unblock a person. Nobody blocks
    themselves."""
    if actor == user_id and not active:
        raise NotAllowed("you cannot block your own account")
    now = _now()
    with db.begin() as conn:
        changed = conn.execute(update(Account).where(Account.user_id == user_id).values(active=active)).rowcount
        if not changed:
            raise NotFound(f"user {user_id} has no account")
        if not active:
            _end_sessions(conn, user_id, now)
        _audit(conn, actor, "account_unblocked" if active else "account_blocked", user_id, None, {})


@dataclass(frozen=True)
class DepartmentRoles:
    """A department and the roles a person may hold there: ``handler``, its supervisor role, its others."""

    code: str
    name: str
    supervisor_role: str
    roles: list[str]


def department_roles(db: Database) -> list[DepartmentRoles]:
    with db.connect() as conn:
        rows = conn.execute(
            select(Department.code, Department.name, Department.supervisor_role, Department.roles).order_by(
                Department.code
            )
        ).all()
    return [
        DepartmentRoles(
            r.code,
            r.name,
            r.supervisor_role,
            list(dict.fromkeys([HANDLER_ROLE, r.supervisor_role, *sorted(r.roles or ())])),
        )
        for r in rows
    ]


def import_accounts(engine: Engine, path: Path, actor: str = "operator") -> int:
    """Accounts from a CSV file with the columns user_id, name, password, roles, memberships, centre
    (roles: space-separated; memberships: space-separated department:role). Every row is checked before
    any is added. Returns how many were added."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    needed = {"user_id", "name", "password"}
    if rows and not needed <= set(rows[0]):
        raise InvalidData(
            f"{path}: the header needs the columns {', '.join(sorted(needed))} (and roles, memberships, centre)"
        )
    problems: list[str] = []
    parsed = []
    for number, row in enumerate(rows, start=2):
        try:
            check_password(row["password"] or "")
            roles = _check_roles((row.get("roles") or "").split())
            pairs = []
            for item in (row.get("memberships") or "").split():
                department, _, role = item.partition(":")
                if not department or not role:
                    raise InvalidData(f"membership {item!r}: write department:role, e.g. scjg:handler")
                pairs.append((department, role))
            parsed.append(
                (
                    row["user_id"].strip(),
                    row["name"].strip(),
                    row["password"],
                    roles,
                    pairs,
                    (row.get("centre") or "").strip() or None,
                )
            )
        except InvalidData as exc:
            problems.append(f"{path}:{number}: {exc.message}")
    if problems:
        raise InvalidData("nothing imported", problems)
    for user_id, name, password, roles, pairs, centre in parsed:
        add_account(engine, user_id, name, password, roles=roles, memberships=pairs, centre=centre, actor=actor)
    return len(parsed)


def add_centre(
    db: Database, code: str, name: str, level: str, parent: str | None = None, actor: str = "operator"
) -> None:
    if level not in CENTRE_LEVELS:
        raise InvalidData(f"level {level!r}: one of {', '.join(CENTRE_LEVELS)}")
    with db.begin() as conn:
        if conn.execute(select(ServiceCentre.code).where(ServiceCentre.code == code)).first():
            raise InvalidData(f"service centre {code!r} already exists")
        if (
            parent is not None
            and not conn.execute(select(ServiceCentre.code).where(ServiceCentre.code == parent)).first()
        ):
            raise InvalidData(f"parent centre {parent!r} does not exist")
        conn.execute(insert(ServiceCentre).values(code=code, name=name, level=level, parent=parent))
        _audit(conn, actor, "centre_added", code, None, {"name": name, "level": level, "parent": parent})


def centres(db: Database) -> dict[str, ServiceCentre]:
    with db.connect() as conn:
        return {r.code: r for r in conn.execute(select(ServiceCentre).order_by(ServiceCentre.code)).all()}


# ---------------------------------------------------------------------------------------------------
# log-in, sessions and tokens


def wait_after_failures(
    conn: Any, limits: Sequence[tuple[Any, str, int]], now: datetime, window_minutes: int
) -> int | None:
    """Seconds to wait before the next attempt when, for any (``login_attempts`` column, value, limit),
    ``limit`` attempts failed within the last ``window_minutes``; None when none did. Log-ins and the
    applicants' progress look-ups share it."""
    since = now - timedelta(minutes=window_minutes)
    for column, value, limit in limits:
        count, oldest = conn.execute(
            select(func.count(), func.min(LoginAttempt.at)).where(column == value, LoginAttempt.at > since)
        ).one()
        if count >= limit:
            if oldest.tzinfo is None:  # SQLite hands the aggregate back naive
                oldest = oldest.replace(tzinfo=UTC)
            return max(1, int((oldest + timedelta(minutes=window_minutes) - now).total_seconds()) + 1)
    return None


def log_in(
    db: Database,
    username: str,
    password: str,
    ip: str,
    *,
    session_minutes: int,
    max_failures: int,
    window_minutes: int = 15,
) -> str:
    """Check the password and open a session; returns its token. Refused (LoginRefused) on a wrong name or
    password, a blocked account, or when the name or the address failed ``max_failures`` times in the
    last ``window_minutes`` (then ``retry_after`` says when to try again)."""
    now = _now()
    username = (username or "").strip()[:64]
    with db.connect() as conn:
        # an office behind one address has many people: the address may fail ten times as often as a name
        wait = wait_after_failures(
            conn,
            [(LoginAttempt.username, username, max_failures), (LoginAttempt.ip, ip, max_failures * IP_FAILURES_FACTOR)],
            now,
            window_minutes,
        )
        if wait is not None:
            raise LoginRefused(f"登录失败次数过多，请 {wait} 秒后再试", retry_after=wait)
        account = conn.execute(select(Account.password_hash, Account.active).where(Account.user_id == username)).first()
    ok = False
    try:
        ok = _hasher.verify(account.password_hash if account else _DUMMY_HASH, password or "") and account is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or not account.active:
        with db.begin() as conn:  # committed, then refused: the failure counts
            conn.execute(insert(LoginAttempt).values(username=username, ip=ip[:64], at=now))
            _audit(conn, username or None, "login_failed", None, ip, {})
        raise LoginRefused("用户名或密码错误" if not ok else "该账号已停用，请联系系统管理员")
    with db.begin() as conn:
        conn.execute(delete(LoginAttempt).where(LoginAttempt.username == username))
        token = _new_token(conn, username, "session", "", now + timedelta(minutes=session_minutes), now)
        if _hasher.check_needs_rehash(account.password_hash):
            conn.execute(
                update(Account).where(Account.user_id == username).values(password_hash=_hasher.hash(password))
            )
        _audit(conn, username, "login", None, ip, {})
    return token


def _new_token(conn: Any, user_id: str, kind: str, name: str, expires_at: datetime | None, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    conn.execute(
        insert(AccessToken).values(
            token_hash=token_hash(token), user_id=user_id, kind=kind, name=name, created_at=now, expires_at=expires_at
        )
    )
    return token


def log_out(db: Database, token: str, ip: str | None = None) -> None:
    now = _now()
    with db.begin() as conn:
        row = conn.execute(
            update(AccessToken)
            .where(AccessToken.token_hash == token_hash(token), AccessToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(AccessToken.user_id)
        ).first()
        if row is not None:
            _audit(conn, row.user_id, "logout", None, ip, {})


def create_api_token(db: Database, user_id: str, name: str, actor: str, days: int | None = None) -> str:
    """An API token for a client (shown once; only its hash is kept)."""
    now = _now()
    with db.begin() as conn:
        if not conn.execute(select(Account.user_id).where(Account.user_id == user_id)).first():
            raise NotFound(f"user {user_id} has no account")
        token = _new_token(conn, user_id, "api", name[:100], now + timedelta(days=days) if days else None, now)
        _audit(conn, actor, "token_created", user_id, None, {"name": name})
    return token


def revoke_token(db: Database, token_id: int, actor: str) -> None:
    with db.begin() as conn:
        row = conn.execute(
            update(AccessToken)
            .where(AccessToken.id == token_id, AccessToken.revoked_at.is_(None))
            .values(revoked_at=_now())
            .returning(AccessToken.user_id)
        ).first()
        if row is None:
            raise NotFound(f"token {token_id} does not exist or is already revoked")
        _audit(conn, actor, "token_revoked", row.user_id, None, {"token_id": token_id})


def api_tokens(db: Database) -> list[Any]:
    with db.connect() as conn:
        return conn.execute(
            select(
                AccessToken.id,
                AccessToken.user_id,
                AccessToken.name,
                AccessToken.created_at,
                AccessToken.expires_at,
                AccessToken.revoked_at,
                AccessToken.last_used_at,
            )
            .where(AccessToken.kind == "api")
            .order_by(AccessToken.id.desc())
        ).all()


def viewer_of(db: Database, token: str, *, idle_minutes: int) -> Viewer | None:
    """The person a token belongs to, or None if it is unknown, revoked, expired, idle too long (sessions)
    or their account is blocked. A session's expiry moves on with use (``idle_minutes``), never past the
    absolute limit it was opened with."""
    now = _now()
    with db.connect() as conn:
        row = conn.execute(
            select(
                AccessToken.id,
                AccessToken.user_id,
                AccessToken.kind,
                AccessToken.expires_at,
                AccessToken.last_used_at,
                AccessToken.created_at,
                Account.roles,
                Account.centre,
                User.name,
            )
            .join(Account, Account.user_id == AccessToken.user_id)
            .join(User, User.id == AccessToken.user_id)
            .where(AccessToken.token_hash == token_hash(token), AccessToken.revoked_at.is_(None), Account.active)
        ).first()
        if row is None or (row.expires_at is not None and row.expires_at <= now):
            return None
        if row.kind == "session" and (row.last_used_at or row.created_at) < now - timedelta(minutes=idle_minutes):
            return None
        memberships = conn.execute(
            select(Membership.department, Membership.role, Department.supervisor_role)
            .join(Department, Department.code == Membership.department)
            .where(Membership.user_id == row.user_id)
        ).all()
    if row.last_used_at is None or row.last_used_at < now - timedelta(seconds=30):  # not a write per request
        with db.begin() as conn:
            conn.execute(update(AccessToken).where(AccessToken.id == row.id).values(last_used_at=now))
    departments = frozenset(m.department for m in memberships)
    supervises = frozenset(m.department for m in memberships if m.role == m.supervisor_role)
    roles = set(row.roles)
    if departments - supervises:
        roles.add("staff")
    if supervises:
        roles.add("supervisor")
    return Viewer(row.user_id, row.name, frozenset(roles), departments, supervises, row.centre, row.id)


def _end_sessions(conn: Any, user_id: str, now: datetime) -> None:
    conn.execute(
        update(AccessToken)
        .where(AccessToken.user_id == user_id, AccessToken.kind == "session", AccessToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


# ---------------------------------------------------------------------------------------------------
# what people did


def _audit(conn: Any, user_id: str | None, action: str, target: str | None, ip: str | None, details: dict) -> None:
    conn.execute(
        insert(AuditEntry).values(at=_now(), user_id=user_id, action=action, target=target, ip=ip, details=details)
    )


def audit(
    db: Database, user_id: str | None, action: str, target: str | None = None, ip: str | None = None, **details: Any
) -> None:
    with db.begin() as conn:
        _audit(conn, user_id, action, target, ip, details)


def record_view(db: Database, user_id: str, case_id: int, page: str, ip: str | None) -> None:
    """访问记录: a person opened a case."""
    with db.begin() as conn:
        conn.execute(insert(CaseView).values(at=_now(), user_id=user_id, case_id=case_id, page=page, ip=ip))


def audit_entries(db: Database, limit: int = 200) -> list[Any]:
    with db.connect() as conn:
        return conn.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)).all()


def case_views(db: Database, case_id: int, limit: int = 200) -> list[Any]:
    with db.connect() as conn:
        return conn.execute(
            select(CaseView).where(CaseView.case_id == case_id).order_by(CaseView.id.desc()).limit(limit)
        ).all()


def open_accounts(
    db: Database, entries: Sequence[tuple[str, Sequence[str], str | None]], password: str, actor: str
) -> int:
    """Log-ins for people the engine already knows (user rows and memberships exist), all with one
    password (hashed once): the demo's staff. ``entries``: (user id, city-wide roles, centre). People who
    have an account already are left as they are. Returns how many accounts were opened."""
    check_password(password)
    hashed, now, opened = _hasher.hash(password), _now(), 0
    with db.begin() as conn:
        have = set(conn.execute(select(Account.user_id)).scalars())
        for user_id, roles, centre in entries:
            if user_id in have:
                continue
            conn.execute(
                insert(Account).values(
                    user_id=user_id,
                    password_hash=hashed,
                    roles=_check_roles(roles),
                    centre=centre,
                    active=True,
                    created_at=now,
                    password_changed_at=now,
                )
            )
            opened += 1
        _audit(conn, actor, "accounts_opened", None, None, {"count": opened})
    return opened
