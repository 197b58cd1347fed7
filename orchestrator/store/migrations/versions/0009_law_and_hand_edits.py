"""The law's last details and hand edits:

* ``negative_reports``: 不予审批报告制, a proposed refusal (不予受理, 不予许可) and its leader's decision;
* ``membership_changes``: the history of ``set_memberships`` (who, when, roles before and after);
* ``departments.roles``: the roles of each department (departments.yaml), to check memberships against;
* ``signoffs.version``: bumped by every engine write, like ``tasks.version`` and ``cases.version``;
* triggers that bump ``cases.revision`` when a case, task or sign-off changes without the engine's
  version bump (an operator's UPDATE in SQL), so a running engine reads the case afresh instead of
  writing its kept copy over the fix. A later batch migration on SQLite that copies cases, tasks or
  signoffs drops these triggers and must create them again;
* the partial index ``ix_tasks_auto_ready`` the automatic-step runner reads (commands/auto.py).

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-10 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None

AUTO_READY = sa.text("state = 'ready' AND kind = 'auto'")

# The columns an engine write bumps `version` with (all but id, version, revision and sla_state, which
# the SLA sweep sets without a transition), frozen as of this revision.
CASE_COLUMNS = (
    "number, definition_key, definition_version, state, outcome, applicant, form, materials, deferred, "
    "deferred_due_at, idempotency_key, submitted_at, accepted_at, closed_at, due_at, warn_at, provisional, "
    "reason, remedy"
)
TASK_COLUMNS = (
    "case_id, step_id, kind, name, department, state, outcome, assignee, delegated_by, opinion, ready_at, "
    "claimed_at, completed_at, completed_by, due_at, warn_at, provisional, waiting, created_by_task, "
    "superseded, signoffs_open, work_minutes, paused_minutes"
)
SIGNOFF_COLUMNS = "task_id, position, kind, party, signed_by, signed_at, outcome, opinion"
BUMP = "UPDATE cases SET revision = revision + 1 WHERE id"
OF_SIGNOFF = "IN (SELECT case_id FROM tasks WHERE id IN ({}))"

SQLITE_TRIGGERS = [
    f"CREATE TRIGGER tr_cases_edited AFTER UPDATE OF {CASE_COLUMNS} ON cases FOR EACH ROW"
    f" WHEN NEW.version = OLD.version BEGIN {BUMP} = NEW.id; END",
    f"CREATE TRIGGER tr_tasks_edited AFTER UPDATE OF {TASK_COLUMNS} ON tasks FOR EACH ROW"
    f" WHEN NEW.version = OLD.version BEGIN {BUMP} IN (NEW.case_id, OLD.case_id); END",
    f"CREATE TRIGGER tr_tasks_deleted AFTER DELETE ON tasks FOR EACH ROW BEGIN {BUMP} = OLD.case_id; END",
    f"CREATE TRIGGER tr_signoffs_edited AFTER UPDATE OF {SIGNOFF_COLUMNS} ON signoffs FOR EACH ROW"
    f" WHEN NEW.version = OLD.version BEGIN {BUMP} {OF_SIGNOFF.format('NEW.task_id, OLD.task_id')}; END",
    f"CREATE TRIGGER tr_signoffs_deleted AFTER DELETE ON signoffs FOR EACH ROW"
    f" BEGIN {BUMP} {OF_SIGNOFF.format('OLD.task_id')}; END",
]
POSTGRES_FUNCTIONS = {
    "tongban_case_edited": f"{BUMP} = NEW.id;",
    "tongban_task_edited": f"IF TG_OP = 'DELETE' THEN {BUMP} = OLD.case_id;"
    f" ELSE {BUMP} IN (NEW.case_id, OLD.case_id); END IF;",
    "tongban_signoff_edited": f"IF TG_OP = 'DELETE' THEN {BUMP} {OF_SIGNOFF.format('OLD.task_id')};"
    f" ELSE {BUMP} {OF_SIGNOFF.format('NEW.task_id, OLD.task_id')}; END IF;",
}
POSTGRES_TRIGGERS = [
    *(
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$"
        for name, body in POSTGRES_FUNCTIONS.items()
    ),
    f"CREATE TRIGGER tr_cases_edited AFTER UPDATE OF {CASE_COLUMNS} ON cases FOR EACH ROW"
    " WHEN (NEW.version = OLD.version) EXECUTE FUNCTION tongban_case_edited()",
    f"CREATE TRIGGER tr_tasks_edited AFTER UPDATE OF {TASK_COLUMNS} ON tasks FOR EACH ROW"
    " WHEN (NEW.version = OLD.version) EXECUTE FUNCTION tongban_task_edited()",
    "CREATE TRIGGER tr_tasks_deleted AFTER DELETE ON tasks FOR EACH ROW EXECUTE FUNCTION tongban_task_edited()",
    f"CREATE TRIGGER tr_signoffs_edited AFTER UPDATE OF {SIGNOFF_COLUMNS} ON signoffs FOR EACH ROW"
    " WHEN (NEW.version = OLD.version) EXECUTE FUNCTION tongban_signoff_edited()",
    "CREATE TRIGGER tr_signoffs_deleted AFTER DELETE ON signoffs FOR EACH ROW"
    " EXECUTE FUNCTION tongban_signoff_edited()",
]
TRIGGERS = {
    "tr_cases_edited": "cases",
    "tr_tasks_edited": "tasks",
    "tr_tasks_deleted": "tasks",
    "tr_signoffs_edited": "signoffs",
    "tr_signoffs_deleted": "signoffs",
}


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "negative_reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("report_task_id", sa.Integer(), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("remedy", sa.Text(), nullable=True),
        sa.Column("proposed_by", sa.String(length=64), nullable=False),
        sa.Column("proposed_at", _timestamp(), nullable=False),
        sa.Column("decision", sa.String(length=12), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", _timestamp(), nullable=True),
        sa.Column("opinion", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_negative_reports_case_id_cases"),
        sa.PrimaryKeyConstraint("id", name="pk_negative_reports"),
        sa.UniqueConstraint("report_task_id", name="uq_negative_reports_report_task_id"),
    )
    op.create_index("ix_negative_reports_case", "negative_reports", ["case_id"])
    op.create_table(
        "membership_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("at", _timestamp(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_membership_changes_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_membership_changes"),
    )
    op.create_index("ix_membership_changes_user", "membership_changes", ["user_id", "at"])
    # plain ADD COLUMNs on both backends: no copy of the tables (which would drop the triggers below)
    op.add_column("departments", sa.Column("roles", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
    op.add_column("signoffs", sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")))
    op.create_index("ix_tasks_auto_ready", "tasks", ["id"], sqlite_where=AUTO_READY, postgresql_where=AUTO_READY)
    for statement in SQLITE_TRIGGERS if op.get_bind().dialect.name == "sqlite" else POSTGRES_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for trigger, table in TRIGGERS.items():
        op.execute(f"DROP TRIGGER {trigger} ON {table}" if postgres else f"DROP TRIGGER {trigger}")
    if postgres:
        for name in POSTGRES_FUNCTIONS:
            op.execute(f"DROP FUNCTION {name}()")
    op.drop_index("ix_tasks_auto_ready", table_name="tasks")
    with op.batch_alter_table("signoffs") as batch_op:
        batch_op.drop_column("version")
    with op.batch_alter_table("departments") as batch_op:
        batch_op.drop_column("roles")
    op.drop_index("ix_membership_changes_user", table_name="membership_changes")
    op.drop_table("membership_changes")
    op.drop_index("ix_negative_reports_case", table_name="negative_reports")
    op.drop_table("negative_reports")
