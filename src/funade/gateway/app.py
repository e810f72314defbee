"""The gateway's ASGI app: ``/v2/models/{deployment}/...`` and ``/v1/models/{deployment}:predict``
to a ready replica, after the deployment's allowlist, API key, rate limits and body limit.

For each request: find the route → check the client address → check the key (predict scope in
the deployment's project; cached for a few seconds, and kept while the store is away) → take a
token from the deployment's and the key's buckets → read the body up to the limit → pick a
revision by weight (stable for a sticky user) and its replica with the fewest requests in flight →
forward over a keep-alive pool. A connection that fails is retried on another replica, then on
another revision's; the answer gets ``funade-revision`` and ``funade-model-version`` headers.
A shadow revision gets a copy of the request in the background; its answer is dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from funade.auth.ipallow import ip_allowed
from funade.auth.principal import Principal
from funade.auth.service import check_key
from funade.errors import AuthenticationError, FunadeError, InvalidInputError
from funade.gateway.limits import Buckets, retry_after
from funade.gateway.table import Route, RoutingTable, load_table
from funade.store import Database

log = logging.getLogger("funade.gateway")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

STICKY_HEADER = b"x-funade-user"
STICKY_COOKIE = "funade-user"
# Request headers passed to replicas (everything else, credentials included, stays here).
FORWARD = frozenset(
    {
        b"content-type",
        b"content-encoding",
        b"accept",
        b"accept-encoding",
        b"inference-header-content-length",
        b"x-request-id",
    }
)
KEY_TTL = 5.0
ATTEMPTS = 3
EJECT_SECONDS = 2.0
SHADOW_MAX_INFLIGHT = 64


class _Refused(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fix: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fix = status, code, message, fix
        self.headers = headers or {}


@dataclass
class _Key:
    principal: Principal | None
    error: FunadeError | None
    until: float


class Gateway:
    """The ASGI app; ``db`` is the store the routing table and keys are read from."""

    def __init__(self, db: Database, *, refresh_seconds: float = 1.0) -> None:
        self.db = db
        self.refresh_seconds = refresh_seconds
        self.table = RoutingTable()
        self.table_error = ""
        self._keys: dict[str, _Key] = {}
        self._buckets = Buckets()
        self._inflight: dict[str, int] = {}
        self._ejected: dict[str, float] = {}
        self._shadows = 0
        self._session: aiohttp.ClientSession | None = None
        self._refresher: asyncio.Task[None] | None = None
        self.registry = CollectorRegistry()
        labels = ["deployment", "revision"]
        self.requests = Counter(
            "funade_gateway_requests",
            "Requests answered, by deployment, revision and status.",
            [*labels, "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "funade_gateway_request_seconds",
            "Time from request to answer through the gateway.",
            labels,
            registry=self.registry,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.retries = Counter(
            "funade_gateway_retries",
            "Requests sent again to another replica after a connection failed.",
            ["deployment"],
            registry=self.registry,
        )
        self.refused = Counter(
            "funade_gateway_refused",
            "Requests refused at the gateway, by reason.",
            ["deployment", "reason"],
            registry=self.registry,
        )

    # Lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30, ttl_dns_cache=None)
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
        )
        await self.refresh()
        self._refresher = asyncio.create_task(self._refresh_forever())

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        if self._session is not None:
            await self._session.close()

    async def refresh(self) -> None:
        """Reload the routing table; on failure keep the last good one and say why."""
        try:
            self.table = await asyncio.to_thread(load_table, self.db, time.time())
            self.table_error = ""
        except Exception as exc:  # the store is away: serve from the last good table
            if not self.table_error:
                log.warning("routing table not reloaded, keeping the last good one: %s", exc)
            self.table_error = f"{type(exc).__name__}: {exc}"

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            await self.refresh()

    # ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        try:
            if path == "/healthz":
                await self._health(send)
            elif path == "/metrics":
                await _respond(
                    send, 200, generate_latest(self.registry), b"text/plain; version=0.0.4"
                )
            elif path.startswith(("/v2/models/", "/v1/models/")):
                await self._proxy(scope, receive, send)
            else:
                raise _Refused(
                    404,
                    "not_found",
                    f"There is no route {path!r} at the gateway.",
                    "Call /v2/models/<deployment>/infer or /v1/models/<deployment>:predict.",
                )
        except _Refused as refusal:
            await _error(send, refusal)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _health(self, send: Send) -> None:
        body = {
            "status": "ok",
            "deployments": len(self.table.routes),
            "table_age_seconds": round(time.time() - self.table.loaded_at, 3),
            "table_error": self.table_error or None,
        }
        await _respond(send, 200, orjson.dumps(body), b"application/json")

    # The proxy ---------------------------------------------------------------------------

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path: str = scope["path"]
        name = _deployment_of(path)
        route = self.table.routes.get(name)
        if route is None:
            raise _Refused(
                404,
                "not_found",
                f"Deployment {name!r} does not exist.",
                "List deployments with `funade deployments list`.",
            )
        headers = dict(scope["headers"])
        client = scope.get("client")
        address = client[0] if client else None
        try:
            if not ip_allowed(address, route.networks):
                raise _Refused(
                    403,
                    "forbidden",
                    f"Address {address} may not call {name!r}.",
                    "Call from an allowed network, or have the deployment's allowlist changed.",
                )
            principal = (
                None if route.policy.public else await self._authenticate(headers, route, address)
            )
            self._limit(route, principal)
            body = await _read_body(receive, headers, route.policy.max_body_bytes)
        except _Refused as refusal:
            self.refused.labels(name, refusal.code).inc()
            raise
        sticky = _sticky(headers, principal)
        forward = [(k.decode(), v.decode()) for k, v in headers.items() if k in FORWARD]
        target = path + ("?" + scope["query_string"].decode() if scope.get("query_string") else "")
        status, response_headers, payload, revision = await self._forward(
            route, scope["method"], target, forward, body, sticky
        )
        extra = [
            (b"content-length", str(len(payload)).encode()),
            (b"funade-revision", str(revision).encode()),
            (b"funade-model-version", route.versions.get(revision, "").encode()),
        ]
        await send(
            {"type": "http.response.start", "status": status, "headers": response_headers + extra}
        )
        await send({"type": "http.response.body", "body": payload})
        self.requests.labels(name, str(revision), str(status)).inc()
        self.latency.labels(name, str(revision)).observe(time.perf_counter() - started)
        if route.shadow is not None and route.shadow in route.replicas and route.shadow != revision:
            self._mirror(route, scope["method"], target, forward, body)

    async def _authenticate(
        self, headers: dict[bytes, bytes], route: Route, address: str | None
    ) -> Principal:
        token = _token(headers)
        if token is None:
            raise _Refused(
                401,
                "unauthenticated",
                f"Deployment {route.name!r} needs an API key.",
                "Send `Authorization: Bearer fnd_...` with a key that has the predict scope.",
                {"WWW-Authenticate": "Bearer"},
            )
        principal = await self._check(token, address)
        if not principal.can_see(route.project) or "predict" not in principal.granted:
            raise _Refused(
                403,
                "permission_denied",
                f"Key {principal.name!r} may not call deployment {route.name!r}.",
                f"Use a key with the predict scope in project {route.project!r} "
                f"(`funade keys create NAME --scope predict --project {route.project}`).",
            )
        return principal

    async def _check(self, token: str, address: str | None) -> Principal:
        cache_key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        cached = self._keys.get(cache_key)
        if cached is None or cached.until < now:
            try:
                principal = await asyncio.to_thread(self._lookup, token)
                cached = _Key(principal, None, now + KEY_TTL)
            except (AuthenticationError, InvalidInputError) as exc:
                cached = _Key(None, exc, now + KEY_TTL)
            except Exception as exc:  # the store is away: a key seen before still works
                if cached is None:
                    raise _Refused(
                        503,
                        "unavailable",
                        f"The key cannot be checked now ({type(exc).__name__}).",
                        "Retry in a moment.",
                        {"Retry-After": "1"},
                    ) from None
                cached = _Key(cached.principal, cached.error, now + KEY_TTL)
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[cache_key] = cached
        if cached.principal is None:
            error = cached.error
            raise _Refused(
                401,
                "unauthenticated",
                error.message if error else "The API key is not valid.",
                (error.fix or "") if error else "",
                {"WWW-Authenticate": "Bearer"},
            )
        return cached.principal

    def _lookup(self, token: str) -> Principal:
        with self.db.read() as session:
            principal, _ = check_key(session, token, client_ip=None)
        return principal

    def _limit(self, route: Route, principal: Principal | None) -> None:
        now = time.monotonic()
        policy = route.policy
        if policy.rate_limit is not None:
            wait = self._buckets.take(f"d:{route.name}", policy.rate_limit, now)
            if wait:
                raise _Refused(
                    429,
                    "rate_limited",
                    f"Deployment {route.name!r} is over its rate limit "
                    f"of {policy.rate_limit.per_second:g} requests/s.",
                    "Retry after the time in Retry-After.",
                    {"Retry-After": retry_after(wait)},
                )
        if policy.key_rate_limit is not None and principal is not None:
            wait = self._buckets.take(
                f"k:{route.name}:{principal.key_id}", policy.key_rate_limit, now
            )
            if wait:
                raise _Refused(
                    429,
                    "rate_limited",
                    f"Key {principal.name!r} is over its rate limit of "
                    f"{policy.key_rate_limit.per_second:g} requests/s on {route.name!r}.",
                    "Retry after the time in Retry-After.",
                    {"Retry-After": retry_after(wait)},
                )

    def _candidates(self, route: Route, sticky: str | None) -> list[tuple[int, str]]:
        """(revision, replica URL) pairs to try in order: the picked revision's replicas by
        fewest in flight, then the other revisions'."""
        now = time.monotonic()
        out: list[tuple[int, str]] = []
        for revision in route.pick(sticky):
            urls = [u for u in route.replicas.get(revision, ()) if self._ejected.get(u, 0) <= now]
            urls.sort(key=lambda u: self._inflight.get(u, 0))
            out += [(revision, u) for u in urls]
        return out

    async def _forward(
        self,
        route: Route,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        sticky: str | None,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, int]:
        assert self._session is not None
        candidates = self._candidates(route, sticky)
        if not candidates:
            raise _Refused(
                503,
                "unavailable",
                f"Deployment {route.name!r} has no ready replica now.",
                "Retry in a moment; `funade deployments show` says what its replicas do.",
                {"Retry-After": "1"},
            )
        timeout = aiohttp.ClientTimeout(total=route.policy.timeout_seconds)
        last: Exception | None = None
        for attempt, (revision, url) in enumerate(candidates[:ATTEMPTS]):
            if attempt:
                self.retries.labels(route.name).inc()
            self._inflight[url] = self._inflight.get(url, 0) + 1
            try:
                async with self._session.request(
                    method, url + target, data=body, headers=headers, timeout=timeout
                ) as response:
                    payload = await response.read()
                    out = [
                        (k.lower().encode(), v.encode())
                        for k, v in response.headers.items()
                        if k.lower()
                        in ("content-type", "content-encoding", "inference-header-content-length")
                    ]
                    return response.status, out, payload, revision
            except aiohttp.ClientConnectionError as exc:  # refused, reset, closed: try another
                last = exc
                self._ejected[url] = time.monotonic() + EJECT_SECONDS
            except TimeoutError:
                raise _Refused(
                    504,
                    "timeout",
                    f"Deployment {route.name!r} did not answer within "
                    f"{route.policy.timeout_seconds:g} s.",
                    "Retry, or raise the deployment's timeout.",
                ) from None
            finally:
                self._inflight[url] -= 1
        raise _Refused(
            502,
            "bad_gateway",
            f"No replica of {route.name!r} could be reached ({last!r}).",
            "Retry in a moment.",
            {"Retry-After": "1"},
        )

    def _mirror(
        self, route: Route, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        """Send a copy to the shadow revision; never waited for, dropped when too many are out."""
        urls = route.replicas.get(route.shadow or 0, ())
        if not urls or self._shadows >= SHADOW_MAX_INFLIGHT or self._session is None:
            return
        url = min(urls, key=lambda u: self._inflight.get(u, 0))
        self._shadows += 1

        async def send_copy() -> None:
            assert self._session is not None
            try:
                async with self._session.request(
                    method,
                    url + target,
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=30),
                ) as response:
                    await response.read()
                    self.requests.labels(
                        route.name, f"shadow-{route.shadow}", str(response.status)
                    ).inc()
            except Exception:
                self.requests.labels(route.name, f"shadow-{route.shadow}", "error").inc()
            finally:
                self._shadows -= 1

        asyncio.get_running_loop().create_task(send_copy())


