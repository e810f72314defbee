"""The metadata store: schema, engine and migrations. The single source of truth.

``upgrade`` (Alembic) is imported on first use: a process that only reads the store (a model
server resolving ``churn:3``) does not pay Alembic's quarter-second import."""

from typing import TYPE_CHECKING, Any

from funade.store.engine import Database, create_database

if TYPE_CHECKING:
    from funade.store.migrate import upgrade

__all__ = ["Database", "create_database", "upgrade"]


def __getattr__(name: str) -> Any:
    if name == "upgrade":
        from funade.store.migrate import upgrade

        return upgrade
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
