"""The floor: the least a Python server can do to answer an inference request with scikit-learn.

    python -m benchmarks.serving.floor_server MODEL.joblib --name lr --port 8080

A bare ASGI callable (no framework) on uvicorn with httptools and uvloop, no access log, running
the estimator on the event loop. Each POST is dispatched on its path and headers to the request
forms funade answers, doing the same work funade does for each (parse that form, run what it
asks for, write the answer funade would):

- a path ending in ``:predict``: KServe v1, ``{"instances": rows}`` or ``{"inputs": rows}``
  parsed with orjson; ``predict`` runs (funade's v1 answers only the model's first output, here
  ``predict``); the answer is ``{"predictions": [...]}``;
- an ``Inference-Header-Content-Length`` header: Open Inference Protocol v2 with the binary
  tensor extension: the JSON header parsed with orjson, the first input's raw little-endian
  FP64 bytes (after the header, ``binary_data_size`` of them) taken as the array; the outputs
  asked for run, each sent as raw bytes if it asks ``binary_data``, else as JSON;
- any other POST: v2 JSON, the first input's ``data`` list as an FP64 array of its ``shape``;
  the outputs named in ``outputs`` run, or both ``predict`` and ``predict_proba`` when the
  request names none (funade computes every output of the model then).

Any other request answers ``{}`` (enough for a health probe).
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

_JSON = b"application/json"
_OCTET = b"application/octet-stream"
_HEADER_LENGTH = b"inference-header-content-length"
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
ALL_OUTPUTS = ("predict", "predict_proba")
_DATATYPES = {"predict": "INT64", "predict_proba": "FP64"}


def make_app(estimator: Any, name: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    methods = {"predict": estimator.predict, "predict_proba": estimator.predict_proba}

    def v1(body: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        doc = orjson.loads(body)
        rows = np.asarray(doc["instances"] if "instances" in doc else doc["inputs"])
        return orjson.dumps({"predictions": estimator.predict(rows)}, option=_NUMPY), []

    def v2(body: bytes, header_length: int | None) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        view = memoryview(body)
        doc = orjson.loads(view if header_length is None else view[:header_length])
        tensor = doc["inputs"][0]
        if header_length is None:
            rows = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
        else:
            size = tensor["parameters"]["binary_data_size"]
            raw = view[header_length : header_length + size]
            rows = np.frombuffer(raw, dtype="<f8").astype(np.float64).reshape(tensor["shape"])
        wanted = doc.get("outputs") or [{"name": output} for output in ALL_OUTPUTS]
        entries, chunks = [], []
        for output in wanted:
            array = methods[output["name"]](rows)
            entry = {"name": output["name"], "datatype": _DATATYPES[output["name"]]}
            entry["shape"] = list(array.shape)
            if output.get("parameters", {}).get("binary_data"):
                chunk = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
                entry["parameters"] = {"binary_data_size": len(chunk)}
                chunks.append(chunk)
            else:
                entry["data"] = array.ravel()
            entries.append(entry)
        header = orjson.dumps({"model_name": name, "outputs": entries}, option=_NUMPY)
        if not chunks:
            return header, []
        extra = [(b"content-type", _OCTET), (_HEADER_LENGTH, str(len(header)).encode())]
        return b"".join([header, *chunks]), extra

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
            await _respond(send, b"{}", [])
            return
        body = b"".join(chunks)
        if scope["path"].endswith(":predict"):
            payload, headers = v1(body)
        else:
            length = dict(scope["headers"]).get(_HEADER_LENGTH)
            payload, headers = v2(body, None if length is None else int(length))
        await _respond(send, payload, headers)

    return app


async def _respond(send: Send, payload: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    if not headers:
        headers = [(b"content-type", _JSON)]
    headers = [*headers, (b"content-length", str(len(payload)).encode())]
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
