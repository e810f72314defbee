"""The gateway's own Python per request: the ASGI app called in-process (no server, no sockets)
with the replica call stubbed, so what is timed is what the gateway's code does for a request —
allowlist, key check (cached), two rate limits, routing, merge decision, metrics and traffic
figures — as CPU microseconds per request, single-row v1 bodies, one at a time.

    .venv/bin/python -m benchmarks.gateway.own

Two rows: with merging on (as `funade up` runs it; one request at a time finds nothing out, so
it goes unparsed) and with a merge forced through its group (what every request paid before a
lone one skipped the parse).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sqlalchemy import select

from funade.auth.service import create_key
from funade.gateway.app import Gateway
from funade.store import create_database, upgrade
from funade.store.schema import Deployment, Model, ModelVersion, Project, ReplicaRecord, Revision

NEVER = {"per_second": 1e6, "burst": 1e6}
POLICY = {"allow_cidrs": ["127.0.0.0/8"], "rate_limit": NEVER, "key_rate_limit": NEVER}
ANSWER = orjson.dumps({"predictions": [1]})
REQUESTS = 2000


def _store(path: Path) -> tuple[Any, str]:
    db = create_database(f"sqlite:///{path}")
    upgrade(db)
    with db.session() as session:
        project = Project(name="default")
        session.add(project)
        session.flush()
        model = Model(project_id=project.id, name="lr")
        version = ModelVersion(model=model, number=1, artifact_digest="sha256:" + "0" * 64,
                               artifact_size=1, flavor="sklearn", manifest={})  # fmt: skip
        deployment = Deployment(project=project, name="lr", model=model, policy=POLICY,
                                traffic={"weights": {"1": 100}}, next_revision=2)  # fmt: skip
        session.add_all([model, version, deployment])
        session.flush()
        session.add(Revision(deployment_id=deployment.id, number=1, version_id=version.id))
        session.add(ReplicaRecord(id="r", deployment_id=deployment.id, revision=1,
                                  url="http://127.0.0.1:9/", state="ready"))  # fmt: skip
        owner = session.scalar(select(Project).where(Project.name == "default"))
        key, _ = create_key(session, name="k", scopes=["predict"], project=owner, created_by=None)
    return db, key


async def _measure(gateway: Gateway, key: str, *, busy: bool) -> float:
    async def replica(*_args: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return 200, [(b"content-type", b"application/json")], ANSWER

    gateway.upstream.request = replica  # type: ignore[assignment,method-assign]
    if busy:  # a call counts as out: every request is parsed and goes through its group
        gateway.replicas.inflight["http://127.0.0.1:9/"] = 1
    rows = np.random.default_rng(0).normal(size=(REQUESTS, 20))
    bodies = [orjson.dumps({"instances": rows[i : i + 1].tolist()}) for i in range(REQUESTS)]
    headers = [(b"x-api-key", key.encode()), (b"content-type", b"application/json")]

    async def call(body: bytes) -> None:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/v1/models/lr:predict",
                 "raw_path": b"/v1/models/lr:predict", "query_string": b"",
                 "headers": [*headers, (b"content-length", str(len(body)).encode())],
                 "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}  # fmt: skip
        await gateway(scope, receive, send)
        assert sent[0]["status"] == 200, sent

    for body in bodies[:200]:
        await call(body)
    best = float("inf")
    for _ in range(5):
        began = time.process_time()
        for body in bodies:
            await call(body)
        best = min(best, (time.process_time() - began) / REQUESTS)
    return best * 1e6


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db, key = _store(Path(tmp) / "funade.db")
        print("| path | gateway's own CPU µs per request (best of 5 rounds of 2,000) |\n|---|---|")
        for label, busy in (("lone request (nothing out: unparsed)", False),
                            ("through its merge group (a call out)", True)):  # fmt: skip
            gateway = Gateway(db)

            async def run(gateway: Gateway = gateway, busy: bool = busy) -> float:
                await gateway.refresh()
                return await _measure(gateway, key, busy=busy)

            print(f"| {label} | {asyncio.run(run()):.1f} |")
        db.dispose()


if __name__ == "__main__":
    main()
