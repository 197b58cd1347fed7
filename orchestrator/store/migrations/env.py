"""Alembic environment: the connection, already in the transaction that holds the upgrade lock,
comes from the caller (orchestrator.store.migrate.upgrade)."""

from alembic import context

from orchestrator.store.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():  # the caller's transaction: it commits or rolls back
    context.run_migrations()
