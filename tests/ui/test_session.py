"""Dashboard sessions in the store: what a sign-in makes, and what ends it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from funade.auth.keys import parse_key
from funade.auth.service import check_key, create_key
from funade.errors import AuthenticationError
from funade.projects import create_project
from funade.store import Database
from funade.store.schema import ApiKey, utcnow
from funade.ui import links, session


def test_a_session_has_its_keys_scopes_and_ends_at_sign_out(database: Database) -> None:
    with database.session() as s:
        project = create_project(s, "p")
        expires = utcnow() + timedelta(hours=2)
        key, parent = create_key(
            s, name="ana", scopes=["read"], project=project, created_by=None, expires_at=expires
        )
        parent_id = parent.id
    text, principal = session.sign_in(database, key, client_ip="127.0.0.1")
    assert (principal.kind, principal.project, principal.scopes) == (
        "session",
        "p",
        frozenset({"read"}),
    )
    with database.read() as s:
        row = s.get(ApiKey, parse_key(text).key_id)
        assert row is not None
        assert row.parent_id == parent_id
        assert row.expires_at is not None
        assert row.expires_at <= expires
    session.sign_out(database, text)
    with database.read() as s, pytest.raises(AuthenticationError, match="revoked"):
        check_key(s, text, client_ip=None)
    session.sign_out(database, "fnd_000000000000_gone")  # nothing to end: no error


def test_predict_keys_cannot_open_the_dashboard(database: Database) -> None:
    with database.session() as s:
        project = create_project(s, "p")
        key, _ = create_key(s, name="app", scopes=["predict"], project=project, created_by=None)
    with pytest.raises(AuthenticationError) as caught:
        session.sign_in(database, key, client_ip=None)
    assert caught.value.field == "key"
    assert "may only predict, so it cannot open the dashboard" in caught.value.message


def test_a_link_signs_in_once_as_its_admin(database: Database) -> None:
    with database.session() as s:
        _, admin = create_key(s, name="root", scopes=["admin"], project=None, created_by=None)
        admin_id = admin.id
    link = links.create_link(database, admin_id)
    text, principal = session.sign_in(database, link, client_ip=None)
    assert principal.granted >= {"admin", "read"}
    with database.read() as s:
        row = s.get(ApiKey, parse_key(text).key_id)
        assert row is not None
        assert row.parent_id == admin_id
    with pytest.raises(AuthenticationError, match="already used; a link works once"):
        session.sign_in(database, link, client_ip=None)
    with pytest.raises(AuthenticationError, match="does not exist"):
        links.create_link(database, "000000000000")
