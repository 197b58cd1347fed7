"""What runs by itself (flows/): automatic steps left for workers with their attempts and incidents, the
local shared-data table their look-ups read, and the in-app inbox the notify flow delivers to (the
index the automatic-step runner picks from, ``ix_tasks_auto_ready``, came with 0009).

* ``auto_attempts``: per automatic task a worker tried and has not decided, the failed attempts, the next
  attempt's time (backoff), a worker's lease while it fetches shared data, the last error;
* ``incidents``: an automatic step whose attempts ran out, until a supervisor retries it or hands it to a
  person (partial index of the open ones per department);
* ``shared_data``: the default shared-data source (source, key) → record;
* ``inbox``: 站内信, one row per notification and person.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)
AUTO_READY = sa.text("state = 'ready' AND kind = 'auto'")
INCIDENT_OPEN = sa.text("state = 'open'")
UNREAD = sa.text("read_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "auto_attempts",
        sa.Column("task_id", Id, autoincrement=False, nullable=False),
        sa.Column("case_id", Id, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Timestamp, nullable=False),
        sa.Column("lease_token", sa.String(40), nullable=True),
        sa.Column("lease_until", Timestamp, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_auto_attempts_task_id_tasks"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_auto_attempts_case_id_cases"),
        sa.PrimaryKeyConstraint("task_id", name="pk_auto_attempts"),
    )
    op.create_table(
        "incidents",
        sa.Column("id", Id, nullable=False),
        sa.Column("task_id", Id, nullable=False),
        sa.Column("case_id", Id, nullable=False),
        sa.Column("step_id", sa.String(64), nullable=False),
        sa.Column("department", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("raised_at", Timestamp, nullable=False),
        sa.Column("closed_at", Timestamp, nullable=True),
        sa.Column("closed_by", sa.String(64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_incidents_task_id_tasks"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_incidents_case_id_cases"),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
    )
    op.create_index(
        "ix_incidents_open",
        "incidents",
        ["department", "raised_at"],
        sqlite_where=INCIDENT_OPEN,
        postgresql_where=INCIDENT_OPEN,
    )
    op.create_index("ix_incidents_task", "incidents", ["task_id"])
    op.create_table(
        "shared_data",
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("source", "key", name="pk_shared_data"),
    )
    op.create_table(
        "inbox",
        sa.Column("id", Id, nullable=False),
        sa.Column("notification_id", Id, nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("delivered_at", Timestamp, nullable=False),
        sa.Column("read_at", Timestamp, nullable=True),
        sa.ForeignKeyConstraint(
            ["notification_id"], ["notifications.id"], name="fk_inbox_notification_id_notifications"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_inbox"),
        sa.UniqueConstraint("notification_id", "user_id", name="uq_inbox_notification_id_user_id"),
    )
    op.create_index("ix_inbox_user", "inbox", ["user_id", "id"])
    op.create_index("ix_inbox_unread", "inbox", ["user_id"], sqlite_where=UNREAD, postgresql_where=UNREAD)


def downgrade() -> None:
    op.drop_index("ix_inbox_unread", table_name="inbox")
    op.drop_index("ix_inbox_user", table_name="inbox")
    op.drop_table("inbox")
    op.drop_table("shared_data")
    op.drop_index("ix_incidents_task", table_name="incidents")
    op.drop_index("ix_incidents_open", table_name="incidents")
    op.drop_table("incidents")
    op.drop_table("auto_attempts")
