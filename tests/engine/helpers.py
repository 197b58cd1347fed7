"""Small helpers for engine tests: read the tables back, start cases, and check that a refusal
changed nothing. Every helper reads with its own connection, so it sees committed state only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from orchestrator.calendar import TZ
from orchestrator.engine import Engine
from orchestrator.store.models import Base

KAIBAN_APPLICANT = {"id": "91310000MA1K000001", "name": "张三"}
KAIBAN_FORM = {"company_name": "甲公司", "needs_seal": True, "employees": 2}
SURVEY_APPLICANT = {"id": "91310000MA1K000002", "name": "乙建设公司"}
SURVEY_FORM = {"project_name": "乙公司厂房", "floor_area": 800}
RELAY_APPLICANT = {"id": "310101199001011234", "name": "李四"}
AUTO_APPLICANT = {"id": "310101195001011234", "name": "王五"}


def at(day: int, hour: int, minute: int = 0, month: int = 3, year: int = 2026) -> datetime:
    """A Shanghai wall-clock time (the test clock starts at Mon 2026-03-02 10:00)."""
    return datetime(year, month, day, hour, minute, tzinfo=TZ)


# ----------------------------------------------------------------------------------------------
# reading rows


def _rows(engine: Engine, query: Any) -> list[dict[str, Any]]:
    with engine.db.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def table(name: str) -> sa.Table:
    return Base.metadata.tables[name]


def case_row(engine: Engine, case_id: int) -> dict[str, Any]:
    cases = table("cases")
    rows = _rows(engine, sa.select(cases).where(cases.c.id == case_id))
    assert rows, f"case {case_id} not found"
    return rows[0]


def task_row(engine: Engine, task_id: int) -> dict[str, Any]:
    tasks = table("tasks")
    rows = _rows(engine, sa.select(tasks).where(tasks.c.id == task_id))
    assert rows, f"task {task_id} not found"
    return rows[0]


def tasks_of(engine: Engine, case_id: int) -> list[dict[str, Any]]:
    """Every task of the case, oldest first."""
    tasks = table("tasks")
    return _rows(engine, sa.select(tasks).where(tasks.c.case_id == case_id).order_by(tasks.c.id))


def open_tasks(engine: Engine, case_id: int) -> dict[str, int]:
    """{step_id: task_id} of the case's ready or claimed tasks."""
    return {t["step_id"]: t["id"] for t in tasks_of(engine, case_id) if t["state"] in ("ready", "claimed")}


def step_states(engine: Engine, case_id: int) -> dict[str, str]:
    """{step_id: state} of each step's newest task."""
    return {t["step_id"]: t["state"] for t in tasks_of(engine, case_id)}


def events(engine: Engine, case_id: int, kind: str | None = None) -> list[dict[str, Any]]:
    ev = table("events")
    query = sa.select(ev).where(ev.c.case_id == case_id).order_by(ev.c.id)
    if kind is not None:
        query = query.where(ev.c.kind == kind)
    return _rows(engine, query)


def edges(engine: Engine, case_id: int) -> set[tuple[str, str]]:
    """The (from, to) edges the case took (skipped edges included)."""
    return {(e["edge_from"], e["edge_to"]) for e in events(engine, case_id, "edge")}


