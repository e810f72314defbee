"""Alembic environment: runs migrations on the connection funade hands it (see store/migrate.py)."""

from __future__ import annotations

from alembic import context

from funade.store.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - funade always passes a connection
    raise RuntimeError("run migrations through `funade db upgrade`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
