"""A local stand-in for a remote engine's REST API (Vertex AI, Secret Manager, KFP, Kubernetes):
a real HTTP server on a free port that records every request and answers from routes a test
gives. Used to check what funade sends against what aiplatform and kfp.Client send, and to
follow a job whose states the test scripts."""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
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


@dataclass
class SecretStores:
    """Kubernetes Secrets and Secret Manager secrets on a stand-in, kept as the services keep
    them: a Secret's ``data`` (base64) changed by merge patches (a key set to null removed), a
    Secret Manager secret's versions (``latest`` the newest enabled one; destroyed ones gone).
    ``mount`` writes a Secret's keys into a folder as the kubelet updates a secret volume."""

    api: StandIn
    k8s: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    gsm: dict[str, list[str | None]] = field(default_factory=dict)
    """Secret resource name → its versions' payloads (base64; None once destroyed)."""

    def __post_init__(self) -> None:
        k8s = r"/api/v1/namespaces/([^/]+)/secrets"
        self.api.route("POST", k8s, self._k8s_create)
        self.api.route("GET", k8s + "/([^/]+)", self._k8s_get)
        self.api.route("PATCH", k8s + "/([^/]+)", self._k8s_patch)
        self.api.route("DELETE", k8s + "/([^/]+)", self._k8s_delete)
        gsm = r"/v1/(projects/[^/]+/secrets)"
        self.api.route("POST", gsm, self._gsm_create)
        self.api.route("DELETE", gsm + r"/([^/:]+)", self._gsm_delete)
        self.api.route("POST", gsm + r"/([^/:]+):addVersion", self._gsm_add)
        self.api.route("GET", gsm + r"/([^/:]+)/versions", self._gsm_list)
        self.api.route("POST", gsm + r"/([^/:]+)/versions/([0-9]+):destroy", self._gsm_destroy)
        self.api.route("GET", gsm + r"/([^/:]+)/versions/([0-9]+|latest):access", self._gsm_access)

    @staticmethod
    def _parts(seen: Seen, pattern: str) -> tuple[str, ...]:
        found = re.fullmatch(pattern, seen.path)
        assert found is not None
        return found.groups()

    # -- Kubernetes ---------------------------------------------------------------------

    def _k8s_key(self, seen: Seen) -> tuple[str, str]:
        namespace, name = self._parts(seen, r"/api/v1/namespaces/([^/]+)/secrets/([^/]+)")
        return namespace, name

    def _k8s_create(self, seen: Seen) -> Answer:
        (namespace,) = self._parts(seen, r"/api/v1/namespaces/([^/]+)/secrets")
        key = (namespace, seen.body["metadata"]["name"])
        if key in self.k8s:
            return 409, {"message": f"secrets {key[1]!r} already exists"}
        data = dict(seen.body.get("data") or {})
        for k, v in (seen.body.get("stringData") or {}).items():
            data[k] = base64.b64encode(v.encode()).decode()
        self.k8s[key] = data
        return 201, seen.body

    def _k8s_get(self, seen: Seen) -> Answer:
        key = self._k8s_key(seen)
        if key not in self.k8s:
            return 404, {"message": f"secrets {key[1]!r} not found"}
        return 200, {"metadata": {"name": key[1]}, "data": self.k8s[key]}

    def _k8s_patch(self, seen: Seen) -> Answer:
        key = self._k8s_key(seen)
        if seen.headers.get("content-type") != "application/merge-patch+json":
            return 415, {"message": "the body of the request was in an unknown format"}
        if key not in self.k8s:
            return 404, {"message": f"secrets {key[1]!r} not found"}
        for k, v in (seen.body.get("data") or {}).items():
            if v is None:
                self.k8s[key].pop(k, None)
            else:
                self.k8s[key][k] = v
        return 200, {"metadata": {"name": key[1]}, "data": self.k8s[key]}

    def _k8s_delete(self, seen: Seen) -> Answer:
        key = self._k8s_key(seen)
        if self.k8s.pop(key, None) is None:
            return 404, {"message": f"secrets {key[1]!r} not found"}
        return 200, {}

    def k8s_values(self, namespace: str, name: str) -> dict[str, str]:
        return {k: base64.b64decode(v).decode() for k, v in self.k8s[(namespace, name)].items()}

    def mount(self, namespace: str, name: str, folder: Path) -> None:
        """Write the Secret's keys into ``folder`` (and remove keys it no longer has), each
        file replaced whole, as the kubelet's atomic writer does."""
        folder.mkdir(parents=True, exist_ok=True)
        values = self.k8s_values(namespace, name) if (namespace, name) in self.k8s else {}
        for path in folder.iterdir():
            if path.name not in values and not path.name.startswith("."):
                path.unlink()
        for key, value in values.items():
            tmp = folder / f".{key}.tmp"
            tmp.write_text(value)
            os.replace(tmp, folder / key)

    # -- Secret Manager -----------------------------------------------------------------

    def _gsm_create(self, seen: Seen) -> Answer:
        (parent,) = self._parts(seen, r"/v1/(projects/[^/]+/secrets)")
        name = f"{parent}/{seen.query['secretId']}"
        if name in self.gsm:
            return 409, {"error": {"code": 409, "message": f"Secret [{name}] already exists."}}
        self.gsm[name] = []
        return 200, {"name": name}

    def _gsm_name(self, seen: Seen) -> str:
        found = re.match(r"/v1/(projects/[^/]+/secrets/[^/:]+)", seen.path)
        assert found is not None
        return found[1]

    def _gsm_missing(self, name: str) -> Answer:
        return 404, {"error": {"code": 404, "message": f"Secret [{name}] not found."}}

    def _gsm_delete(self, seen: Seen) -> Answer:
        name = self._gsm_name(seen)
        if self.gsm.pop(name, None) is None:
            return self._gsm_missing(name)
        return 200, {}

    def _gsm_add(self, seen: Seen) -> Answer:
        name = self._gsm_name(seen)
        if name not in self.gsm:
            return self._gsm_missing(name)
        self.gsm[name].append(seen.body["payload"]["data"])
        return 200, {"name": f"{name}/versions/{len(self.gsm[name])}", "state": "ENABLED"}

    def _gsm_list(self, seen: Seen) -> Answer:
        name = self._gsm_name(seen)
        if name not in self.gsm:
            return self._gsm_missing(name)
        versions = [
            {"name": f"{name}/versions/{i}", "state": "ENABLED"}
            for i, data in enumerate(self.gsm[name], 1)
            if data is not None
        ]
        return 200, {"versions": versions} if versions else {}

    def _gsm_destroy(self, seen: Seen) -> Answer:
        name = self._gsm_name(seen)
        number = int(seen.path.rsplit("/", 1)[-1].split(":")[0])
        if name not in self.gsm or number > len(self.gsm[name]):
            return self._gsm_missing(name)
        self.gsm[name][number - 1] = None
        return 200, {"name": f"{name}/versions/{number}", "state": "DESTROYED"}

    def _gsm_access(self, seen: Seen) -> Answer:
        name = self._gsm_name(seen)
        which = seen.path.rsplit("/", 1)[-1].split(":")[0]
        versions = self.gsm.get(name)
        if versions is None:
            return self._gsm_missing(name)
        enabled = [i for i, data in enumerate(versions, 1) if data is not None]
        number = enabled[-1] if which == "latest" and enabled else int(which or 0)
        if which == "latest" and not enabled:
            return 404, {"error": {"code": 404, "message": f"{name} has no enabled version"}}
        if number > len(versions) or versions[number - 1] is None:
            return 400 if number <= len(versions) else 404, {
                "error": {"message": f"{name}/versions/{number} is DESTROYED or missing"}
            }
        return 200, {
            "name": f"{name}/versions/{number}",
            "payload": {"data": versions[number - 1]},
        }

    def gsm_latest(self, name: str) -> dict[str, Any] | None:
        enabled = [d for d in self.gsm.get(name, []) if d is not None]
        return json.loads(base64.b64decode(enabled[-1])) if enabled else None


def write_kubeconfig(path: Path, server: str) -> str:
    """A kubeconfig whose current context is ``server`` with a bearer token (the stand-in)."""
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "kube-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return str(path)
