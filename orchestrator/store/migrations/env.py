"""Alembic environment: the engine comes from the caller (orchestrator.store.migrate)."""

from alembic import context

from orchestrator.store.models import Base

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # a batch migration copies a table and drops the old one, which the other tables' foreign keys
        # would refuse while they are enforced; they are checked once the migration is through instead
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=sqlite,
        compare_type=True,
    )
    try:
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {broken[:5]}")
        connection.commit()
    finally:
        if sqlite:  # the pooled connection goes back enforcing them, whatever happened
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
