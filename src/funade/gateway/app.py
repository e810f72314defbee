"""The gateway's ASGI app: ``/v2/models/{deployment}/...`` and ``/v1/models/{deployment}:predict``
to a ready replica, after the deployment's allowlist, API key, rate limits and body limit.

For each request: find the route → check the client address → check the key (predict scope in
the deployment's project; cached for a few seconds, and kept while the store is away) → take a
token from the deployment's and the key's buckets → read the body up to the limit → pick a
revision by weight (stable for a sticky user) and its replica with the fewest requests in flight →
forward over kept-alive connections (the rate limits and everything toward the replicas:
``proxy.py``; the connections: ``upstream.py``). A connection that fails is retried on another
replica, then on another revision's; the answer gets ``funade-revision`` and
``funade-model-version`` headers. A shadow revision gets a copy of the request in the
background; its answer is dropped.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import time
from collections.abc import Awaitable, Iterable
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram

from funade.auth.forwarded import TrustedProxies
from funade.auth.ipallow import ip_allowed
from funade.auth.service import add_predictions
from funade.deploy.stats import Recorder
from funade.deploy.stats import write as write_stats
from funade.gateway import serverlevel
from funade.gateway.forms import (
    HEADER_LENGTH,
    Answer,
    Parsed,
    Request,
    mergeable,
    mergeable_binary,
    mergeable_v1,
)
from funade.gateway.http import (
    Call,
    Receive,
    Refused,
    Reply,
    Scope,
    Send,
    deployment_of,
    error,
    error_reply,
    forwarded_headers,
    missing_deployment,
    read_body,
    respond,
    sticky_of,
    upstream_target,
)
from funade.gateway.keys import KeyCache
from funade.gateway.limits import Buckets
from funade.gateway.merge import Merger
from funade.gateway.metrics import exposition
from funade.gateway.proxy import Replicas, take_tokens
from funade.gateway.table import RoutingTable, TableLoader
from funade.gateway.tryit import PREFIX as TRY_PREFIX
from funade.gateway.tryit import TryIt
from funade.gateway.upstream import Upstream
from funade.store import Database

log = logging.getLogger("funade.gateway")

MODEL_PREFIXES = ("/v2/models/", "/v1/models/")
"""The routes forwarded to replicas: the direct entry's (``Gateway.reply``)."""
INTERNAL = Refused(
    500,
    "internal",
    "The gateway failed while handling this request; its log has the details.",
    "Retry; if it happens again, report it with the gateway's log.",
)


