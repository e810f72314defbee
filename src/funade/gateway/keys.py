"""API keys at the gateway: each key's check is cached for a few seconds (so a revocation takes
effect within them), and kept while the store cannot be read. A key's expiry is cached with it
and checked on every request: an expired key is refused the moment it expires."""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from funade.auth.principal import Principal
from funade.auth.service import check_key
from funade.errors import (
    AuthenticationError,
    FunadeError,
    InvalidInputError,
    PermissionDeniedError,
)
from funade.gateway.http import Refused, missing_deployment, token_of
from funade.gateway.table import Route
from funade.store import Database
from funade.store.schema import ApiKey

KEY_TTL = 5.0
MAX_ENTRIES = 10_000


@dataclass
class _Key:
    principal: Principal | None
    error: FunadeError | None
    until: float
    """When to ask the store again (``time.monotonic``)."""
    expires_at: datetime | None = None
    """When the key stops working (from the store), checked on every use."""


class KeyCache:
    """Checks keys against the store, caching each answer for ``ttl`` seconds."""

    def __init__(self, db: Database, ttl: float = KEY_TTL) -> None:
        self.db = db
        self.ttl = ttl
        self._keys: dict[str, _Key] = {}
        self._looking: dict[str, asyncio.Task[_Key]] = {}
        """Lookups in the store under way, by key: requests that find their key's entry missing
        or old at once share one lookup rather than each taking a thread and a query."""

    async def authorize(
        self, headers: dict[bytes, bytes], route: Route, address: str | None
    ) -> Principal:
        """The key's principal, if it may predict on ``route`` from ``address`` (else a 401/403
        refusal, or for a key that cannot see the route's project the 404 of a deployment that
        does not exist)."""
        token = token_of(headers)
        if token is None:
            raise Refused(
                401,
                "unauthenticated",
                f"Deployment {route.name!r} needs an API key.",
                "Send `Authorization: Bearer fnd_...` with a key that has the predict scope.",
                {"WWW-Authenticate": "Bearer"},
            )
        principal = await self._check(token)
        try:
            principal.check_address(address)
        except PermissionDeniedError as exc:
            raise Refused(403, "permission_denied", exc.message, exc.fix or "") from None
        if not principal.can_see(route.project):
            raise missing_deployment(route.name)
        if principal.deployment not in (None, route.name):
            raise Refused(
                403,
                "permission_denied",
                f"Key {principal.name!r} works only for deployment {principal.deployment!r}.",
                f"Use a key for {route.name!r} (`funade keys create NAME --scope predict "
                f"--project {route.project} --deployment {route.name}`).",
            )
        if "predict" not in principal.granted:
            raise Refused(
                403,
                "permission_denied",
                f"Key {principal.name!r} may not call deployment {route.name!r}.",
                f"Use a key with the predict scope in project {route.project!r} "
                f"(`funade keys create NAME --scope predict --project {route.project}`).",
            )
        return principal

    async def reader(self, headers: dict[bytes, bytes], address: str | None) -> Principal:
        """The principal of a key with the read scope (the gateway's ``/metrics``), else a
        401/403 refusal."""
        token = token_of(headers)
        if token is None:
            raise Refused(
                401,
                "unauthenticated",
                "The gateway's /metrics needs an API key with the read scope.",
                "Send `Authorization: Bearer fnd_...` (in a Prometheus scrape config: "
                "`authorization: {credentials: fnd_...}`); `funade keys create prometheus "
                "--scope read` makes one.",
                {"WWW-Authenticate": "Bearer"},
            )
        principal = await self._check(token)
        try:
            principal.check_address(address)
        except PermissionDeniedError as exc:
            raise Refused(403, "permission_denied", exc.message, exc.fix or "") from None
        if "read" not in principal.granted:
            raise Refused(
                403,
                "permission_denied",
                f"Key {principal.name!r} has scopes {sorted(principal.scopes)}; the gateway's "
                "/metrics needs 'read'.",
                "Use a key with the read scope (`funade keys create prometheus --scope read`).",
            )
        return principal

    async def _check(self, token: str) -> Principal:
        cache_key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        cached = self._keys.get(cache_key)
        if cached is None or cached.until < now:
            looking = self._looking.get(cache_key)
            if looking is None:  # a task of its own: a caller that goes away cancels only itself
                looking = asyncio.get_running_loop().create_task(
                    self._refresh(cache_key, token, cached, now)
                )
                self._looking[cache_key] = looking
                looking.add_done_callback(lambda _: self._looking.pop(cache_key, None))
            cached = await asyncio.shield(looking)
        if cached.principal is None:
            error = cached.error
            raise Refused(
                401,
                "unauthenticated",
                error.message if error else "The API key is not valid.",
                (error.fix or "") if error else "",
                {"WWW-Authenticate": "Bearer"},
            )
        if cached.expires_at is not None and cached.expires_at <= datetime.now(UTC):
            principal = cached.principal
            raise Refused(
                401,
                "unauthenticated",
                f"API key {principal.key_id!r} ({principal.name}) expired at "
                f"{cached.expires_at.isoformat()}.",
                "Ask an admin for a new key (`funade keys create`).",
                {"WWW-Authenticate": "Bearer"},
            )
        return cached.principal

    async def _refresh(self, cache_key: str, token: str, cached: _Key | None, now: float) -> _Key:
        """Ask the store about ``token`` and cache the answer (or, with the store away, keep
        what was known of it)."""
        try:
            principal, expires_at = await asyncio.to_thread(self._lookup, token)
            fresh = _Key(principal, None, now + self.ttl, expires_at)
        except (AuthenticationError, InvalidInputError) as exc:
            fresh = _Key(None, exc, now + self.ttl)
        except Exception as exc:  # the store is away: a key seen before still works
            if cached is None:
                raise Refused(
                    503,
                    "unavailable",
                    f"The key cannot be checked now ({type(exc).__name__}).",
                    "Retry in a moment.",
                    {"Retry-After": "1"},
                ) from None
            fresh = _Key(cached.principal, cached.error, now + self.ttl, cached.expires_at)
        if len(self._keys) > MAX_ENTRIES:
            self._keys.clear()
        self._keys[cache_key] = fresh
        return fresh

    def _lookup(self, token: str) -> tuple[Principal, datetime | None]:
        with self.db.read() as session:
            principal, _ = check_key(session, token, client_ip=None)
            row = session.get(ApiKey, principal.key_id)  # in the session already: no query
            return principal, row.expires_at if row is not None else None
