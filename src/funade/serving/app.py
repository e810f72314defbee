"""The model server's ASGI app: Open Inference Protocol v2 and KServe v1 over one model.

Handlers parse with ``serving.protocol`` (or decode photos with ``registry.images``), check
inputs against the signature, hand tensors to the runtime's batcher and serialize the answer.
Errors use the protocols' shape, ``{"error": "..."}`` (plus ``code``, ``field``, ``value`` and
``fix`` where known), with 4xx for anything the client sent wrong, a short 500 (no traceback)
when the model raises, 503 while loading and 504 past the timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from funade import __version__
from funade.errors import FunadeError, InvalidInputError, PayloadTooLargeError
from funade.registry.images import decode_images
from funade.registry.signature import Signature
from funade.serving import openapi, protocol, triton
from funade.serving.batching import Tensors, Wanted
from funade.serving.bodies import (
    Body,
    BodyTimeoutError,
    UnsupportedMediaTypeError,
    read_body,
    uploaded_files,
)
from funade.serving.config import ServeConfig
from funade.serving.decode import v1_json, v2_general, v2_json
from funade.serving.fastpath import InferenceFastPath
from funade.serving.metrics import ServingMetrics
from funade.serving.runtime import (
    Loaded,
    ModelRuntime,
    ModelTimeoutError,
    NotReadyError,
)
from funade.serving.workers import WorkerPeers
from funade.web.call import Call, Headers, Reply

log = logging.getLogger("funade.serving")

JSON = "application/json"
_JSON_HEADERS: Headers = [(b"content-type", b"application/json")]
_HEADER_LENGTH = protocol.HEADER_LENGTH.encode()
EXTENSIONS = [
    protocol.BINARY_EXTENSION,
    protocol.CLASSIFICATION_EXTENSION,
    "model_configuration",  # Triton's, as triton.py answers them
    "statistics",
]


class NotServedError(FunadeError):
    """The request names a model (or version) this server does not serve (HTTP 404)."""

    code = "not_found"


def create_model_app(
    config: ServeConfig,
    load: Callable[[], Loaded],
    *,
    on_load_failure: Callable[[BaseException], None] | None = None,
    peers: WorkerPeers | None = None,
) -> InferenceFastPath:
    """The app serving the model ``load`` returns (loaded in the background at start-up;
    ``on_load_failure`` is told if loading fails; ``peers``: the other worker processes)."""
    served = config.name or default_name(config.source)
    metrics = ServingMetrics(served)
    runtime = ModelRuntime(config, load, metrics, on_load_failure=on_load_failure, peers=peers)
    timeout = config.timeout_ms / 1000

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        yield
        await runtime.stop()

    def loaded_for(params: dict[str, Any]) -> Loaded:
        loaded = runtime.require_ready()
        name = params.get("name")
        version = params.get("version")
        if name not in (None, loaded.name) or (
            version is not None and version != (loaded.version or "1")
        ):
            wanted = f"Model {name!r}" + (f" version {version!r}" if version else "")
            serving = f"{loaded.name!r}" + (f" version {loaded.version}" if loaded.version else "")
            raise NotServedError(
                f"{wanted} is not served here; this server serves {serving}.",
                field="model",
                value=name if version is None else f"{name}:{version}",
                fix=f"Call /v2/models/{loaded.name}/infer.",
            )
        return loaded

    async def inputs_of(loaded: Loaded, body: Body) -> Tensors:
        """Image bodies decoded into the model's image input (off the event loop)."""
        signature = loaded.model.signature
        name, spec = _image_input(signature, loaded.name)
        files = await uploaded_files(body)
        assert spec.image is not None
        batch = await run_in_threadpool(
            decode_images, files, spec.image, spec.name, spec.datatype, spec.shape
        )
        return {name: batch}

    async def live(_request: Request) -> Response:
        return _json({"live": runtime.live}, 200 if runtime.live else 503)

    async def ready(_request: Request) -> Response:
        if runtime.load_error is not None:
            return _json({"ready": False, "error": runtime.load_error}, 503)
        return _json({"ready": runtime.ready}, 200 if runtime.ready else 503)

    async def server_metadata(_request: Request) -> Response:
        return _json(protocol.server_metadata("funade", __version__, EXTENSIONS))

    async def model_metadata(request: Request) -> Response:
        async def handle() -> Reply:
            return _metadata(loaded_for(request.path_params))

        return _response(await _guard(metrics, "v2", handle, inference=False))

    async def model_ready(request: Request) -> Response:
        try:
            loaded_for(request.path_params)
        except NotReadyError:
            return _json({"ready": False}, 503)
        except NotServedError as exc:
            return _error(exc, 404)
        return _json({"ready": runtime.ready}, 200 if runtime.ready else 503)

    async def infer(call: Call, params: dict[str, str]) -> Reply:
        """``POST /v2/models/{name}[/versions/{version}]/infer``."""

        async def handle() -> Reply:
            loaded = loaded_for(params)
            body = await read_body(
                call.headers, call.receive, config.max_body_bytes, timeout, whole=call.body
            )
            infer_request = None
            wanted: Wanted = None
            if body.kind == "image":
                inputs = await inputs_of(loaded, body)
            else:
                header = body.header(_HEADER_LENGTH)
                if body.kind == "binary" and header is None:
                    raise _missing_header_length()
                length = _header_length(header)
                signature = loaded.model.signature
                widen = config.widen_datatypes
                if length is None:
                    infer_request, inputs, wanted = v2_json(body.data, signature, widen=widen)
                else:
                    infer_request, inputs, wanted = v2_general(
                        body.data, length, signature, widen=widen
                    )
            outputs = await runtime.infer(inputs, wanted)
            response = protocol.InferResponse(
                model_name=loaded.name,
                model_version=loaded.version,
                id=infer_request.id if infer_request is not None else None,
                outputs=[protocol.InferOutput(name=n, data=v) for n, v in outputs.items()],
            )
            payload, headers = protocol.encode_infer_response(
                response, infer_request, loaded.model.signature.labels
            )
            if headers == _PLAIN_JSON:
                return 200, _JSON_HEADERS, payload
            return 200, [(k.encode(), v.encode()) for k, v in headers.items()], payload

        return await _guard(metrics, "v2", handle)

    async def v1_status(request: Request) -> Response:
        async def handle() -> Reply:
            loaded = loaded_for(request.path_params)
            return _json_reply({"name": loaded.name, "ready": runtime.ready})

        return _response(await _guard(metrics, "v1", handle, inference=False))

    async def v1_predict(call: Call, params: dict[str, str]) -> Reply:
        """``POST /v1/models/{name}:predict``."""

        async def handle() -> Reply:
            loaded = loaded_for(params)
            body = await read_body(
                call.headers,
                call.receive,
                config.max_body_bytes,
                timeout,
                binary_allowed=False,
                whole=call.body,
            )
            signature = loaded.model.signature
            if body.kind == "image":
                inputs = await inputs_of(loaded, body)
            else:
                inputs = v1_json(body.data, signature)
            primary = signature.outputs[0].name if signature.outputs else None
            outputs = await runtime.infer(inputs, frozenset([primary]) if primary else None)
            return 200, _JSON_HEADERS, protocol.encode_v1_response(outputs, primary=primary)

        return await _guard(metrics, "v1", handle)

    async def kserve_live(_request: Request) -> Response:
        """KServe v1's liveness (what its REST client's ``is_server_live`` reads)."""
        return _json({"status": "alive"}, 200 if runtime.live else 503)

    async def model_config(request: Request) -> Response:
        async def handle() -> Reply:
            loaded = loaded_for(request.path_params)
            model = loaded.model
            return _json_reply(
                triton.model_config(
                    loaded.name, model.flavor, model.signature, config.max_batch_size
                )
            )

        return _response(await _guard(metrics, "v2", handle, inference=False))

    async def model_stats(request: Request) -> Response:
        async def handle() -> Reply:
            loaded = loaded_for(request.path_params)
            return _json_reply(triton.statistics(loaded.name, loaded.version or "1", metrics))

        return _response(await _guard(metrics, "v2", handle, inference=False))

    async def repository_index(_request: Request) -> Response:
        loaded = runtime.loaded
        name, version = (loaded.name, loaded.version or "1") if loaded else (served, "")
        return _json(triton.repository_index(name, version, runtime.ready))

    async def metrics_endpoint(_request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    document: list[bytes] = []  # built once, on the first request after the model loaded

    async def openapi_document(_request: Request) -> Response:
        """The OpenAPI document of this server's routes for the loaded model."""
        try:
            loaded = runtime.require_ready()
        except NotReadyError as exc:
            return _error(exc, 503)
        if not document:
            doc = openapi.document(
                loaded.name,
                loaded.version or "1",
                loaded.model.signature,
                server_version=__version__,
            )
            document.append(orjson.dumps(doc))
        return Response(document[0], media_type=JSON)

    async def infer_route(request: Request) -> Response:  # (the fast path answers these)
        return _response(await infer(Call.of(request.scope, request.receive), request.path_params))

    async def v1_predict_route(request: Request) -> Response:
        call = Call.of(request.scope, request.receive)
        return _response(await v1_predict(call, request.path_params))

    routes = [  # inference first: the router tries them in order
        Route("/v2/models/{name}/infer", infer_route, methods=["POST"]),
        Route("/v1/models/{name}:predict", v1_predict_route, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", infer_route, methods=["POST"]),
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
        Route("/v2/models/{name}", model_metadata),
        Route("/v2/models/{name}/versions/{version}", model_metadata),
        Route("/v2/models/{name}/ready", model_ready),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready),
        Route("/v1/models/{name}", v1_status),
        Route("/v2/models/{name}/config", model_config),
        Route("/v2/models/{name}/versions/{version}/config", model_config),
        Route("/v2/models/{name}/stats", model_stats),
        Route("/v2/models/{name}/versions/{version}/stats", model_stats),
        Route("/v2/repository/index", repository_index, methods=["POST"]),
        Route("/", kserve_live),
        Route("/metrics", metrics_endpoint),
        Route("/openapi.json", openapi_document),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _not_routed}
    )
    # `/v2/` is no route: a 404 in the protocol's error shape (as Triton refuses it), not
    # Starlette's 307 to `/v2`, whose Location names the replica's own address behind a gateway.
    app.router.redirect_slashes = False
    app.state.runtime = runtime
    return InferenceFastPath(app, v2=infer, v1=v1_predict, token=config.token)


