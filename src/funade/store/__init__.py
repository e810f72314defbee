"""The metadata store: schema, engine and migrations. The single source of truth."""

from funade.store.engine import Database, create_database
from funade.store.migrate import upgrade

__all__ = ["Database", "create_database", "upgrade"]
