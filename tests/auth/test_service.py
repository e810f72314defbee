"""Keys in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from funade.auth.service import authenticate, create_key, list_keys, revoke_key
from funade.errors import AuthenticationError
from funade.projects import create_project
from funade.store import create_database, upgrade
from funade.store.schema import ApiKey, utcnow


def test_key_lifecycle(database_url: str) -> None:
    db = create_database(database_url)
    upgrade(db)
    with db.session() as session:
        project = create_project(session, "p")
        text, row = create_key(
            session, name="app", scopes=["predict", "read"], project=project, created_by=None
        )
        key_id = row.id
    with db.session() as session:
        principal = authenticate(session, text, client_ip="10.0.0.1")
        assert principal.project == "p"
        assert principal.scopes == frozenset({"read", "predict"})
        assert principal.client_ip == "10.0.0.1"
        stored = session.get(ApiKey, key_id)
        assert stored is not None
        assert stored.last_used_at is not None
        assert stored.scopes == ["read", "predict"]
    with db.session() as session:
        with pytest.raises(AuthenticationError, match="not valid"):
            authenticate(session, text[:-2] + "xx", client_ip=None)
        stored = session.get(ApiKey, key_id)
        assert stored is not None
        revoke_key(session, stored)
    with db.session() as session:
        with pytest.raises(AuthenticationError, match="revoked"):
            authenticate(session, text, client_ip=None)
        assert list_keys(session, project=None, include_revoked=False) == []
        stored = session.get(ApiKey, key_id)
        assert stored is not None
        stored.revoked_at = None
        stored.expires_at = utcnow() - timedelta(seconds=1)
    with db.session() as session, pytest.raises(AuthenticationError, match="expired"):
        authenticate(session, text, client_ip=None)
    db.dispose()
