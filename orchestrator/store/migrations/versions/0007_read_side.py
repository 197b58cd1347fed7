"""The read side (orchestrator/engine/read): working minutes on tasks for the dashboards, the indexes the
queues, the case page, the search and the dashboards read, and per-channel delivery of the notification
outbox.

* ``tasks.work_minutes`` (working minutes from ready to completed, suspensions excluded) and
  ``tasks.paused_minutes`` (working minutes of the suspensions a task lived through): plain ADD COLUMN.
* ``notifications.settled_at`` and a partial index of the notifications not yet settled, replacing
  ``ix_notifications_pending`` (no query read it); ``notification_channels`` and
  ``notification_deliveries`` (one row per notification and channel: lease, attempts, error).
* ``work_days``: the dashboards' per-day summary of completions (``engine.read.refresh_work_summary``).
* Partial indexes whose predicates the read queries repeat literally, and case-id indexes of the tables
  the case page reads.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OPEN = sa.text("state IN ('ready', 'claimed')")
COMPLETED = sa.text("state = 'completed'")
DONE_BY = sa.text("completed_by IS NOT NULL")
UNSIGNED = sa.text("signed_at IS NULL")
SIGNED = sa.text("signed_by IS NOT NULL")
UNSETTLED = sa.text("settled_at IS NULL")
PENDING = sa.text("state = 'pending'")
CLOSED = sa.text("closed_at IS NOT NULL")
CASE_LIVE = sa.text("state IN ('accepted', 'in_progress', 'suspended')")
Timestamp = sa.DateTime(timezone=True)
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _partial(name: str, table: str, columns: list, where: sa.TextClause) -> None:
    op.create_index(name, table, columns, sqlite_where=where, postgresql_where=where)


def upgrade() -> None:
    # plain ADD COLUMNs on both backends: no table is copied
    op.add_column("tasks", sa.Column("work_minutes", sa.Integer(), nullable=True))
    op.add_column("tasks", sa.Column("paused_minutes", sa.Integer(), nullable=False, server_default=sa.text("0")))
    op.add_column("notifications", sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "notification_channels",
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", name="pk_notification_channels"),
    )
    op.create_table(
        "notification_deliveries",
        sa.Column("id", Id, nullable=False),
        sa.Column("notification_id", Id, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim_token", sa.String(40), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["notification_id"], ["notifications.id"], name="fk_notification_deliveries_notification_id_notifications"
        ),
        sa.ForeignKeyConstraint(
            ["channel"],
            ["notification_channels.channel"],
            name="fk_notification_deliveries_channel_notification_channels",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_notification_deliveries"),
        sa.UniqueConstraint("notification_id", "channel", name="uq_notification_deliveries_notification_id_channel"),
    )
    op.create_table(
        "work_days",
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("definition_key", sa.String(64), nullable=False),
        sa.Column("department", sa.String(32), nullable=False),
        sa.Column("step_id", sa.String(64), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("timed", sa.Integer(), nullable=False),
        sa.Column("on_time", sa.Integer(), nullable=False),
        sa.Column("measured", sa.Integer(), nullable=False),
        sa.Column("minutes_total", sa.Integer(), nullable=False),
        sa.Column("minutes", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("day", "definition_key", "department", "step_id", name="pk_work_days"),
    )
    op.create_table(
        "work_days_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("through", sa.String(10), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_work_days_state"),
    )
    _partial("ix_notification_deliveries_due", "notification_deliveries", ["channel", "next_attempt_at"], PENDING)
    op.drop_index("ix_notifications_pending", table_name="notifications")
    _partial("ix_notifications_unsettled", "notifications", ["id"], UNSETTLED)

    op.create_index("ix_cases_submitted", "cases", ["submitted_at", "id"])
    _partial("ix_cases_closed", "cases", ["closed_at", "definition_key"], CLOSED)
    op.create_index("ix_cases_applicant_id", "cases", [sa.text("(applicant ->> 'id')")])
    op.create_index("ix_cases_applicant_name", "cases", [sa.text("(applicant ->> 'name')")])
    _partial("ix_cases_live_sla", "cases", ["definition_key", "sla_state"], CASE_LIVE)

    _partial("ix_tasks_open_sla", "tasks", ["department", "sla_state"], OPEN)
    _partial("ix_tasks_open_key", "tasks", ["id", "due_at", "department", "signoffs_open", "sla_state", "state"], OPEN)
    _partial("ix_tasks_done_by", "tasks", ["completed_by", "completed_at", "id"], DONE_BY)
    _partial(
        "ix_tasks_completed",
        "tasks",
        ["completed_at", "case_id", "department", "step_id", "work_minutes", "due_at", "state"],
        COMPLETED,
    )  # fmt: skip
    _partial("ix_signoffs_unsigned", "signoffs", ["party", "kind", "task_id", "signed_at"], UNSIGNED)
    _partial("ix_signoffs_signed_by", "signoffs", ["signed_by", "signed_at", "id"], SIGNED)

    op.create_index("ix_extensions_case", "extensions", ["case_id"])
    op.create_index("ix_certificates_case", "certificates", ["case_id"])
    op.create_index("ix_alerts_case", "alerts", ["case_id"])
    op.create_index("ix_alerts_raised", "alerts", ["raised_at"])
    op.create_index("ix_urges_case", "urges", ["case_id"])
    op.create_index("ix_evaluations_at", "evaluations", ["at"])


def downgrade() -> None:
    for name, table in [
        ("ix_evaluations_at", "evaluations"),
        ("ix_urges_case", "urges"),
        ("ix_alerts_raised", "alerts"),
        ("ix_alerts_case", "alerts"),
        ("ix_certificates_case", "certificates"),
        ("ix_extensions_case", "extensions"),
        ("ix_signoffs_signed_by", "signoffs"),
        ("ix_signoffs_unsigned", "signoffs"),
        ("ix_tasks_completed", "tasks"),
        ("ix_tasks_done_by", "tasks"),
        ("ix_tasks_open_key", "tasks"),
        ("ix_tasks_open_sla", "tasks"),
        ("ix_cases_live_sla", "cases"),
        ("ix_cases_applicant_name", "cases"),
        ("ix_cases_applicant_id", "cases"),
        ("ix_cases_closed", "cases"),
        ("ix_cases_submitted", "cases"),
        ("ix_notifications_unsettled", "notifications"),
        ("ix_notification_deliveries_due", "notification_deliveries"),
    ]:
        op.drop_index(name, table_name=table)
    op.create_index("ix_notifications_pending", "notifications", ["delivered_at", "id"])
    op.drop_table("work_days_state")
    op.drop_table("work_days")
    op.drop_table("notification_deliveries")
    op.drop_table("notification_channels")
    with op.batch_alter_table("notifications") as batch_op:
        batch_op.drop_column("settled_at")
    with op.batch_alter_table("tasks") as batch_op:
        batch_op.drop_column("paused_minutes")
        batch_op.drop_column("work_minutes")
