"""Persistence: SQLAlchemy 2 tables, connections and Alembic migrations."""

from .db import connect, database_url, reading
from .migrate import upgrade

__all__ = ["connect", "database_url", "reading", "upgrade"]