def _deployment_of(path: str) -> str:
    rest = path[len("/v2/models/") :]
    if path.startswith("/v1/"):
        return rest.split("/", 1)[0].split(":", 1)[0]
    return rest.split("/", 1)[0]


def _token(headers: dict[bytes, bytes]) -> str | None:
    header = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return key or None


def _sticky(headers: dict[bytes, bytes], principal: Principal | None) -> str | None:
    """Who the request is for, to keep them on one variant: the X-Funade-User header, the
    funade-user cookie, else none (each request drawn anew)."""
    value = headers.get(STICKY_HEADER)
    if value:
        return value.decode("latin-1")
    cookie = headers.get(b"cookie")
    if cookie:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie.decode("latin-1"))
        except Exception:
            return None
        if STICKY_COOKIE in jar:
            return jar[STICKY_COOKIE].value
    return None


async def _read_body(receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes:
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _Refused(
            413,
            "payload_too_large",
            f"The body has {int(declared):,} bytes; this deployment takes at most {limit:,}.",
            "Send fewer rows per request.",
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Refused(
                400, "invalid_input", "The client went away before sending the whole body."
            )
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _Refused(
                413,
                "payload_too_large",
                f"The body is over the {limit:,} bytes this deployment takes.",
                "Send fewer rows per request.",
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _error(send: Send, refusal: _Refused) -> None:
    body = {"error": {"code": refusal.code, "message": refusal.message, "fix": refusal.fix}}
    extra = [(k.lower().encode(), v.encode()) for k, v in refusal.headers.items()]
    await _respond(send, refusal.status, orjson.dumps(body), b"application/json", extra)
