"""The OpenAPI document of the Open Inference Protocol routes, for one served model.

``document`` describes what ``funade serve`` answers (``GET /openapi.json``), or, with
``gateway=True``, what the gateway answers for a deployment: the v2 and v1 routes, the request
bodies of the model's signature (a JSON request of one row of each input, or binary tensor data
after a JSON header), the answers, and every error status with its body. It is built from the
models below, which only describe the protocol (the server parses bodies itself, without
pydantic, on its hot path), and from the model's signature; nothing is read per request.

A request body here is one a client would send for one row; the server accepts more (any number
of rows, nested data, other datatypes of the same kind): the document shows the common case,
not every case the protocol allows, and the protocol's rule that ``data`` holds as many values
as the ``shape`` says cannot be written in JSON Schema at all.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from funade.registry.signature import Signature, TensorSpec
from funade.registry.tensors import DATATYPES

__all__ = ["document"]

DatatypeName = Literal[
    "BOOL",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]


class TensorMetadata(BaseModel):
    name: str
    datatype: DatatypeName
    shape: list[int] = Field(description="-1: any size (the first dimension is the batch).")


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class OutputTensor(BaseModel):
    name: str
    datatype: DatatypeName
    shape: list[int]
    parameters: dict[str, Any] | None = Field(
        default=None, description="`binary_data_size` when the data follows the JSON as bytes."
    )
    data: list[Any] | None = Field(
        default=None, description="Row-major values; non-finite floats are null."
    )


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = Field(default=None, description="The request's id, echoed.")
    parameters: dict[str, Any] | None = None
    outputs: list[OutputTensor]


class PredictResponse(BaseModel):
    predictions: list[Any] = Field(description="One entry per instance (row).")


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool
    error: str | None = Field(default=None, description="Why the model failed to load.")


class ModelReady(BaseModel):
    ready: bool


class ServerError(BaseModel):
    """The model server's errors: the protocol's ``{"error": "..."}``, plus what funade knows."""

    error: str = Field(description="A sentence that says what was wrong and what to do.")
    code: str | None = None
    field: str | None = Field(default=None, description="The part of the request at fault.")
    value: Any = None
    fix: str | None = None


class GatewayErrorDetail(BaseModel):
    code: str
    message: str
    fix: str = ""


class GatewayError(BaseModel):
    """The gateway's own refusals (key, allowlist, rate limit, no replica)."""

    error: GatewayErrorDetail


_SERVER_STATUSES: dict[str, str] = {
    "400": "The request is wrong: malformed JSON, an unknown, missing or repeated input, a "
    "wrong datatype, shape or value, a bad binary header, an unreadable image; the error names "
    "the field.",
    "404": "The path names another model (or version) than the one served.",
    "408": "The body did not arrive within the request timeout.",
    "413": "The body is larger than the server's max_body_bytes.",
    "415": "A content type or encoding the route does not read.",
    "500": "The model raised on this input (a one-line message, no traceback).",
    "503": "The model is loading, or failed to load.",
    "504": "The model did not answer within the timeout.",
}
_GATEWAY_STATUSES: dict[str, str] = {
    "401": "No API key, or one that is not valid.",
    "403": "The key may not call this deployment, or the address is not allowed.",
    "404": "No such deployment, or another model or version than the deployment serves.",
    "429": "Over the deployment's or the key's rate limit (see Retry-After).",
    "502": "No replica could be reached.",
    "503": "No replica is ready, the key cannot be checked now, or the model is loading.",
    "504": "The deployment did not answer within its timeout.",
}