_PLAIN_JSON = {"content-type": protocol.JSON_CONTENT_TYPE}


_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (BodyTimeoutError, 408),
    (UnsupportedMediaTypeError, 415),
    (InvalidInputError, 400),
    (PayloadTooLargeError, 413),
    (NotServedError, 404),
    (NotReadyError, 503),
    (ModelTimeoutError, 504),
    (FunadeError, 400),
)


async def _guard(
    metrics: ServingMetrics,
    protocol_name: str,
    handle: Callable[[], Awaitable[Reply]],
    inference: bool = True,
) -> Reply:
    """Run a handler, turning every failure into the protocol's error shape, and count it
    (``inference``: a prediction, which the statistics extension counts)."""
    started = time.perf_counter()
    metrics.begin()
    try:
        response = await handle()
    except ClientDisconnect:
        response = _error_reply(
            InvalidInputError(
                "The request body was cut off before its declared length.",
                field="body",
                fix="Send the whole body (its Content-Length bytes).",
            ),
            400,
        )
    except Exception as exc:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
        if status == 500:
            log.warning("model error: %s: %s", type(exc).__name__, exc)
            message = f"The model failed on this input: {type(exc).__name__}: {exc}"
            response = _error_reply(RuntimeError(message[:500]), 500)
        else:
            response = _error_reply(exc, status)
    except BaseException:  # cancelled (a stop that could not wait): no answer to count
        metrics.abandoned()
        raise
    metrics.count(protocol_name, response[0], time.perf_counter() - started, inference)
    return response


