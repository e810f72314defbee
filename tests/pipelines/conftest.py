"""Pipelines written to files (the runner imports them by path, as `funade pipeline run` does)
and a webhook receiver on a free port."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

HEADER = """\
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import NamedTuple

import funade
"""


@pytest.fixture
def write_pipeline(tmp_path: Path) -> Callable[..., str]:
    """``write_pipeline(source, name="flow.py")`` → the target ``<path>:<pipeline>`` text."""

    def write(source: str, name: str = "flow.py", pipeline: str = "flow") -> str:
        path = tmp_path / "code" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(HEADER + textwrap.dedent(source))
        return f"{path}:{pipeline}"

    return write


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    """A file steps append their names to, to count how often each ran."""
    return tmp_path / "marks.txt"


def counts(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().split():
            out[line] = out.get(line, 0) + 1
    return out


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.url = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            got.bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    got.url = f"http://127.0.0.1:{server.server_address[1]}/hook/secret-part"
    yield got
    server.shutdown()
    server.server_close()
