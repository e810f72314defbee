"""Making a funade home ready: schema, the default project, the first admin key.

`funade up` and the in-process SDK call this; nothing runs it on import.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from funade.auth.keys import parse_key
from funade.auth.service import check_key, create_key
from funade.credentials import read_credentials, write_credentials
from funade.errors import AuthenticationError, FunadeError, InvalidInputError
from funade.projects import DEFAULT_PROJECT, ensure_project
from funade.settings import Settings
from funade.store import Database, create_database
from funade.store.migrate import at_head, is_current, upgrade
from funade.store.schema import ApiKey

__all__ = [
    "Home",
    "bootstrap",
    "has_keys",
    "open_database",
    "read_credentials",  # (now in funade.credentials; kept importable from here)
    "rotate_admin_key",
    "write_credentials",
]


@dataclass(frozen=True)
class Home:
    db: Database
    admin_key: str
    created_key: bool


def open_database(settings: Settings, *, migrate: bool) -> Database:
    """The store; SQLite is migrated in place when ``migrate``, others must be current. A store
    already current is told so with one query (Alembic is imported only to migrate)."""
    db = create_database(settings.resolved_database_url)
    if at_head(db):
        return db
    if db.is_sqlite and migrate:
        upgrade(db)
    elif not is_current(db):
        raise InvalidInputError(
            f"The database at {db.url} is not at the current schema version.",
            field="database_url",
            value=db.url,
            fix="Run `funade db upgrade` (after a backup), then start again.",
        )
    return db


def bootstrap(settings: Settings, db: Database) -> Home:
    """Ensure the default project and a working admin key in the credentials file."""
    with db.session() as session:
        ensure_project(session, DEFAULT_PROJECT)
        if settings.project != DEFAULT_PROJECT:
            ensure_project(session, settings.project)
    stored = read_credentials(settings)
    if stored is not None and _valid_admin(db, stored):
        return Home(db=db, admin_key=stored, created_key=False)
    with db.session() as session:
        text, _ = create_key(
            session, name="local-admin", scopes=["admin"], project=None, created_by=None
        )
    write_credentials(settings, text)
    return Home(db=db, admin_key=text, created_key=True)


def rotate_admin_key(settings: Settings, db: Database) -> tuple[str, str | None]:
    """Replace the admin key in the credentials file with a new global admin key, and revoke the
    one it held (with its dashboard sessions and the run tokens it started), in one transaction.
    Returns the new key's text and the revoked key's id (None if the file held no valid key)."""
    from funade import audit
    from funade.auth.principal import Principal
    from funade.auth.service import principal_for, revoke_key

    stored = read_credentials(settings)
    old_id: str | None = None
    with db.session() as session:
        old = None
        if stored is not None:
            try:
                old = session.get(ApiKey, parse_key(stored).key_id)
            except AuthenticationError:
                old = None
        text, row = create_key(
            session,
            name="local-admin",
            scopes=["admin"],
            project=None,
            created_by=old.id if old is not None else None,
        )
        actor: Principal = principal_for(old) if old is not None else principal_for(row)
        if old is not None and old.revoked_at is None:
            revoke_key(session, old)
            old_id = old.id
        audit.record(session, actor, "key.rotate", row.id, replaced=old_id)
    write_credentials(settings, text)
    return text, old_id


def _valid_admin(db: Database, text: str) -> bool:
    try:
        parse_key(text)
        with db.read() as session:
            principal, _ = check_key(session, text, client_ip=None)
    except (AuthenticationError, FunadeError):
        return False
    return principal.is_global and "admin" in principal.granted


def has_keys(db: Database) -> bool:
    with db.read() as session:
        return session.scalar(select(ApiKey.id).limit(1)) is not None
