"""The key a revision's pods hold: read-only, one project, expiring, revocable.

A pod of the Kubernetes backend may pull its model version from the control plane at start (a
runtime image, or one built with ``--fetch``): for that it gets ``FUNADE_API_KEY`` from its
revision's Secret. That key is made here for the one revision: scope ``read`` in the revision's
project only (never admin, never another project, never write), named after the revision,
expiring after ``kubernetes_key_hours``. The backend renews it when half its life has passed
(a new key into the Secret, then the old one revoked) and revokes it when the revision stops.
Every issue and revoke writes an audit row, in the same transaction, as the controller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select

from funade.audit import record
from funade.auth.principal import Principal
from funade.auth.service import create_key
from funade.projects import get_project
from funade.store.engine import Database
from funade.store.schema import ApiKey, utcnow

__all__ = ["IssuedKey", "ReplicaKeys", "StoreKeys", "key_name"]

SCOPES = ["read"]
CONTROLLER = Principal(key_id=None, name="controller", scopes=frozenset(), project=None)


@dataclass(frozen=True)
class IssuedKey:
    text: str
    """The key itself (``fnd_<id>_<secret>``): only the Secret holds it."""
    key_id: str
    expires_at: datetime


class ReplicaKeys(Protocol):
    """Makes and revokes revisions' keys (``StoreKeys`` over the store; tests may count)."""

    def issue(self, project: str, revision: str, expires_at: datetime) -> IssuedKey: ...

    def revoke(self, key_id: str) -> None: ...

    def close(self) -> None: ...


def key_name(revision: str) -> str:
    return f"replicas of {revision}"


class StoreKeys:
    """Revisions' keys in the store funade's API checks keys against."""

    def __init__(self, db: Database, *, owned: bool = False) -> None:
        """``owned``: the database is this object's to close (made for it)."""
        self.db = db
        self.owned = owned

    def close(self) -> None:
        if self.owned:
            self.db.dispose()

    def issue(self, project: str, revision: str, expires_at: datetime) -> IssuedKey:
        """A new read key of ``project`` for the pods of ``revision`` (``deployment/N``),
        expiring at ``expires_at``."""
        expires = expires_at
        with self.db.session() as session:
            row = get_project(session, project)
            text, key = create_key(
                session,
                name=key_name(revision),
                scopes=list(SCOPES),
                project=row,
                created_by=None,
                expires_at=expires,
            )
            record(
                session,
                CONTROLLER,
                "key.create",
                key.id,
                project=row,
                name=key.name,
                scopes=SCOPES,
                expires_at=expires.isoformat(),
                why="a Kubernetes revision's pods",
            )
            return IssuedKey(text, key.id, expires)

    def revoke(self, key_id: str) -> None:
        """Revoke the key (already revoked or gone: nothing to do)."""
        with self.db.session() as session:
            key = session.scalars(select(ApiKey).where(ApiKey.id == key_id)).first()
            if key is None or key.revoked_at is not None:
                return
            key.revoked_at = utcnow()
            record(session, CONTROLLER, "key.revoke", key.id, project=key.project, name=key.name)
