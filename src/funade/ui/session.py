"""Signing in to the dashboard. A session is a key of kind ``session``: it has the scopes and
project of the key it was signed in with (its parent), lasts ``SESSION_HOURS`` at most, and
ends when that key is revoked or the person signs out. A one-time sign-in link
(``ui/links.py``; ``funade up`` prints one) signs in as its key, once."""

from __future__ import annotations

from datetime import timedelta

from funade import audit
from funade.auth.principal import Principal
from funade.auth.service import check_key, create_key, principal_for, revoke_key
from funade.errors import AuthenticationError
from funade.store import Database
from funade.store.schema import ApiKey, utcnow
from funade.ui import links

SESSION_HOURS = 12


def sign_in(db: Database, text: str, *, client_ip: str | None) -> tuple[str, Principal]:
    """A new session for the key or one-time link ``text``: its text (for the cookie) and
    whom it acts as. AuthenticationError if the key or link is not valid (a link is used up
    only if the sign-in succeeds); a group token signs in to nothing here (it opens its try-it
    page at the gateway)."""
    text = text.strip()
    with db.session() as session:
        link_id: str | None = None
        if links.is_link(text):
            link_id, parent = links.use_link(session, text)
            principal = principal_for(parent, client_ip=client_ip)
        else:
            principal, _ = check_key(session, text, client_ip=client_ip)
            found = session.get(ApiKey, principal.key_id)
            assert found is not None
            parent = found
        principal.check_address(client_ip)
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
        details = {"link": link_id} if link_id is not None else {}
        audit.record(session, principal, "ui.sign_in", row.id, project=parent.project, **details)
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
