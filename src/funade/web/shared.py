"""What the lean front's connections share (``Shared``: the app, the limits, the clock and the
``date`` line, the open connections), one request from its head on (``RequestState``), the
limits (``Limits``), the direct entry an app may offer (``Direct``) and the ready-made status
lines; ``connection.py`` is one connection's protocol."""

from __future__ import annotations

import asyncio
import contextlib
import http
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Protocol

from funade.web.call import Call, Headers, Receive, Reply, Scope, Send, error_body

if TYPE_CHECKING:
    from funade.web.connection import _Connection

Message = MutableMapping[str, Any]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class Direct(Protocol):
    """An app's non-ASGI entry for some routes (``Gateway``'s model routes,
    ``InferenceFastPath``'s inference routes)."""

    def takes(self, path: str) -> bool: ...

    async def reply(self, call: Call) -> Reply: ...


@dataclass(frozen=True)
class Limits:
    """What one client may hold of the server (docs/security.md)."""

    max_head_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0
    max_connections: int = 10_000
    graceful_seconds: float = 30.0
    buffered_body: int = 64 * 1024
    """Bytes of a body held before the app asks for them; reading pauses above."""


def status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode()


STATUS_LINES = {status: status_line(status) for status in range(100, 600)}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
INTERNAL_BODY = error_body(
    "internal",
    "The server failed while handling this request; its log has the details.",
    "Retry; if it happens again, report it with the server's log.",
)


class Refuse(Exception):
    """A request answered by the server itself, then the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class RequestState:
    """One request from its head on: its body as it comes, and whether it is whole."""

    __slots__ = (
        "answered",
        "buffered",
        "chunks",
        "complete",
        "connection",
        "continued",
        "disconnected",
        "expect_continue",
        "headers",
        "keep_alive",
        "method",
        "path",
        "query",
        "raw_path",
        "version",
        "waiter",
    )

    def __init__(
        self,
        method: str,
        path: str,
        raw_path: bytes,
        query: bytes,
        headers: Headers,
        version: str,
        keep_alive: bool,
        expect_continue: bool,
    ) -> None:
        self.method, self.path, self.raw_path, self.query = method, path, raw_path, query
        self.headers, self.version = headers, version
        self.keep_alive, self.expect_continue = keep_alive, expect_continue
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.complete = False
        self.waiter: asyncio.Future[None] | None = None
        self.disconnected = False
        self.answered = False
        """Whether the answer's head was written."""
        self.continued = False
        """Whether a 100 Continue was written."""
        self.connection: _Connection

    def receive(self) -> Awaitable[Message]:
        """ASGI's ``receive`` for this request."""
        return self.connection._receive(self)

    def wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Shared:
    """What the connections of one server share."""

    def __init__(self, app: App, direct: Direct | None, limits: Limits) -> None:
        self.app, self.direct, self.limits = app, direct, limits
        self.connections: set[_Connection] = set()
        self.stopping = False
        self.now = 0.0
        """``loop.time()`` as of the last tick (deadlines need no finer clock)."""
        self.date = b""
        """The ``date`` header line, as of the last tick."""
        self.resting: asyncio.Future[None] | None = None
        """Set while the sweeper sleeps for want of connections (``Front._sweep``): the next
        one to open wakes it, after bringing ``now`` and ``date`` up to date (``arrive``)."""
        self.tick()

    def arrive(self) -> None:
        """A connection opens while the sweeper rests: the clock first, then wake it."""
        resting, self.resting = self.resting, None
        if resting is not None:
            self.tick()
            if not resting.done():
                resting.set_result(None)

    def tick(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.now = asyncio.get_running_loop().time()
        self.date = b"date: " + formatdate(time.time(), usegmt=True).encode() + b"\r\n"
