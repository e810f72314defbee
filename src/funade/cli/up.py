"""`funade up`: the platform on one machine, on its embedded defaults."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Generic, TypeVar
from urllib.parse import urlsplit

import typer

from funade.cli.output import console, console_err

if TYPE_CHECKING:
    from funade.deploy.backends.local import LocalBackend
    from funade.gateway.server import GatewayProcess
    from funade.sandbox.layout import Sandbox
    from funade.settings import Settings


def up(
    host: Annotated[str | None, typer.Option(help="Address to listen on (FUNADE_HOST).")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (FUNADE_PORT; 0 picks a free one).")
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Train, register and deploy an example model.")
    ] = False,
    gateway_port: Annotated[
        int | None, typer.Option(help="Port of the gateway (FUNADE_GATEWAY_PORT; 0: a free one).")
    ] = None,
) -> None:
    """Start the control plane over $FUNADE_HOME (SQLite and local files by default)."""
    from funade.bootstrap import bootstrap, open_database
    from funade.deploy.controller import ControllerLock
    from funade.sandbox.layout import Sandbox, secure_home
    from funade.settings import load_settings

    given = {"host": host, "port": port, "gateway_port": gateway_port}
    overrides = {k: v for k, v in given.items() if v is not None}
    settings = load_settings(**overrides)
    sandbox = Sandbox.from_settings(settings)
    secure_home(settings.home)
    db = open_database(settings, migrate=True)
    home = bootstrap(settings, db)
    lock = ControllerLock(settings.home / "controller.lock")
    if not lock.acquire():
        console_err.print(
            f"[red]Another `funade up` runs over {settings.home}[/] (it holds "
            f"{lock.path}); stop it first, or set FUNADE_HOME to another directory."
        )
        raise typer.Exit(1)
    # The gateway's process starts (its interpreter, its imports) while this one imports and
    # builds the API: a second of the start that used to come before it.
    gateway_starting = _Background(
        lambda: _ensure_gateway(settings, settings.host, settings.gateway_port)
    )
    import uvicorn

    from funade.api.app import create_app
    from funade.artifacts import ArtifactStore
    from funade.deploy.backends.local import LocalBackend
    from funade.deploy.controller import start_controller
    from funade.gateway.server import stop_gateway
    from funade.pipelines.schedules import Launcher, start_scheduler
    from funade.running import forget_up, record_up

    artifacts = ArtifactStore.from_settings(settings)
    backend = LocalBackend(settings.home / "replicas", sandbox=sandbox, fetch=artifacts.open)
    _controller, stop_controller = start_controller(db, backend)
    app = create_app(settings, db, artifacts, controller=True)
    try:
        gateway = gateway_starting.result()
    except BaseException:
        stop_controller()
        lock.release()
        raise
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            proxy_headers=False,  # forwarded headers: only from trusted_proxies (api/app.py)
        )
    )

    stoppers: list[Callable[[], None]] = []

    def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.02)
        bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else settings.port
        url = f"http://{settings.host}:{bound}"
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
        stop_replicas(backend)
        lock.release()
        db.dispose()


T = TypeVar("T")


def _ensure_gateway(settings: Settings, host: str, port: int) -> GatewayProcess:
    from funade.gateway.server import ensure_gateway

    return ensure_gateway(settings, host, port)


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


def stop_replicas(backend: LocalBackend, grace_seconds: float = 30.0) -> None:
    """On a graceful stop, the replicas go too (they drain first); the next `funade up` starts
    them again from the store. After a crash they keep running and are adopted instead."""
    replicas = backend.replicas()
    for replica in replicas:
        backend.stop(replica.id, grace_seconds=grace_seconds)
    deadline = time.monotonic() + grace_seconds + 5
    while list(backend.root.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    backend.close()
