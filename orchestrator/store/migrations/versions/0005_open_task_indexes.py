"""Smaller indexes on the hot path: the task queue and assignee indexes hold open tasks only (a
completion deletes its entries instead of moving them), and events lose the index on their time,
which no query used.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OPEN = sa.text("state IN ('ready', 'claimed')")


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch_op:
        batch_op.drop_index("ix_tasks_queue")
        batch_op.drop_index("ix_tasks_assignee")
        batch_op.create_index(
            "ix_tasks_queue", ["department", "state", "due_at"], sqlite_where=OPEN, postgresql_where=OPEN
        )
        batch_op.create_index("ix_tasks_assignee", ["assignee", "state"], sqlite_where=OPEN, postgresql_where=OPEN)
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_index("ix_events_at")


def downgrade() -> None:
    with op.batch_alter_table("events") as batch_op:
        batch_op.create_index("ix_events_at", ["at"])
    with op.batch_alter_table("tasks") as batch_op:
        batch_op.drop_index("ix_tasks_queue")
        batch_op.drop_index("ix_tasks_assignee")
        batch_op.create_index("ix_tasks_queue", ["department", "state", "due_at"])
        batch_op.create_index("ix_tasks_assignee", ["assignee", "state"])
