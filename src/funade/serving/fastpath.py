"""The model server's ASGI front: a replica's token checked on every request but the probes, and
inference requests sent straight to their handlers, around Starlette's router (``app.py`` builds
the handlers and the app behind it)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

JSON = "application/json"

Handler = Callable[[Request], Awaitable[Response]]


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self._expected is not None
            and scope["type"] == "http"
            and scope["path"] not in OPEN_PATHS
            and not _presents(scope["headers"], self._expected)
        ):
            await _unauthorized(send)
            return
        if scope["type"] == "http" and scope["method"] == "POST":
            found = _inference_route(scope["path"])
            if found is not None:
                protocol_name, params = found
                scope["path_params"] = params
                handler = self._v2 if protocol_name == "v2" else self._v1
                response = await handler(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/"})
"""What a replica answers without its token: the probes of supervisors (kubelet, the backend)."""


def _presents(headers: list[tuple[bytes, bytes]], expected: bytes) -> bool:
    for name, value in headers:
        if name == b"authorization":
            return hmac.compare_digest(value, expected)
    return False


async def _unauthorized(send: Send) -> None:
    body = orjson.dumps(
        {
            "error": "This model server answers only its gateway.",
            "code": "unauthenticated",
            "fix": "Call the deployment through the gateway (/v2/models/<deployment>/infer).",
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b"Bearer"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


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
