"""The lean front's ASGI side (``front.py``): the adapter that answers a request with an ASGI app
(buffered or streamed answers) and the app's lifespan (startup before serving, shutdown after)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from funade.web.call import Headers, Receive, Scope, Send

if TYPE_CHECKING:
    from funade.web.connection import _Connection
    from funade.web.shared import RequestState

log = logging.getLogger("funade.web.front")

Message = MutableMapping[str, Any]
App = Callable[[Scope, Receive, Send], Awaitable[None]]
_BAD_HEADER = frozenset(b"\r\n\x00")


async def answer_asgi(connection: _Connection, request: RequestState) -> None:
    """Answer ``request`` with the ASGI app (buffered or streamed answers)."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": request.version,
        "server": connection.server,
        "client": connection.client,
        "scheme": "http",
        "method": request.method,
        "root_path": "",
        "path": request.path,
        "raw_path": request.raw_path,
        "query_string": request.query,
        "headers": request.headers,
        "state": {},
    }
    state: dict[str, Any] = {"status": 0, "headers": None, "framing": "", "done": False}
    body_done = False

    async def receive() -> Message:
        nonlocal body_done
        if body_done:  # the body was read whole: what comes next is the disconnect
            while not request.disconnected and not state["done"]:
                request.waiter = connection.loop.create_future()
                await request.waiter
            return {"type": "http.disconnect"}
        message = await connection._receive(request)
        if message["type"] == "http.disconnect" or not message["more_body"]:
            body_done = True
        return message

    async def send(message: Message) -> None:
        if request.disconnected or state["done"]:
            return
        kind = message["type"]
        if kind == "http.response.start":
            if state["headers"] is not None:
                raise RuntimeError("http.response.start sent twice")
            headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", ())]
            for name, value in headers:
                if _BAD_HEADER.intersection(name) or _BAD_HEADER.intersection(value):
                    raise RuntimeError(f"header {name!r} holds CR, LF or NUL")
            state["status"], state["headers"] = int(message["status"]), headers
        elif kind == "http.response.body":
            headers = state["headers"]
            if headers is None:
                raise RuntimeError("http.response.body before http.response.start")
            body: bytes = message.get("body", b"")
            more: bool = message.get("more_body", False)
            head_only = request.method == "HEAD"
            if not state["framing"]:  # the first body message: the head goes out now
                if _has(headers, b"content-length"):
                    state["framing"] = "length"
                elif not more:
                    state["framing"] = "length"
                    if not head_only:
                        headers.append((b"content-length", str(len(body)).encode()))
                elif request.version == "1.1":
                    state["framing"] = "chunked"
                    headers.append((b"transfer-encoding", b"chunked"))
                else:  # HTTP/1.0 streamed: the body ends when the connection does
                    state["framing"] = "close"
                    request.keep_alive = False
                head = connection._head(request, state["status"], headers, None)
            else:
                head = b""
            chunked = state["framing"] == "chunked"
            if body and not head_only:
                head += b"%x\r\n%b\r\n" % (len(body), body) if chunked else body
            if not more and chunked and not head_only:
                head += b"0\r\n\r\n"
            if head:
                connection._write(head)
            if not more:
                state["done"] = True
                request.wake()
                connection._finished(request)
            elif connection.write_paused:
                await connection._drain()
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    try:
        await connection.shared.app(scope, receive, send)
    except Exception:
        log.exception("the server failed on %s %s", request.method, request.path)
        if not state["done"] and not request.disconnected:
            if not request.answered:
                connection._internal(request)
            elif connection.transport is not None:
                connection.transport.close()
        return
    if not state["done"] and not request.disconnected:
        if not request.answered:
            log.error("the app answered nothing to %s %s", request.method, request.path)
            connection._internal(request)
        elif connection.transport is not None:  # an answer left unfinished cannot be ended
            connection.transport.close()


def _has(headers: Headers, name: bytes) -> bool:
    return any(k == name for k, _ in headers)


class LifespanError(RuntimeError):
    """The app's lifespan startup failed."""


class Lifespan:
    """Runs an ASGI app's lifespan: startup before serving, shutdown after."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.started = asyncio.Event()
        self.ended = asyncio.Event()
        self.failure: str | None = None
        self.task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())
        await self.inbox.put({"type": "lifespan.startup"})
        waiting = asyncio.ensure_future(self.started.wait())
        await asyncio.wait([waiting, self.task], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if self.failure is not None or not self.started.is_set():
            raise LifespanError(f"the app did not start: {self.failure or 'it returned'}")

    async def shutdown(self) -> None:
        if self.task is None or self.task.done():
            return
        await self.inbox.put({"type": "lifespan.shutdown"})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.task), 30)

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}

        async def send(message: Message) -> None:
            kind = message["type"]
            if kind == "lifespan.startup.complete":
                self.started.set()
            elif kind in ("lifespan.startup.failed", "lifespan.shutdown.failed"):
                self.failure = str(message.get("message", kind))
            elif kind == "lifespan.shutdown.complete":
                self.ended.set()

        try:
            await self.app(scope, self.inbox.get, send)
        except Exception as exc:
            log.exception("the app's lifespan failed")
            self.failure = f"{type(exc).__name__}: {exc}"
