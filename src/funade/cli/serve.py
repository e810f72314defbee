"""`funade serve`: one model behind the Open Inference Protocol (v2) and KServe v1."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from funade.cli.output import console

# The default is the serving config's, read when the command runs: importing it here would import
# pydantic for every command's --help. tests/cli/test_usage.py checks that the number agrees.
BATCH_HELP = "Most rows per model call (1: no batching; default: 256)."


def serve(
    source: Annotated[
        str, typer.Argument(help="churn:3, churn@production, churn, or a package directory/tar.")
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 8080,
    uds: Annotated[
        str | None,
        typer.Option(
            help="Listen on this Unix socket (absolute path; mode 0600) instead of host:port.",
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes behind the port.")] = 1,
    name: Annotated[
        str | None, typer.Option(help="Serve under this name (default: the model's).")
    ] = None,
    max_batch_size: Annotated[int | None, typer.Option(help=BATCH_HELP)] = None,
    max_latency_ms: Annotated[
        float, typer.Option(help="Wait this long to fill a batch (0: never).")
    ] = 0.0,
    timeout_ms: Annotated[float, typer.Option(help="Per-request timeout (504 past it).")] = 30_000,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body (413 above).")] = 64
    * 1024**2,
    widen_datatypes: Annotated[
        bool,
        typer.Option(
            help="Convert v2 inputs sent as a narrower datatype than the signature's (FP32 for "
            "FP64); default: a 400 naming both."
        ),
    ] = False,
    url_file: Annotated[
        str | None,
        typer.Option(help="Write the bound URL to this file (for supervisors).", hidden=True),
    ] = None,
    model_version: Annotated[
        str | None,
        typer.Option(help="The version a package directory is served as.", hidden=True),
    ] = None,
    digest: Annotated[
        str | None,
        typer.Option(
            help="Serve a registry version only if its package has this digest (sha256:...).",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Answer only requests with `Authorization: Bearer <token>` (health excepted).",
            envvar="FUNADE_REPLICA_TOKEN",
            hidden=True,
            show_envvar=False,
        ),
    ] = None,
) -> None:
    """Serve one model version over HTTP (v2 Open Inference Protocol, v1, /metrics)."""
    from funade.serving.collector import hold_collections

    hold_collections()  # until the model is loaded: a tenth of the cold start
    from funade.fileutil import write_atomically
    from funade.serving.config import DEFAULT_MAX_BATCH_SIZE, make_config
    from funade.settings import load_settings

    config = make_config(
        source=source,
        name=name,
        host=host,
        port=port,
        workers=workers,
        max_batch_size=DEFAULT_MAX_BATCH_SIZE if max_batch_size is None else max_batch_size,
        max_latency_ms=max_latency_ms,
        timeout_ms=timeout_ms,
        max_body_bytes=max_body_bytes,
        widen_datatypes=widen_datatypes,
        model_version=model_version,
        token=token or None,
        digest=digest,
    )
    from funade.serving.server import serve as run_server

    settings = load_settings()

    def announce(url: str) -> None:
        ready = "GET /v2/health/ready" if uds else f"{url}/v2/health/ready"
        console.print(f"funade serve: {source} at {url} (ready at {ready})")
        if url_file is not None:
            write_atomically(Path(url_file), url)

    run_server(config, settings, announce=announce, uds=uds)