class Gateway:
    """The ASGI app; ``db`` is the store the routing table and keys are read from."""

    def __init__(
        self,
        db: Database,
        *,
        refresh_seconds: float = 1.0,
        stats_seconds: float = 1.0,
        merge: bool = True,
        trusted_proxies: Iterable[str] = (),
    ) -> None:
        self.db = db
        self.proxies = TrustedProxies(trusted_proxies)
        """Peers whose X-Forwarded-For is believed (``auth/forwarded.py``); none by default."""
        self.merge = merge
        self.merger = Merger()
        self.refresh_seconds = refresh_seconds
        self.stats_seconds = stats_seconds
        self.stats = Recorder(secrets.token_hex(8))
        self.key_predictions: collections.Counter[str] = collections.Counter()
        """Answered predictions by key id since the last flush (which group made them)."""
        self._flushed = 0.0
        self.table = RoutingTable()
        self.table_error = ""
        self.loader = TableLoader(db, self.stats.gateway)
        """Loads the table, and records in the store what this gateway serves."""
        self.keys = KeyCache(db)
        self.tryit = TryIt(self)
        """The try-it page (``/try/<deployment>``) and what it asks the gateway."""
        self._buckets = Buckets()
        self.upstream = Upstream()
        """Kept-alive connections to the replicas."""
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
        self.replicas = Replicas(self.upstream, self.stats, self.requests, self.retries)
        """Forwarding to the replicas and mirroring to a shadow (``proxy.py``)."""
        self._answered: dict[tuple[str, int, int], tuple[Any, Any]] = {}
        """The request counter's and latency histogram's children by deployment, revision and
        status, looked up once (``labels()`` takes a lock and formats its label values)."""

    # Lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.refresh()
        self._refresher = asyncio.create_task(self._refresh_forever())

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        self.upstream.close()
        await self.flush_stats()
        await asyncio.to_thread(self.loader.forget)

    async def refresh(self) -> None:
        """Reload the routing table; on failure keep the last good one and say why."""
        try:
            table = await asyncio.to_thread(self.loader.load, time.time())
            gone = _replica_urls(self.table) - _replica_urls(table)
            self.table = table
            self.table_error = ""
            for url in gone:
                self.upstream.forget(url)
        except Exception as exc:  # the store is away: serve from the last good table
            if not self.table_error:
                log.warning("routing table not reloaded, keeping the last good one: %s", exc)
            self.table_error = f"{type(exc).__name__}: {exc}"

    async def flush_stats(self) -> None:
        """Write the traffic figures to the store (kept here, and retried, when it is away)."""
        self._flushed = time.monotonic()
        rows = self.stats.take(time.time())  # on the loop, where requests are counted
        counts, self.key_predictions = self.key_predictions, collections.Counter()
        try:
            await asyncio.to_thread(write_stats, self.db, rows)
        except Exception as exc:
            self.stats.again(rows)
            log.warning("traffic figures not written (kept for the next try): %s", exc)
        if counts:
            try:
                await asyncio.to_thread(_add_predictions, self.db, counts)
            except Exception as exc:
                self.key_predictions.update(counts)
                log.warning("per-key prediction counts not written (kept): %s", exc)

    async def _refresh_forever(self) -> None:
        """Reload the table every ``refresh_seconds``, and five times as often for
        ``settling`` seconds after it last changed: a deployment that just appeared or changed
        is usually mid-way (a replica starting, a rollout verifying), and its next step then
        reaches the gateway within a fifth of the interval (a cold start's first prediction
        waited up to a second for it). A table at rest is read at the plain interval."""
        settling = 30.0
        changed_at = time.monotonic()
        while True:
            soon = time.monotonic() - changed_at < settling
            await asyncio.sleep(self.refresh_seconds / 5 if soon else self.refresh_seconds)
            before = self.table.routes
            await self.refresh()
            if self.table.routes != before:
                changed_at = time.monotonic()
            if time.monotonic() - self._flushed >= self.stats_seconds:
                await self.flush_stats()

    # Entries ------------------------------------------------------------------------------

    def takes(self, path: str) -> bool:
        """Whether ``path`` is a model route, answered by ``reply`` (the lean front calls it
        directly; every other route goes through the ASGI app)."""
        return path.startswith(MODEL_PREFIXES)

    async def reply(self, call: Call) -> Reply:
        """The direct entry for a model route: the answer to ``call`` (a refusal or a fault of
        the gateway's own as its JSON error; it never raises). The client's address is read
        through ``trusted_proxies`` here, as the ASGI entry does."""
        if self.proxies:
            scope: Scope = {"type": "http", "client": call.client, "headers": call.headers}
            self.proxies.apply(scope)
            call.client = scope["client"]
        return await self._answer(call)

    async def _answer(self, call: Call) -> Reply:
        try:
            return await self._proxy(call)
        except Refused as refusal:
            return error_reply(refusal)
        except Exception:  # a fault of the gateway's own: a JSON 500 that says so, and a log line
            log.exception("the gateway failed on %s %s", call.method, call.path)
            return error_reply(INTERNAL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry (uvicorn's, and the lean front's for the routes ``reply`` does not
        take)."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        self.proxies.apply(scope)  # the client's address, as allowlists and keys read it
        path: str = scope["path"]
        try:
            if path.startswith(MODEL_PREFIXES):
                status, headers, body = await self._answer(Call.of(scope, receive))
                headers.append((b"content-length", str(len(body)).encode()))
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
            elif path == "/healthz":
                await self._health(send)
            elif path == "/metrics":
                await self._metrics(scope, send)
            elif path.startswith(TRY_PREFIX):
                await self.tryit(scope, receive, send)
            elif path in serverlevel.PATHS:
                await serverlevel.answer(scope, send, self.table, self.keys)
            else:
                raise Refused(
                    404,
                    "not_found",
                    f"There is no route {path!r} at the gateway.",
                    "Call /v2/models/<deployment>/infer or /v1/models/<deployment>:predict "
                    "(POST /v2/repository/index lists the deployments your key may call).",
                )
        except Refused as refusal:
            await error(send, refusal)
        except Exception:  # a fault of the gateway's own: a JSON 500 that says so, and a log line
            log.exception("the gateway failed on %s %s", scope.get("method"), path)
            await error(send, INTERNAL)

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
        await respond(send, 200, orjson.dumps(body), b"application/json")

    async def _metrics(self, scope: Scope, send: Send) -> None:
        """Prometheus metrics for a read key: a project's key sees its deployments only."""
        client = scope.get("client")
        principal = await self.keys.reader(dict(scope["headers"]), client[0] if client else None)
        names = None
        if principal.project is not None:
            routes = self.table.routes.values()
            names = frozenset(r.name for r in routes if r.project == principal.project)
        body = exposition(self.registry, names)
        await respond(send, 200, body, CONTENT_TYPE_LATEST.encode())

    # The proxy ---------------------------------------------------------------------------

    async def _proxy(self, call: Call) -> Reply:
        started = time.perf_counter()
        name = deployment_of(call.path)
        route = self.table.routes.get(name)
        if route is None:
            raise missing_deployment(name)
        headers = dict(call.headers)
        client = call.client
        address = client[0] if client else None
        try:
            if not ip_allowed(address, route.networks):
                raise Refused(
                    403,
                    "forbidden",
                    f"Address {address} may not call {name!r}.",
                    "Call from an allowed network, or have the deployment's allowlist changed.",
                )
            principal = (
                None if route.policy.public else await self.keys.authorize(headers, route, address)
            )
            take_tokens(self._buckets, route, principal)
            body = await read_body(
                call.receive, headers, route.policy.max_body_bytes, whole=call.body
            )
        except Refused as refusal:
            self.refused.labels(name, refusal.code).inc()
            raise
        sticky = sticky_of(headers)
        forward = forwarded_headers(headers)
        target = upstream_target(call)
        method = call.method
        order = route.pick(sticky)
        try:
            merge = (
                self._mergeable(method, target, headers, body)
                if self.replicas.busy(route, order)
                else None
            )
            if merge is not None:
                request, shapes = merge
                key = (route.name, target, order[0] if order else None, shapes)

                def send_body(payload: bytes, replaced: list[tuple[str, str]]) -> Awaitable[Answer]:
                    if replaced:
                        names = {name for name, _ in replaced}
                        sent = [(k, v) for k, v in forward if k not in names] + replaced
                    else:
                        sent = forward
                    return self.replicas.forward(route, method, target, sent, payload, order)

                most = route.max_batch.get(order[0]) if order else None
                answer = await self.merger.submit(key, request, send_body, most)
            else:
                answer = await self.replicas.forward(route, method, target, forward, body, order)
            status, response_headers, payload, revision = answer
        except Refused as refusal:
            if refusal.revision is not None:
                elapsed = time.perf_counter() - started
                self.stats.record(route.id, refusal.revision, elapsed, error=True, now=time.time())
            raise
        response_headers = [  # a new list: a merged answer's may be shared
            *response_headers,
            (b"funade-revision", str(revision).encode()),
            (b"funade-model-version", route.versions.get(revision, "").encode()),
        ]
        elapsed = time.perf_counter() - started
        children = self._answered.get((name, revision, status))
        if children is None:
            children = self._metric_children(name, revision, status)
        children[0].inc()
        children[1].observe(elapsed)
        self.stats.record(route.id, revision, elapsed, error=status >= 500, now=time.time())
        if principal is not None and principal.key_id is not None and status < 400:
            self.key_predictions[principal.key_id] += 1
        if route.shadow is not None and route.shadow in route.replicas and route.shadow != revision:
            self.replicas.mirror(route, method, target, forward, body)
        return status, response_headers, payload

    def _metric_children(self, name: str, revision: int, status: int) -> tuple[Any, Any]:
        if len(self._answered) > 10_000:  # bounded: statuses and revisions come and go
            self._answered.clear()
        children = (
            self.requests.labels(name, str(revision), str(status)),
            self.latency.labels(name, str(revision)),
        )
        self._answered[(name, revision, status)] = children
        return children

    def _mergeable(
        self, method: str, target: str, headers: dict[bytes, bytes], body: bytes
    ) -> Parsed | None:
        """The parsed request and its merge key if it may be merged with others, in any form
        (``merge.py``)."""
        if not self.merge or method != "POST" or b"content-encoding" in headers:
            return None
        if "/versions/" in target:
            return None
        if target.endswith("/infer"):
            length = headers.get(HEADER_LENGTH)
            if length is not None:
                return mergeable_binary(body, length)
            parsed = mergeable(body)
            if parsed is None:
                return None
            doc, rows, key = parsed
            return Request(body, doc, rows), key
        if target.endswith(":predict"):
            return mergeable_v1(body)
        return None


def _replica_urls(table: RoutingTable) -> set[str]:
    return {
        url for route in table.routes.values() for urls in route.replicas.values() for url in urls
    }


def _add_predictions(db: Database, counts: dict[str, int]) -> None:
    with db.session() as session:
        add_predictions(session, counts)
