"""Open Inference Protocol v2 answers encoded: an ``InferResponse`` as a body and its headers
(the outputs a request asked for, each as JSON or binary tensor data, or as its top classes),
model and server metadata, and error bodies (``v2`` lists the choices the spec leaves)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import orjson

from funade.errors import InvalidInputError
from funade.registry.tensors import datatype_of, numpy_dtype
from funade.serving.protocol.binary import tensor_to_bytes
from funade.serving.protocol.classification import classify
from funade.serving.protocol.jsondata import texts
from funade.serving.protocol.types import InferOutput, InferRequest, InferResponse

__all__ = [
    "BINARY_EXTENSION",
    "CLASSIFICATION_EXTENSION",
    "HEADER_LENGTH",
    "JSON_CONTENT_TYPE",
    "OCTET_CONTENT_TYPE",
    "TensorSpecLike",
    "encode_infer_response",
    "error_body",
    "model_metadata",
    "server_metadata",
]

HEADER_LENGTH = "inference-header-content-length"
JSON_CONTENT_TYPE = "application/json"
OCTET_CONTENT_TYPE = "application/octet-stream"
BINARY_EXTENSION = "binary_tensor_data"
CLASSIFICATION_EXTENSION = "classification"


class TensorSpecLike(Protocol):
    """A tensor's metadata: ``funade.registry.signature.TensorSpec`` is one."""

    @property
    def name(self) -> str: ...
    @property
    def datatype(self) -> str: ...
    @property
    def shape(self) -> list[int]: ...


# --- responses ----------------------------------------------------------------------------------


def encode_infer_response(
    response: InferResponse,
    request: InferRequest | None = None,
    labels: Mapping[str, Sequence[str]] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers (``content-type``; with binary outputs also
    ``inference-header-content-length``) of ``response``, with the outputs ``request`` asked
    for, in its order, each as JSON or binary data as it asked, or as its top classes where it
    asked for ``classification`` (named by ``labels``, the class names of each output)."""
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    any_binary = False
    for output, binary, count in _selected(response.outputs, request):
        if count is not None:
            names = (labels or {}).get(output.name)
            output = InferOutput(output.name, classify(output.data, count, names, output.name))
        entry, chunk = _output(output, binary)
        entries.append(entry)
        if chunk is not None:
            any_binary = True
            chunks.append(chunk)
    doc: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version is not None:
        doc["model_version"] = response.model_version
    if response.id is not None:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    doc["outputs"] = entries
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not any_binary:
        return header, {"content-type": JSON_CONTENT_TYPE}
    headers = {"content-type": OCTET_CONTENT_TYPE, HEADER_LENGTH: str(len(header))}
    return b"".join([header, *chunks]), headers


def _selected(
    outputs: list[InferOutput], request: InferRequest | None
) -> list[tuple[InferOutput, bool, int | None]]:
    """Each output to send, whether as binary data, and how many top classes instead."""
    if request is None:
        return [(output, False, None) for output in outputs]
    default = request.binary_output
    if request.outputs is None:
        return [(output, default, None) for output in outputs]
    by_name = {output.name: output for output in outputs}
    chosen: list[tuple[InferOutput, bool, int | None]] = []
    for wanted in request.outputs:
        output = by_name.get(wanted.name)
        if output is None:
            raise InvalidInputError(
                f"The model has no output '{wanted.name}'.",
                field="outputs",
                value=wanted.name,
                fix=f'Request one of {list(by_name)}, or leave out "outputs" for all.',
            )
        binary = default if wanted.binary is None else wanted.binary
        chosen.append((output, binary, wanted.classification))
    return chosen


def _output(output: InferOutput, binary: bool) -> tuple[dict[str, Any], bytes | None]:
    array = np.asarray(output.data)
    datatype = output.datatype or datatype_of(array, name=output.name)
    data: Any = None
    if datatype == "BYTES":
        if not binary:
            data = texts(array, output.name)
            binary = data is None  # bytes that are not UTF-8 cannot be JSON strings
    else:
        target = numpy_dtype(datatype)
        if array.dtype != target:
            array = _cast_output(array, datatype, output.name)
        if not binary:
            data = np.ascontiguousarray(array.reshape(-1))  # orjson writes it natively
    entry: dict[str, Any] = {"name": output.name, "datatype": datatype, "shape": list(array.shape)}
    parameters = {k: v for k, v in output.parameters.items() if k != "binary_data_size"}
    if not binary:
        if parameters:
            entry["parameters"] = parameters
        entry["data"] = data
        return entry, None
    chunk = tensor_to_bytes(array, datatype, name=output.name)
    entry["parameters"] = {**parameters, "binary_data_size": len(chunk)}
    return entry, chunk


def _cast_output(array: npt.NDArray[Any], datatype: str, name: str) -> npt.NDArray[Any]:
    try:
        return array.astype(numpy_dtype(datatype))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"Output '{name}' ({array.dtype}) cannot be sent as {datatype}: {exc}.",
            field=f"outputs.{name}",
            value=str(array.dtype),
            fix="Declare the datatype that matches the output, or convert the output.",
        ) from None


# --- metadata and errors ------------------------------------------------------------------------


def model_metadata(
    name: str,
    versions: Sequence[str],
    platform: str,
    inputs: Sequence[TensorSpecLike],
    outputs: Sequence[TensorSpecLike],
) -> dict[str, Any]:
    """The body of ``GET /v2/models/{name}``: ``-1`` in a shape is a size that may vary."""
    return {
        "name": name,
        "versions": list(versions),
        "platform": platform,
        "inputs": [_tensor_metadata(spec) for spec in inputs],
        "outputs": [_tensor_metadata(spec) for spec in outputs],
    }


def _tensor_metadata(spec: TensorSpecLike) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


def server_metadata(
    name: str, version: str, extensions: Sequence[str] = (BINARY_EXTENSION,)
) -> dict[str, Any]:
    """The body of ``GET /v2``; ``binary_tensor_data`` is always listed, as ``v2`` implements
    it."""
    listed = list(extensions)
    if BINARY_EXTENSION not in listed:
        listed.insert(0, BINARY_EXTENSION)
    return {"name": name, "version": version, "extensions": listed}


def error_body(message: str) -> bytes:
    """An OIP error body, ``{"error": message}`` (what ``tritonclient`` and KServe read)."""
    return orjson.dumps({"error": message})
