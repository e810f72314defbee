"""The floor: the least a Python server can do to answer a v2 infer request with scikit-learn.

    python -m benchmarks.serving.floor_server MODEL.joblib --name lr --port 8080

A bare ASGI callable (no framework) on uvicorn with httptools and uvloop, no access log. Any
POST is taken as an Open Inference Protocol v2 JSON request for its first input: the body is
parsed with orjson, the ``data`` list becomes an FP64 array of the given shape, the estimator's
``predict`` runs on the event loop, and a minimal v2 response (one ``predict`` output) is
written with orjson. Any other request answers ``{}`` (enough for a health probe).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import joblib
import numpy as np
import orjson
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]


def make_app(estimator: Any, name: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        if scope["method"] != "POST":
            await _respond(send, b"{}")
            return
        tensor = orjson.loads(b"".join(chunks))["inputs"][0]
        rows = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
        predicted = estimator.predict(rows)
        output = {"name": "predict", "datatype": "INT64", "shape": [len(predicted)]}
        output["data"] = predicted
        payload = orjson.dumps(
            {"model_name": name, "outputs": [output]}, option=orjson.OPT_SERIALIZE_NUMPY
        )
        await _respond(send, payload)

    return app


async def _respond(send: Send, payload: bytes) -> None:
    headers = [*_JSON, (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a joblib file of a fitted estimator")
    parser.add_argument("--name", default="model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    app = make_app(joblib.load(args.model), args.name)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        http="httptools",
        loop="uvloop",
        lifespan="off",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
