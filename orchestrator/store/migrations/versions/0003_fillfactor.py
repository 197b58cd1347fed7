"""PostgreSQL: leave room in task and case pages (fillfactor 90) so SLA sweeps and transitions can
update rows in place (HOT updates) instead of rewriting every index; SQLite has no such setting.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 09:30:00
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("tasks", "cases")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} SET (fillfactor = 90)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
