"""`funade gateway`: the data plane in front of every deployment (`funade up` starts one)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from funade.cli.output import console

DEFAULT_GATEWAY_PORT = 8480


def gateway(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = DEFAULT_GATEWAY_PORT,
    url_file: Annotated[
        str | None, typer.Option(help="Write the bound URL to this file.", hidden=True)
    ] = None,
) -> None:
    """Route /v2/models/<deployment>/… and /v1/models/<deployment>:predict to ready replicas."""
    from funade.fileutil import write_atomically
    from funade.gateway.server import serve_gateway
    from funade.settings import load_settings

    def announce(url: str) -> None:
        console.print(f"funade gateway at {url}")
        if url_file is not None:
            write_atomically(Path(url_file), url)

    serve_gateway(load_settings(), host, port, announce=announce)
