"""KServe's Python model server (``kserve`` from PyPI) serving a joblib-pickled estimator.

    python -m benchmarks.serving.kserve_server MODEL.joblib --name lr --port 8080 [--quiet]

A ``kserve.Model`` whose ``predict`` takes the v2 request's first input as a numpy array, calls
the estimator's ``predict`` and answers one ``predict`` output; started with
``kserve.ModelServer(...).start([model])``: one process (``workers=1``), REST only (gRPC off),
the v2 endpoint at ``/v2/models/{name}/infer``, uvicorn's defaults (httptools, uvloop).
``--quiet`` turns off KServe's per-request log lines (its latency line, the timing middleware's
lines and uvicorn's access log) so that, like the floor and funade, it writes nothing per request.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import joblib
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class EstimatorModel(Model):  # type: ignore[misc]
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self._path = path
        self._estimator: Any = None

    def load(self) -> bool:
        self._estimator = joblib.load(self._path)
        self.ready = True
        return True

    def predict(
        self, payload: InferRequest, headers: dict[str, str] | None = None
    ) -> InferResponse:
        rows = payload.inputs[0].as_numpy()
        predicted = self._estimator.predict(rows)
        output = InferOutput(
            name="predict", shape=list(predicted.shape), datatype="INT64", data=predicted.tolist()
        )
        return InferResponse(
            response_id=payload.id or "", model_name=self.name, infer_outputs=[output]
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a joblib file of a fitted estimator")
    parser.add_argument("--name", default="model")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--quiet", action="store_true", help="no log line per request")
    args, _kserve_args = parser.parse_known_args()
    model = EstimatorModel(args.name, args.model)
    model.load()
    server = ModelServer(
        http_port=args.port,
        workers=1,
        enable_grpc=False,
        enable_latency_logging=not args.quiet,
    )
    if args.quiet:
        for name in ("kserve.trace", "uvicorn.access"):
            logging.getLogger(name).setLevel(logging.WARNING)
    server.start([model])


if __name__ == "__main__":
    main()
