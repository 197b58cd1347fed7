"""cases.revision: bumped by every engine transition on the case; the engine keeps the case and its
tasks in memory between transitions and reloads them when the revision it holds is not the latest.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 11:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a plain ADD COLUMN on both backends: no copy of the cases table
    op.add_column("cases", sa.Column("revision", sa.Integer(), nullable=False, server_default=sa.text("1")))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch_op:
        batch_op.drop_column("revision")