def notifications(engine: Engine, case_id: int | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    n = table("notifications")
    query = sa.select(n).order_by(n.c.id)
    if case_id is not None:
        query = query.where(n.c.case_id == case_id)
    if kind is not None:
        query = query.where(n.c.kind == kind)
    return _rows(engine, query)


def alerts(engine: Engine, case_id: int, kind: str | None = None) -> list[dict[str, Any]]:
    a = table("alerts")
    query = sa.select(a).where(a.c.case_id == case_id).order_by(a.c.id)
    if kind is not None:
        query = query.where(a.c.kind == kind)
    return _rows(engine, query)


def rows_of(engine: Engine, name: str, case_id: int | None = None) -> list[dict[str, Any]]:
    """Rows of any table, optionally of one case, by id."""
    t = table(name)
    query = sa.select(t).order_by(*t.primary_key.columns)
    if case_id is not None:
        query = query.where(t.c.case_id == case_id)
    return _rows(engine, query)


def signoffs(engine: Engine, task_id: int) -> list[dict[str, Any]]:
    s = table("signoffs")
    return _rows(engine, sa.select(s).where(s.c.task_id == task_id).order_by(s.c.position))


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.db.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in Base.metadata.sorted_tables
        }


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, as the driver returns them (the test databases are small)."""
    with engine.db.connect() as conn:
        return {name: [tuple(r) for r in conn.exec_driver_sql(query)] for name, query in _SNAPSHOT_QUERIES.items()}


_SNAPSHOT_QUERIES = {
    t.name: f"SELECT * FROM {t.name} ORDER BY {', '.join(c.name for c in t.primary_key.columns)}"
    for t in Base.metadata.sorted_tables
}


@contextmanager
def refused(engine: Engine, error: type[Exception], *words: str) -> Iterator[pytest.ExceptionInfo[Any]]:
    """The block raises ``error`` whose message names every one of ``words``, and no table changed."""
    before = snapshot(engine)
    with pytest.raises(error) as info:
        yield info
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in the message {message!r}"
    after = snapshot(engine)
    changed = {name: (len(before[name]), len(after[name])) for name in before if before[name] != after[name]}
    assert not changed, f"a refused call changed tables (rows before, after): {changed}"


# ----------------------------------------------------------------------------------------------
# starting cases


def submit_kaiban(engine: Engine, *, form: dict[str, Any] | None = None, materials: list[str] | None = None,
                  **kwargs: Any) -> int:  # fmt: skip
    return engine.submit_case(
        "kaiban-mini",
        KAIBAN_APPLICANT,
        {**KAIBAN_FORM, **(form or {})},
        ["id_card", "lease"] if materials is None else materials,
        **kwargs,
    )


def accepted_kaiban(engine: Engine, **kwargs: Any) -> int:
    case_id = submit_kaiban(engine, **kwargs)
    engine.accept_case(case_id, "zwfw1")
    return case_id


def submit_survey(engine: Engine, *, form: dict[str, Any] | None = None, materials: list[str] | None = None) -> int:
    return engine.submit_case(
        "survey-mini",
        SURVEY_APPLICANT,
        {**SURVEY_FORM, **(form or {})},
        ["site_plan", "drawings"] if materials is None else materials,
    )


def add_countersigners(engine: Engine) -> None:
    """xf staff with the 会签 roles of step `fire`, gaj staff with the 或签 roles of step `police`."""
    engine.add_user("xf_fire", "消防审查员", [("xf", "fire_reviewer")])
    engine.add_user("xf_arch", "建筑审查员", [("xf", "arch_reviewer")])
    engine.add_user("gaj_a", "值班民警甲", [("gaj", "duty_a")])
    engine.add_user("gaj_b", "值班民警乙", [("gaj", "duty_b")])


def surveyed(engine: Engine, **kwargs: Any) -> int:
    """A survey-mini case accepted and through its joint survey (zjj, xf, gaj signed)."""
    case_id = submit_survey(engine, **kwargs)
    engine.accept_case(case_id, "zwfw1")
    survey = open_tasks(engine, case_id)["survey"]
    for user in ("zjj1", "xf1", "gaj1"):
        engine.complete_task(survey, user, "approve", "现场符合要求")
    return case_id


def sign_chain(engine: Engine, task_id: int, users: tuple[str, ...] = ("zjj1", "zjj2", "zjj3")) -> None:
    for user in users:
        engine.complete_task(task_id, user, "approve", "同意")


def submit_relay(engine: Engine) -> int:
    return engine.submit_case("relay-mini", RELAY_APPLICANT, {"applicant_name": "李四"}, ["id_card"])


def accepted_relay(engine: Engine) -> int:
    case_id = submit_relay(engine)
    engine.accept_case(case_id, "zwfw1")
    return case_id


def assert_kept_copy_is_true(
    engine: Engine, case: dict[str, Any], tasks: list[dict[str, Any]], signoff_rows: list[dict[str, Any]]
) -> None:
    """The copy of a case the engine keeps between transitions is the database's (but sla_state, which
    the engine never reads). ``signoff_rows``: the sign-offs of the case's tasks."""
    kept = engine._snapshots.get(case["id"])
    if kept is None:
        return
    assert kept.revision == case["revision"]
    assert kept.case == {k: v for k, v in case.items() if k != "sla_state"}, "the kept case differs"
    if kept.tasks is not None:
        assert kept.tasks == [{k: v for k, v in t.items() if k != "sla_state"} for t in tasks], "kept tasks differ"
    for task_id, slots in kept.signoffs.items():
        rows = sorted((s for s in signoff_rows if s["task_id"] == task_id), key=lambda s: s["position"])
        assert [vars(s) for s in slots] == rows, f"the kept sign-offs of task {task_id} differ"


# ----------------------------------------------------------------------------------------------
# 不予审批报告制: a refusal takes effect once the deciding department's leader confirms it


def report_tasks(engine: Engine, case_id: int) -> list[dict[str, Any]]:
    """The case's refusal reports still waiting for their leader."""
    return [t for t in tasks_of(engine, case_id) if t["step_id"] == "__negative_report__" and t["state"] == "ready"]


def confirm_refusal(engine: Engine, case_id: int, opinion: str = "同意", **kwargs: Any) -> dict[str, Any]:
    """The leader (``<department>_boss``) confirms the case's one pending refusal; returns its report task."""
    (report,) = report_tasks(engine, case_id)
    engine.confirm_refusal(report["id"], f"{report['department']}_boss", opinion, **kwargs)
    return report


def refuse_case(
    engine: Engine, case_id: int, actor: str = "zwfw1", reason: str = "不符合受理条件", **kwargs: Any
) -> None:
    """不予受理, confirmed by the window's leader."""
    engine.refuse_case(case_id, actor, reason, **kwargs)
    confirm_refusal(engine, case_id)


def reject(engine: Engine, task_id: int, actor: str, opinion: str = "不符合条件", **kwargs: Any) -> None:
    """不予许可 of a task (or a refusing signature), confirmed by its department's leader."""
    case_id = task_row(engine, task_id)["case_id"]
    engine.complete_task(task_id, actor, "reject", opinion, **kwargs)
    confirm_refusal(engine, case_id)
