"""``python -m funade.gateway``: the gateway's process as `funade up` starts it when it cannot
fork it (``prefork.py``).

The same server as `funade gateway`, without the command line: typer and rich were a fifth of
the process's imports, on the way to a first prediction (``benchmarks/platform``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from funade.settings import Settings


def serve(settings: Settings, host: str, port: int, url_file: Path | None) -> None:
    """Serve until stopped; say where once bound, on stdout and in ``url_file`` if given."""
    from funade.fileutil import write_atomically
    from funade.gateway.server import serve_gateway

    def announce(url: str) -> None:
        print(f"funade gateway at {url}", flush=True)
        if url_file is not None:
            write_atomically(url_file, url)

    serve_gateway(settings, host, port, announce=announce)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m funade.gateway",
        description="The gateway (`funade gateway` without the command line around it).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8480, help="port (0 picks a free one)")
    parser.add_argument("--url-file", type=Path, help="write the bound URL to this file")
    args = parser.parse_args(argv)

    from funade.errors import FunadeError
    from funade.settings import load_settings

    try:
        serve(load_settings(), args.host, args.port, args.url_file)
    except FunadeError as exc:  # as the command line says it: one line, exit status 2
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
