"""Real servers on free ports for tests: uvicorn (or the gateway's lean front) in a thread,
stopped at the end."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import uvicorn
import uvloop
from starlette.types import ASGIApp

from funade.settings import Settings
from funade.web.front import Front, Limits

GATEWAY_SERVER = Settings.model_fields["gateway_server"].default


@contextmanager
def serve(app: ASGIApp, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` on a free port; yield its base URL."""
    server = uvicorn.Server(
        # As funade serves: uvicorn believes no X-Forwarded-For (funade reads it itself).
        uvicorn.Config(
            app, host=host, port=0, log_level="warning", lifespan="on", proxy_headers=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def serve_front(
    app: Any,
    host: str = "127.0.0.1",
    limits: Limits | None = None,
    *,
    sock: socket.socket | None = None,
) -> Iterator[str]:
    """Serve ``app`` (a ``Gateway``: its model routes called directly) on the lean front
    (``funade.web.front``), as `funade gateway` does, on a free port (or on ``sock``, bound
    already), in a thread with its own uvloop loop; yield its base URL. Leaving waits for its
    graceful stop."""
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
    host = sock.getsockname()[0]
    direct = app if hasattr(app, "reply") else None
    front = Front(app, direct=direct, limits=limits or Limits())
    failed: list[BaseException] = []

    def run() -> None:
        try:
            uvloop.run(front.serve([sock]))
        except BaseException as exc:  # shown if it did not start
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not front.started.wait(20):
        raise RuntimeError(f"test server did not start: {failed}")
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        front.stop()
        thread.join(timeout=40)


def serve_gateway_app(app: Any, server: str = "") -> AbstractContextManager[str]:
    """Serve a gateway app on ``server`` (``lean`` or ``uvicorn``; default: the setting's
    default, or ``FUNADE_TEST_GATEWAY_SERVER``)."""
    chosen = server or os.environ.get("FUNADE_TEST_GATEWAY_SERVER") or GATEWAY_SERVER
    return serve_front(app) if chosen == "lean" else serve(app)
