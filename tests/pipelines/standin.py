"""A local stand-in for a remote engine's REST API (Vertex AI, Secret Manager, KFP, Kubernetes):
a real HTTP server on a free port that records every request and answers from routes a test
gives. Used to check what funade sends against what aiplatform and kfp.Client send, and to
follow a job whose states the test scripts."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

FLOW = """
@funade.step{options}
def load(rows: int) -> list[float]:
    return [float(i) for i in range(rows)]


@funade.step
def fit(xs: list[float], c: float) -> float:
    return sum(xs) * c


@funade.pipeline
def flow(rows: int = 10, c: float = 0.5):
    fit(load(rows), c)
"""
"""The pipeline the submit tests send: ``FLOW.format(options="(secrets=...)")``."""

Answer = tuple[int, Any]
Route = Callable[["Seen"], Answer]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class StandIn:
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    routes: list[tuple[str, re.Pattern[str], Route]] = field(default_factory=list)

    def route(self, method: str, pattern: str, answer: Route | Answer) -> None:
        """Answer ``method`` on paths matching ``pattern`` (a later route wins)."""
        call = answer if callable(answer) else (lambda _seen, a=answer: a)
        self.routes.insert(0, (method, re.compile(pattern + "$"), call))

    def requests(self, method: str, pattern: str) -> list[Seen]:
        regex = re.compile(pattern + "$")
        return [s for s in self.seen if s.method == method and regex.match(s.path)]

    def answer(self, seen: Seen) -> Answer:
        self.seen.append(seen)
        for method, regex, call in self.routes:
            if method == seen.method and regex.match(seen.path):
                return call(seen)
        return 404, {"error": {"code": 404, "message": f"no route for {seen.path}"}}


@contextmanager
def standin() -> Iterator[StandIn]:
    state = StandIn()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            seen = Seen(
                method=self.command,
                path=parts.path,
                query={k: v[0] for k, v in parse_qs(parts.query).items()},
                body=json.loads(raw) if raw else None,
                headers={k.lower(): v for k, v in self.headers.items()},
            )
            status, body = state.answer(seen)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
