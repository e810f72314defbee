"""The composition root: the platform on one machine, put together from settings.

``run_platform(settings)`` is what `funade up` runs: it opens the store, picks the backend the
``backend`` setting names (``funade.deploy.backends.make_backend``), starts the deployment
controller over it, the gateway, the scheduler and the API server, announces where they are,
and on a stop (Ctrl-C, SIGTERM) takes them down in order, the replicas last (each drains
first). Nothing else builds these pieces for a running platform; tests build smaller ones.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Generic, TypeVar
from urllib.parse import urlsplit

from funade.cli.output import console, console_err
from funade.urls import http_url

if TYPE_CHECKING:
    from funade.gateway.prefork import ForkedGateway
    from funade.gateway.server import GatewayProcess
    from funade.sandbox.layout import Sandbox
    from funade.settings import Settings

__all__ = ["PlatformBusyError", "run_platform"]


class PlatformBusyError(Exception):
    """Another platform runs over this home (it holds the controller's lock)."""

    def __init__(self, home: Path, lock: Path) -> None:
        super().__init__(f"another `funade up` runs over {home} (it holds {lock})")
        self.home = home
        self.lock = lock


def run_platform(settings: Settings, *, demo: bool = False) -> None:
    """Run the platform over ``settings`` until interrupted; see the module's docstring.
    ``demo``: once up, train, register and deploy an example model."""
    from funade.bootstrap import bootstrap, open_database
    from funade.cpu import apply_cpu_scheduling
    from funade.deploy.backends import BackendContext, load_backend
    from funade.deploy.controller import ControllerLock
    from funade.gateway.prefork import fork_gateway
    from funade.gateway.server import running_gateway
    from funade.sandbox.layout import Sandbox, secure_home

    create_backend = load_backend(settings.backend)  # an unavailable one: refused before all
    # Before the gateway is forked and any thread or replica starts: they all inherit it.
    apply_cpu_scheduling(settings.cpu_scheduling)
    sandbox = Sandbox.from_settings(settings)
    secure_home(settings.home)
    # The gateway's process, forked now that what it shares with this one is imported, before
    # the store is opened or a thread started; it imports the rest while the API is built, and
    # serves once told to (gateway/prefork.py). None: started as its own program later.
    forked = fork_gateway(settings) if running_gateway(settings) is None else None
    try:
        db = open_database(settings, migrate=True)
        home = bootstrap(settings, db)
        lock = ControllerLock(settings.home / "controller.lock")
        if not lock.acquire():
            raise PlatformBusyError(settings.home, lock.path)
    except BaseException:
        _cancel(forked)
        raise
    from funade.artifacts import ArtifactStore

    artifacts = ArtifactStore.from_settings(settings)
    # Replicas get the API's URL: the configured one now, the bound one once the server is up
    # (they differ only for port 0, when no replica can have been told it before).
    api = _Address(http_url(settings.host, settings.port) if settings.port else "")
    # Before the gateway: a backend that cannot start (a cluster it cannot reach) stops `funade
    # up` with only the lock to let go of.
    try:
        backend = create_backend(
            settings, BackendContext(sandbox=sandbox, fetch=artifacts.open, api_url=api.get)
        )
    except BaseException:
        _cancel(forked)
        lock.release()
        db.dispose()
        raise
    # The gateway starts serving (or its process starts, when it was not forked: its
    # interpreter, its imports) while this process imports and builds the API.
    gateway_starting = _Background(
        lambda: _ensure_gateway(settings, settings.host, settings.gateway_port, forked)
    )
    import uvicorn

    from funade.api.app import create_app
    from funade.deploy.controller import start_controller
    from funade.gateway.server import stop_gateway
    from funade.pipelines.schedules import Launcher, start_scheduler
    from funade.running import forget_up, record_up
    from funade.web.resting import RestingServer

    _controller, stop_controller = start_controller(db, backend)
    app = create_app(settings, db, artifacts, controller=True)
    try:
        gateway = gateway_starting.result()
    except BaseException:
        stop_controller()
        backend.close()
        lock.release()
        raise
    server = RestingServer(  # uvicorn's, ticking once a second at rest
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            proxy_headers=False,  # forwarded headers: only from trusted_proxies (api/app.py)
            ws="none",  # the API has no websockets: their library is not even imported
        )
    )

    stoppers: list[Callable[[], None]] = []

    def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.02)
        bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else settings.port
        url = http_url(settings.host, bound)
        api.value = url
        launcher = Launcher(url, db, settings, sandbox)
        app.state.funade.launcher = launcher
        stoppers.append(start_scheduler(db, launcher))
        app.state.funade.gateway_port = urlsplit(gateway.url).port
        from funade.auth.keys import parse_key
        from funade.ui.links import LINK_MINUTES, create_link

        link = create_link(db, parse_key(home.admin_key).key_id)
        console.print(f"[bold green]funade is up[/] at {url}  (API docs: {url}/docs)")
        console.print(
            f"Dashboard: {url}/signin#link={link}  (a sign-in link: it works once, for "
            f"{LINK_MINUTES} min)",
            soft_wrap=True,
        )
        console.print(
            f"gateway at {gateway.url} (pid {gateway.pid}"
            + (", adopted from an earlier run)" if gateway.adopted else ")")
        )
        console.print(f"home: {settings.home}  database: {db.url}")
        note = record_up(settings.home, url, gateway.url)
        console.print(
            f"The CLI and SDK over this home find it (through {note.name}); elsewhere:",
            soft_wrap=True,
        )
        console.print(f"  export FUNADE_URL={url}", soft_wrap=True)
        console.print(f"isolation: {_isolation(sandbox)}", soft_wrap=True)
        if home.created_key:
            console.print("New admin key (shown once; also saved for the CLI):")
            console.print(home.admin_key, soft_wrap=True)
        console.print(f"Admin key file: {settings.credentials_file} (mode 0600)")
        if demo:
            from funade.demo import run_demo

            try:
                run_demo(
                    url=url, api_key=home.admin_key, settings=settings, gateway_url=gateway.url
                )
            except Exception as exc:  # the server keeps running; say what failed
                console_err.print(f"[red]The demo failed:[/] {exc}")
        console.print("Press Ctrl-C to stop.", style="dim")

    threading.Thread(target=announce, name="funade-announce", daemon=True).start()
    # SIGTERM (systemd, Docker, Kubernetes) stops as Ctrl-C does. uvicorn shuts down on either,
    # then raises the signal again under the handler it found: SIGTERM's default one would end
    # the process before the `finally` below stops the gateway and the replicas.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.run()
    finally:
        forget_up(settings.home)
        for stop in stoppers:
            stop()
        stop_controller()
        stop_gateway(settings)
        # On a graceful stop the replicas go too (they drain first); the next start brings
        # them back from the store. After a crash they keep running and are adopted instead.
        try:
            backend.stop_all(grace_seconds=30.0)
        finally:
            backend.close()
            lock.release()
            db.dispose()