_NOT_ROUTED = {
    404: (
        "not_found",
        "There is no such route on this model server.",
        "Call /v2/models/<name>/infer.",
    ),
    405: ("method_not_allowed", "This route does not take that method.", "See /openapi.json."),
}


async def _not_routed(_request: Request, exc: Exception) -> Response:
    """Starlette's own 404 and 405 in the protocol's error shape, not as plain text."""
    assert isinstance(exc, HTTPException)
    code, message, fix = _NOT_ROUTED.get(exc.status_code, ("http_error", str(exc.detail), ""))
    body = orjson.dumps({"error": f"{message} {fix}".strip(), "code": code, "fix": fix})
    return Response(body, status_code=exc.status_code, headers=exc.headers, media_type=JSON)


def _image_input(signature: Signature, model: str) -> tuple[str, Any]:
    specs = [spec for spec in signature.inputs if spec.image is not None]
    if not specs:
        raise UnsupportedMediaTypeError(
            f"Model {model!r} takes no images; its inputs are "
            f"{', '.join(str(s) for s in signature.inputs)}.",
            field="content-type",
            value="image",
            fix="Send its inputs as JSON, or register the model with "
            "image=funade.ImageInput(...) so photos are decoded for it.",
        )
    if len(signature.inputs) > 1:
        others = [s.name for s in signature.inputs if s.image is None]
        raise InvalidInputError(
            f"Model {model!r} takes inputs besides the image ({', '.join(others)}), which an "
            "image upload cannot carry.",
            field="content-type",
            value="image",
            fix="Send every input as JSON (the image as a tensor).",
        )
    return specs[0].name, specs[0]


