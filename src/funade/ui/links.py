"""One-time dashboard sign-in links (``funade up`` prints one).

A link is ``fndlink_<id>_<secret>``: a secret of its own kind, not an API key. Its prefix is not
the keys' ``fnd``, so no route, gateway or client takes it as a key (``parse_key`` refuses it),
and it lives in its own table (``signin_links``: the secret's SHA-256, the key it signs in as,
an expiry). It does one thing: sign in to the dashboard once, within ``LINK_MINUTES``.

Once means once under concurrency too: using a link is one conditional
``UPDATE signin_links SET used_at = now WHERE id = … AND used_at IS NULL AND expires_at > now``,
and only the sign-in whose UPDATE changed the row goes on. On PostgreSQL a second UPDATE of the
row waits for the first transaction and then finds ``used_at`` set; on SQLite writers queue on
the write lock (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from funade.auth.keys import KeyParts, generate_key, hash_secret, secret_matches
from funade.errors import AuthenticationError
from funade.store import Database
from funade.store.schema import ApiKey, SigninLink, utcnow

PREFIX = "fndlink"
LINK_MINUTES = 60
KEPT = timedelta(days=7)
"""How long a used or expired link's row stays (a new link deletes older ones)."""

_AGAIN = (
    "Run `funade up` again for a new link, or sign in with the admin key in "
    "$FUNADE_HOME/credentials."
)


def is_link(text: str) -> bool:
    """Whether ``text`` is a sign-in link (by its prefix), not an API key."""
    return text.startswith(PREFIX + "_")


def parse_link(text: str) -> KeyParts:
    prefix, _, rest = text.partition("_")
    link_id, _, secret = rest.partition("_")
    if prefix != PREFIX or len(link_id) != 12 or not secret:
        raise AuthenticationError(
            "The sign-in link is malformed.",
            field="key",
            fix="Open the whole link `funade up` printed (it ends in #link=fndlink_...). " + _AGAIN,
        )
    return KeyParts(key_id=link_id, secret=secret)


def create_link(db: Database, key_id: str) -> str:
    """A new one-time link that signs in as key ``key_id`` (the admin key, for ``funade up``),
    valid ``LINK_MINUTES``; its text, to be shown once."""
    with db.session() as session:
        key = session.get(ApiKey, key_id)
        if key is None or key.kind != "key" or key.revoked_at is not None:
            raise AuthenticationError(
                f"Key {key_id!r} does not exist.",
                field="key_id",
                value=key_id,
                fix="Make sign-in links for a key in use (`funade keys list`).",
            )
        now = utcnow()
        session.execute(delete(SigninLink).where(SigninLink.expires_at < now - KEPT))
        _, parts = generate_key()
        session.add(
            SigninLink(
                id=parts.key_id,
                key_id=key.id,
                secret_hash=hash_secret(parts.secret),
                created_at=now,
                expires_at=now + timedelta(minutes=LINK_MINUTES),
            )
        )
    return f"{PREFIX}_{parts.key_id}_{parts.secret}"


def use_link(session: Session, text: str) -> tuple[str, ApiKey]:
    """Use the link ``text``, in the caller's transaction (so it stays unused if the sign-in
    fails later): its id and the row of the key it signs in as. AuthenticationError, saying
    why, if it is not a link, was used already or expired."""
    parts = parse_link(text)
    row = session.get(SigninLink, parts.key_id)
    if row is None or not secret_matches(parts.secret, row.secret_hash):
        raise AuthenticationError(
            "The sign-in link is not valid.", field="key", fix="Check the link. " + _AGAIN
        )
    now = utcnow()
    if row.used_at is not None:
        raise _used()
    if row.expires_at <= now:
        raise AuthenticationError(
            f"The sign-in link expired at {row.expires_at.isoformat()}.", field="key", fix=_AGAIN
        )
    won = session.scalar(
        update(SigninLink)
        .where(
            SigninLink.id == row.id,
            SigninLink.used_at.is_(None),
            SigninLink.expires_at > now,
        )
        .values(used_at=now)
        .returning(SigninLink.id)
        .execution_options(synchronize_session=False)
    )
    if won is None:  # another sign-in used it between our read and our update
        raise _used()
    key = session.get(ApiKey, row.key_id)
    if key is None or key.revoked_at is not None:
        raise AuthenticationError(
            "The key this sign-in link signs in as was revoked.", field="key", fix=_AGAIN
        )
    if key.expires_at is not None and key.expires_at <= now:
        raise AuthenticationError(
            "The key this sign-in link signs in as has expired.", field="key", fix=_AGAIN
        )
    return row.id, key


def _used() -> AuthenticationError:
    return AuthenticationError(
        "This sign-in link was already used; a link works once.", field="key", fix=_AGAIN
    )
