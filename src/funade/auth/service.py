"""Creating, checking, listing and revoking API keys in the store."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from funade.auth.keys import generate_key, hash_secret, parse_key, secret_matches
from funade.auth.principal import RUN_SCOPE, SCOPES, Principal
from funade.errors import AuthenticationError, ConflictError, InvalidInputError, NotFoundError
from funade.store.schema import ApiKey, Project, utcnow

# last_used_at is refreshed at most this often, so reads do not all become writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)

KINDS = ("key", "session", "group", "run")
"""Kinds of key. Rows of kind "link" (sign-in links before migration 0007) never authenticate:
sign-in links are a secret of their own now (``ui/links.py``)."""


def check_scopes(scopes: list[str], *, kind: str = "key") -> list[str]:
    if not scopes:
        raise InvalidInputError(
            "A key needs at least one scope.",
            field="scopes",
            value=scopes,
            fix=f"Give one or more of {list(SCOPES)}.",
        )
    allowed = (*SCOPES, RUN_SCOPE) if kind == "run" else SCOPES
    for scope in scopes:
        if scope not in allowed:
            raise InvalidInputError(
                f"Scope {scope!r} does not exist.",
                field="scopes",
                value=scope,
                fix=f"Use one of {list(SCOPES)}.",
            )
    return sorted(set(scopes), key=allowed.index)


def create_key(
    session: Session,
    *,
    name: str,
    scopes: list[str],
    project: Project | None,
    created_by: str | None,
    expires_at: datetime | None = None,
    deployment: str | None = None,
    kind: str = "key",
    parent_id: str | None = None,
    allow_cidrs: list[str] | None = None,
    run_id: int | None = None,
    grants: list[str] | None = None,
) -> tuple[str, ApiKey]:
    """Store a new key; return its full text (to be shown once) and its row. A ``deployment``
    key is a predict key of one project that works for that deployment only; a ``group`` key
    is one of those with an expiry, handed to a group of people (as a QR code). ``allow_cidrs``
    limits where the key may be used from. A ``run`` token (``auth.runtokens``) belongs to run
    ``run_id`` and holds its pipeline's ``grants``."""
    scopes = check_scopes(scopes, kind=kind)
    if kind not in KINDS:
        raise InvalidInputError(
            f"Key kind {kind!r} does not exist.",
            field="kind",
            value=kind,
            fix=f"Use one of {list(KINDS)}.",
        )
    if kind == "group" and (deployment is None or expires_at is None):
        raise InvalidInputError(
            "A group token needs a deployment and an expiry.",
            field="deployment" if deployment is None else "expires_at",
            value=None,
            fix="Create it with `--group --deployment NAME --expires-in 8h`.",
        )
    cidrs = check_cidrs(allow_cidrs) if allow_cidrs else None
    if deployment is not None and (scopes != ["predict"] or project is None):
        raise InvalidInputError(
            f"A key for deployment {deployment!r} may only predict, in one project; got scopes "
            f"{scopes}{' and no project' if project is None else ''}.",
            field="deployment",
            value=deployment,
            fix="Create it with `--scope predict --project P --deployment NAME`.",
        )
    if not name or len(name) > 128:
        raise InvalidInputError(
            f"Key name {name!r} must have 1 to 128 characters.",
            field="name",
            value=name,
            fix="Name the key after who or what uses it, e.g. 'ci' or 'churn-app'.",
        )
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInputError(
            f"expires_at {expires_at.isoformat()} is in the past.",
            field="expires_at",
            value=expires_at.isoformat(),
            fix="Give a future time, or omit it for a key that does not expire.",
        )
    text, parts = generate_key()
    row = ApiKey(
        id=parts.key_id,
        name=name,
        scopes=scopes,
        project_id=project.id if project is not None else None,
        secret_hash=hash_secret(parts.secret),
        created_by=created_by,
        expires_at=expires_at,
        deployment=deployment,
        kind=kind,
        parent_id=parent_id,
        allow_cidrs=cidrs,
        run_id=run_id,
        grants=grants,
    )
    row.project = project
    session.add(row)
    session.flush()
    return text, row


def check_cidrs(cidrs: list[str]) -> list[str]:
    """The allowlist, each entry a valid address or network (InvalidInputError otherwise)."""
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise InvalidInputError(
                f"{cidr!r} is not an IP address or network.",
                field="allow_cidrs",
                value=cidr,
                fix="Give addresses or networks such as 192.168.1.0/24 or 10.0.0.7.",
            ) from None
    return list(cidrs)


