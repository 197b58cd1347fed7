"""Tables. Cases and tasks are rows that name (definition key, version); definitions stay data.

Timestamps are stored as timezone-aware UTC and shown in Asia/Shanghai. JSON columns hold the
one-form data and small lists; everything the dashboards and the SLA sweep filter on is a column.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (which keeps no zone) as on PostgreSQL.

    On SQLite the text is the format SQLAlchemy uses (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC), written and
    read directly: this runs for every timestamp of every transition.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Any:
        sqlite = dialect.name == "sqlite"
        last: tuple[Any, Any] = (None, None)  # a transition writes its own time into many columns and rows

        def process(value: datetime | None) -> Any:
            nonlocal last
            if value is None:
                return None
            seen, converted = last
            if value is seen:
                return converted
            if value.tzinfo is None:
                raise ValueError(f"naive datetime {value!r}: the engine stores aware datetimes only")
            utc = value.astimezone(UTC)
            converted = utc.replace(tzinfo=None).isoformat(" ", "microseconds") if sqlite else utc
            last = (value, converted)
            return converted

        return process

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name == "sqlite":
            parse = datetime.fromisoformat

            def from_text(value: Any) -> datetime | None:
                return None if value is None else parse(value).replace(tzinfo=UTC)

            return from_text

        def normalize(value: datetime | None) -> datetime | None:
            if value is None:
                return None
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

        return normalize


Timestamp = UTCDateTime()
OPEN_TASK_STATES = ("ready", "claimed")
OPEN_FILTER = text("state IN ('ready', 'claimed')")
READY_FILTER = text("state = 'ready'")
CLAIMED_FILTER = text("state = 'claimed'")
AUTO_READY_FILTER = text("state = 'ready' AND kind = 'auto'")
CASE_OPEN_FILTER = text("state IN ('accepted', 'in_progress')")
DEFERRED_FILTER = text("deferred_due_at IS NOT NULL")
INCIDENT_OPEN_FILTER = text("state = 'open'")
UNREAD_FILTER = text("read_at IS NULL")
CLOSED_FILTER = text("closed_at IS NOT NULL")
CASE_LIVE_FILTER = text("state IN ('accepted', 'in_progress', 'suspended')")
COMPLETED_FILTER = text("state = 'completed'")
DONE_BY_FILTER = text("completed_by IS NOT NULL")
UNSIGNED_FILTER = text("signed_at IS NULL")
SIGNED_FILTER = text("signed_by IS NOT NULL")
UNSETTLED_FILTER = text("settled_at IS NULL")
DELIVERY_PENDING_FILTER = text("state = 'pending'")
# The applicant's id and name inside the JSON column; ``->>`` means the same on PostgreSQL (json) and
# SQLite (3.38+), so one expression serves both the index and the queries that must repeat it.
APPLICANT_ID = text("(applicant ->> 'id')")
APPLICANT_NAME = text("(applicant ->> 'name')")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON, datetime: Timestamp}


class DefinitionVersion(Base):
    __tablename__ = "definition_versions"
    __table_args__ = (UniqueConstraint("key", "version"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime]


class Department(Base):
    __tablename__ = "departments"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    parent: Mapped[str | None] = mapped_column(String(32))
    supervisor_role: Mapped[str] = mapped_column(String(64))
    # the department's other roles (departments.yaml `roles`); every department also has `handler`
    roles: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


class Membership(Base):
    """A user's role in a department (承办, 审核, 批准, supervisor …)."""

    __tablename__ = "memberships"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    department: Mapped[str] = mapped_column(ForeignKey("departments.code"), primary_key=True)
    role: Mapped[str] = mapped_column(String(64), primary_key=True)


