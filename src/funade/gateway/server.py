"""Running the gateway: `funade gateway`, and the process `funade up` starts and adopts."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from funade.bootstrap import open_database
from funade.deploy.backends.local import process_start_ticks
from funade.errors import FunadeError
from funade.fileutil import write_atomically
from funade.gateway.app import Gateway
from funade.gateway.front import Front
from funade.serving.server import bind
from funade.settings import Settings
from funade.urls import http_url


def serve_gateway(
    settings: Settings, host: str, port: int, *, announce: Callable[[str], None] | None = None
) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests finish first."""
    db = open_database(settings, migrate=False)
    sock = bind(host, port)
    if announce is not None:
        announce(http_url(host, sock.getsockname()[1]))
    app = Gateway(db, trusted_proxies=settings.trusted_proxies)
    if settings.gateway_server == "lean":
        if not logging.getLogger().handlers:  # warnings and faults to stderr, as uvicorn's
            logging.basicConfig(level=logging.WARNING, format="%(levelname)s:  %(message)s")
        try:
            Front(app, direct=app).run([sock])
        finally:
            db.dispose()
        return
    config = uvicorn.Config(
        app,
        log_level="warning",
        proxy_headers=False,  # the gateway reads them itself, from trusted_proxies only
        access_log=False,
        http="httptools",
        loop="uvloop",
        timeout_graceful_shutdown=30,
        lifespan="on",
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        db.dispose()


@dataclass(frozen=True)
class GatewayProcess:
    pid: int
    url: str
    adopted: bool


def _record_path(settings: Settings) -> Path:
    return settings.home / "gateway.json"


def running_gateway(settings: Settings) -> GatewayProcess | None:
    """The gateway an earlier `funade up` started, if it still runs (its pid and start time
    match the record), else None."""
    try:
        record = json.loads(_record_path(settings).read_text())
        pid, ticks, url = int(record["pid"]), int(record["start_ticks"]), str(record["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if process_start_ticks(pid) != ticks:
        return None
    return GatewayProcess(pid, url, adopted=True)


def ensure_gateway(settings: Settings, host: str, port: int, timeout: float = 60) -> GatewayProcess:
    """Adopt the running gateway, or start one in a session of its own (it outlives a crashed
    control plane, and serves from its last routing table meanwhile)."""
    found = running_gateway(settings)
    if found is not None:
        return found
    url_file = settings.home / "gateway.url"
    url_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "funade", "gateway", "--host", host, "--port", str(port)]
    with open(settings.home / "gateway.log", "ab") as log:
        child = subprocess.Popen(
            [*command, "--url-file", str(url_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "FUNADE_HOME": str(settings.home), "COLUMNS": "1000"},
        )
    deadline = time.monotonic() + timeout
    while not url_file.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            tail = (settings.home / "gateway.log").read_text(errors="replace")[-500:]
            raise FunadeError(
                f"The gateway did not start: {tail.strip() or 'no output'}",
                field="gateway_port",
                value=port,
                fix="Choose a free port with --gateway-port (or FUNADE_GATEWAY_PORT).",
            )
        time.sleep(0.05)
    url = url_file.read_text().strip()
    record = {"pid": child.pid, "start_ticks": process_start_ticks(child.pid) or 0, "url": url}
    write_atomically(_record_path(settings), json.dumps(record))
    return GatewayProcess(child.pid, url, adopted=False)


def stop_gateway(settings: Settings, grace_seconds: float = 30) -> None:
    found = running_gateway(settings)
    if found is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(found.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while running_gateway(settings) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(found.pid, signal.SIGKILL)
    _record_path(settings).unlink(missing_ok=True)
