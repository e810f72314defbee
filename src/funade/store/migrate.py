"""Schema migrations with Alembic, run explicitly (`funade db upgrade`) — never on import.

Alembic itself is imported by the functions that run it: :func:`at_head` tells whether a store
is current without it (a quarter of a second each time the SDK or the CLI opens a home).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from funade.store.engine import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"

_REVISION = re.compile(r"^revision(?:\s*:\s*str)?\s*=\s*[\"']([^\"']+)[\"']\s*$", re.M)
_DOWN = re.compile(r"^down_revision(?:\s*:[^=]+)?\s*=\s*(?:[\"']([^\"']+)[\"']|None)\s*$", re.M)


def _config(database: Database) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (idempotent)."""
    from alembic import command

    config = _config(database)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(database: Database) -> str | None:
    from alembic.migration import MigrationContext

    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def is_current(database: Database) -> bool:
    return current_revision(database) == head_revision()


def known_head() -> str | None:
    """The newest revision, read from the migration files without Alembic: the one revision no
    other file revises. None when a file does not read as a plain linear migration (a merge, a
    branch): then only Alembic can tell."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text()
        found, down = _REVISION.findall(source), _DOWN.search(source)
        if len(found) != 1 or down is None:
            return None
        revisions.add(found[0])
        if down.group(1):
            revised.add(down.group(1))
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 and revised <= revisions else None


def at_head(database: Database) -> bool:
    """Whether the store is at the newest schema, asked with one query and no Alembic; False
    when in doubt (the caller then asks Alembic, or migrates, which is idempotent)."""
    head = known_head()
    if head is None:
        return False
    try:
        with database.engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:  # no such table: an empty store
        return False
    return [row[0] for row in rows] == [head]


def revision(database: Database, message: str) -> None:
    """Autogenerate a migration from the difference between schema.py and ``database``."""
    from alembic import command

    config = _config(database)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)
