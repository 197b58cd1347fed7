"""What the designers' studio does with a definition's text before and after publishing it.

``check_text``: every problem and warning of a text, with its line, as ``tongban validate`` finds them,
against the departments the database holds (those ``tongban publish`` stored from departments.yaml).
``simulate_text``: ``tongban simulate``'s run (orchestrator.simulation.simulate) on a scratch SQLite
file, in a child process that is stopped when it takes too long. Publishing itself is
``engine.publish.publish_text``: the text checked once, and those very bytes stored.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, func, select

from .calendar import BusinessCalendar
from .definition.model import Definition, Department
from .definition.source import Problem, SourceError
from .definition.validator import DEPARTMENTS_FILE, check_definition
from .engine.errors import Busy, InvalidData
from .store.models import DefinitionVersion
from .store.models import Department as DepartmentRow

SOURCE_NAME = "definition"  # how problems name the text; no .yaml suffix, so the key is not held to a file name
TEXT_LIMIT = 200_000  # characters of one definition's text (the largest shipped one has 8,000)
SIMULATED_CASES = 200
SIMULATION_SECONDS = 90.0


def departments_in(conn: Connection) -> dict[str, Department]:
    """The departments as published (departments.yaml, stored by `tongban publish`)."""
    rows = conn.execute(select(DepartmentRow).order_by(DepartmentRow.code)).all()
    return {
        r.code: Department(
            code=r.code, name=r.name, parent=r.parent, supervisor_role=r.supervisor_role, roles=list(r.roles or [])
        )
        for r in rows
    }


@dataclass(frozen=True)
class VersionRow:
    key: str
    version: int
    name: str
    published_at: Any
    content_hash: str


@dataclass(frozen=True)
class DefinitionRow:
    """A definition with its latest version and how many versions it has."""

    key: str
    name: str
    latest: int
    versions: int
    published_at: Any


def definitions(conn: Connection) -> list[DefinitionRow]:
    """Every published definition, by key, with its latest version's name."""
    latest = (
        select(
            DefinitionVersion.key,
            func.max(DefinitionVersion.version).label("latest"),
            func.count().label("versions"),
        )
        .group_by(DefinitionVersion.key)
        .subquery()
    )
    rows = conn.execute(
        select(latest.c.key, DefinitionVersion.name, latest.c.latest, latest.c.versions, DefinitionVersion.published_at)
        .join(
            DefinitionVersion,
            (DefinitionVersion.key == latest.c.key) & (DefinitionVersion.version == latest.c.latest),
        )
        .order_by(latest.c.key)
    ).all()
    return [DefinitionRow(r.key, r.name, r.latest, r.versions, r.published_at) for r in rows]


def versions(conn: Connection, key: str) -> list[VersionRow]:
    """The versions of one definition, newest first (empty: no such definition)."""
    rows = conn.execute(
        select(
            DefinitionVersion.key,
            DefinitionVersion.version,
            DefinitionVersion.name,
            DefinitionVersion.published_at,
            DefinitionVersion.content_hash,
        )
        .where(DefinitionVersion.key == key)
        .order_by(DefinitionVersion.version.desc())
    ).all()
    return [VersionRow(r.key, r.version, r.name, r.published_at, r.content_hash) for r in rows]


def source_of(conn: Connection, key: str, version: int) -> str | None:
    """The text of a published version, as it was published."""
    return conn.execute(
        select(DefinitionVersion.source).where(DefinitionVersion.key == key, DefinitionVersion.version == version)
    ).scalar()


# ------------------------------------------------------------------------------------------------
# checking a text


@dataclass(frozen=True)
class TextCheck:
    """A text as the validator sees it: the definition when it has no problems, else the problems."""

    definition: Definition | None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.definition is not None


