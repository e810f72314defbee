"""The Open Inference Protocol's server-level routes, answered by the gateway itself, so that a
client pointed at the gateway finds a server there (``is_server_live``, ``is_server_ready``,
``get_server_metadata``, ``get_model_repository_index``):

- ``GET /v2/health/live``: the gateway answers; ``GET /`` says the same in KServe v1's words.
- ``GET /v2/health/ready``: it has a routing table to route by (read from the store at least
  once; a table kept while the store is away still routes).
- ``GET /v2``: server metadata, the extensions every funade replica implements.
- ``POST /v2/repository/index``: the deployments the caller's key may call (public ones for no
  key), each with the model version most of its traffic goes to and whether it has a ready
  replica. A key that is not valid gets the 401 any model route gives it.

Health and metadata need no key (probes carry none; metadata names only the software). Anything
else under ``/v2/models/{deployment}/`` (metadata, readiness, config, stats, inference) goes to
the deployment's replicas after its allowlist and key.
"""

from __future__ import annotations

from typing import Any

import orjson

from funade import __version__
from funade.auth.ipallow import ip_allowed
from funade.gateway.http import Refused, Scope, Send, respond, token_of
from funade.gateway.keys import KeyCache
from funade.gateway.table import Route, RoutingTable

EXTENSIONS = ["binary_tensor_data", "classification", "model_configuration", "statistics"]
"""What every replica implements (the model server's list; tests/gateway checks they agree)."""

PATHS = frozenset({"/", "/v2", "/v2/health/live", "/v2/health/ready", "/v2/repository/index"})
JSON = b"application/json"


async def answer(scope: Scope, send: Send, table: RoutingTable, keys: KeyCache) -> None:
    """Answer one of ``PATHS``."""
    path: str = scope["path"]
    method: str = scope["method"]
    wanted = "POST" if path == "/v2/repository/index" else "GET"
    if method != wanted and not (wanted == "GET" and method == "HEAD"):
        raise Refused(
            405,
            "method_not_allowed",
            f"{path} takes {wanted}, not {method}.",
            f"Send {wanted} {path}.",
            {"Allow": wanted if wanted == "POST" else "GET, HEAD"},
        )
    status, body = 200, b""
    if path == "/":
        body = orjson.dumps({"status": "alive"})
    elif path == "/v2/health/live":
        body = orjson.dumps({"live": True})
    elif path == "/v2/health/ready":
        ready = table.loaded_at > 0
        status, body = (200 if ready else 503), orjson.dumps({"ready": ready})
    elif path == "/v2":
        body = orjson.dumps({"name": "funade", "version": __version__, "extensions": EXTENSIONS})
    else:
        body = orjson.dumps(await repository_index(scope, table, keys))
    await respond(send, status, b"" if method == "HEAD" else body, JSON)


async def repository_index(
    scope: Scope, table: RoutingTable, keys: KeyCache
) -> list[dict[str, Any]]:
    headers = dict(scope["headers"])
    client = scope.get("client")
    address = client[0] if client else None
    keyed = token_of(headers) is not None
    entries = []
    for route in sorted(table.routes.values(), key=lambda r: r.name):
        if not ip_allowed(address, route.networks):
            continue
        if not route.policy.public:
            if not keyed:
                continue
            try:
                await keys.authorize(headers, route, address)
            except Refused as refusal:
                if refusal.status == 401:  # the key itself is bad: say so, as any route does
                    raise
                continue  # a key that may not call it does not learn it exists
        entries.append(_entry(route))
    return entries


def _entry(route: Route) -> dict[str, Any]:
    main = max(route.weights, key=lambda w: w[1])[0] if route.weights else None
    version = route.versions.get(main, "") if main is not None else ""
    entry: dict[str, Any] = {
        "name": route.name,
        "version": version.rpartition(":")[2],
        "state": "READY" if main is not None and route.replicas.get(main) else "UNAVAILABLE",
    }
    if entry["state"] != "READY":
        entry["reason"] = "no ready replica now"
    return entry
