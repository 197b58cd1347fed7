"""The web (web/): accounts, access tokens, service centres, failed log-ins, the audit log, case views;
where a case came in (``cases.channel``, ``cases.centre``: 全市通办, any centre accepts any 一件事).

The two new ``cases`` columns are set when the case is made and never updated, so the hand-edit
triggers of 0009 need not watch them (plain ADD COLUMNs: no table copy, the triggers stay).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("cases", sa.Column("channel", sa.String(12), nullable=False, server_default=sa.text("'window'")))
    op.add_column("cases", sa.Column("centre", sa.String(32), nullable=True))
    op.create_table(
        "service_centres",
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("level", sa.String(12), nullable=False),
        sa.Column("parent", sa.String(32), nullable=True),
        sa.ForeignKeyConstraint(["parent"], ["service_centres.code"], name="fk_service_centres_parent_service_centres"),
        sa.PrimaryKeyConstraint("code", name="pk_service_centres"),
    )
    op.create_table(
        "accounts",
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("centre", sa.String(32), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("password_changed_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_accounts_user_id_users"),
        sa.ForeignKeyConstraint(["centre"], ["service_centres.code"], name="fk_accounts_centre_service_centres"),
        sa.PrimaryKeyConstraint("user_id", name="pk_accounts"),
    )
    op.create_table(
        "access_tokens",
        sa.Column("id", Id, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=True),
        sa.Column("revoked_at", Timestamp, nullable=True),
        sa.Column("last_used_at", Timestamp, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_access_tokens_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_access_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_access_tokens_token_hash"),
    )
    op.create_index("ix_access_tokens_user", "access_tokens", ["user_id"])
    op.create_table(
        "login_attempts",
        sa.Column("id", Id, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_attempts"),
    )
    op.create_index("ix_login_attempts_username", "login_attempts", ["username", "at"])
    op.create_index("ix_login_attempts_ip", "login_attempts", ["ip", "at"])
    op.create_table(
        "audit_log",
        sa.Column("id", Id, nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("user_id", sa.String(64), nullable=True),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("target", sa.String(100), nullable=True),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_table(
        "case_views",
        sa.Column("id", Id, nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("case_id", Id, nullable=False),
        sa.Column("page", sa.String(40), nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_case_views_case_id_cases"),
        sa.PrimaryKeyConstraint("id", name="pk_case_views"),
    )
    op.create_index("ix_case_views_case", "case_views", ["case_id", "at"])
    op.create_index("ix_case_views_user", "case_views", ["user_id", "at"])


def downgrade() -> None:
    for table in ("case_views", "audit_log", "login_attempts", "access_tokens", "accounts", "service_centres"):
        op.drop_table(table)
    for column in ("centre", "channel"):  # in place (SQLite 3.35+): a table copy would drop the triggers
        op.execute(f"ALTER TABLE cases DROP COLUMN {column}")