def document(
    name: str,
    version: str,
    signature: Signature,
    *,
    title: str = "funade model server",
    server_version: str = "",
    gateway: bool = False,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the inference routes serving ``name`` (version ``version``,
    taking and giving ``signature``), as ``funade serve`` answers them or, with ``gateway``, as
    the gateway answers them for the deployment ``name`` (its routes need a predict key)."""
    schemas: dict[str, Any] = {}
    for model in (
        ModelMetadata,
        ServerMetadata,
        InferenceResponse,
        PredictResponse,
        Live,
        Ready,
        ModelReady,
        ServerError,
        GatewayError,
    ):
        found = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(found.pop("$defs", {}))
        schemas[model.__name__] = found
    schemas["InferenceRequest"] = _infer_request(signature)
    schemas["PredictRequest"] = _predict_request(signature)
    errors: dict[str, Any] = {"$ref": "#/components/schemas/ServerError"}
    if gateway:
        errors = {"anyOf": [errors, {"$ref": "#/components/schemas/GatewayError"}]}
    ctx = _Context(name, version, gateway, errors)
    paths: dict[str, dict[str, Any]] = {
        "/v2/models/{name}": {"get": ctx.metadata(versioned=False)},
        "/v2/models/{name}/versions/{version}": {"get": ctx.metadata(versioned=True)},
        "/v2/models/{name}/ready": {"get": ctx.model_ready(versioned=False)},
        "/v2/models/{name}/versions/{version}/ready": {"get": ctx.model_ready(versioned=True)},
        "/v2/models/{name}/infer": {"post": ctx.infer(versioned=False)},
        "/v2/models/{name}/versions/{version}/infer": {"post": ctx.infer(versioned=True)},
        "/v1/models/{name}": {"get": ctx.v1_status()},
        "/v1/models/{name}:predict": {"post": ctx.v1_predict()},
    }
    if not gateway:
        paths = {
            "/v2/health/live": {"get": ctx.health("Live", "Whether the server runs.")},
            "/v2/health/ready": {
                "get": ctx.health("Ready", "Whether the model is loaded and answers.")
            },
            "/v2": {"get": ctx.server_metadata()},
            **paths,
            "/metrics": {"get": ctx.metrics()},
        }
    out: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": f"{title}: {name}",
            "version": server_version or version,
            "description": "The Open Inference Protocol (v2, with the binary tensor data and "
            "classification extensions) and KServe's v1 protocol over one model.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if gateway:
        out["components"]["securitySchemes"] = {
            "apiKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "A key with the predict scope in the deployment's project.",
            }
        }
    return out


class _Context:
    """Builds the operations of one document."""

    def __init__(self, name: str, version: str, gateway: bool, errors: dict[str, Any]) -> None:
        self.name = name
        self.version = version
        self.gateway = gateway
        self.errors = errors

    def _params(self, versioned: bool) -> list[dict[str, Any]]:
        what = "deployment" if self.gateway else "served model"
        params = [
            {
                "name": "name",
                "in": "path",
                "required": True,
                "description": f"The {what}'s name.",
                "schema": {"type": "string", "enum": [self.name]},
            }
        ]
        if versioned:
            params.append(
                {
                    "name": "version",
                    "in": "path",
                    "required": True,
                    "description": "The model's version.",
                    "schema": {"type": "string", "enum": [self.version]},
                }
            )
        return params

    def _responses(self, ok: dict[str, Any], statuses: list[str]) -> dict[str, Any]:
        responses: dict[str, Any] = {"200": ok}
        described = dict(_SERVER_STATUSES)
        if self.gateway:
            statuses = sorted({*statuses, "401", "403", "404", "429", "502", "503", "504"})
            described.update(_GATEWAY_STATUSES)
        for status in statuses:
            responses[status] = {
                "description": described[status],
                "content": {"application/json": {"schema": self.errors}},
            }
        return responses

    def _operation(self, summary: str, operation: dict[str, Any]) -> dict[str, Any]:
        operation = {"summary": summary, **operation}
        if self.gateway:
            operation["security"] = [{"apiKey": []}]
        return operation

    def health(self, schema: str, summary: str) -> dict[str, Any]:
        ref = {"$ref": f"#/components/schemas/{schema}"}
        body = {"content": {"application/json": {"schema": ref}}}
        return {
            "summary": summary,
            "responses": {
                "200": {"description": "Yes.", **body},
                "503": {"description": "No.", **body},
            },
        }

    def server_metadata(self) -> dict[str, Any]:
        return {
            "summary": "The server's name, version and protocol extensions.",
            "responses": {"200": _json("The server's metadata.", "ServerMetadata")},
        }

    def metrics(self) -> dict[str, Any]:
        return {
            "summary": "Prometheus metrics.",
            "responses": {
                "200": {
                    "description": "Prometheus text format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }

    def metadata(self, *, versioned: bool) -> dict[str, Any]:
        return self._operation(
            "The model's name, versions, platform, inputs and outputs.",
            {
                "parameters": self._params(versioned),
                "responses": self._responses(
                    _json("The model's metadata.", "ModelMetadata"), ["404", "503"]
                ),
            },
        )

    def model_ready(self, *, versioned: bool) -> dict[str, Any]:
        ready = {"$ref": "#/components/schemas/ModelReady"}
        responses = self._responses(_json("Ready.", "ModelReady"), ["404"])
        responses["503"] = {
            "description": "Not ready (still loading, or failed to load)."
            + (" " + _GATEWAY_STATUSES["503"] if self.gateway else ""),
            "content": {"application/json": {"schema": {"anyOf": [ready, self.errors]}}},
        }
        return self._operation(
            "Whether the model answers.",
            {"parameters": self._params(versioned), "responses": responses},
        )

    def infer(self, *, versioned: bool) -> dict[str, Any]:
        header = {
            "name": "Inference-Header-Content-Length",
            "in": "header",
            "required": False,
            "description": "With a binary body: the length of its JSON part, in bytes.",
            "schema": {"type": "integer", "minimum": 0},
        }
        ok = _json("The outputs (as JSON, or as binary tensor data after a JSON header).", None)
        ok["content"] = {
            "application/json": {"schema": {"$ref": "#/components/schemas/InferenceResponse"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        }
        return self._operation(
            "Run the model (Open Inference Protocol v2).",
            {
                "parameters": [*self._params(versioned), header],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/InferenceRequest"}
                        },
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        },
                    },
                },
                "responses": self._responses(
                    ok, ["400", "404", "408", "413", "415", "500", "503", "504"]
                ),
            },
        )

    def v1_status(self) -> dict[str, Any]:
        ok = {
            "description": "The model's name and whether it is ready.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["name", "ready"],
                        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
                    }
                }
            },
        }
        return self._operation(
            "The model's status (KServe v1).",
            {"parameters": self._params(False), "responses": self._responses(ok, ["404", "503"])},
        )

    def v1_predict(self) -> dict[str, Any]:
        return self._operation(
            "Run the model (KServe v1: instances in, predictions out).",
            {
                "parameters": self._params(False),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/PredictRequest"}
                        }
                    },
                },
                "responses": self._responses(
                    _json("One prediction per instance.", "PredictResponse"),
                    ["400", "404", "408", "413", "415", "500", "503", "504"],
                ),
            },
        )


def _json(description: str, schema: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}
        }
    return out


def _one_row(spec: TensorSpec) -> list[int]:
    """The shape of one row of ``spec`` (each -1 as 1)."""
    return [1 if size == -1 else size for size in spec.shape]


def _value(datatype: str) -> dict[str, Any]:
    """The JSON Schema of one element of ``datatype`` in a JSON request."""
    if datatype == "BYTES":
        return {"type": "string"}
    if datatype == "BOOL":
        return {"type": "boolean"}
    dtype = DATATYPES[datatype]
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return {"type": "integer", "minimum": int(info.min), "maximum": int(info.max)}
    largest = float(np.finfo(dtype).max)
    return {"type": "number", "minimum": -largest, "maximum": largest}


def _v2_input(spec: TensorSpec) -> dict[str, Any]:
    shape = _one_row(spec)
    count = math.prod(shape)
    return {
        "type": "object",
        "required": ["name", "datatype", "shape", "data"],
        "properties": {
            "name": {"const": spec.name},
            "datatype": {"const": spec.datatype},
            "shape": {"const": shape, "description": f"The model takes {spec.shape}."},
            "data": {
                "type": "array",
                "items": _value(spec.datatype),
                "minItems": count,
                "maxItems": count,
            },
            "parameters": {"type": "object"},
        },
    }


_ANY_INPUT: dict[str, Any] = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "description": "Any tensor the protocol allows (the model checks it against its inputs).",
    "properties": {
        "name": {"type": "string"},
        "datatype": {"enum": list(DATATYPES)},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "data": {"type": "array"},
        "parameters": {
            "type": "object",
            "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
        },
    },
}


def _infer_request(signature: Signature) -> dict[str, Any]:
    inputs = [_v2_input(spec) for spec in signature.inputs] + [_ANY_INPUT]
    outputs = [spec.name for spec in signature.outputs]
    requested: dict[str, Any] = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"enum": outputs} if outputs else {"type": "string"},
            "parameters": {
                "type": "object",
                "properties": {
                    "binary_data": {"type": "boolean"},
                    "classification": {"type": "integer", "minimum": 1},
                },
            },
        },
    }
    return {
        "type": "object",
        "required": ["inputs"],
        "description": "One row of each input (the server takes any number of rows).",
        "properties": {
            "id": {"type": "string"},
            "parameters": {
                "type": "object",
                "properties": {"binary_data_output": {"type": "boolean"}},
            },
            "inputs": {
                "type": "array",
                "items": {"anyOf": inputs},
                "minItems": 1,
            },
            "outputs": {"type": "array", "items": requested},
        },
    }


def _v1_row(spec: TensorSpec) -> dict[str, Any]:
    """One instance's value for ``spec``: a scalar, or nested lists of its row's shape."""
    schema = _value(spec.datatype)
    for size in reversed(_one_row(spec)[1:]):
        schema = {"type": "array", "items": schema, "minItems": size, "maxItems": size}
    return schema


def _predict_request(signature: Signature) -> dict[str, Any]:
    if len(signature.inputs) == 1:
        row = _v1_row(signature.inputs[0])
    else:
        row = {
            "type": "object",
            "required": [spec.name for spec in signature.inputs],
            "properties": {spec.name: _v1_row(spec) for spec in signature.inputs},
        }
    return {
        "type": "object",
        "required": ["instances"],
        "description": "Rows as `instances` (the server also takes columns as `inputs`).",
        "properties": {"instances": {"type": "array", "items": row, "minItems": 1}},
    }