def _missing_header_length() -> InvalidInputError:
    return InvalidInputError(
        "An application/octet-stream body needs an Inference-Header-Content-Length header.",
        field="Inference-Header-Content-Length",
        value=None,
        fix="Give the length of the JSON header in bytes, or send JSON as application/json.",
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


def _metadata(loaded: Loaded) -> Reply:
    signature = loaded.model.signature
    return _json_reply(
        protocol.model_metadata(
            loaded.name,
            [loaded.version or "1"],
            f"funade_{loaded.model.flavor}",
            signature.inputs,
            signature.outputs,
        )
    )


def _json_reply(content: Any, status: int = 200) -> Reply:
    return status, _JSON_HEADERS, orjson.dumps(content)


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON)


def _response(reply: Reply) -> Response:
    """A ``Reply`` as Starlette's ``Response`` (for the routes Starlette answers)."""
    status, headers, body = reply
    response = Response(body, status_code=status)
    response.raw_headers[:0] = headers  # before its content-length, as given headers go
    return response


def _error(exc: Exception, status: int) -> Response:
    return _response(_error_reply(exc, status))


def _error_reply(exc: Exception, status: int) -> Reply:
    """``{"error": message}`` (what OIP clients read), with the error's details if it has them."""
    try:
        if isinstance(exc, FunadeError):
            details = exc.to_dict()
            details.pop("message")
            body = orjson.dumps({"error": str(exc), **details}, default=str)
        else:
            body = protocol.error_body(str(exc))
    except orjson.JSONEncodeError:  # text UTF-8 cannot hold (a lone surrogate): the gist
        text = str(exc).encode("utf-8", "replace").decode("utf-8")
        body = protocol.error_body(text)
    return status, _JSON_HEADERS, body


def default_name(source: str) -> str:
    """The name a source is served under: the model's name, or the package's file name."""
    return source.split("@")[0].split(":")[0].rstrip("/").rsplit("/", 1)[-1]
