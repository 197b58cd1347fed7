"""Smaller indexes on the hot path: the task queue index holds ready tasks only and the assignee index
claimed tasks only (a task leaves them as its work moves on), and events lose the index on their time,
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

READY = sa.text("state = 'ready'")
CLAIMED = sa.text("state = 'claimed'")


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch_op:
        batch_op.drop_index("ix_tasks_queue")
        batch_op.drop_index("ix_tasks_assignee")
        batch_op.create_index("ix_tasks_queue", ["department", "due_at"], sqlite_where=READY, postgresql_where=READY)
        batch_op.create_index(
            "ix_tasks_assignee", ["assignee", "due_at"], sqlite_where=CLAIMED, postgresql_where=CLAIMED
        )
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
