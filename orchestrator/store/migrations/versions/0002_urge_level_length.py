"""urges.level holds 'supervise' (9 characters): widen it from 8 to 12

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 09:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("urges", schema=None) as batch_op:
        batch_op.alter_column(
            "level", existing_type=sa.String(length=8), type_=sa.String(length=12), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("urges", schema=None) as batch_op:
        batch_op.alter_column(
            "level", existing_type=sa.String(length=12), type_=sa.String(length=8), existing_nullable=False
        )
