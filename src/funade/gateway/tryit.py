"""The try-it page at the gateway: ``/try/<deployment>`` serves one static page (no data in it)
that anyone with a deployment key can open on a phone or tablet to use the model: a form made
from its signature, or a big photo button for an image model.

The key travels in the link's fragment (``#key=...``), which browsers never send to a server;
the page's script keeps it in sessionStorage, drops it from the address bar, and sends it as
``Authorization: Bearer`` to ``/try/<deployment>/info`` (what the model takes and gives, checked
exactly as a prediction is: the deployment's allowlist, then the key, its own allowlist and its
deployment) and to ``/v2/models/<deployment>/infer`` for predictions.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from funade import __version__
from funade.auth.ipallow import ip_allowed
from funade.gateway.http import Receive, Refused, Scope, Send, missing_deployment, respond
from funade.gateway.table import Route
from funade.store import Database
from funade.store.schema import ApiKey, Deployment

if TYPE_CHECKING:
    from funade.gateway.app import Gateway

STATIC = Path(__file__).parent / "static"
PREFIX = "/try/"
ASSETS = {
    "try.js": b"text/javascript; charset=utf-8",
    "try.css": b"text/css; charset=utf-8",
}
ASSET_PREFIX = "_static/"
"""Assets live at ``/try/_static/``: no deployment name starts with ``_``."""

PAGE_HEADERS = [
    # Only this gateway's own script, style and API; photos previewed from blob: URLs.
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
EXAMPLE_MAX_VALUES = 256
"""An input's example row (the form's defaults) is sent only up to this many values."""
MAX_CACHED = 1024


class TryIt:
    """The ``/try/`` routes of one gateway; reads routes and keys through it."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        page = (STATIC / "try.html").read_text("utf-8").replace("{{version}}", __version__)
        self._page = page.encode()
        self._assets = {name: (STATIC / name).read_bytes() for name in ASSETS}
        self._models: dict[tuple[int, int], dict[str, Any]] = {}
        """What a revision serves (immutable), by (deployment id, revision)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            raise Refused(
                405,
                "method_not_allowed",
                f"{scope['method']} is not allowed on {scope['path']!r}.",
                "Open the page with GET.",
                {"Allow": "GET, HEAD"},
            )
        rest: str = scope["path"][len(PREFIX) :]
        if rest.startswith(ASSET_PREFIX) and rest[len(ASSET_PREFIX) :] in ASSETS:
            name = rest[len(ASSET_PREFIX) :]
            headers = [(b"cache-control", b"no-cache"), (b"x-content-type-options", b"nosniff")]
            await respond(send, 200, self._assets[name], ASSETS[name], headers)
            return
        name, _, tail = rest.partition("/")
        if name and tail == "":
            await respond(send, 200, self._page, b"text/html; charset=utf-8", PAGE_HEADERS)
        elif name and tail == "info":
            await self._info(scope, send, name)
        else:
            raise Refused(
                404,
                "not_found",
                f"There is no page {scope['path']!r} at the gateway.",
                "Open /try/<deployment> with the link you were given.",
            )

    async def _info(self, scope: Scope, send: Send, name: str) -> None:
        """What the deployment's stable revision takes and gives, for a key that may predict."""
        gateway = self.gateway
        route = gateway.table.routes.get(name)
        if route is None:
            raise missing_deployment(name)
        client = scope.get("client")
        address = client[0] if client else None
        if not ip_allowed(address, route.networks):
            raise Refused(
                403,
                "forbidden",
                f"Address {address} may not call {name!r}.",
                "Call from an allowed network, or have the deployment's allowlist changed.",
            )
        headers = dict(scope["headers"])
        principal = (
            None if route.policy.public else await gateway.keys.authorize(headers, route, address)
        )
        revision = stable_revision(route)
        if revision is None:
            raise Refused(
                503,
                "unavailable",
                f"Deployment {name!r} has no revision to serve yet.",
                "Retry in a moment.",
                {"Retry-After": "5"},
            )
        model = await self._model(route, revision)
        key = None
        if principal is not None and principal.key_id is not None:
            try:
                expires = await asyncio.to_thread(_key_expiry, gateway.db, principal.key_id)
            except Exception:  # the store is away: the page works without the expiry
                expires = None
            key = {"name": principal.name, "kind": principal.kind, "expires_at": expires}
        body = {
            **model,
            "deployment": route.name,
            "project": route.project,
            "revision": revision,
            "predict_path": f"/v2/models/{route.name}/infer",
            "max_body_bytes": route.policy.max_body_bytes,
            "public": route.policy.public,
            "key": key,
        }
        await respond(
            send, 200, orjson.dumps(body), b"application/json", [(b"cache-control", b"no-store")]
        )

    async def _model(self, route: Route, revision: int) -> dict[str, Any]:
        cache_key = (route.id, revision)
        found = self._models.get(cache_key)
        if found is not None:
            return found
        try:
            found = await asyncio.to_thread(load_model_info, self.gateway.db, route.id, revision)
        except Exception as exc:
            raise Refused(
                503,
                "unavailable",
                f"The model's details cannot be read now ({type(exc).__name__}).",
                "Retry in a moment.",
                {"Retry-After": "1"},
            ) from None
        if found is None:
            raise Refused(
                404,
                "not_found",
                f"Deployment {route.name!r} has no revision {revision}.",
                "Retry in a moment; it may just have changed.",
            )
        if len(self._models) > MAX_CACHED:
            self._models.clear()
        self._models[cache_key] = found
        return found


