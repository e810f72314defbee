"""funade's lean HTTP/1.1 server, the gateway's and every replica's: an ``asyncio.Protocol`` on
httptools (llhttp) and uvloop (``connection.py``), served on sockets by ``Front`` (this module).

uvicorn's request cycle (a scope, ASGI messages, an event and a task per request, header checks)
cost the gateway ~62 µs of CPU per request where a minimal protocol on the same parser and loop
costs ~19 µs (benchmarks/gateway). This server calls an app's hot routes directly (``Direct``:
``takes`` / ``reply``, a ``Call`` in, a ``Reply`` out: the gateway's model routes, a model
server's inference routes) and every other route (health, metrics, try-it pages, metadata)
through a minimal ASGI adapter onto the same app (``asgi.py``); it runs the app's lifespan. The
settings ``gateway_server`` and ``serve_server`` choose it or uvicorn.

At the public edge (docs/security.md):

- llhttp in its strict mode refuses what request smuggling needs (``Content-Length`` with
  ``Transfer-Encoding``, a second or invalid ``Content-Length``, a bad chunk size, a
  ``Transfer-Encoding`` that does not end in chunked, bare CR or LF, invalid header bytes): 400,
  and the connection is closed. So are an invalid method, target or version (505 for a version
  other than HTTP/1.0 or 1.1).
- The request head is at most ``max_head_bytes`` (32 KiB, as nginx's 4 x 8 KiB buffers) and
  ``max_headers`` (100, as Envoy) lines: 431 and close. A head still arriving is counted read
  by read, from the first read after the one it began in, so at most the limit and one read
  (uvloop reads up to 256 KiB) of an unfinished head is held.
- Bodies are read as the app asks, under its limit (the deployment's ``max_body_bytes``; 413):
  at most 64 KiB of a body the app has not asked for is held before reading pauses.
- A request head must arrive whole within ``header_timeout`` (10 s) and a body must not stall
  for ``body_timeout`` (30 s): 408 and close (slow clients). A kept-alive connection idle for
  ``keep_alive_timeout`` (5 s, as uvicorn) is closed; so is one whose client has not read its
  answers for ``body_timeout``.
- Pipelined requests are answered one at a time, in order (reading pauses while one waits).
  Reading pauses too while the socket's write buffer is full.
- ``Expect: 100-continue`` gets its interim answer when the app first reads the body (not when
  it refuses first). HEAD answers carry no body. HTTP/1.0 is kept alive only when it asks.
- Past ``max_connections`` open connections (10,000, and at most half the open files the
  process may have), a new one gets a 503 and is closed.
- A fault in the app is a 500 without details (the log has the traceback).

Answers carry a ``date`` header and, unlike uvicorn's, no ``server`` header.

SIGTERM or SIGINT stops it gracefully: it stops accepting, closes idle kept-alive connections,
lets requests in flight finish (at most ``graceful_seconds``, 30 s) and closes each connection
after its answer, then runs the app's lifespan shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import resource
import signal
import socket
import threading
import time
from collections.abc import Iterable

from funade.web.asgi import Lifespan
from funade.web.asgi import LifespanError as LifespanError
from funade.web.connection import _Connection
from funade.web.shared import App, Shared
from funade.web.shared import Direct as Direct
from funade.web.shared import Limits as Limits

log = logging.getLogger("funade.web.front")


class Front:
    """Serves ``app`` (and ``direct``'s routes without ASGI) on sockets until told to stop."""

    def __init__(
        self, app: App, *, direct: Direct | None = None, limits: Limits = Limits()
    ) -> None:
        self.app = app
        self.direct = direct
        self.limits = limits
        self.started = threading.Event()
        self.ports: list[int] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._forced = False
        self.signalled: int | None = None
        """The signal that stopped it (SIGTERM or SIGINT), if one did."""

    def run(self, sockets: Iterable[socket.socket]) -> None:
        """Serve on ``sockets`` with uvloop until SIGTERM or SIGINT (or ``stop``)."""
        import uvloop

        uvloop.run(self.serve(list(sockets), signals=True))

    def stop(self) -> None:
        """Begin the graceful stop (from any thread)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)

    def _signal(self, number: int) -> None:
        assert self._stop is not None
        self.signalled = number
        if self._stop.is_set():  # a second signal: do not wait for requests in flight
            self._forced = True
        self._stop.set()

    async def serve(self, sockets: list[socket.socket], *, signals: bool = False) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if signals:
            for number in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(number, self._signal, number)
        lifespan = Lifespan(self.app)
        shared = Shared(self.app, self.direct, _within_open_files(self.limits))
        servers: list[asyncio.Server] = []
        try:
            await lifespan.startup()
            for sock in sockets:
                server = await loop.create_server(
                    lambda: _Connection(shared), sock=sock, backlog=2048
                )
                servers.append(server)
                bound = sock.getsockname()
                if isinstance(bound, tuple):  # (a Unix socket's is its path)
                    self.ports.append(bound[1])
            sweeper = loop.create_task(self._sweep(shared))
            self.started.set()
            await self._stop.wait()
            sweeper.cancel()
            await self._shutdown(shared, servers)
        finally:
            for server in servers:
                server.close()
            for sock in sockets:  # handed over: closed with the servers
                sock.close()
            await lifespan.shutdown()
            if signals:
                for number in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(number)

    async def _sweep(self, shared: Shared) -> None:
        """Close connections whose client ran out of time (several checks a timeout); with no
        connection open, sleep until one opens (a server at rest is not woken for nothing)."""
        limits = self.limits
        tick = min(1.0, limits.keep_alive_timeout, limits.header_timeout, limits.body_timeout) / 4
        loop = asyncio.get_running_loop()
        while True:
            if not shared.connections:
                shared.resting = loop.create_future()
                await shared.resting  # ``Shared.arrive``
            await asyncio.sleep(tick)
            shared.tick()
            now = loop.time()
            for connection in list(shared.connections):
                if connection.deadline and connection.deadline <= now:
                    connection.expire(now)

    async def _shutdown(self, shared: Shared, servers: list[asyncio.Server]) -> None:
        shared.stopping = True
        for server in servers:
            server.close()  # no new connections
        for connection in list(shared.connections):
            connection.shutdown()
        deadline = time.monotonic() + self.limits.graceful_seconds

        def in_flight() -> list[asyncio.Task[None]]:
            tasks = (c.task for c in shared.connections)
            return [t for t in tasks if t is not None and not t.done()]

        while (tasks := in_flight()) and time.monotonic() < deadline and not self._forced:
            await asyncio.wait(tasks, timeout=0.1)
            for connection in list(shared.connections):
                connection.shutdown()
        if tasks := in_flight():
            log.warning("%d requests still in flight were cancelled", len(tasks))
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=1)
        for connection in list(shared.connections):
            if connection.transport is not None:
                connection.transport.close()


def _within_open_files(limits: Limits) -> Limits:
    """``limits`` with at most half the process's open files for client connections (the rest
    for its connections to replicas and the store), raising the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = min(hard, 1 << 16) if hard != resource.RLIM_INFINITY else 1 << 16
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
            soft = max(soft, wanted)
    most = max(16, soft // 2)
    if limits.max_connections <= most:
        return limits
    return dataclasses.replace(limits, max_connections=most)
