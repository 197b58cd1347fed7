"""Task queues: 待办 (a department's pool and the signatures a person or department owes), 我的在办
(claimed tasks), 已办 (completions and signatures given).

Every queue is read in index order, a page at a time, with a keyset cursor (never OFFSET):

* the pool: ``ix_tasks_queue (department, due_at) WHERE state = 'ready'``;
* signatures owed: ``ix_signoffs_unsigned (party, kind, task_id) WHERE signed_at IS NULL`` joined to the
  open task by its key (one read per party: the department as survey participant, each countersign role
  the person holds there, the person as added signer);
* 我的在办: ``ix_tasks_assignee (assignee, due_at) WHERE state = 'claimed'``;
* 已办: ``ix_tasks_done_by (completed_by, completed_at, id)`` and ``ix_signoffs_signed_by (signed_by,
  signed_at, id)``, newest first.

Each source returns its first ``limit + 1`` rows after the cursor in the queue's order, so the first
``limit`` of their union, without duplicates, is exactly the page (a task that is both in the pool and
owed a signature appears once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    Connection,
    Integer,
    Row,
    Select,
    String,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)

from ...calendar import BusinessCalendar
from ...store import prepared
from ...store.models import Case, Membership, Signoff, Suspension, Task, Timestamp
from .common import (
    CLAIMED_TASKS,
    DONE_BY,
    OPEN_TASKS,
    READY_TASKS,
    SIGNED_BY,
    SLA_LABELS,
    TASK_STATE_LABELS,
    UNSIGNED,
    DueKey,
    Page,
    SlaColour,
    TimeKey,
    applicant_of,
    aware,
    case_applicant_id,
    case_applicant_name,
    definition_names,
    describe_minutes,
    newer_than,
    remaining_minutes,
    unindexed,
)

_tasks = Task.__table__
_cases = Case.__table__
_slots = Signoff.__table__


class TaskFilter(BaseModel):
    """Narrows a queue; every field is optional and they combine with AND."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    definition_key: str | None = Field(None, description="事项 (definition key)")
    step_id: str | None = Field(None, description="环节 (step id)")
    sla_state: SlaColour | None = Field(None, description="时效状态: on_track | warning | overdue | paused")
    case_number: str | None = Field(None, description="办件编号 (a prefix is enough)")
    applicant: str | None = Field(None, description="申请人 name or id, exact")

    @property
    def needs_case(self) -> bool:
        return bool(self.definition_key or self.case_number or self.applicant)

    def values(self) -> dict[str, str]:
        """The fields given, as the queue statement's parameters (a number prefix as a LIKE pattern)."""
        given = {name: getattr(self, name) for name in _FILTER_FIELDS if getattr(self, name)}
        if "case_number" in given:
            escaped = given["case_number"].replace("/", "//").replace("%", "/%").replace("_", "/_")
            given["case_number"] = escaped + "%"
        return given


@dataclass(frozen=True)
class QueueItem:
    """One line of a queue. ``applicant_id``/``applicant_name`` are unmasked: callers mask them."""

    task_id: int
    case_id: int
    case_number: str
    definition_key: str
    definition_name: str
    step_id: str
    step_name: str
    kind: str
    department: str
    state: str
    assignee: str | None
    ready_at: datetime
    due_at: datetime | None
    warn_at: datetime | None
    sla_state: str | None
    remaining_minutes: int | None  # working minutes to due_at (frozen while paused); negative when overdue
    applicant_id: str | None
    applicant_name: str | None
    waiting: bool  # 补正: waiting for the applicant's material
    can_sign: bool  # the person asking has a signature to give on it now
    signature: str | None  # which: 'department:xf', 'role:fire_reviewer', 'level:审核', 'user:zjj2'
    source: str  # pool | participant | countersign | added_signer | claimed

    @property
    def state_label(self) -> str:
        return TASK_STATE_LABELS.get(self.state, self.state)

    @property
    def sla_label(self) -> str:
        return SLA_LABELS.get(self.sla_state or "", "不限时")

    @property
    def remaining_label(self) -> str:
        return describe_minutes(self.remaining_minutes)

    @property
    def key(self) -> DueKey:
        return DueKey.of(self.due_at, self.task_id)


