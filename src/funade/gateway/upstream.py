"""The gateway's HTTP/1.1 client to its replicas: kept-alive connections, parsed with httptools.

The hop to a replica is the gateway's hottest code: every request, or every merged batch, takes
it. A general client (aiohttp) spent ~80 µs of CPU per call on what this hop never needs —
cookies, redirects, tracing, multidicts, URL objects — about four times what this one does
(benchmarks/gateway). It speaks only what funade's replicas answer: one request at a time per
connection, a ``Content-Length`` or chunked body (httptools, uvicorn's own parser, decodes both),
connections kept alive and reused, most recently used first.

Failures are ``UpstreamError`` (the gateway tries another replica): refused, reset or closed
before the answer is whole, or an answer that is not HTTP. A kept-alive connection the replica
closed while it sat idle (uvicorn closes them after 5 s) fails at its first write or read without
a byte answered; that request is sent once more on a fresh connection to the same replica
before it counts as a failure. A timeout closes the connection (its answer may still come).

A replica's URL is ``http://host:port`` or ``unix:/path.sock`` (``funade.deploy.replicaurl``):
on this machine a Unix socket spares each hop the kernel's loopback TCP (benchmarks/gateway).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import cast

import httptools

from funade.deploy.replicaurl import Address, address

Headers = list[tuple[bytes, bytes]]


class UpstreamError(ConnectionError):
    """The replica could not be reached, or did not answer whole."""


class _Connection(asyncio.Protocol):
    """One kept-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, Headers, bytes]] | None = None
        self.headers: Headers = []
        self.body: list[bytes] = []
        self.received = False
        """Whether any byte of the current answer came (a stale connection sends none)."""
        self.closed = False
        self.head_only = False
        self.keep_alive = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"the replica's answer is not HTTP ({exc})"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(UpstreamError(f"the replica closed the connection ({exc or 'EOF'})"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if self.head_only:  # no body follows; this connection is not reused
            self._done(b"")
            self.close()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self._done(b"".join(self.body))

    # ours
    def _done(self, body: bytes) -> None:
        self.keep_alive = self.parser.should_keep_alive()  # read while the message is current
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), self.headers, body))

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(
        self, head: bytes, body: bytes, head_only: bool
    ) -> asyncio.Future[tuple[int, Headers, bytes]]:
        assert self.transport is not None
        self.headers, self.body, self.received, self.head_only = [], [], False, head_only
        self.waiter = self.loop.create_future()
        self.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.transport.write(body)
        return self.waiter

    def reusable(self) -> bool:
        return not self.closed and self.keep_alive

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(answering: asyncio.Future[tuple[int, Headers, bytes]]) -> None:
    """The call's deadline passed before its answer came."""
    if not answering.done():
        answering.set_exception(TimeoutError())


@dataclass
class _Pool:
    where: Address
    idle: list[_Connection] = field(default_factory=list)


class Upstream:
    """Kept-alive connections to replicas, by URL (``http://host:port`` or ``unix:/path``)."""

    def __init__(self, max_idle: int = 256) -> None:
        self.max_idle = max_idle
        """Idle connections kept per replica; more are closed when they come back."""
        self._pools: dict[str, _Pool] = {}

    async def request(
        self,
        url: str,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        timeout: float,
    ) -> tuple[int, Headers, bytes]:
        """Send one request to the replica at ``url``; its status, headers and body."""
        pool = self._pools.get(url) or self._pool(url)
        lines = [f"{method} {target} HTTP/1.1", f"host: {pool.where.authority}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if body or method not in ("GET", "HEAD"):
            lines.append(f"content-length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        head_only = method == "HEAD"
        # One deadline for the whole call: a timer on the answer's future (cheaper per call
        # than asyncio.timeout's context), and asyncio.timeout_at around a connect. An idle
        # connection's loop is this one (it spares asyncio.get_running_loop's getpid()).
        loop = pool.idle[-1].loop if pool.idle else asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for attempt in (0, 1):
            connection, reused = await self._connection(pool, deadline)
            answering = connection.send(head, body, head_only)
            timer = loop.call_at(deadline, _expire, answering)
            try:
                answer = await answering
            except UpstreamError:
                connection.close()
                if reused and not connection.received and attempt == 0:
                    continue  # a stale kept-alive connection: once more on a fresh one
                raise
            except BaseException:  # timed out or cancelled: the answer may still come
                connection.close()
                raise
            finally:
                timer.cancel()
            if connection.reusable() and len(pool.idle) < self.max_idle:
                pool.idle.append(connection)
            else:
                connection.close()
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connection(self, pool: _Pool, deadline: float) -> tuple[_Connection, bool]:
        while pool.idle:
            connection = pool.idle.pop()
            if not connection.closed:
                return connection, True
        loop = asyncio.get_running_loop()
        where = pool.where
        try:
            async with asyncio.timeout_at(deadline):
                if where.socket is not None:
                    _, connection = await loop.create_unix_connection(_Connection, where.socket)
                else:
                    _, connection = await loop.create_connection(
                        _Connection, where.host, where.port
                    )
        except OSError as exc:
            target = where.socket or f"{where.host}:{where.port}"
            raise UpstreamError(f"cannot connect to {target} ({exc})") from None
        return connection, False

    def _pool(self, url: str) -> _Pool:
        try:
            where = address(url)
        except ValueError as exc:
            raise UpstreamError(str(exc)) from None
        pool = self._pools[url] = _Pool(where)
        return pool

    def forget(self, url: str) -> None:
        """Close the idle connections to a replica that is gone."""
        pool = self._pools.pop(url, None)
        for connection in pool.idle if pool else ():
            connection.close()

    def close(self) -> None:
        for url in list(self._pools):
            self.forget(url)
