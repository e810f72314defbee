"""One client connection of the lean front (``front.py``): an ``asyncio.Protocol`` on httptools
(llhttp, strict) that parses requests, enforces the limits and timeouts (``Limits``), answers
each request in turn through the app's direct entry (``Direct``) or its ASGI adapter
(``asgi.py``), and pauses reading while an answer waits or the client reads slowly."""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections import deque
from typing import cast

import httptools

from funade.web.asgi import answer_asgi
from funade.web.call import Call, Headers
from funade.web.shared import (
    CONTINUE,
    INTERNAL_BODY,
    STATUS_LINES,
    Direct,
    Message,
    Refuse,
    RequestState,
    Shared,
    status_line,
)

log = logging.getLogger("funade.web.front")


class _Connection(asyncio.Protocol):
    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.limits = shared.limits
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        # the request being parsed
        self.url = b""
        self.headers: Headers = []
        self.head_bytes = 0
        self.head_size = 0
        self.expect = False
        self.in_head = False
        self.parsing: RequestState | None = None
        # answering
        self.current: RequestState | None = None
        self.task: asyncio.Task[None] | None = None
        self.queue: deque[RequestState] = deque()
        self.pauses: set[str] = set()
        self.write_paused = False
        self.drained: asyncio.Future[None] | None = None
        self.after_drain: RequestState | None = None
        self.closed = False
        self.refusal: tuple[int, str] | None = None
        """A later request's fault, answered once those before it are."""
        self.deadline = 0.0
        """When the client's turn runs out (``loop.time()``; 0: none); see ``expire``."""

    # asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.client = (str(peer[0]), int(peer[1]))
        local = transport.get_extra_info("sockname")
        if isinstance(local, tuple) and len(local) >= 2:
            self.server = (str(local[0]), int(local[1]))
        shared = self.shared
        if shared.resting is not None:
            shared.arrive()
        if shared.stopping or len(shared.connections) >= self.limits.max_connections:
            self._refuse(503, "The server has too many connections now; retry in a moment.")
            return
        shared.connections.add(self)
        self.deadline = self.shared.now + self.limits.header_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.shared.connections.discard(self)
        for request in (self.current, self.parsing, *self.queue):
            if request is not None:
                request.disconnected = True
                request.wake()
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.refusal is not None:  # the parser stopped at a fault: nothing more is read
            return
        if self.in_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refusal = exc.__context__
            if isinstance(refusal, Refuse):
                self._refuse(refusal.status, refusal.message)
            else:
                log.error("the server failed on a request", exc_info=refusal)
                self._refuse(500, "The server failed while reading this request.")
            return
        except httptools.HttpParserUpgrade:
            # An Upgrade (or CONNECT) request: its head was taken as a plain request; what
            # follows is not HTTP, so the connection ends after the answer.
            request = self.parsing or (self.queue[-1] if self.queue else self.current)
            if request is not None:
                request.keep_alive = False
                if not request.complete:
                    request.complete = True
                    request.wake()
            self.parsing = None
            self._pause("upgrade")
            return
        except httptools.HttpParserError as exc:
            self._refuse(400, f"Invalid HTTP request: {_reason(exc)}.")
            return
        if self.in_head and self.head_bytes > self.limits.max_head_bytes:
            self._refuse(431, "The request head is too large.")

    def eof_received(self) -> bool | None:
        # The client will send nothing more: finish answering what it sent, then close.
        if self.current is None and not self.queue:
            return None  # closes now
        if self.parsing is not None:  # half a request: it cannot be answered
            return None
        for request in (self.current, *self.queue):
            if request is not None:
                request.keep_alive = False
        return True

    def pause_writing(self) -> None:
        self.write_paused = True
        self._pause("write")
        self.deadline = self.shared.now + self.limits.body_timeout

    def resume_writing(self) -> None:
        self.write_paused = False
        self._resume("write")
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)
        waiting, self.after_drain = self.after_drain, None
        if waiting is not None:
            self._next(waiting)
        elif self.current is None and self.refusal is not None:
            self._refuse(*self.refusal)
        elif self.current is None and not self.in_head:
            self.deadline = self.shared.now + self.limits.keep_alive_timeout
        else:
            self.deadline = 0.0

    # httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.head_bytes = 0
        self.head_size = 0
        self.expect = False
        self.in_head = True
        self.deadline = self.shared.now + self.limits.header_timeout

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self.headers
        if len(headers) >= self.limits.max_headers:
            raise Refuse(431, f"The request has more than {self.limits.max_headers} headers.")
        # llhttp keeps trailing whitespace, which RFC 9110 5.5 excludes from the value
        name, value = name.lower(), value.rstrip(b" \t")
        headers.append((name, value))
        self.head_size += len(name) + len(value) + 4
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect = True

    def on_headers_complete(self) -> None:
        self.in_head = False
        parser = self.parser
        url = self.url
        if len(url) + self.head_size > self.limits.max_head_bytes:
            raise Refuse(431, "The request head is too large.")
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise Refuse(505, f"HTTP/{version} is not supported; send HTTP/1.1.")
        method = parser.get_method().decode("ascii")
        if url[:1] == b"/":  # origin form (llhttp checked its bytes)
            raw_path, _, query = url.partition(b"#")[0].partition(b"?")
        else:  # absolute form: its path
            try:
                parsed = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                raise Refuse(400, "The request target is not a valid URL.") from None
            raw_path, query = parsed.path or b"", parsed.query or b""
            if raw_path[:1] != b"/":
                raise Refuse(400, "The request target must be a path (or an absolute URL).")
        try:
            path = raw_path.decode("ascii")
        except UnicodeDecodeError:
            raise Refuse(400, "The request target is not a valid URL.") from None
        if "%" in path:
            path = urllib.parse.unquote(path)
        request = RequestState(
            method,
            path,
            raw_path,
            query,
            self.headers,
            version,
            parser.should_keep_alive(),
            self.expect and version == "1.1",
        )
        request.connection = self
        self.parsing = request
        self.deadline = self.shared.now + self.limits.body_timeout
        if self.current is None and self.after_drain is None and not self.queue:
            self._start(request)
        else:  # pipelined: answered after those before it; read no further meanwhile
            self.queue.append(request)
            self._pause("pipeline")

    def on_body(self, body: bytes) -> None:
        request = self.parsing
        if request is None:
            return
        request.chunks.append(body)
        request.buffered += len(body)
        if request.buffered > self.limits.buffered_body:
            self._pause("body")
        self.deadline = self.shared.now + self.limits.body_timeout
        if request.waiter is not None:
            request.wake()

    def on_message_complete(self) -> None:
        request, self.parsing = self.parsing, None
        self.deadline = 0.0
        if request is not None:
            request.complete = True
            if request.waiter is not None:
                request.wake()

    # answering ---------------------------------------------------------------------------

    def _start(self, request: RequestState) -> None:
        self.current = request
        direct = self.shared.direct
        if direct is not None and direct.takes(request.path):
            self.task = self.loop.create_task(self._direct(direct, request))
        else:
            self.task = self.loop.create_task(self._asgi(request))

    async def _direct(self, direct: Direct, request: RequestState) -> None:
        call = Call(
            request.method,
            request.path,
            request.raw_path,
            request.query,
            request.headers,
            self.client,
            request.receive,
            self._whole_body(request),
        )
        try:
            status, headers, body = await direct.reply(call)
        except Exception:
            log.exception("the server failed on %s %s", request.method, request.path)
            self._internal(request)
            return
        if request.disconnected:
            return
        head = self._head(request, status, headers, len(body))
        if request.method == "HEAD":
            self._write(head)
        elif len(body) < 65536:
            self._write(head + body)  # one send
        else:  # not copied
            self._write(head)
            self._write(body)
        self._finished(request)

    def _whole_body(self, request: RequestState) -> bytes | None:
        """``request``'s body taken whole, if it came in full with a ``Content-Length`` (the
        readers check that length against their limits first, as they do when they read);
        else None, and the app reads it through ``receive``."""
        if not request.complete or request.disconnected:
            return None
        for name, _ in request.headers:
            if name == b"content-length":
                break
        else:
            return None
        chunks, request.chunks = request.chunks, []
        request.buffered = 0
        self._resume("body")
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _receive(self, request: RequestState) -> Message:
        """ASGI's ``receive`` for ``request``: what of its body came, as it comes."""
        while True:
            if request.disconnected:
                return {"type": "http.disconnect"}
            if request.chunks or request.complete:
                chunks, request.chunks = request.chunks, []
                request.buffered = 0
                self._resume("body")
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                return {"type": "http.request", "body": body, "more_body": not request.complete}
            if request.expect_continue and not request.continued and not request.answered:
                request.continued = True
                self._write(CONTINUE)
            self._resume("body")
            request.waiter = self.loop.create_future()
            await request.waiter

    async def _asgi(self, request: RequestState) -> None:
        await answer_asgi(self, request)

    async def _drain(self) -> None:
        if self.write_paused and not self.closed:
            if self.drained is None:
                self.drained = self.loop.create_future()
            await self.drained

    def _head(
        self, request: RequestState, status: int, headers: Headers, length: int | None
    ) -> bytes:
        """The answer's head (``length``: the content-length to add, if not None)."""
        request.answered = True
        parts = [STATUS_LINES.get(status) or status_line(status), self.shared.date]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        if length is not None:
            parts.append(b"content-length: %d\r\n" % length)
        if not (request.keep_alive and request.complete) or self.shared.stopping:
            # (a body not read to its end cannot be told from the next request: close)
            request.keep_alive = False
            parts.append(b"connection: close\r\n")
        elif request.version == "1.0":
            parts.append(b"connection: keep-alive\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def _internal(self, request: RequestState) -> None:
        """A 500 that says nothing of the fault (the log has it), then close."""
        if request.disconnected:
            return
        request.keep_alive = False
        headers = [(b"content-type", b"application/json")]
        head = self._head(request, 500, headers, len(INTERNAL_BODY))
        self._write(head if request.method == "HEAD" else head + INTERNAL_BODY)
        self._finished(request)

    def _finished(self, request: RequestState) -> None:
        """``request`` is answered: close, or go on with the next one."""
        transport = self.transport
        if transport is None or self.closed:
            return
        if not (request.keep_alive and request.complete) or self.shared.stopping:
            # A body not read to its end cannot be told from the next request: close.
            transport.close()
            self.closed = True
            return
        self.current = None
        if self.write_paused:  # the client reads slowly: nothing more until it caught up
            self.after_drain = self.queue.popleft() if self.queue else None
            if self.after_drain is not None:
                self.current = self.after_drain
            return
        if self.queue:
            self._next(self.queue.popleft())
        elif self.refusal is not None:
            self._refuse(*self.refusal)
        elif not self.in_head and self.parsing is None:
            self.deadline = self.shared.now + self.limits.keep_alive_timeout

    def _next(self, request: RequestState) -> None:
        self.current = None
        if not self.queue:
            self._resume("pipeline")
        self._start(request)
        if request.complete:
            self.deadline = 0.0

    # flow and limits ---------------------------------------------------------------------

    def _pause(self, reason: str) -> None:
        if not self.pauses and self.transport is not None:
            self.transport.pause_reading()
        self.pauses.add(reason)

    def _resume(self, reason: str) -> None:
        if reason in self.pauses:
            self.pauses.discard(reason)
            if not self.pauses and self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def _refuse(self, status: int, message: str) -> None:
        """Answer with ``status`` and a plain-text reason, then close. The fault of a later,
        pipelined request is answered in its turn: the requests before it are answered first
        (nothing more is read meanwhile)."""
        transport = self.transport
        if transport is None or self.closed:
            return
        current = self.current
        if current is not None and self.parsing is not current:
            self.refusal = (status, message)
            self._pause("refused")
            return
        if current is None or not current.answered:
            body = message.encode()
            head = STATUS_LINES[status] + self.shared.date
            head += b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
            transport.write(head + b"content-length: %d\r\n\r\n" % len(body) + body)
        if self.current is not None:
            self.current.keep_alive = False
            self.current.disconnected = True
            self.current.wake()
        transport.close()
        self.closed = True
        self.shared.connections.discard(self)

    def expire(self, now: float) -> None:
        """The client's turn ran out (``deadline``): close, with a 408 if it was sending."""
        if self.closed or self.transport is None:
            return
        if self.write_paused:  # it has not read its answers
            self.transport.abort()
            return
        if self.pauses - {"write"}:  # waiting on the app (or its turn), not on the client
            self.deadline = now + self.limits.body_timeout
            return
        if self.in_head or self.parsing is not None:
            self._refuse(408, "The request did not arrive in time.")
        elif self.current is None and not self.queue:
            self.transport.close()  # idle
            self.closed = True
        else:
            self.deadline = 0.0

    def shutdown(self) -> None:
        """Stop after the answer under way (now, if none is)."""
        idle = self.current is None and self.after_drain is None and not self.queue
        if idle and self.transport is not None and not self.closed:
            self.transport.close()
            self.closed = True


def _reason(exc: Exception) -> str:
    text = str(exc).strip().rstrip(".")
    return text or type(exc).__name__