@dataclass(frozen=True)
class DoneItem:
    """One line of 已办: a task the person completed, or a signature they gave."""

    what: str  # completed | signed
    at: datetime
    task_id: int
    case_id: int
    case_number: str
    definition_key: str
    definition_name: str
    step_id: str
    step_name: str
    department: str
    outcome: str | None
    opinion: str | None
    task_state: str
    superseded: bool  # redone after 退回/撤回
    signature: str | None  # the slot signed ('department:xf' …) for a signature
    entry_id: int  # the task id (completed) or the sign-off id (signed): the cursor's tie-breaker


_ROW_COLUMNS = (
    _tasks.c.id,
    _tasks.c.case_id,
    _cases.c.number,
    _cases.c.definition_key,
    _cases.c.definition_version,
    _cases.c.applicant,
    _tasks.c.step_id,
    _tasks.c.name,
    _tasks.c.kind,
    _tasks.c.department,
    _tasks.c.state,
    _tasks.c.assignee,
    _tasks.c.ready_at,
    _tasks.c.due_at,
    _tasks.c.warn_at,
    _tasks.c.sla_state,
    _tasks.c.waiting,
    _tasks.c.signoffs_open,
)

# The queue's statements are built once per shape (which sources, which filters, where the cursor stands),
# with bind parameters for the values, and compiled once per dialect (store/prepared.py): building and
# compiling a dozen-branch UNION cost more than running it. A source reads only the queue's key (and which
# source it is): a narrow, often index-only read; the page's rows are read in full afterwards by their ids.
_SQL = prepared.Statements({})
_BUILT: set[str] = set()
_SLOT_KIND = {"participant": "department", "countersign": "role", "added_signer": "user"}
_FILTER_FIELDS = ("definition_key", "step_id", "sla_state", "case_number", "applicant")


def _statement(name: str, build: Callable[[], Any], dialect: Any) -> prepared.Prepared:
    if name not in _BUILT:
        _SQL.add(name, build())
        _BUILT.add(name)
    return _SQL.get(name, dialect)


def _source(tag: str, i: int, with_case: bool, fields: Sequence[str], lateral: bool) -> tuple[Select, Any, Any]:
    """Source ``i`` of a queue, with the task's due time and id columns to order it by: the pool of a
    department, a person's claimed tasks, or open tasks owing a signature of one party (a survey
    department, a countersign role in its department, an added signer).

    ``lateral`` (PostgreSQL): an owed task is looked up per sign-off in a LATERAL subquery, a nested loop by
    construction; as a plain join PostgreSQL merges the sign-offs with every open task's key instead."""

    def value(name: str) -> Any:
        return bindparam(f"s{i}_{name}", type_=String)

    filters = _filter_clauses(fields)
    if tag in ("pool", "claimed"):
        query = select(_tasks.c.id, _tasks.c.due_at, literal(tag).label("source")).select_from(_tasks)
        if with_case:  # only when a filter asks for a column of the case
            query = query.join(_cases, _cases.c.id == _tasks.c.case_id)
        if tag == "pool":
            query = query.where(READY_TASKS, _tasks.c.department == value("department"), *filters)
        else:
            query = query.where(CLAIMED_TASKS, _tasks.c.assignee == value("user"), *filters)
        return query, _tasks.c.due_at, _tasks.c.id
    task_conditions = [OPEN_TASKS, *filters]
    if tag == "countersign":
        # in the role's department, and only while a role signature is still wanted: the engine counts 或签's
        # role slots as one open signature, so once a role signed only added signers (加签) remain open
        added = _slots.alias("added")
        unsigned_added = (
            select(func.count())
            .where(added.c.task_id == _tasks.c.id, added.c.kind == "user", added.c.signed_at.is_(None))
            .scalar_subquery()
        )
        # unindexed: by the department, SQLite would probe every open task of it for the role's sign-off
        task_conditions += [
            unindexed(_tasks.c.department) == value("department"),
            _tasks.c.signoffs_open > unsigned_added,
        ]
    owed = (UNSIGNED, _slots.c.party == value("party"), _slots.c.kind == _SLOT_KIND[tag])
    if lateral:
        inner = select(_tasks.c.id, _tasks.c.due_at).select_from(_tasks)
        if with_case:
            inner = inner.join(_cases, _cases.c.id == _tasks.c.case_id)
        # LIMIT 1 (one task per sign-off anyway) keeps PostgreSQL from flattening it back into a join
        task = inner.where(_tasks.c.id == _slots.c.task_id, *task_conditions).limit(1).lateral(f"owed_{i}")
        query = select(task.c.id, task.c.due_at, literal(tag).label("source")).select_from(_slots).join(task, true())
        return query.where(*owed), task.c.due_at, task.c.id
    query = select(_tasks.c.id, _tasks.c.due_at, literal(tag).label("source")).select_from(_slots)
    query = query.join(_tasks, _tasks.c.id == _slots.c.task_id)
    if with_case:
        query = query.join(_cases, _cases.c.id == _tasks.c.case_id)
    return query.where(*owed, *task_conditions), _tasks.c.due_at, _tasks.c.id