class MembershipChange(Base):
    """History of set_memberships: who changed a person's roles, when, from what to what."""

    __tablename__ = "membership_changes"
    __table_args__ = (Index("ix_membership_changes_user", "user_id", "at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    before: Mapped[list[Any]]  # [[department, role], …] as they were
    after: Mapped[list[Any]]  # … and as they are now


class Case(Base):
    """办件: one application running one definition version."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_open_due", "due_at", sqlite_where=CASE_OPEN_FILTER, postgresql_where=CASE_OPEN_FILTER),
        Index("ix_cases_open_warn", "warn_at", sqlite_where=CASE_OPEN_FILTER, postgresql_where=CASE_OPEN_FILTER),
        Index("ix_cases_definition_state", "definition_key", "state"),
        # 容缺 timer (terminate_lapsed_deferrals): only cases that still owe materials
        Index(
            "ix_cases_deferred_due", "deferred_due_at", sqlite_where=DEFERRED_FILTER, postgresql_where=DEFERRED_FILTER
        ),
        # the read side (engine/read): case search by submission time, applicant and live SLA colour
        Index("ix_cases_submitted", "submitted_at", "id"),
        Index(
            "ix_cases_closed", "closed_at", "definition_key", sqlite_where=CLOSED_FILTER, postgresql_where=CLOSED_FILTER
        ),
        Index("ix_cases_applicant_id", APPLICANT_ID),
        Index("ix_cases_applicant_name", APPLICANT_NAME),
        Index(
            "ix_cases_live_sla",
            "definition_key",
            "sla_state",
            sqlite_where=CASE_LIVE_FILTER,
            postgresql_where=CASE_LIVE_FILTER,
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)  # 办件编号
    definition_key: Mapped[str] = mapped_column(String(64))
    definition_version: Mapped[int]
    state: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str | None] = mapped_column(String(20))  # approved | partly_approved | rejected | …
    applicant: Mapped[dict[str, Any]]
    form: Mapped[dict[str, Any]]
    materials: Mapped[list[Any]]  # material keys supplied
    deferred: Mapped[list[Any]] = mapped_column(default=list)  # 容缺: material keys still owed
    deferred_due_at: Mapped[datetime | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    submitted_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]
    warn_at: Mapped[datetime | None]
    sla_state: Mapped[str | None] = mapped_column(String(12))
    provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text)  # written reason of a refusal or rejection
    remedy: Mapped[str | None] = mapped_column(Text)  # 复议/诉讼 remedy text for refusals
    # where the application came in: a service centre's window (全市通办: any centre, any 一件事) or online
    channel: Mapped[str] = mapped_column(String(12), default="window", server_default=text("'window'"))
    centre: Mapped[str | None] = mapped_column(String(32))  # service_centres.code of the window
    version: Mapped[int] = mapped_column(default=1)
    # +1 by every engine transition on the case (its lock is this UPDATE): the key of the engine's
    # in-process copy of the case and its tasks
    revision: Mapped[int] = mapped_column(default=1, server_default=text("1"))


class Task(Base):
    """The work item of one step in one case."""

    __tablename__ = "tasks"
    __table_args__ = (
        # The task indexes hold only the tasks their readers look for, so a task leaves them as its work
        # moves on (a completion deletes entries instead of moving them) and they stay as small as the
        # work in hand. Queries repeat an index's predicate literally to use it.
        # the department queue: ready tasks of department X ordered by due time
        Index("ix_tasks_queue", "department", "due_at", sqlite_where=READY_FILTER, postgresql_where=READY_FILTER),
        # 我的待办: the claimed tasks a person holds, by due time
        Index("ix_tasks_assignee", "assignee", "due_at", sqlite_where=CLAIMED_FILTER, postgresql_where=CLAIMED_FILTER),
        # the SLA sweep: open tasks whose warning or due time has passed
        Index("ix_tasks_open_due", "due_at", sqlite_where=OPEN_FILTER, postgresql_where=OPEN_FILTER),
        Index("ix_tasks_open_warn", "warn_at", sqlite_where=OPEN_FILTER, postgresql_where=OPEN_FILTER),
        Index("ix_tasks_case", "case_id"),
        # automatic steps waiting for a worker (auto_inline=False): commands/auto.py repeats the predicate
        Index("ix_tasks_auto_ready", "id", sqlite_where=AUTO_READY_FILTER, postgresql_where=AUTO_READY_FILTER),
        # the read side: live counts per department and colour, 已办 of a person, completions in a period
        Index("ix_tasks_open_sla", "department", "sla_state", sqlite_where=OPEN_FILTER, postgresql_where=OPEN_FILTER),
        # the signatures owed: an open task looked up by id for its queue key without reading the table row
        Index(
            "ix_tasks_open_key",
            "id",
            "due_at",
            "department",
            "signoffs_open",
            "sla_state",  # the 红牌/黄牌 filter of a queue
            "state",
            sqlite_where=OPEN_FILTER,
            postgresql_where=OPEN_FILTER,
        ),
        Index(
            "ix_tasks_done_by",
            "completed_by",
            "completed_at",
            "id",
            sqlite_where=DONE_BY_FILTER,
            postgresql_where=DONE_BY_FILTER,
        ),
        Index(
            "ix_tasks_completed",
            "completed_at",
            "case_id",
            "department",
            "step_id",
            "work_minutes",
            "due_at",
            "state",  # SQLite reads the index alone only when it holds every column the query names
            sqlite_where=COMPLETED_FILTER,
            postgresql_where=COMPLETED_FILTER,
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    step_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    department: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(12))  # ready | claimed | completed | skipped | cancelled
    outcome: Mapped[str | None] = mapped_column(String(12))  # approve | reject | return; reports: confirmed | sent_back
    assignee: Mapped[str | None] = mapped_column(String(64))
    delegated_by: Mapped[str | None] = mapped_column(String(64))
    opinion: Mapped[str | None] = mapped_column(Text)
    ready_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(64))
    due_at: Mapped[datetime | None]
    warn_at: Mapped[datetime | None]
    sla_state: Mapped[str | None] = mapped_column(String(12))
    provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    # 'applicant' while a 补正 is out; 'leader' while a proposed refusal waits for the leader (不予审批报告制)
    waiting: Mapped[str | None] = mapped_column(String(16))
    created_by_task: Mapped[int | None]  # the completion that made this task (撤回 undoes them)
    superseded: Mapped[bool] = mapped_column(Boolean, default=False)  # redone after 退回/撤回
    signoffs_open: Mapped[int] = mapped_column(default=0)  # sign-offs still needed (survey, chain, 会签)
    version: Mapped[int] = mapped_column(default=1)
    # working minutes from ready_at to completed_at less paused_minutes (set on completion; dashboards)
    work_minutes: Mapped[int | None]
    # working minutes of the case's suspensions this task lived through, added on each resumption
    paused_minutes: Mapped[int] = mapped_column(default=0, server_default=text("0"))


class Signoff(Base):
    """One required signature on a task: a review-chain level, a survey participant, a countersigner."""

    __tablename__ = "signoffs"
    __table_args__ = (
        Index("ix_signoffs_task", "task_id"),
        # the queues: signatures still to give, by party (a survey department, a countersign role, a user)
        Index(
            "ix_signoffs_unsigned",
            "party",
            "kind",
            "task_id",
            "signed_at",  # always NULL here, but SQLite reads the index alone only if it holds every column named
            sqlite_where=UNSIGNED_FILTER,
            postgresql_where=UNSIGNED_FILTER,
        ),
        # 已办: the signatures a person gave
        Index(
            "ix_signoffs_signed_by",
            "signed_by",
            "signed_at",
            "id",
            sqlite_where=SIGNED_FILTER,
            postgresql_where=SIGNED_FILTER,
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    position: Mapped[int]
    kind: Mapped[str] = mapped_column(String(12))  # level | department | role | user
    party: Mapped[str] = mapped_column(String(64))  # level name, department code, role or user id
    signed_by: Mapped[str | None] = mapped_column(String(64))
    signed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(12))
    opinion: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(default=1, server_default=text("1"))  # +1 by every engine write


class NegativeReport(Base):
    """不予审批报告制: a proposed refusal (不予受理, 不予许可) and the leader's decision on it, taken before
    the applicant is told."""

    __tablename__ = "negative_reports"
    __table_args__ = (Index("ix_negative_reports_case", "case_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    task_id: Mapped[int]  # the refusing task (the acceptance task for 不予受理)
    report_task_id: Mapped[int] = mapped_column(unique=True)  # the leader's task (step __negative_report__)
    slot_id: Mapped[int | None]  # the signature the refusal was given as (review chain, survey, 会签)
    kind: Mapped[str] = mapped_column(String(16))  # not_accepted (不予受理) | rejected (不予许可)
    department: Mapped[str] = mapped_column(String(32))  # the deciding department, whose leader decides
    reason: Mapped[str] = mapped_column(Text)
    remedy: Mapped[str | None] = mapped_column(Text)  # 行政复议/行政诉讼 and where; None: the leader gives it
    proposed_by: Mapped[str] = mapped_column(String(64))
    proposed_at: Mapped[datetime]
    decision: Mapped[str | None] = mapped_column(String(12))  # confirmed | sent_back | cancelled (case closed)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None]
    opinion: Mapped[str | None] = mapped_column(Text)


class Suspension(Base):
    """特别程序: the clock stops (expert review, hearing, inspection, 补正 after acceptance …)."""

    __tablename__ = "suspensions"
    __table_args__ = (Index("ix_suspensions_case", "case_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    kind: Mapped[str] = mapped_column(String(20))  # expert_review … | supplement (补正 after acceptance)
    reason: Mapped[str] = mapped_column(Text)
    expected: Mapped[str | None] = mapped_column(String(16))  # Art. 45: the time the applicant is told
    requested_by: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    result: Mapped[str | None] = mapped_column(Text)


class Extension(Base):
    """延长审批: an approved extension of the case limit."""

    __tablename__ = "extensions"
    __table_args__ = (Index("ix_extensions_case", "case_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    amount: Mapped[str] = mapped_column(String(16))
    approver: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]


class Supplement(Base):
    """补正: one notice listing every missing material, and when it came back."""

    __tablename__ = "supplements"
    __table_args__ = (Index("ix_supplements_case", "case_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    task_id: Mapped[int | None]
    missing: Mapped[list[Any]]
    notice: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime]
    supplied_at: Mapped[datetime | None]


class Certificate(Base):
    """证照: a certificate issued to the applicant (paper or e-certificate) and its delivery."""

    __tablename__ = "certificates"
    __table_args__ = (Index("ix_certificates_case", "case_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    issuer: Mapped[str] = mapped_column(String(32))
    number: Mapped[str] = mapped_column(String(80), unique=True)
    electronic: Mapped[bool] = mapped_column(Boolean, default=True)
    delivery: Mapped[str] = mapped_column(String(12))  # window | mail | online
    tracking_number: Mapped[str | None] = mapped_column(String(64))
    issued_at: Mapped[datetime]


class Alert(Base):
    """An SLA state change (yellow / red card) or a 否定报备, raised once per subject and kind."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("subject", "kind"),
        Index("ix_alerts_department", "department", "raised_at"),
        Index("ix_alerts_case", "case_id"),
        Index("ix_alerts_raised", "raised_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    subject: Mapped[str] = mapped_column(String(40))  # 'task:12' | 'case:7'
    kind: Mapped[str] = mapped_column(String(24))  # warning | overdue | negative_decision | provisional_deadline
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    task_id: Mapped[int | None]
    department: Mapped[str | None] = mapped_column(String(32))
    recipient_role: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[datetime]


class Notification(Base):
    """Outbox: what must reach a person. Delivery per channel is in ``notification_deliveries``
    (engine/read/outbox.py); ``settled_at`` is set once every registered channel has delivered it or
    given up, ``delivered_at`` once every one delivered it."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_unsettled", "id", sqlite_where=UNSETTLED_FILTER, postgresql_where=UNSETTLED_FILTER),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int | None]
    task_id: Mapped[int | None]
    recipient_user: Mapped[str | None] = mapped_column(String(64))
    recipient_department: Mapped[str | None] = mapped_column(String(32))
    recipient_role: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(24))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    settled_at: Mapped[datetime | None]


class NotificationChannel(Base):
    """A delivery channel in operation (站内信 inbox, SMTP, a webhook): every notification not yet settled
    is owed to every enabled channel."""

    __tablename__ = "notification_channels"

    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    max_attempts: Mapped[int] = mapped_column(default=5)
    registered_at: Mapped[datetime]


class NotificationDelivery(Base):
    """One notification on one channel: claimed under a lease, delivered, retried, or failed for good."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "channel"),
        Index(
            "ix_notification_deliveries_due",
            "channel",
            "next_attempt_at",
            sqlite_where=DELIVERY_PENDING_FILTER,
            postgresql_where=DELIVERY_PENDING_FILTER,
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"))
    channel: Mapped[str] = mapped_column(ForeignKey("notification_channels.channel"))
    state: Mapped[str] = mapped_column(String(12))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    claim_token: Mapped[str | None] = mapped_column(String(40))
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]


class WorkDay(Base):
    """The dashboards' summary of one closed day (Asia/Shanghai) of completions, per definition, department
    and step, written set-based by ``engine.read.refresh_work_summary``; ``minutes`` holds every
    ``work_minutes`` of the group, so percentiles over any run of days stay exact."""

    __tablename__ = "work_days"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, Asia/Shanghai
    definition_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    department: Mapped[str] = mapped_column(String(32), primary_key=True)
    step_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    completed: Mapped[int]
    timed: Mapped[int]  # of which had a due time
    on_time: Mapped[int]  # of which were completed by it
    measured: Mapped[int]  # of which have work_minutes
    minutes_total: Mapped[int]
    minutes: Mapped[list[Any]]


class WorkDaysState(Base):
    """How far ``work_days`` reaches: every day before ``through`` is summarized (one row)."""

    __tablename__ = "work_days_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    through: Mapped[str] = mapped_column(String(10))


class Urge(Base):
    """催办 / 督办 with its own due time."""

    __tablename__ = "urges"
    __table_args__ = (Index("ix_urges_case", "case_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    task_id: Mapped[int | None]
    level: Mapped[str] = mapped_column(String(12))  # urge (催办) | supervise (督办)
    by: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    due_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class Evaluation(Base):
    """好差评: one per case, 1 非常满意 … 5 非常不满意."""

    __tablename__ = "evaluations"
    __table_args__ = (Index("ix_evaluations_at", "at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    level: Mapped[int]
    channel: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)
    rater: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    rectification_task: Mapped[int | None]


class Event(Base):
    """Append-only history: every transition, and every edge a case took."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_case", "case_id", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    task_id: Mapped[int | None]
    step_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime]
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str | None] = mapped_column(String(20))
    edge_from: Mapped[str | None] = mapped_column(String(64))
    edge_to: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)


# ------------------------------------------------------------------------------------------------
# The web: accounts, tokens, service centres and what people did (web/). A person's departments and
# roles in them stay in `memberships` (the engine's); an account adds the password and the city-wide
# roles (window, manager, designer, admin).


class ServiceCentre(Base):
    """政务服务中心: a city, district or community centre whose windows accept any 一件事 (全市通办)."""

    __tablename__ = "service_centres"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(12))  # city | district | community
    parent: Mapped[str | None] = mapped_column(ForeignKey("service_centres.code"))


class Account(Base):
    """A person's log-in: the password hash (argon2) and the roles that belong to no department."""

    __tablename__ = "accounts"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[Any]] = mapped_column(default=list)  # window | manager | designer | admin
    centre: Mapped[str | None] = mapped_column(ForeignKey("service_centres.code"))  # a window's centre
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    password_changed_at: Mapped[datetime]


class AccessToken(Base):
    """A browser session or an API token: only its SHA-256 is stored. ``kind`` is ``session`` (the
    cookie of a log-in, or ``POST /api/session``; expires) or ``api`` (made and revoked by an admin)."""

    __tablename__ = "access_tokens"
    __table_args__ = (Index("ix_access_tokens_user", "user_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(12))  # session | api
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class LoginAttempt(Base):
    """A failed log-in, counted per user name and per address to slow down guessing (web/accounts.py)."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_username", "username", "at"), Index("ix_login_attempts_ip", "ip", "at"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


class AuditEntry(Base):
    """What a person did outside a case's history (log-ins, accounts, tokens), with who and from where."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime]
    user_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(String(100))
    ip: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class CaseView(Base):
    """访问记录: every time a person opens a case (its page, its task, the API)."""

    __tablename__ = "case_views"
    __table_args__ = (Index("ix_case_views_case", "case_id", "at"), Index("ix_case_views_user", "user_id", "at"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime]
    user_id: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    page: Mapped[str] = mapped_column(String(40))  # case | task | api | print …
    ip: Mapped[str | None] = mapped_column(String(64))


# ------------------------------------------------------------------------------------------------
# Hand edits. The engine bumps `version` with every write of a case, task or sign-off, and a case's
# `revision` with its lock; an UPDATE that bumps neither (an operator's fix in SQL) bumps the case's
# revision through these triggers, so a running engine finds its kept copy of the case stale and reads
# the rows afresh instead of writing its old view over the fix. The SLA sweep's `sla_state` (never
# kept) is left out, so the sweep fires none of them. Rows inserted by hand are not noticed.


def _watched(table: Any, *skipped: str) -> str:
    return ", ".join(c.name for c in table.columns if c.name not in ("id", "version", *skipped))


def hand_edit_triggers(dialect: str) -> list[str]:
    """The DDL of the hand-edit triggers (and their PostgreSQL functions), in creation order."""
    cases = _watched(Case.__table__, "revision", "sla_state", "channel", "centre")  # the last two: set once
    tasks = _watched(Task.__table__, "sla_state")
    signoffs = _watched(Signoff.__table__)
    bump = "UPDATE cases SET revision = revision + 1 WHERE id"
    of_signoff = "IN (SELECT case_id FROM tasks WHERE id IN ({}))"
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER tr_cases_edited AFTER UPDATE OF {cases} ON cases FOR EACH ROW"
            f" WHEN NEW.version = OLD.version BEGIN {bump} = NEW.id; END",
            f"CREATE TRIGGER tr_tasks_edited AFTER UPDATE OF {tasks} ON tasks FOR EACH ROW"
            f" WHEN NEW.version = OLD.version BEGIN {bump} IN (NEW.case_id, OLD.case_id); END",
            f"CREATE TRIGGER tr_tasks_deleted AFTER DELETE ON tasks FOR EACH ROW BEGIN {bump} = OLD.case_id; END",
            f"CREATE TRIGGER tr_signoffs_edited AFTER UPDATE OF {signoffs} ON signoffs FOR EACH ROW"
            f" WHEN NEW.version = OLD.version BEGIN {bump} {of_signoff.format('NEW.task_id, OLD.task_id')}; END",
            f"CREATE TRIGGER tr_signoffs_deleted AFTER DELETE ON signoffs FOR EACH ROW"
            f" BEGIN {bump} {of_signoff.format('OLD.task_id')}; END",
        ]
    functions = {
        "tongban_case_edited": f"{bump} = NEW.id;",
        "tongban_task_edited": f"IF TG_OP = 'DELETE' THEN {bump} = OLD.case_id;"
        f" ELSE {bump} IN (NEW.case_id, OLD.case_id); END IF;",
        "tongban_signoff_edited": f"IF TG_OP = 'DELETE' THEN {bump} {of_signoff.format('OLD.task_id')};"
        f" ELSE {bump} {of_signoff.format('NEW.task_id, OLD.task_id')}; END IF;",
    }
    return [
        *(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$"
            for name, body in functions.items()
        ),
        f"CREATE TRIGGER tr_cases_edited AFTER UPDATE OF {cases} ON cases FOR EACH ROW"
        " WHEN (NEW.version = OLD.version) EXECUTE FUNCTION tongban_case_edited()",
        f"CREATE TRIGGER tr_tasks_edited AFTER UPDATE OF {tasks} ON tasks FOR EACH ROW"
        " WHEN (NEW.version = OLD.version) EXECUTE FUNCTION tongban_task_edited()",
        "CREATE TRIGGER tr_tasks_deleted AFTER DELETE ON tasks FOR EACH ROW EXECUTE FUNCTION tongban_task_edited()",
        f"CREATE TRIGGER tr_signoffs_edited AFTER UPDATE OF {signoffs} ON signoffs FOR EACH ROW"
        " WHEN (NEW.version = OLD.version) EXECUTE FUNCTION tongban_signoff_edited()",
        "CREATE TRIGGER tr_signoffs_deleted AFTER DELETE ON signoffs FOR EACH ROW"
        " EXECUTE FUNCTION tongban_signoff_edited()",
    ]


@event.listens_for(Base.metadata, "after_create")
def _create_hand_edit_triggers(_metadata: Any, connection: Any, **_: Any) -> None:
    for statement in hand_edit_triggers(connection.dialect.name):
        connection.exec_driver_sql(statement)


class AutoAttempt(Base):
    """An automatic task a worker has tried and not decided yet (commands/auto.py): the failed attempts,
    when the next may start (backoff), the lease of a worker fetching its shared data, the last error.
    ``state`` is ``waiting`` or ``incident`` (the attempts ran out: no worker picks it until a supervisor
    retries it or hands it to a person). The row goes when the task is decided or handed over."""

    __tablename__ = "auto_attempts"

    task_id: Mapped[int] = mapped_column(Id, ForeignKey("tasks.id"), primary_key=True, autoincrement=False)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    state: Mapped[str] = mapped_column(String(12))  # waiting | incident
    attempts: Mapped[int] = mapped_column(default=0)  # failed attempts since the last (re)start
    next_attempt_at: Mapped[datetime]
    lease_token: Mapped[str | None] = mapped_column(String(40))
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class Incident(Base):
    """An automatic step whose rule raised, or whose shared-data look-up failed, on every attempt: the
    task waits; the department's supervisor retries it or hands it to a person (commands/incidents.py)."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index(
            "ix_incidents_open",
            "department",
            "raised_at",
            sqlite_where=INCIDENT_OPEN_FILTER,
            postgresql_where=INCIDENT_OPEN_FILTER,
        ),
        Index("ix_incidents_task", "task_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    step_id: Mapped[str] = mapped_column(String(64))
    department: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(12))  # rule | lookup
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int]
    state: Mapped[str] = mapped_column(String(12))  # open | retried | handed_over | closed
    raised_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)


class SharedRecord(Base):
    """The local shared-data table (共享数据): one record per source and key, the default source of the
    look-ups automatic steps make (engine/lookups.py); loaded by the operator (``tongban lookups load``)."""

    __tablename__ = "shared_data"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    data: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class InboxMessage(Base):
    """站内信: a notification delivered to one person's in-app inbox (a department's or a role's notice to
    each of its members), once per notification and person."""

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("notification_id", "user_id"),
        Index("ix_inbox_user", "user_id", "id"),
        Index("ix_inbox_unread", "user_id", sqlite_where=UNREAD_FILTER, postgresql_where=UNREAD_FILTER),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"))
    user_id: Mapped[str] = mapped_column(String(64))  # staff user id or the applicant's id
    case_id: Mapped[int | None]
    task_id: Mapped[int | None]
    kind: Mapped[str] = mapped_column(String(24))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]  # when the notification was raised
    delivered_at: Mapped[datetime]
    read_at: Mapped[datetime | None]
