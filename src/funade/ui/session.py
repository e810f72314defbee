"""Signing in to the dashboard. A session is a key of kind ``session``: it has the scopes and
project of the key it was signed in with (its parent), lasts ``SESSION_HOURS`` at most, and
ends when that key is revoked or the person signs out. A sign-in link (``funade up`` prints
one) holds a one-time key of kind ``link``, which signing in revokes."""

from __future__ import annotations

from datetime import timedelta

from funade import audit
from funade.auth.principal import Principal
from funade.auth.service import check_key, create_key, principal_for, revoke_key
from funade.errors import AuthenticationError
from funade.store import Database
from funade.store.schema import ApiKey, utcnow

SESSION_HOURS = 12
LINK_MINUTES = 60


def sign_in(db: Database, text: str, *, client_ip: str | None) -> tuple[str, Principal]:
    """A new session for the key (or one-time link) ``text``: its text (for the cookie) and
    whom it acts as. AuthenticationError if the key is not valid; a group token signs in to
    nothing here (it opens its try-it page at the gateway)."""
    with db.session() as session:
        principal, _ = check_key(session, text.strip(), client_ip=client_ip)
        principal.check_address(client_ip)
        parent = session.get(ApiKey, principal.key_id)
        assert parent is not None
        if parent.kind == "group" or parent.scopes == ["predict"]:
            raise AuthenticationError(
                f"Key {parent.name!r} may only predict, so it cannot open the dashboard.",
                field="key",
                fix="Sign in with a key that has the read scope; predict keys open a "
                "deployment's try-it page instead.",
            )
        expires = utcnow() + timedelta(hours=SESSION_HOURS)
        if parent.expires_at is not None:
            expires = min(expires, parent.expires_at)
        if parent.kind == "link":
            revoke_key(session, parent)  # one time only
            owner = parent.parent_id
        else:
            owner = parent.id if parent.kind == "key" else parent.parent_id
        session_text, row = create_key(
            session,
            name=f"dashboard: {parent.name}",
            scopes=list(parent.scopes),
            project=parent.project,
            created_by=parent.id,
            expires_at=expires,
            kind="session",
            parent_id=owner,
            allow_cidrs=parent.allow_cidrs,
        )
        audit.record(session, principal, "ui.sign_in", row.id, project=parent.project)
        return session_text, principal_for(row, client_ip=client_ip)


def sign_out(db: Database, text: str) -> None:
    """End the session ``text`` (nothing if it is not a valid session)."""
    with db.session() as session:
        try:
            principal, _ = check_key(session, text, client_ip=None)
        except AuthenticationError:
            return
        row = session.get(ApiKey, principal.key_id)
        if row is not None and row.kind == "session":
            revoke_key(session, row)


def create_link(db: Database, admin_key_id: str) -> str:
    """A one-time sign-in key for the admin key ``admin_key_id``, valid ``LINK_MINUTES``."""
    with db.session() as session:
        parent = session.get(ApiKey, admin_key_id)
        if parent is None:
            raise AuthenticationError(f"Key {admin_key_id!r} does not exist.")
        text, _row = create_key(
            session,
            name=f"sign-in link: {parent.name}",
            scopes=list(parent.scopes),
            project=parent.project,
            created_by=parent.id,
            expires_at=utcnow() + timedelta(minutes=LINK_MINUTES),
            kind="link",
            parent_id=parent.id,
        )
        return text