def _filter_clauses(fields: Sequence[str]) -> list[Any]:
    clauses: list[Any] = []
    if "definition_key" in fields:
        clauses.append(_cases.c.definition_key == bindparam("f_definition_key", type_=String))
    if "step_id" in fields:
        clauses.append(_tasks.c.step_id == bindparam("f_step_id", type_=String))
    if "sla_state" in fields:
        clauses.append(_tasks.c.sla_state == bindparam("f_sla_state", type_=String))
    if "case_number" in fields:
        clauses.append(_cases.c.number.like(bindparam("f_case_number", type_=String), escape="/"))
    if "applicant" in fields:
        who = bindparam("f_applicant", type_=String)
        clauses.append(or_(case_applicant_id == who, case_applicant_name == who))
    return clauses


def _union(tags: tuple[str, ...], with_case: bool, fields: tuple[str, ...], cursor_kind: str, lateral: bool) -> Any:
    """Every source's first ``:lim`` keys after the cursor, each wrapped so its ORDER BY and LIMIT stay its
    own. The pool and the claimed tasks are read in index order, timed ones by (due_at, id) and then
    untimed ones by id (not ``ORDER BY due_at NULLS LAST``, which SQLite cannot read from the index); the
    signatures owed come from the sign-off index and are sorted once, untimed last."""
    after_due, after_id = bindparam("c_due", type_=Timestamp), bindparam("c_id", type_=Integer)
    limit = bindparam("lim", type_=Integer)
    branches = []
    for i, tag in enumerate(tags):
        query, due, task_id = _source(tag, i, with_case, fields, lateral)
        if tag not in ("pool", "claimed"):
            # read from the sign-off index, so sorted anyway: one sort, untimed last, instead of two passes
            if cursor_kind == "timed":
                query = query.where(due.is_(None) | ((due >= after_due) & ((due > after_due) | (task_id > after_id))))
            elif cursor_kind == "untimed":
                query = query.where(due.is_(None), task_id > after_id)
            branches.append(query.order_by(due.is_(None), due, task_id).limit(limit))
            continue
        if cursor_kind != "untimed":
            timed = query.where(due.is_not(None))
            if cursor_kind == "timed":  # range first, so the index read starts at the cursor
                timed = timed.where(due >= after_due, (due > after_due) | (task_id > after_id))
            branches.append(timed.order_by(due, task_id).limit(limit))
        untimed = query.where(due.is_(None))
        if cursor_kind == "untimed":
            untimed = untimed.where(task_id > after_id)
        branches.append(untimed.order_by(task_id).limit(limit))
    return union_all(*(select(*b.subquery().c) for b in branches))


def _by_ids(name: str, columns: Any, count: int, where: Callable[[Any], Any], order: Any = None) -> Any:
    ids = [bindparam(f"i{k}", type_=Integer) for k in range(count)]
    query = select(*columns).where(where(ids))
    return query if order is None else query.order_by(*order)