def check_text(text: str, departments: Mapping[str, Department]) -> TextCheck:
    """Every problem of the text (``tongban validate``'s), each at its line and column."""
    if len(text) > TEXT_LIMIT:
        return TextCheck(None, [Problem(SOURCE_NAME, 1, 1, f"the text is longer than {TEXT_LIMIT:,} characters")])
    if not text.strip():
        empty = "the text is empty: write a definition (key, name, steps …)"
        return TextCheck(None, [Problem(SOURCE_NAME, 1, 1, empty)])
    try:
        definition, warnings = check_definition(SOURCE_NAME, departments, text=text)
    except SourceError as exc:
        return TextCheck(None, list(exc.problems))
    return TextCheck(definition, [], list(warnings))


# ------------------------------------------------------------------------------------------------
# simulating a text before it is published

_one_at_a_time = threading.Lock()  # a simulation keeps a processor busy; one per web process


def simulate_text(
    text: str,
    departments: Mapping[str, Department],
    *,
    calendar: BusinessCalendar | None = None,
    cases: int = SIMULATED_CASES,
    seed: int = 0,
    timeout_s: float = SIMULATION_SECONDS,
) -> Any:
    """``tongban simulate`` of the text: ``cases`` cases run to the end with simulated staff on a scratch
    SQLite file, in a child process stopped after ``timeout_s``. Returns the SimulationReport.

    Raises InvalidData (with the problems) for a text with problems or a run that fails, and Busy when
    another simulation is running in this process or this one took too long.
    """
    checked = check_text(text, departments)
    if not checked.ok:
        raise InvalidData("the definition has problems; nothing was simulated", [str(p) for p in checked.problems])
    if not _one_at_a_time.acquire(blocking=False):
        raise Busy("another simulation is running; try again in a moment", retry_after=10)
    try:
        with tempfile.TemporaryDirectory(prefix="tongban-studio-") as folder:
            key = checked.definition.key  # type: ignore[union-attr]
            path = Path(folder) / f"{key}.yaml"
            path.write_text(text, encoding="utf-8")
            (Path(folder) / DEPARTMENTS_FILE).write_text(_departments_yaml(departments), encoding="utf-8")
            return _in_child(path, cases, seed, calendar, timeout_s)
    finally:
        _one_at_a_time.release()


def _departments_yaml(departments: Mapping[str, Department]) -> str:
    rows = [d.model_dump(exclude_none=True) for d in departments.values()]
    return yaml.safe_dump({"departments": rows}, allow_unicode=True, sort_keys=False)


def _in_child(path: Path, cases: int, seed: int, calendar: BusinessCalendar | None, timeout_s: float) -> Any:
    context = multiprocessing.get_context("spawn")  # no copy of the server's threads and connections
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(
        target=_simulate_in_child, args=(sending, str(path), cases, seed, calendar), name="tongban-simulate"
    )
    child.start()
    sending.close()
    try:
        if not receiving.poll(timeout_s):
            raise Busy(f"the simulation took longer than {timeout_s:g} seconds and was stopped", retry_after=10)
        kind, value = receiving.recv()
    except EOFError:
        raise InvalidData("the simulation stopped without an answer") from None
    finally:
        if child.is_alive():
            child.terminate()
        child.join(5)
        receiving.close()
    if kind == "error":
        raise InvalidData("the simulation failed", value)
    return value


def _simulate_in_child(sending: Any, path: str, cases: int, seed: int, calendar: BusinessCalendar | None) -> None:
    from .simulation.simulate import DefinitionRefused, SimulationStuck, simulate

    try:
        report = simulate(path, cases, seed, calendar=calendar)
    except DefinitionRefused as exc:
        sending.send(("error", exc.problems))
    except SimulationStuck as exc:
        sending.send(("error", [f"simulation stuck: {exc}"]))
    except Exception as exc:  # the parent shows it; a child's traceback would go nowhere
        sending.send(("error", [f"{type(exc).__name__}: {exc}"]))
    else:
        sending.send(("report", report))
    finally:
        sending.close()
