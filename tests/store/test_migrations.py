"""The Alembic migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from funade.store import create_database, upgrade
from funade.store.migrate import current_revision, head_revision, is_current
from funade.store.schema import Base


def test_upgrade_builds_declared_schema(database_url: str) -> None:
    db = create_database(database_url)
    assert current_revision(db) is None
    assert not is_current(db)
    upgrade(db)
    assert current_revision(db) == head_revision()
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], f"schema.py and the migrations disagree: {diff}"
    assert {"projects", "models", "model_versions", "api_keys", "audit_log"} <= set(
        inspect(db.engine).get_table_names()
    )
    db.dispose()


def test_upgrade_is_idempotent(database_url: str) -> None:
    db = create_database(database_url)
    upgrade(db)
    upgrade(db)
    assert is_current(db)
    db.dispose()
