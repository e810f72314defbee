"""Running the model server: one process, or N worker processes behind one port.

One process is served by funade's lean HTTP/1.1 front (``funade.web.front``, the gateway's; the
inference routes through its direct entry, ``InferenceFastPath.reply``) or, with the setting
``serve_server = "uvicorn"``, by uvicorn. Several workers are uvicorn's worker processes.

With several workers, each process builds its own app from the config in the environment
(``FUNADE_SERVE_CONFIG``) and loads the model from the node's digest cache (fetched once);
Prometheus metrics are then aggregated across processes through a shared directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import stat
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from funade.cpu import apply_cpu_scheduling
from funade.deploy.replicaurl import UNIX_PATH_MAX, unix_url
from funade.errors import FunadeError, InvalidInputError, ModelLoadError
from funade.serving.app import create_model_app
from funade.serving.collector import hold_collections, resume_collections
from funade.serving.config import ServeConfig
from funade.serving.fastpath import InferenceFastPath
from funade.serving.runtime import Loaded
from funade.serving.source import load_source, pin_source
from funade.serving.workers import WorkerPeers, watch_parent
from funade.settings import Settings, load_settings
from funade.urls import http_url
from funade.web.front import Front, Limits
from funade.web.listen import BACKLOG, listen_tcp

CONFIG_ENV = "FUNADE_SERVE_CONFIG"
PEERS_ENV = "FUNADE_SERVE_PEERS"
PARENT_ENV = "FUNADE_SERVE_PARENT"
GRACEFUL_SECONDS = 30


def build_app(
    config: ServeConfig,
    settings: Settings,
    *,
    on_load_failure: Callable[[BaseException], None] | None = None,
    peers: WorkerPeers | None = None,
) -> InferenceFastPath:

    def load() -> Loaded:
        loaded = load_source(config.source, settings, name=config.name, expect_digest=config.digest)
        if config.model_version is not None:
            loaded = replace(loaded, version=config.model_version)
            if config.model_version.isdigit():
                loaded.model.version = int(config.model_version)
        return loaded

    return create_model_app(config, load, on_load_failure=on_load_failure, peers=peers)


def app_factory() -> InferenceFastPath:
    """What each worker process runs (uvicorn imports it by name)."""
    hold_collections()  # until its model is loaded
    config = ServeConfig.model_validate_json(os.environ[CONFIG_ENV])
    watch_parent(int(os.environ[PARENT_ENV]))
    peers = WorkerPeers(Path(os.environ[PEERS_ENV]), config.workers)
    return build_app(config, load_settings(), peers=peers)


def bind_unix(path: str) -> socket.socket:
    """A listening Unix socket at ``path`` (absolute), readable and writable by this user only
    (mode 0600; its directory should be private too). A socket left there by a server that died is
    replaced; any other file there is an error."""
    if not os.path.isabs(path) or len(os.fsencode(path)) > UNIX_PATH_MAX:
        raise InvalidInputError(
            f"The socket path {path!r} is not an absolute path of at most {UNIX_PATH_MAX} bytes "
            f"(it has {len(os.fsencode(path))}).",
            field="uds",
            value=path,
            fix="Give an absolute path short enough for a Unix socket (e.g. under /tmp), or "
            "serve on TCP with --host/--port.",
        )
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise InvalidInputError(
                f"{path!r} exists and is not a socket.",
                field="uds",
                value=path,
                fix="Choose a path where nothing is, or remove what is there.",
            )
        os.unlink(path)  # a socket left by a server that is gone
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # born 0600: never a moment when others could connect
    try:
        sock.bind(path)
        sock.listen(BACKLOG)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.set_inheritable(True)
    return sock


def serve(
    config: ServeConfig,
    settings: Settings,
    *,
    announce: Callable[[str], None] | None = None,
    uds: str | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests finish first (graceful shutdown).

    With one worker, a model that fails to load stops the server and its error is raised here.
    With several, the parent first pins a registry reference to one version (so every worker
    serves the same one even if an alias moves meanwhile); a worker whose model fails to load
    stays up, not ready, its error on ``/v2/health/ready``.
    """
    apply_cpu_scheduling(settings.cpu_scheduling)  # before threads and workers: they inherit it
    if config.workers > 1:
        config = config.model_copy(update={"source": pin_source(config.source, settings)})
    if uds is not None:
        sock = bind_unix(uds)
        url = unix_url(uds)
    else:
        sock = listen_tcp(config.host, config.port)
        url = http_url(config.host, sock.getsockname()[1])

    def done() -> None:  # a Unix socket's file goes with its server
        if uds is not None:
            with contextlib.suppress(OSError):
                os.unlink(uds)

    try:
        _serve(config, settings, sock, url, announce, done)
    finally:
        sock.close()
        done()