def stable_revision(route: Route) -> int | None:
    """The revision most traffic goes to (the older one on a tie), else the newest."""
    if route.weights:
        return max(route.weights, key=lambda w: (w[1], -w[0]))[0]
    return max(route.versions) if route.versions else None


def load_model_info(db: Database, deployment_id: int, revision: int) -> dict[str, Any] | None:
    """The model, version, signature and example inputs of a deployment's revision."""
    with db.read() as session:
        deployment = session.get(Deployment, deployment_id)
        if deployment is None:
            return None
        found = [r for r in deployment.revisions if r.number == revision]
        if not found:
            return None
        version = found[0].version
        signature = dict(version.manifest.get("signature") or {})
        golden = version.golden_examples or []
        return model_info(
            model=version.model.name,
            version=version.number,
            description=deployment.description or version.description or "",
            signature=signature,
            examples=golden[0].get("inputs", []) if golden and isinstance(golden[0], dict) else [],
        )


def model_info(
    *,
    model: str,
    version: int,
    description: str,
    signature: dict[str, Any],
    examples: list[Any],
) -> dict[str, Any]:
    """The JSON the page builds itself from: inputs with an example row each, outputs (with the
    class names of those that score classes), and whether it takes a photo (one image input and
    nothing else)."""
    rows = {t.get("name"): _first_row(t) for t in examples if isinstance(t, dict)}
    inputs = [
        {
            "name": spec["name"],
            "datatype": spec["datatype"],
            "shape": spec["shape"],
            "image": spec.get("image"),
            "example": None if spec.get("image") is not None else rows.get(spec["name"]),
        }
        for spec in signature.get("inputs", [])
    ]
    outputs = [
        {
            "name": s["name"],
            "datatype": s["datatype"],
            "shape": s["shape"],
            "labels": s.get("labels"),
        }
        for s in signature.get("outputs", [])
    ]
    takes_photo = len(inputs) == 1 and inputs[0]["image"] is not None
    return {
        "model": model,
        "version": version,
        "model_version": f"{model}:{version}",
        "description": description,
        "input_format": signature.get("input_format", "tensors"),
        "inputs": inputs,
        "outputs": outputs,
        "takes": "image" if takes_photo else "values",
    }


def _first_row(tensor: dict[str, Any]) -> list[Any] | None:
    """The first row of an OIP JSON tensor's flat data, if it is small enough for a form."""
    shape, data = tensor.get("shape"), tensor.get("data")
    if not isinstance(shape, list) or not isinstance(data, list) or not shape:
        return None
    size = math.prod(shape[1:]) if len(shape) > 1 else 1
    if size > EXAMPLE_MAX_VALUES or len(data) < size:
        return None
    return data[:size]


def _key_expiry(db: Database, key_id: str) -> str | None:
    with db.read() as session:
        row = session.get(ApiKey, key_id)
        if row is None or row.expires_at is None:
            return None
        return row.expires_at.isoformat()
