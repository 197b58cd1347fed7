"""容缺 timer: an index on the supply deadline of cases that still owe materials, so the periodic
terminate_lapsed_deferrals finds the lapsed ones without reading every case.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OWED = sa.text("deferred_due_at IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_cases_deferred_due", "cases", ["deferred_due_at"], sqlite_where=OWED, postgresql_where=OWED)


def downgrade() -> None:
    op.drop_index("ix_cases_deferred_due", table_name="cases")