def _uvicorn_server(
    app: InferenceFastPath, options: dict[str, object], done: Callable[[], None]
) -> Any:
    """uvicorn's server, calling ``done`` once it has shut down (uvicorn then raises the signal
    that stopped it again, so nothing after ``run`` would). uvicorn is imported only here and
    for several workers: the lean front does not need it (a replica's start)."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            try:
                await super().shutdown(sockets)
            finally:
                done()

    return Server(uvicorn.Config(app, **options))  # type: ignore[arg-type]


def _serve(
    config: ServeConfig,
    settings: Settings,
    sock: socket.socket,
    url: str,
    announce: Callable[[str], None] | None,
    done: Callable[[], None],
) -> None:
    if announce is not None:
        announce(url)
    options: dict[str, object] = {
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": GRACEFUL_SECONDS,
        "http": "httptools",
        "loop": "uvloop",
        "proxy_headers": False,  # believe no X-Forwarded-For (replicas are on loopback or a socket)
        "ws": "none",  # no websockets: their library is not even imported (a replica's start)
    }
    if config.workers == 1 and settings.serve_server == "lean":
        _serve_lean(config, settings, sock, done)
        return
    if config.workers == 1:
        failures: list[BaseException] = []

        def failed(exc: BaseException) -> None:
            failures.append(exc)
            server.should_exit = True

        app = build_app(config, settings, on_load_failure=failed)
        server = _uvicorn_server(app, options, done)
        server.run(sockets=[sock])
        if failures:
            raise _as_load_error(failures[0], config.source)
        return
    resume_collections()  # this process loads no model; its workers hold theirs
    with tempfile.TemporaryDirectory(prefix="funade-serve-") as state:
        os.environ[CONFIG_ENV] = config.model_dump_json()
        os.environ[PARENT_ENV] = str(os.getpid())
        os.environ[PEERS_ENV] = os.path.join(state, "ready")
        os.mkdir(os.environ[PEERS_ENV])
        metrics_dir = os.path.join(state, "metrics")
        os.mkdir(metrics_dir)
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir)
        import uvicorn

        uvicorn.run(
            "funade.serving.server:app_factory",
            factory=True,
            fd=sock.fileno(),
            workers=config.workers,
            **options,  # type: ignore[arg-type]
        )


def _serve_lean(
    config: ServeConfig, settings: Settings, sock: socket.socket, done: Callable[[], None]
) -> None:
    """One process on the lean front. As on uvicorn: a model that fails to load stops the
    server and its error is raised; SIGTERM or SIGINT stops it gracefully (requests in flight
    finish, at most ``GRACEFUL_SECONDS``), then the signal is raised again with the handler
    there before (SIGTERM's default: the process ends as killed by it, as on uvicorn)."""
    if not logging.getLogger().handlers:  # warnings and faults to stderr, as uvicorn's
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s:  %(message)s")
    failures: list[BaseException] = []

    def failed(exc: BaseException) -> None:
        failures.append(exc)
        front.stop()

    app = build_app(config, settings, on_load_failure=failed)
    front = Front(app, direct=app, limits=Limits(graceful_seconds=GRACEFUL_SECONDS))
    front.run([sock])
    done()
    if failures:
        raise _as_load_error(failures[0], config.source)
    if front.signalled is not None:  # its handler is back to Python's (SIGINT) or the default
        signal.raise_signal(front.signalled)


def _as_load_error(exc: BaseException, source: str) -> FunadeError:
    if isinstance(exc, FunadeError):
        return exc
    return ModelLoadError(
        f"The model {source!r} failed to load: {type(exc).__name__}: {exc}",
        field="source",
        value=source,
        fix="Check that the packages in the model's requirements are installed here.",
    )
