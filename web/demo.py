"""Demo data for `make run`: service centres, a few hundred cases made by running the engine
(orchestrator/simulation/demo.py), and a log-in for every demo person, one password for all.

People: per department ``<code>-1``…``-3`` (handlers) and ``<code>-boss`` (its supervisor), as the
simulation made them; ``zwfw-1`` and ``zwfw-2`` also work a window (at the city and a district centre);
``manager``, ``designer`` and ``admin`` hold the city-wide roles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from orchestrator.engine import Engine
from orchestrator.settings import Settings, connect_database, load_calendar
from orchestrator.store import upgrade
from orchestrator.store.models import Account, Case, Department, Membership, User

from .accounts import add_centre, centres, open_accounts

CENTRES = (
    ("city", "市民中心（市政务服务中心）", "city", None),
    ("futian", "福田区政务服务中心", "district", "city"),
    ("futian-lianhua", "莲花街道党群服务中心", "community", "futian"),
)
WINDOWS = {"zwfw-1": "city", "zwfw-2": "futian", "zwfw-3": "futian-lianhua"}
CITY_PEOPLE = (
    ("manager", "效能监察员", ["manager"]),
    ("designer", "流程设计员", ["designer"]),
    ("admin", "系统管理员", ["admin"]),
)


@dataclass(frozen=True)
class DemoLogin:
    user_id: str
    name: str
    what: str


def seed(settings: Settings, *, cases: int = 300, now: datetime | None = None) -> str:
    """Fill an empty database with the demo (published definitions, cases, accounts). Returns a summary
    line; does nothing on a database that has cases already."""
    from orchestrator.simulation.demo import seed_demo
    from orchestrator.simulation.simulate import SimClock

    now = now or datetime.now(UTC)
    db = connect_database(settings)
    try:
        upgrade(db)  # an empty database gets its schema first, as `tongban publish` does
        with db.connect() as conn:
            if conn.execute(select(func.count()).select_from(Case)).scalar_one():
                return "demo data already there: nothing added"
        clock = SimClock(now)
        engine = Engine(db, load_calendar(settings), clock)
        report = seed_demo(
            engine, settings.path(settings.definitions_dir), now, cases=cases, centres=tuple(c[0] for c in CENTRES)
        )
        for user_id, name, _roles in CITY_PEOPLE:
            engine.add_user(user_id, name, [])
        engine.close()
        for code, name, level, parent in CENTRES:
            if code not in centres(db):
                add_centre(db, code, name, level, parent)
        with db.connect() as conn:
            people = list(conn.execute(select(User.id)).scalars())
        city = {u: roles for u, _, roles in CITY_PEOPLE}
        entries = [(u, city.get(u) or (["window"] if u in WINDOWS else []), WINDOWS.get(u)) for u in people]
        opened = open_accounts(db, entries, settings.demo_password, "demo")
        states = ", ".join(f"{k} {v}" for k, v in sorted(report.by_state.items()))
        return f"demo: {report.cases} cases ({states}), {report.rated} rated, {opened} log-ins"
    finally:
        db.dispose()


def demo_logins(engine: Engine) -> list[DemoLogin]:
    """One log-in per role and department, for the log-in page and `make run`'s output."""
    with engine.db.connect() as conn:
        accounts = {r.user_id: r for r in conn.execute(select(Account.user_id, Account.roles, Account.centre))}
        names = dict(conn.execute(select(User.id, User.name)).all())
        departments = dict(conn.execute(select(Department.code, Department.name)).all())
        used = sorted({m.department for m in conn.execute(select(Membership.department))})
    shown: list[DemoLogin] = []
    for user_id, name, roles in CITY_PEOPLE:
        if user_id in accounts:
            shown.append(
                DemoLogin(
                    user_id,
                    name,
                    {"manager": "效能监察（全市只读）", "designer": "流程设计", "admin": "系统管理"}[roles[0]],
                )
            )
    centre_names = {code: name for code, name, _, _ in CENTRES}
    for user_id, centre in WINDOWS.items():
        if user_id in accounts:
            shown.append(DemoLogin(user_id, names.get(user_id, user_id), f"综合窗口（{centre_names[centre]}）"))
    for code in used:
        for suffix, what in (("-1", "承办人员"), ("-boss", "部门负责人")):
            user_id = code + suffix
            if user_id in accounts and user_id not in WINDOWS:
                shown.append(DemoLogin(user_id, names.get(user_id, user_id), f"{departments.get(code, code)} {what}"))
    return shown
