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
from datetime import UTC, datetime
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


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class ScheduledJobs:
    """A schedule on a stand-in engine and the jobs it starts, listed as the engine lists them
    (Vertex: ``pipelineJobs?filter=schedule_name=…``, only the fields of its ``readMask``;
    KFP: the runs of the schedule's experiment, each with its ``recurring_run_id``). A test
    starts jobs, moves their states and deletes the schedule between the follower's polls."""

    api: StandIn
    engine: str
    name: str
    """Vertex: the schedule's resource name; KFP: the recurring run's id."""
    body: dict[str, Any]
    """The schedule as it was created (the POST's body)."""
    state: str = ""
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    gone: bool = False

    def __post_init__(self) -> None:
        if self.engine == "vertex":
            self.state = self.state or "ACTIVE"
            parent = self.name.rsplit("/schedules/", 1)[0]
            self.api.route("GET", f"/v1/{self.name}", self._schedule)
            self.api.route("GET", f"/v1/{parent}/pipelineJobs", self._list)
            self.api.route("GET", f"/v1/{parent}/pipelineJobs/[^/]+", self._job)
        else:
            self.state = self.state or "ENABLED"
            self.api.route("GET", f"/apis/v2beta1/recurringruns/{self.name}", self._schedule)
            self.api.route("GET", "/apis/v2beta1/runs", self._list)
            self.api.route("GET", "/apis/v2beta1/runs/[^/:]+", self._job)

    def start(self, job: str, state: str, params: dict[str, Any] | None = None) -> str:
        """A job the schedule starts now; its name as the engine gives it."""
        if self.engine == "vertex":
            name = f"{self.name.rsplit('/schedules/', 1)[0]}/pipelineJobs/{job}"
            self.jobs[name] = {
                "name": name,
                "scheduleName": self.name,
                "createTime": _now(),
                "runtimeConfig": {"parameterValues": params or {}},
            }
        else:
            name = job
            self.jobs[name] = {
                "run_id": job,
                "recurring_run_id": self.name,
                "experiment_id": self.body.get("experiment_id", ""),
                "created_at": _now(),
                "runtime_config": {"parameters": params or {}},
            }
        return self.move(name, state)

    def move(self, name: str, state: str, **fields: Any) -> str:
        """Set the job's state (and other fields: ``error``, ``endTime``, task details)."""
        self.jobs[name] |= {"state": state, **fields}
        return name

    def _schedule(self, seen: Seen) -> Answer:
        if self.gone:
            return 404, {"error": {"code": 404, "message": f"{self.name} not found"}}
        key = "state" if self.engine == "vertex" else "status"
        return 200, {**self.body, "name": self.name, key: self.state}

    def _list(self, seen: Seen) -> Answer:
        def made(job: dict[str, Any]) -> str:
            return str(job.get("createTime") or job.get("created_at"))

        newest = sorted(self.jobs.values(), key=made, reverse=True)
        if self.engine == "vertex":
            wanted = re.fullmatch(r"schedule_name=(\S+)", seen.query.get("filter", ""))
            listed = [j for j in newest if wanted and j["scheduleName"] == wanted[1]]
            fields = {f.split(".")[0] for f in seen.query.get("readMask", "").split(",") if f}
            if fields:  # only the fields asked for, as Vertex answers
                listed = [{k: v for k, v in j.items() if k in fields} for j in listed]
            return 200, {"pipelineJobs": listed} if listed else {}
        experiment = seen.query.get("experiment_id")
        listed = [j for j in newest if not experiment or j["experiment_id"] == experiment]
        return 200, {"runs": listed, "total_size": len(listed)}

    def _job(self, seen: Seen) -> Answer:
        for name, job in self.jobs.items():
            if seen.path.endswith(f"/{name}") or seen.path == f"/v1/{name}":
                return 200, job
        return 404, {"error": {"code": 404, "message": f"{seen.path} not found"}}