class _Address:
    """A URL that is filled in later, read from other threads."""

    def __init__(self, value: str) -> None:
        self.value = value

    def get(self) -> str:
        return self.value


T = TypeVar("T")


def _ensure_gateway(
    settings: Settings, host: str, port: int, forked: ForkedGateway | None
) -> GatewayProcess:
    from funade.gateway.server import ensure_gateway

    return ensure_gateway(settings, host, port, forked=forked)


def _cancel(forked: ForkedGateway | None) -> None:
    if forked is not None and forked.pending:
        forked.cancel()


class _Background(Generic[T]):
    """``work()`` in a thread from now on; ``result()`` waits for it and returns its value, or
    raises what it raised."""

    def __init__(self, work: Callable[[], T]) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[], T]) -> None:
        try:
            self._value = work()
        except BaseException as exc:
            self._error = exc

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


def _isolation(sandbox: Sandbox) -> str:
    """How model code is kept apart here, in a line."""
    if sandbox.users:
        return (
            f"users (project N's replicas and pipelines run as uid {sandbox.uid_base}+N; files "
            f"in {sandbox.root})"
        )
    if sandbox.reason:
        return (
            f"none, although funade runs as root: {sandbox.reason} (model code runs as this "
            "user; see docs/security.md)"
        )
    return "none (model code runs as this user, one trust domain; see docs/security.md)"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
