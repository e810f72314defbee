"""`funade up`: the platform on one machine, on its embedded defaults (``funade.platform``)."""

from __future__ import annotations

from typing import Annotated

import typer

from funade.cli.output import console_err


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
    from funade.platform import PlatformBusyError, run_platform
    from funade.settings import load_settings

    given = {"host": host, "port": port, "gateway_port": gateway_port}
    overrides = {k: v for k, v in given.items() if v is not None}
    try:
        run_platform(load_settings(**overrides), demo=demo)
    except PlatformBusyError as busy:
        console_err.print(
            f"[red]Another `funade up` runs over {busy.home}[/] (it holds "
            f"{busy.lock}); stop it first, or set FUNADE_HOME to another directory."
        )
        raise typer.Exit(1) from None