def _rows_statement(count: int) -> Any:
    def build() -> Any:
        return _by_ids(
            "rows",
            _ROW_COLUMNS,
            count,
            lambda ids: _tasks.c.id.in_(ids),
        ).join_from(_tasks, _cases, _cases.c.id == _tasks.c.case_id)

    return build


def _slots_statement(count: int) -> Any:
    return lambda: _by_ids("slots", [_slots], count, lambda ids: _slots.c.task_id.in_(ids), (_slots.c.position,))


def _ids(values: Sequence[int]) -> dict[str, int]:
    return {f"i{k}": v for k, v in enumerate(values)}


def memberships_of(conn: Connection, user: str) -> set[tuple[str, str]]:
    """(department, role) pairs the user holds."""
    m = Membership.__table__
    statement = _statement(
        "memberships", lambda: select(m.c.department, m.c.role).where(m.c.user_id == bindparam("user")), conn.dialect
    )
    return {(r["department"], r["role"]) for r in prepared.fetch(conn, statement, {"user": user})}


def queue(
    conn: Connection,
    *,
    now: datetime,
    calendar: BusinessCalendar,
    department: str | None = None,
    user: str | None = None,
    filters: TaskFilter | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[QueueItem]:
    """待办, earliest due first, untimed (即办) last.

    ``department`` alone: the department's ready tasks and the survey tasks it has still to sign as a
    participant. With ``user``: also the countersign (会签/或签) tasks owed by a role the person holds in
    the department and the tasks the person was added to as signer (加签, any department), and each item
    says whether the person can sign it now. ``user`` without ``department``: all the person's departments.
    """
    if department is None and user is None:
        raise ValueError("queue needs a department, a user, or both")
    _check_limit(limit)
    held = memberships_of(conn, user) if user else set()
    departments = [department] if department else sorted({d for d, _ in held})
    sources: list[tuple[str, dict[str, str]]] = []
    for code in departments:
        sources.append(("pool", {"department": code}))
        sources.append(("participant", {"party": code}))
        sources.extend(("countersign", {"party": role, "department": code}) for d, role in sorted(held) if d == code)
    if user:
        sources.append(("added_signer", {"party": user}))
    return _page(conn, sources, now, calendar, user, held, filters, cursor, limit)


def claimed(
    conn: Connection,
    user: str,
    *,
    now: datetime,
    calendar: BusinessCalendar,
    filters: TaskFilter | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[QueueItem]:
    """我的在办: the tasks the person has claimed, earliest due first."""
    _check_limit(limit)
    held = memberships_of(conn, user)
    return _page(conn, [("claimed", {"user": user})], now, calendar, user, held, filters, cursor, limit)


def _page(
    conn: Connection,
    sources: Sequence[tuple[str, dict[str, str]]],
    now: datetime,
    calendar: BusinessCalendar,
    user: str | None,
    held: set[tuple[str, str]],
    filters: TaskFilter | None,
    cursor: str | None,
    limit: int,
) -> Page[QueueItem]:
    aware(now)
    after = DueKey.decode(cursor) if cursor else None
    values: dict[str, Any] = {"lim": limit + 1}
    for i, (_, source_values) in enumerate(sources):
        values.update({f"s{i}_{k}": v for k, v in source_values.items()})
    fields = filters.values() if filters else {}
    values.update({f"f_{k}": v for k, v in fields.items()})
    cursor_kind = "none" if after is None else "untimed" if after.untimed else "timed"
    if after is not None:
        values.update(c_due=None if after.untimed else after.due_at, c_id=after.id)
    tags = tuple(tag for tag, _ in sources)
    with_case = filters is not None and filters.needs_case
    shape = (tags, with_case, tuple(fields), cursor_kind, conn.dialect.name == "postgresql")
    statement = _statement(f"queue:{shape}", lambda: _union(*shape), conn.dialect)
    found: dict[int, dict[str, Any]] = {}
    for key in prepared.fetch(conn, statement, values):
        if key["id"] not in found or key["source"] == "pool":  # a task in the pool is listed as the pool's
            found[key["id"]] = key
    ordered = sorted(found.values(), key=lambda k: DueKey.of(k["due_at"], k["id"]))
    keys, more = ordered[:limit], len(ordered) > limit
    rows: list[Any] = []
    if keys:
        statement = _statement(f"rows:{len(keys)}", _rows_statement(len(keys)), conn.dialect)
        full = {
            row["id"]: SimpleNamespace(**row) for row in prepared.fetch(conn, statement, _ids([k["id"] for k in keys]))
        }
        rows = [full[k["id"]] for k in keys]
    source_of = {k["id"]: k["source"] for k in keys}
    signatures = _signatures(conn, rows, user, held) if user else {}
    paused = _paused_since(conn, [r.case_id for r in rows if r.sla_state == "paused"])
    names = definition_names(conn, {(r.definition_key, r.definition_version) for r in rows})
    items = []
    for r in rows:
        applicant_id, applicant_name = applicant_of(r.applicant)
        signature = signatures.get(r.id)
        items.append(
            QueueItem(
                task_id=r.id,
                case_id=r.case_id,
                case_number=r.number,
                definition_key=r.definition_key,
                definition_name=names.get((r.definition_key, r.definition_version), r.definition_key),
                step_id=r.step_id,
                step_name=r.name,
                kind=r.kind,
                department=r.department,
                state=r.state,
                assignee=r.assignee,
                ready_at=r.ready_at,
                due_at=r.due_at,
                warn_at=r.warn_at,
                sla_state=r.sla_state,
                remaining_minutes=remaining_minutes(calendar, r.due_at, now, paused.get(r.case_id)),
                applicant_id=applicant_id,
                applicant_name=applicant_name,
                waiting=r.waiting == "applicant",
                can_sign=signature is not None,
                signature=signature,
                source=source_of[r.id],
            )
        )
    next_cursor = items[-1].key.encode() if more and items else None
    return Page(tuple(items), next_cursor)


def _signatures(conn: Connection, rows: Sequence[Any], user: str | None, held: set[tuple[str, str]]) -> dict[int, str]:
    """task id -> the signature the person can give now, by the engine's own rule (service._slot_for)."""
    signing = [r for r in rows if r.signoffs_open > 0]
    if not signing or user is None:
        return {}
    slots: dict[int, list[Any]] = {}
    statement = _statement(f"slots:{len(signing)}", _slots_statement(len(signing)), conn.dialect)
    for slot in prepared.fetch(conn, statement, _ids([r.id for r in signing])):
        slots.setdefault(slot["task_id"], []).append(SimpleNamespace(**slot))
    found = {}
    for row in signing:
        slot = _slot_for(row, slots.get(row.id, []), user, held)
        if slot is not None:
            found[row.id] = f"{slot.kind}:{slot.party}"
    return found


def _slot_for(task: Row, slots: list[Row], user: str, held: set[tuple[str, str]]) -> Row | None:
    unsigned = [s for s in slots if s.signed_at is None]
    for slot in unsigned:
        if slot.kind == "user" and slot.party == user:
            return slot
    departments = {d for d, _ in held}
    levels = [s for s in unsigned if s.kind == "level"]
    if levels:
        signed_a_level = any(s.signed_by == user for s in slots if s.kind == "level")
        return None if signed_a_level or task.department not in departments else levels[0]
    surveys = [s for s in unsigned if s.kind == "department"]
    if surveys:
        return next((s for s in surveys if s.party in departments), None)
    roles = [s for s in unsigned if s.kind == "role"]
    added_open = sum(1 for s in unsigned if s.kind == "user")
    if roles and task.signoffs_open - added_open > 0:
        return next((s for s in roles if (task.department, s.party) in held), None)
    return None


def _paused_since(conn: Connection, case_ids: list[int]) -> dict[int, datetime]:
    """When the clock of each suspended case stopped (its open suspension)."""
    if not case_ids:
        return {}
    s = Suspension.__table__
    query = select(s.c.case_id, s.c.started_at).where(s.c.case_id.in_(set(case_ids)), s.c.ended_at.is_(None))
    return {r.case_id: r.started_at for r in conn.execute(query)}


def done(
    conn: Connection, user: str, *, cursor: str | None = None, limit: int = 50, since: datetime | None = None
) -> Page[DoneItem]:
    """已办: the tasks the person completed and the signatures they gave, newest first. A signature that
    completed its task shows once, as the signature."""
    _check_limit(limit)
    after = TimeKey.decode(cursor) if cursor else None
    completed_time, signed_time = _tasks.c.completed_at, _slots.c.signed_at
    same_act = exists().where(  # by the task's own sign-offs, not every signature of the person
        _slots.c.task_id == _tasks.c.id,
        unindexed(_slots.c.signed_by) == _tasks.c.completed_by,
        _slots.c.signed_at == completed_time,
    )
    completions = (
        select(
            literal("completed").label("what"),
            completed_time.label("at"),
            _tasks.c.id.label("entry_id"),
            _tasks.c.id.label("task_id"),
            _tasks.c.outcome,
            _tasks.c.opinion,
            literal(None).label("signature"),
        )
        .where(DONE_BY, _tasks.c.completed_by == user, ~same_act)
        .order_by(completed_time.desc(), _tasks.c.id.desc())
        .limit(limit + 1)
    )
    signatures = (
        select(
            literal("signed").label("what"),
            signed_time.label("at"),
            _slots.c.id.label("entry_id"),
            _slots.c.task_id,
            _slots.c.outcome,
            _slots.c.opinion,
            (_slots.c.kind + ":" + _slots.c.party).label("signature"),
        )
        .where(SIGNED_BY, _slots.c.signed_by == user)
        .order_by(signed_time.desc(), _slots.c.id.desc())
        .limit(limit + 1)
    )
    if after is not None:
        # order: (at, entry id, what) descending, and "signed" > "completed"
        completions = completions.where(newer_than(completed_time, _tasks.c.id, after, inclusive=after.tag == "signed"))
        signatures = signatures.where(newer_than(signed_time, _slots.c.id, after))
    if since is not None:
        completions = completions.where(completed_time >= since)
        signatures = signatures.where(signed_time >= since)
    entries = [*conn.execute(completions), *conn.execute(signatures)]
    entries.sort(key=lambda e: (e.at, e.entry_id, e.what), reverse=True)
    entries, more = entries[:limit], len(entries) > limit
    tasks = _task_facts(conn, {e.task_id for e in entries})
    names = definition_names(conn, {(t.definition_key, t.definition_version) for t in tasks.values()})
    items = tuple(
        DoneItem(
            what=e.what,
            at=e.at,
            task_id=e.task_id,
            case_id=tasks[e.task_id].case_id,
            case_number=tasks[e.task_id].number,
            definition_key=tasks[e.task_id].definition_key,
            definition_name=names.get((tasks[e.task_id].definition_key, tasks[e.task_id].definition_version), ""),
            step_id=tasks[e.task_id].step_id,
            step_name=tasks[e.task_id].name,
            department=tasks[e.task_id].department,
            outcome=e.outcome,
            opinion=e.opinion,
            task_state=tasks[e.task_id].state,
            superseded=bool(tasks[e.task_id].superseded),
            signature=e.signature,
            entry_id=e.entry_id,
        )
        for e in entries
    )
    next_cursor = TimeKey(items[-1].at, items[-1].entry_id, items[-1].what).encode() if more and items else None
    return Page(items, next_cursor)


def _task_facts(conn: Connection, task_ids: set[int]) -> dict[int, Row]:
    if not task_ids:
        return {}
    query = (
        select(
            _tasks.c.id,
            _tasks.c.case_id,
            _tasks.c.step_id,
            _tasks.c.name,
            _tasks.c.department,
            _tasks.c.state,
            _tasks.c.superseded,
            _cases.c.number,
            _cases.c.definition_key,
            _cases.c.definition_version,
        )
        .join_from(_tasks, _cases, _cases.c.id == _tasks.c.case_id)
        .where(_tasks.c.id.in_(task_ids))
    )
    return {r.id: r for r in conn.execute(query)}


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= 500:
        raise ValueError(f"limit {limit}: ask for 1 to 500 items a page")


__all__ = ["DoneItem", "QueueItem", "TaskFilter", "claimed", "done", "memberships_of", "queue"]
