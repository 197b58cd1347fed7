"""Shared-data look-ups (数据共享) for automatic steps: a step's ``lookups`` name a source, the form field
to look up by and the form fields the record fills (docs/definition-language.md, ``auto``).

A look-up runs outside any transaction (a slow source never holds a case lock or SQLite's write lock);
the automatic-step runner (commands/auto.py) takes a lease on the task first, so two workers do not
fetch for the same task, and decides it afterwards in a transaction of its own.

Sources are pluggable: anything with ``fetch(source, key) -> record | None`` (``None``: no record for
that key, which is an answer, not a failure). Two are built in:

* ``TableSource`` reads the local table ``shared_data`` (``tongban lookups load`` fills it): the
  default for every source name the operator has not configured otherwise;
* ``HttpSource`` is the example of a real 数据共享 interface: ``GET <url>`` with the key put in, a JSON
  object back (404: no record), within a timeout.

A source that cannot answer raises ``LookupFailed``; the runner retries the step with backoff and raises
an incident when the attempts run out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from sqlalchemy import select

from ..store.models import SharedRecord
from .errors import InvalidData
from .forms import check_form

if TYPE_CHECKING:
    from sqlalchemy import Engine as Database

    from ..definition.model import AutoStep, Definition

DEFAULT_TIMEOUT_S = 5.0


class LookupFailed(Exception):
    """A shared-data source could not answer (unreachable, timed out, an answer that is no record)."""


class Source(Protocol):
    def fetch(self, source: str, key: str) -> dict[str, Any] | None: ...


class TableSource:
    """The local table ``shared_data`` (source, key) → record: the default source."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def fetch(self, source: str, key: str) -> dict[str, Any] | None:
        from ..store.db import reading

        table = SharedRecord.__table__
        try:
            with reading(self.db) as conn:
                found = conn.execute(select(table.c.data).where(table.c.source == source, table.c.key == key)).scalar()
        except Exception as exc:  # the database is down: the same as a source that does not answer
            raise LookupFailed(f"shared_data ({source}) could not be read: {exc}") from exc
        return found


@dataclass
class HttpSource:
    """A 数据共享 interface over HTTP: ``GET url`` where ``{key}`` (and ``{source}``) are put into ``url``;
    200 with a JSON object is the record, 404 means no record, anything else (or no answer within
    ``timeout_s``) is a failure."""

    url: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    headers: Mapping[str, str] | None = None

    def fetch(self, source: str, key: str) -> dict[str, Any] | None:
        import httpx

        url = self.url.format(key=quote(key, safe=""), source=quote(source, safe=""))
        try:
            response = httpx.get(url, timeout=self.timeout_s, headers=dict(self.headers or {}))
        except httpx.TimeoutException:
            raise LookupFailed(f"{source}: no answer from {_shown(url)} within {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise LookupFailed(f"{source}: {_shown(url)} unreachable ({type(exc).__name__}: {exc})") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise LookupFailed(f"{source}: {_shown(url)} answered HTTP {response.status_code}")
        try:
            record = response.json()
        except ValueError:
            raise LookupFailed(f"{source}: {_shown(url)} answered something that is not JSON") from None
        if not isinstance(record, dict):
            raise LookupFailed(f"{source}: {_shown(url)} answered {type(record).__name__}, not a JSON object")
        return record


def _shown(url: str) -> str:
    return url.split("?", 1)[0]  # a query string may carry a key or token


class Sources:
    """The sources by name; a name not configured reads the local table."""

    def __init__(self, db: Database, configured: Mapping[str, Source] | None = None) -> None:
        self.default: Source = TableSource(db)
        self.configured = dict(configured or {})

    def __getitem__(self, name: str) -> Source:
        return self.configured.get(name, self.default)

    @classmethod
    def from_settings(cls, db: Database, settings: Any) -> Sources:
        """``settings.lookup_sources``: name → {"url": …, "timeout_s": …} for an HTTP source."""
        from ..settings import LookupSourceSetting

        configured: dict[str, Source] = {}
        for name, given in (getattr(settings, "lookup_sources", None) or {}).items():
            spec = LookupSourceSetting.model_validate(given)  # a flag's dict is not validated by with_overrides
            configured[name] = HttpSource(
                spec.url, timeout_s=spec.timeout_s or settings.lookup_timeout_s, headers=spec.headers
            )
        return cls(db, configured)


@dataclass(frozen=True)
class Fetched:
    """What the look-ups of one step found: the form values to fill, and what each look-up did (for the
    case history: source, key field, whether a record was found, the fields filled)."""

    fills: dict[str, Any]
    audit: list[dict[str, Any]]


def run_lookups(
    sources: Sources, definition: Definition, step: AutoStep, form: Mapping[str, Any], now: datetime | None = None
) -> Fetched:
    """Run the step's look-ups against the form; raises LookupFailed when a source cannot answer or
    answers a record without a field asked for or with a value the field does not take."""
    fills: dict[str, Any] = {}
    audit: list[dict[str, Any]] = []
    for lookup in step.lookups:
        value = form.get(lookup.key)
        if value is None or value == "":
            audit.append({"source": lookup.source, "key": lookup.key, "found": False, "filled": []})
            continue  # nothing to look up by: the rule decides on what the form holds
        record = sources[lookup.source].fetch(lookup.source, str(value))
        if record is None:
            audit.append({"source": lookup.source, "key": lookup.key, "found": False, "filled": []})
            continue
        missing = [name for name in lookup.fill if name not in record]
        if missing:
            raise LookupFailed(f"{lookup.source}: the record for {lookup.key} has no {', '.join(missing)}")
        found = {name: record[name] for name in lookup.fill}
        try:
            found = check_form(definition, found, partial=True)
        except InvalidData as exc:
            raise LookupFailed(f"{lookup.source}: {exc}: {'; '.join(exc.problems)}") from None
        fills.update(found)
        audit.append({"source": lookup.source, "key": lookup.key, "found": True, "filled": sorted(found)})
    return Fetched(fills, audit)


def load_records(db: Database, source: str, records: Sequence[tuple[str, dict[str, Any]]], now: datetime) -> int:
    """Put records into the local table (replacing those with the same key). Returns how many."""
    from sqlalchemy import delete, insert

    if not source or len(source) > 32:
        raise InvalidData(f"source name {source!r}: 1 to 32 characters")
    rows = []
    for key, data in records:
        if not isinstance(key, str) or not key or len(key) > 128:
            raise InvalidData(f"record key {key!r}: 1 to 128 characters")
        if not isinstance(data, dict):
            raise InvalidData(f"record {key!r}: the data must be an object of field: value")
        rows.append({"source": source, "key": key, "data": data, "updated_at": now})
    table = SharedRecord.__table__
    with db.begin() as conn:
        keys = [r["key"] for r in rows]
        for start in range(0, len(keys), 1000):
            conn.execute(delete(table).where(table.c.source == source, table.c.key.in_(keys[start : start + 1000])))
        if rows:
            conn.execute(insert(table), rows)
    return len(rows)
