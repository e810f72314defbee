"""Running the model server: one process, or N worker processes behind one port.

With several workers, each process builds its own app from the config in the environment
(``FUNADE_SERVE_CONFIG``) and loads the model from the node's digest cache (fetched once);
Prometheus metrics are then aggregated across processes through a shared directory.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable

import uvicorn
from starlette.applications import Starlette

from funade.serving.app import create_model_app
from funade.serving.config import ServeConfig
from funade.serving.source import load_source
from funade.settings import Settings, load_settings

CONFIG_ENV = "FUNADE_SERVE_CONFIG"
GRACEFUL_SECONDS = 30


def build_app(config: ServeConfig, settings: Settings) -> Starlette:
    return create_model_app(config, lambda: load_source(config.source, settings, name=config.name))


def app_factory() -> Starlette:
    """What each worker process runs (uvicorn imports it by name)."""
    config = ServeConfig.model_validate_json(os.environ[CONFIG_ENV])
    return build_app(config, load_settings())


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def serve(
    config: ServeConfig, settings: Settings, *, announce: Callable[[str], None] | None = None
) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests finish first (graceful shutdown)."""
    sock = bind(config.host, config.port)
    port = sock.getsockname()[1]
    if announce is not None:
        announce(f"http://{config.host}:{port}")
    options: dict[str, object] = {
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": GRACEFUL_SECONDS,
        "http": "httptools",
        "loop": "uvloop",
    }
    if config.workers == 1:
        server = uvicorn.Server(uvicorn.Config(build_app(config, settings), **options))  # type: ignore[arg-type]
        server.run(sockets=[sock])
        return
    os.environ[CONFIG_ENV] = config.model_dump_json()
    metrics_dir = tempfile.mkdtemp(prefix="funade-metrics-")
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir)
    uvicorn.run(
        "funade.serving.server:app_factory",
        factory=True,
        fd=sock.fileno(),
        workers=config.workers,
        **options,  # type: ignore[arg-type]
    )
