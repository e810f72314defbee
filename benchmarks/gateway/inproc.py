"""The model server's app against the floor's, called in-process (no HTTP server, no socket):
CPU µs per request for each JSON request form, with what the decode alone costs.

    .venv/bin/python -m benchmarks.gateway.inproc --rows 64 --concurrency 8
    .venv/bin/python -m benchmarks.gateway.inproc --concurrency 1 --entry direct

Both ASGI apps are driven on one uvloop loop with ``concurrency`` requests in flight, cycling
through distinct bodies; CPU time is this process's (every thread: funade's model thread
included), so what differs between the two is the app, never uvicorn or the kernel. The
``decode`` columns time the parse alone (``orjson`` + ``numpy`` for the floor; funade's
``decode_v1_request`` + ``v1_to_tensors`` or ``decode_infer_request``, then ``check_inputs``).

``--entry direct`` calls funade's app through its direct entry (``InferenceFastPath.reply``, what
the lean front calls) rather than as ASGI.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import uvloop

import funade
from benchmarks.gateway.forms import FORMS, Form, distinct_rows
from benchmarks.registry.harness import isolate, machine
from benchmarks.serving.floor_server import make_app
from benchmarks.serving.models import FEATURES, prepare
from funade.serving import protocol
from funade.serving.config import ServeConfig
from funade.serving.runtime import check_inputs
from funade.serving.server import build_app
from funade.settings import load_settings

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
JSON_FORMS = ("v1-instances", "v1-inputs", "v2-outputs", "v2-all")


async def _call(app: App, path: str, body: bytes) -> int:
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
        "funade.body": body,
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def _direct(app: Any) -> App:
    """``app``'s direct entry (``reply``) in ASGI's shape for ``_call``: only the answer's status
    is passed on, as the lean front would write the rest. The body is handed whole, as the
    lean front does when it holds all of it (``Call.body``; checkouts before it read it through
    ``receive``)."""

    async def call(scope: dict[str, Any], receive: Any, send: Any) -> None:
        from funade.web.call import Call

        request = Call.of(scope, receive)
        if hasattr(request, "body"):
            request.body = scope["funade.body"]
        status, _headers, _body = await app.reply(request)
        await send({"type": "http.response.start", "status": status})

    return call


async def _drive(app: App, path: str, bodies: list[bytes], seconds: float, width: int) -> float:
    """CPU µs per request over ``seconds`` of wall time, ``width`` requests in flight."""
    index = 0

    async def worker(stop: float) -> int:
        nonlocal index
        done = 0
        while time.perf_counter() < stop:
            body = bodies[index % len(bodies)]
            index += 1
            status = await _call(app, path, body)
            if status != 200:
                raise RuntimeError(f"{path}: HTTP {status}")
            done += 1
        return done

    await asyncio.gather(*(worker(time.perf_counter() + 0.3) for _ in range(width)))  # warm
    began = time.process_time()
    counts = await asyncio.gather(*(worker(time.perf_counter() + seconds) for _ in range(width)))
    return (time.process_time() - began) / sum(counts) * 1e6


def _decode_cost(
    form: Form, bodies: list[bytes], signature: Any, rounds: int
) -> tuple[float, float]:
    """CPU µs to decode one body: (the floor's way, funade's way)."""
    names = [spec.name for spec in signature.inputs]

    def floor(body: bytes) -> Any:
        doc = orjson.loads(body)
        if form.v1:
            return np.asarray(doc["instances"] if "instances" in doc else doc["inputs"])
        tensor = doc["inputs"][0]
        return np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])

    def ours(body: bytes) -> Any:
        if form.v1:
            tensors = protocol.v1_to_tensors(protocol.decode_v1_request(body), names)
            return check_inputs({k: (None, v) for k, v in tensors.items()}, signature)
        request = protocol.decode_infer_request(body)
        given = {i.name: (i.datatype, i.data) for i in request.inputs}
        return check_inputs(given, signature)

    out = []
    for fn in (floor, ours):
        best = float("inf")
        for _ in range(5):
            began = time.process_time()
            for _ in range(rounds):
                for body in bodies:
                    fn(body)
            best = min(best, (time.process_time() - began) / (rounds * len(bodies)) * 1e6)
        out.append(best)
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=64, help="rows per body")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0, help="measured per target")
    parser.add_argument("--forms", default=",".join(JSON_FORMS))
    parser.add_argument(
        "--entry", choices=("asgi", "direct"), default="asgi", help="how funade's app is called"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="funade-bench-inproc-") as tmp:
        work = Path(tmp)
        home = work / "home"
        home.mkdir()
        isolate(home)
        with funade.Client() as client:
            prepared = prepare("lr", work, client)
        config = ServeConfig(source="lr:1", name="lr", max_latency_ms=0)
        ours = build_app(config, load_settings())
        entry: App = _direct(ours) if args.entry == "direct" else ours
        floor = make_app(prepared.estimator, "lr")
        rows = distinct_rows(args.rows * 64, FEATURES, seed=3)
        lines = [
            "| form | floor app µs | funade app µs | ratio | floor decode µs | funade decode µs |",
            "| --- | --- | --- | --- | --- | --- |",
        ]

        async def run() -> None:
            lifespan = ours.app.router.lifespan_context(ours.app)
            async with lifespan:
                probe = FORMS["v2-outputs"].body(prepared.input_name, rows[:1])[0]
                while await _call(ours, "/v2/models/lr/infer", probe) != 200:
                    await asyncio.sleep(0.05)
                for name in args.forms.split(","):
                    form = FORMS[name]
                    bodies = [
                        form.body(prepared.input_name, rows[i * args.rows : (i + 1) * args.rows])[0]
                        for i in range(64)
                    ]
                    path = form.path("lr")
                    floor_us = await _drive(floor, path, bodies, args.seconds, args.concurrency)
                    ours_us = await _drive(entry, path, bodies, args.seconds, args.concurrency)
                    signature = _signature(prepared.input_name)
                    decode = _decode_cost(form, bodies, signature, 20)
                    lines.append(
                        f"| {form.label} | {floor_us:.0f} | {ours_us:.0f} "
                        f"| {ours_us / floor_us:.2f}x | {decode[0]:.0f} | {decode[1]:.0f} |"
                    )
                    print(lines[-1], flush=True)

        uvloop.run(run())
    print(f"\n{machine()}\n\n`.venv/bin/python -m benchmarks.gateway.inproc --rows {args.rows} "
          f"--concurrency {args.concurrency} --seconds {args.seconds:g} --entry {args.entry}` — "
          "CPU µs per request, "
          "in-process\n")  # fmt: skip
    print("\n".join(lines))


def _signature(input_name: str) -> Any:
    from funade.registry.signature import Signature, TensorSpec

    return Signature(  # the benchmark's model: 20 FP64 features in
        inputs=[TensorSpec(name=input_name, datatype="FP64", shape=[-1, FEATURES])],
        outputs=[TensorSpec(name="predict", datatype="INT64", shape=[-1])],
    )


if __name__ == "__main__":
    main()