def check_key(session: Session, text: str, *, client_ip: str | None) -> tuple[Principal, bool]:
    """The principal for key ``text``, and whether its ``last_used_at`` is stale; changes
    nothing. AuthenticationError if the key is unknown, revoked or expired."""
    parts = parse_key(text)
    row = session.get(ApiKey, parts.key_id)
    if row is None or not secret_matches(parts.secret, row.secret_hash):
        raise AuthenticationError(
            "The API key is not valid.",
            fix="Check for a typo, or create a new key with `funade keys create`.",
        )
    if row.kind == "link":
        raise AuthenticationError(
            f"API key {row.id!r} ({row.name}) was a one-time sign-in link: links are not API "
            "keys, and this one no longer works.",
            fix="Sign in to the dashboard with a new link from `funade up`, or with an API key.",
        )
    now = utcnow()
    if row.revoked_at is not None:
        raise AuthenticationError(
            f"API key {row.id!r} ({row.name}) was revoked.",
            fix="Ask an admin for a new key (`funade keys create`).",
        )
    if row.expires_at is not None and row.expires_at <= now:
        raise AuthenticationError(
            f"API key {row.id!r} ({row.name}) expired at {row.expires_at.isoformat()}.",
            fix="Ask an admin for a new key (`funade keys create`).",
        )
    stale = row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION
    return principal_for(row, client_ip=client_ip), stale


def touch_key(session: Session, key_id: str) -> None:
    """Record that the key was used now."""
    session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))


def authenticate(session: Session, text: str, *, client_ip: str | None) -> Principal:
    """``check_key``, then record the use (in the caller's read-write session)."""
    principal, stale = check_key(session, text, client_ip=client_ip)
    if stale and principal.key_id is not None:
        touch_key(session, principal.key_id)
    return principal


def principal_for(row: ApiKey, *, client_ip: str | None = None) -> Principal:
    return Principal(
        key_id=row.id,
        name=row.name,
        scopes=frozenset(row.scopes),
        project=row.project.name if row.project is not None else None,
        client_ip=client_ip,
        deployment=row.deployment,
        kind=row.kind,
        allow_cidrs=tuple(row.allow_cidrs or ()),
        run_id=row.run_id,
        grants=frozenset(row.grants or ()),
    )


def get_key(session: Session, key_id: str, *, principal: Principal) -> ApiKey:
    row = session.get(ApiKey, key_id)
    if row is None or (
        principal.project is not None
        and (row.project is None or row.project.name != principal.project)
    ):
        raise NotFoundError(
            f"API key {key_id!r} does not exist.",
            field="key_id",
            value=key_id,
            fix="List keys with `funade keys list`.",
        )
    return row


def list_keys(session: Session, *, project: Project | None, include_revoked: bool) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if project is not None:
        query = query.where(ApiKey.project_id == project.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke_key(session: Session, row: ApiKey) -> ApiKey:
    """Revoke the key and the dashboard sessions signed in with it. ConflictError for the only
    global admin key that still works: that would leave no one to administer the platform."""
    now = utcnow()
    if row.revoked_at is None:
        refuse_last_admin(session, row, now)
        row.revoked_at = now
    session.execute(
        update(ApiKey)
        .where(ApiKey.parent_id == row.id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return row


def revoke_deployment_keys(session: Session, project_id: int, deployment: str) -> list[ApiKey]:
    """Revoke the keys (and group tokens) limited to ``deployment`` of the project, which ends
    with it: a deployment made again under the same name is not opened by its predecessor's
    keys. Returns the keys revoked now."""
    rows = list(
        session.scalars(
            select(ApiKey).where(
                ApiKey.project_id == project_id,
                ApiKey.deployment == deployment,
                ApiKey.revoked_at.is_(None),
            )
        )
    )
    for row in rows:
        revoke_key(session, row)
    return rows


def refuse_last_admin(session: Session, row: ApiKey, now: datetime) -> None:
    """ConflictError if ``row`` is a global admin key and no other one works (unrevoked and
    unexpired; sessions and sign-in links, which end with their key, do not count)."""
    if not _global_admin(row, now):
        return
    others = session.scalars(
        select(ApiKey).where(
            ApiKey.project_id.is_(None), ApiKey.revoked_at.is_(None), ApiKey.id != row.id
        )
    )
    if any(_global_admin(other, now) for other in others):
        return
    raise ConflictError(
        f"Key {row.id!r} ({row.name}) is the only global admin key; revoking it would leave "
        "no key that can administer funade.",
        field="key_id",
        value=row.id,
        fix="Create another global admin key first (`funade keys create NAME --scope admin`), "
        "or replace this one in one step with `funade keys rotate-admin`.",
    )


def _global_admin(row: ApiKey, now: datetime) -> bool:
    return (
        row.kind == "key"
        and row.project_id is None
        and "admin" in (row.scopes or [])
        and row.revoked_at is None
        and (row.expires_at is None or row.expires_at > now)
    )


def add_predictions(session: Session, counts: dict[str, int]) -> None:
    """Add each key's new prediction count (from a gateway) to its total; it was used now."""
    for key_id, count in counts.items():
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .values(predictions=ApiKey.predictions + count, last_used_at=utcnow())
        )
