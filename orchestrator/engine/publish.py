"""Publishing: definitions become immutable, numbered versions; running cases keep theirs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from threading import Lock

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..definition.model import Definition
from ..definition.model import Department as DepartmentSpec
from ..definition.source import Problem, SourceError
from ..definition.validator import check_definition, check_paths, parse_definition
from ..store.models import DefinitionVersion, Department
from .errors import NotFound


@dataclass(frozen=True)
class Published:
    path: Path
    key: str | None
    version: int | None
    changed: bool
    problems: list[Problem]
    warnings: list[Problem] = field(default_factory=list)  # of a file stored all the same


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def publish_paths(engine: Engine, paths: Sequence[str | Path], now: datetime) -> list[Published]:
    """Store every valid definition below the paths: unchanged → no-op, changed → version N+1.

    An invalid file is refused with the validator's messages and nothing of it is stored.
    """
    results: list[Published] = []
    checked = check_paths(paths)
    departments_done: set[Path] = set()
    for item in checked:
        if item.problems or item.definition is None or item.text is None:
            results.append(Published(item.path, None, None, False, item.problems))
            continue
        with engine.begin() as tx:  # the text and departments the validator read, not a second read
            if item.departments_file is not None and item.departments_file not in departments_done:
                sync_departments(tx, (item.departments or {}).values())
                departments_done.add(item.departments_file)
            version, changed = store_definition(tx, item.definition, item.text, now)
        results.append(Published(item.path, item.definition.key, version, changed, [], item.warnings))
    return results


def publish_text(
    engine: Engine, text: str, departments: Mapping[str, DepartmentSpec], now: datetime, name: str = "definition"
) -> Published:
    """Store one definition given as text (the studio's publish): the text is checked once against the
    departments already stored, and those very bytes are stored; with problems nothing is stored.
    ``name`` names the text in the problems (without a .yaml suffix the key is held to no file name)."""
    try:
        definition, warnings = check_definition(name, departments, text=text)
    except SourceError as exc:
        return Published(Path(name), None, None, False, list(exc.problems))
    with engine.begin() as tx:
        version, changed = store_definition(tx, definition, text, now)
    return Published(Path(name), definition.key, version, changed, [], warnings)


def store_definition(tx: Connection, definition: Definition, text: str, now: datetime) -> tuple[int, bool]:
    """(version, changed): the latest version when the text is unchanged, else a new one."""
    digest = content_hash(text)
    latest = tx.execute(
        select(DefinitionVersion.version, DefinitionVersion.content_hash)
        .where(DefinitionVersion.key == definition.key)
        .order_by(DefinitionVersion.version.desc())
        .limit(1)
    ).first()
    if latest is not None and latest.content_hash == digest:
        return latest.version, False
    version = (latest.version if latest else 0) + 1
    tx.execute(
        DefinitionVersion.__table__.insert().values(
            key=definition.key,
            version=version,
            name=definition.name,
            source=text,
            content_hash=digest,
            published_at=now,
        )
    )
    return version, True


def sync_departments(tx: Connection, departments: Sequence[DepartmentSpec] | object) -> None:
    """Insert or update every department of departments.yaml."""
    rows = [
        {"code": d.code, "name": d.name, "parent": d.parent, "supervisor_role": d.supervisor_role, "roles": d.roles}
        for d in departments  # type: ignore[attr-defined]
    ]
    if not rows:
        return
    insert = pg_insert if tx.dialect.name == "postgresql" else sqlite_insert
    statement = insert(Department.__table__).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=["code"],
        set_={
            "name": statement.excluded.name,
            "parent": statement.excluded.parent,
            "supervisor_role": statement.excluded.supervisor_role,
            "roles": statement.excluded.roles,
        },
    )
    tx.execute(statement)


class DefinitionCache:
    """Parsed definition versions, by (key, version); versions never change, so caching is safe."""

    def __init__(self) -> None:
        self._parsed: dict[tuple[str, int], Definition] = {}
        self._lock = Lock()

    def get(self, tx: Connection, key: str, version: int) -> Definition:
        found = self._parsed.get((key, version))
        if found is not None:
            return found
        source = tx.execute(
            select(DefinitionVersion.source).where(DefinitionVersion.key == key, DefinitionVersion.version == version)
        ).scalar()
        if source is None:
            raise NotFound(f"definition {key} version {version} is not published")
        definition = parse_definition(source, f"{key}@{version}")
        with self._lock:
            self._parsed[(key, version)] = definition
        return definition

    def latest(self, tx: Connection, key: str) -> tuple[int, Definition]:
        version = tx.execute(select(func.max(DefinitionVersion.version)).where(DefinitionVersion.key == key)).scalar()
        if version is None:
            known = tx.execute(select(DefinitionVersion.key).distinct().order_by(DefinitionVersion.key)).scalars()
            raise NotFound(
                f"no published definition {key!r}; published: {', '.join(known) or 'none'} "
                "(run `tongban publish definitions/`)"
            )
        return version, self.get(tx, key, version)
