"""The model server's ASGI app: Open Inference Protocol v2 and KServe v1 over one model.

Handlers parse with ``serving.protocol``, check inputs against the signature, hand tensors to
the runtime's batcher and serialize the answer. Errors use the protocols' shape,
``{"error": "..."}``, with 4xx for anything the client sent wrong, a short 500 (no traceback)
when the model raises, 503 while loading and 504 past the timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from funade import __version__
from funade.errors import FunadeError, InvalidInputError, PayloadTooLargeError
from funade.serving import protocol
from funade.serving.config import ServeConfig
from funade.serving.metrics import ServingMetrics
from funade.serving.runtime import (
    Loaded,
    ModelRuntime,
    ModelTimeoutError,
    NotReadyError,
    check_inputs,
)

log = logging.getLogger("funade.serving")

JSON = "application/json"
EXTENSIONS = ["binary_tensor_data"]


class _NotServed(Exception):
    pass


def create_model_app(config: ServeConfig, load: Callable[[], Loaded]) -> Starlette:
    """The app serving the model ``load`` returns (loaded in the background at start-up)."""
    served = config.name or _default_name(config.source)
    metrics = ServingMetrics(served)
    runtime = ModelRuntime(config, load, metrics)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        yield
        await runtime.stop()

    def loaded_for(request: Request) -> Loaded:
        loaded = runtime.require_ready()
        name = request.path_params.get("name")
        version = request.path_params.get("version")
        if name not in (None, loaded.name) or (
            version is not None and version != (loaded.version or "1")
        ):
            raise _NotServed(
                f"Model {name!r}{f' version {version!r}' if version else ''} is not served "
                f"here; this server serves {loaded.name!r}"
                f"{f' version {loaded.version}' if loaded.version else ''}."
            )
        return loaded

    async def live(_request: Request) -> Response:
        return _json({"live": runtime.live}, 200 if runtime.live else 503)

    async def ready(_request: Request) -> Response:
        return _json({"ready": runtime.ready}, 200 if runtime.ready else 503)

    async def server_metadata(_request: Request) -> Response:
        return _json(protocol.server_metadata("funade", __version__, EXTENSIONS))

    async def model_metadata(request: Request) -> Response:
        async def handle() -> Response:
            return _metadata(loaded_for(request))

        return await _guard(request, metrics, "v2", handle)

    async def model_ready(request: Request) -> Response:
        try:
            loaded_for(request)
        except NotReadyError:
            return _json({"ready": False}, 503)
        except _NotServed as exc:
            return _error(str(exc), 404)
        return _json({"ready": runtime.ready}, 200 if runtime.ready else 503)

    async def infer(request: Request) -> Response:
        async def handle() -> Response:
            loaded = loaded_for(request)
            body = await _read_body(request, config.max_body_bytes)
            header = request.headers.get("inference-header-content-length")
            infer_request = protocol.decode_infer_request(
                body, header_length=_header_length(header)
            )
            inputs = check_inputs(
                {i.name: (i.datatype, i.data) for i in infer_request.inputs},
                loaded.model.signature,
            )
            outputs = await runtime.infer(inputs)
            response = protocol.InferResponse(
                model_name=loaded.name,
                model_version=loaded.version,
                id=infer_request.id,
                outputs=[protocol.InferOutput(name=n, data=v) for n, v in outputs.items()],
            )
            payload, headers = protocol.encode_infer_response(response, infer_request)
            return Response(payload, headers=headers)

        return await _guard(request, metrics, "v2", handle)

    async def v1_status(request: Request) -> Response:
        async def handle() -> Response:
            loaded = loaded_for(request)
            return _json({"name": loaded.name, "ready": runtime.ready})

        return await _guard(request, metrics, "v1", handle)

    async def v1_predict(request: Request) -> Response:
        async def handle() -> Response:
            loaded = loaded_for(request)
            body = await _read_body(request, config.max_body_bytes)
            signature = loaded.model.signature
            v1 = protocol.decode_v1_request(body)
            tensors = protocol.v1_to_tensors(v1, [s.name for s in signature.inputs])
            inputs = check_inputs({k: (None, v) for k, v in tensors.items()}, signature)
            outputs = await runtime.infer(inputs)
            primary = signature.outputs[0].name if signature.outputs else None
            return Response(protocol.encode_v1_response(outputs, primary=primary), media_type=JSON)

        return await _guard(request, metrics, "v1", handle)

    async def metrics_endpoint(_request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    routes = [
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
        Route("/v2/models/{name}", model_metadata),
        Route("/v2/models/{name}/versions/{version}", model_metadata),
        Route("/v2/models/{name}/ready", model_ready),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
        Route("/v1/models/{name}", v1_status),
        Route("/v1/models/{name}:predict", v1_predict, methods=["POST"]),
        Route("/metrics", metrics_endpoint),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runtime = runtime
    return app


async def _guard(
    request: Request,
    metrics: ServingMetrics,
    protocol_name: str,
    handle: Callable[[], Awaitable[Response]],
) -> Response:
    """Run a handler, turning every failure into the protocol's error shape, and count it."""
    started = time.perf_counter()
    inflight = metrics.inflight.labels(metrics.model)
    inflight.inc()
    try:
        response = await handle()
    except InvalidInputError as exc:
        response = _error(str(exc), 400)
    except PayloadTooLargeError as exc:
        response = _error(str(exc), 413)
    except _NotServed as exc:
        response = _error(str(exc), 404)
    except NotReadyError as exc:
        response = _error(str(exc), 503)
    except ModelTimeoutError as exc:
        response = _error(str(exc), 504)
    except ClientDisconnect:
        response = _error("The request body was cut off.", 400)
    except FunadeError as exc:
        response = _error(str(exc), 400)
    except Exception as exc:
        log.warning("model error: %s: %s", type(exc).__name__, exc)
        response = _error(f"The model failed on this input: {type(exc).__name__}: {exc}"[:500], 500)
    finally:
        inflight.dec()
    metrics.requests.labels(metrics.model, protocol_name, str(response.status_code)).inc()
    metrics.latency.labels(metrics.model).observe(time.perf_counter() - started)
    return response


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    kind = request.headers.get("content-type", JSON).split(";")[0].strip().lower()
    if kind not in (JSON, "application/octet-stream", "text/plain", ""):
        raise InvalidInputError(
            f"Content type {kind!r} is not accepted here.",
            field="content-type",
            value=kind,
            fix="Send JSON (application/json), or the binary tensor extension "
            "(application/octet-stream with Inference-Header-Content-Length).",
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The request body has more than {limit} bytes ({size}).",
        field="body",
        value=size,
        fix="Send fewer rows per request, or raise the server's max_body_bytes.",
    )


def _header_length(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.strip().isdigit():
        raise InvalidInputError(
            f"Inference-Header-Content-Length {value!r} is not a byte count.",
            field="Inference-Header-Content-Length",
            value=value,
            fix="Give the length of the JSON header in bytes.",
        )
    return int(value)


def _metadata(loaded: Loaded) -> Response:
    signature = loaded.model.signature
    return _json(
        protocol.model_metadata(
            loaded.name,
            [loaded.version or "1"],
            f"funade_{loaded.model.flavor}",
            signature.inputs,
            signature.outputs,
        )
    )


def _json(content: Any, status: int = 200) -> Response:
    import orjson

    return Response(orjson.dumps(content), status_code=status, media_type=JSON)


def _error(message: str, status: int) -> Response:
    return Response(protocol.error_body(message), status_code=status, media_type=JSON)


def _default_name(source: str) -> str:
    return source.split("@")[0].split(":")[0].rstrip("/").rsplit("/", 1)[-1]
