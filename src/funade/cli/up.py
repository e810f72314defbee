"""`funade up`: the platform on one machine, on its embedded defaults."""

from __future__ import annotations

import threading
import time
from typing import Annotated

import typer

from funade.cli.output import console, console_err
from funade.settings import load_settings


def up(
    host: Annotated[str | None, typer.Option(help="Address to listen on (FUNADE_HOST).")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (FUNADE_PORT; 0 picks a free one).")
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Train and register an example model.")
    ] = False,
) -> None:
    """Start the control plane over $FUNADE_HOME (SQLite and local files by default)."""
    import uvicorn

    from funade.api.app import create_app
    from funade.artifacts import ArtifactStore
    from funade.bootstrap import bootstrap, open_database

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = load_settings(**overrides)
    db = open_database(settings, migrate=True)
    home = bootstrap(settings, db)
    app = create_app(settings, db, ArtifactStore.from_settings(settings))
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning")
    )

    def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.02)
        bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else settings.port
        url = f"http://{settings.host}:{bound}"
        console.print(f"[bold green]funade is up[/] at {url}  (API docs: {url}/docs)")
        console.print(f"home: {settings.home}  database: {db.url}")
        if home.created_key:
            console.print("New admin key (shown once; also saved for the CLI):")
            console.print(home.admin_key, soft_wrap=True)
        console.print(f"Admin key file: {settings.credentials_file} (mode 0600)")
        if demo:
            from funade.demo import run_demo

            try:
                run_demo(url=url, api_key=home.admin_key, settings=settings)
            except Exception as exc:  # the server keeps running; say what failed
                console_err.print(f"[red]The demo failed:[/] {exc}")
        console.print("Press Ctrl-C to stop.", style="dim")

    threading.Thread(target=announce, name="funade-announce", daemon=True).start()
    server.run()
    db.dispose()
