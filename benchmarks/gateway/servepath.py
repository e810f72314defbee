"""Two pieces of the model server's request path, old way against new, in one process: a
request's metrics (``prometheus_client``'s objects, as several workers still count, against the
plain counts one process keeps) and a request's Starlette ``Request`` + ``Response`` against a
``Reply`` sent as two ASGI messages (what the ASGI entry does now; the lean front's direct entry
sends neither). CPU µs per request, best of ``--repeats``.

    .venv/bin/python -m benchmarks.gateway.servepath
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

import uvloop
from starlette.requests import Request
from starlette.responses import Response

from funade.serving.metrics import ServingMetrics
from funade.web.call import Call, send_reply

SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "POST",
    "path": "/v2/models/lr/infer",
    "raw_path": b"/v2/models/lr/infer",
    "query_string": b"",
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"120")],
    "client": ("127.0.0.1", 1),
    "server": ("127.0.0.1", 2),
    "scheme": "http",
    "http_version": "1.1",
    "root_path": "",
    "path_params": {"name": "lr"},
}
PAYLOAD = b'{"model_name":"lr","model_version":"1","outputs":[]}'


def _metrics(multiprocess: bool) -> Callable[[], None]:
    metrics = ServingMetrics("lr", multiprocess=multiprocess)

    def one() -> None:  # what one single-row request counts
        metrics.begin()
        metrics.batch(1, 0.0002, [0.00001])
        metrics.count("v2", 200, 0.0004)

    return one


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"{}", "more_body": False}


async def _send(_message: Any) -> None:
    return None


async def _starlette() -> None:
    request = Request(SCOPE, _receive)
    _ = request.path_params, request.receive
    response = Response(PAYLOAD, headers={"content-type": "application/json"})
    await response(SCOPE, _receive, _send)


async def _reply() -> None:
    call = Call.of(SCOPE, _receive)
    _ = call.headers, call.receive
    await send_reply(_send, (200, [(b"content-type", b"application/json")], PAYLOAD))


def _best(fn: Callable[[], None], n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - began) / n * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    n, repeats = args.requests, args.repeats
    old = _best(_metrics(True), n, repeats)
    new = _best(_metrics(False), n, repeats)
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)

    async def drive(fn: Callable[[], Any]) -> float:
        best = float("inf")
        for _ in range(repeats):
            began = time.process_time()
            for _ in range(n):
                await fn()
            best = min(best, (time.process_time() - began) / n * 1e6)
        return best

    starlette = loop.run_until_complete(drive(_starlette))
    reply = loop.run_until_complete(drive(_reply))
    loop.close()
    print("| piece | old µs | new µs | saved µs |\n| --- | --- | --- | --- |")
    print(f"| metrics of one request | {old:.1f} | {new:.1f} | {old - new:.1f} |")
    print(
        f"| request and answer objects | {starlette:.1f} | {reply:.1f} | {starlette - reply:.1f} |"
    )


if __name__ == "__main__":
    main()
