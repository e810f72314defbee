"""The model server's front door: a replica's token checked on every request but the probes, and
inference requests sent straight to their handlers, around Starlette's router (``app.py`` builds
the handlers and the app behind it).

Two entries reach the same handlers: ``reply`` (the lean front's direct entry, ``funade.web``:
a ``Call`` in, a ``Reply`` out, no ASGI) and the ASGI app itself (``__call__``: uvicorn, tests,
several workers), which answers every request as ``reply`` would."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from funade.web.call import Call, Headers, Reply, send_reply

JSON = "application/json"

Handler = Callable[[Call, dict[str, str]], Awaitable[Reply]]
"""An inference route's handler: the request, its path parameters; the answer."""


class InferenceFastPath:
    """Inference requests go straight to their handlers; everything else through Starlette.

    Starlette's middleware stack, router and per-request objects cost more than the rest of a
    single-row request together (the serving benchmark's profile). The handlers catch every
    error themselves (``_guard``), so they need none of it; health, metadata and metrics keep
    Starlette's routing."""

    def __init__(
        self, app: Starlette, *, v2: Handler, v1: Handler, token: str | None = None
    ) -> None:
        self.app = app
        self.state = app.state
        self._v2 = v2
        self._v1 = v1
        self._expected = f"Bearer {token}".encode() if token else None

    def takes(self, path: str) -> bool:
        """Whether ``reply`` answers ``path`` (the inference routes, for any method)."""
        return _inference_route(path) is not None

    async def reply(self, call: Call) -> Reply:
        """The answer to an inference route's request (``takes``), its token checked before any
        of its body is read."""
        if self._expected is not None and not _presents(call.headers, self._expected):
            return UNAUTHORIZED
        found = _inference_route(call.path)
        if found is None or call.method != "POST":  # Starlette's 405, as on ASGI
            return await _through(self.app, call)
        protocol_name, params = found
        handler = self._v2 if protocol_name == "v2" else self._v1
        return await handler(call, params)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if (
                self._expected is not None
                and scope["path"] not in OPEN_PATHS
                and not _presents(scope["headers"], self._expected)
            ):
                await send_reply(send, UNAUTHORIZED)
                return
            if scope["method"] == "POST":
                found = _inference_route(scope["path"])
                if found is not None:
                    protocol_name, params = found
                    handler = self._v2 if protocol_name == "v2" else self._v1
                    await send_reply(send, await handler(Call.of(scope, receive), params))
                    return
        await self.app(scope, receive, send)


OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/"})
"""What a replica answers without its token: the probes of supervisors (kubelet, the backend)."""


def _presents(headers: list[tuple[bytes, bytes]], expected: bytes) -> bool:
    for name, value in headers:
        if name == b"authorization":
            return hmac.compare_digest(value, expected)
    return False


UNAUTHORIZED: Reply = (
    401,
    [(b"content-type", JSON.encode()), (b"www-authenticate", b"Bearer")],
    orjson.dumps(
        {
            "error": "This model server answers only its gateway.",
            "code": "unauthenticated",
            "fix": "Call the deployment through the gateway (/v2/models/<deployment>/infer).",
        }
    ),
)


async def _through(app: Starlette, call: Call) -> Reply:
    """``call`` answered by the ASGI ``app``, its answer gathered (no ``content-length``)."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": None,
        "client": call.client,
        "scheme": "http",
        "method": call.method,
        "root_path": "",
        "path": call.path,
        "raw_path": call.raw_path,
        "query_string": call.query,
        "headers": call.headers,
        "state": {},
    }
    status = 500
    headers: Headers = []
    chunks: list[bytes] = []

    async def send(message: Any) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = [(k, v) for k, v in message.get("headers", []) if k != b"content-length"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    receive = call.receive
    if call.body is not None:  # taken whole by the front: given to the app as one message
        whole: bytes | None = call.body

        async def receive() -> Any:
            nonlocal whole
            if whole is None:
                return await call.receive()
            body, whole = whole, None
            return {"type": "http.request", "body": body, "more_body": False}

    await app(scope, receive, send)
    return status, headers, b"".join(chunks)


def _inference_route(path: str) -> tuple[str, dict[str, str]] | None:
    """``("v2"|"v1", path params)`` for the inference paths, else None."""
    parts = path.split("/")
    if len(parts) == 5 and parts[1] == "v2" and parts[2] == "models" and parts[4] == "infer":
        return ("v2", {"name": parts[3]}) if parts[3] else None
    if (
        len(parts) == 7
        and parts[1] == "v2"
        and parts[2] == "models"
        and parts[4] == "versions"
        and parts[6] == "infer"
    ):
        return ("v2", {"name": parts[3], "version": parts[5]}) if parts[3] and parts[5] else None
    if len(parts) == 4 and parts[1] == "v1" and parts[2] == "models":
        name, colon, verb = parts[3].rpartition(":")
        if colon and verb == "predict" and name:
            return "v1", {"name": name}
    return None
