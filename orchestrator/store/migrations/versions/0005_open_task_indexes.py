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
    # index changes only: no table is copied on SQLite
    op.drop_index("ix_tasks_queue", table_name="tasks")
    op.drop_index("ix_tasks_assignee", table_name="tasks")
    op.create_index("ix_tasks_queue", "tasks", ["department", "due_at"], sqlite_where=READY, postgresql_where=READY)
    op.create_index(
        "ix_tasks_assignee", "tasks", ["assignee", "due_at"], sqlite_where=CLAIMED, postgresql_where=CLAIMED
    )
    op.drop_index("ix_events_at", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_at", "events", ["at"])
    op.drop_index("ix_tasks_queue", table_name="tasks")
    op.drop_index("ix_tasks_assignee", table_name="tasks")
    op.create_index("ix_tasks_queue", "tasks", ["department", "state", "due_at"])
    op.create_index("ix_tasks_assignee", "tasks", ["assignee", "state"])
