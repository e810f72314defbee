"""Inference bodies decoded and checked against the model's signature, with a path for the
common shape.

Most requests are the plain shape: v2 JSON with one input per model input, each of exactly
``name``, ``datatype`` (the signature's), ``shape`` and ``data``, no ``parameters`` anywhere,
``outputs`` (if any) by name only; v1 ``instances`` of plain rows for a one-input model. For
those, ``v2_json`` and ``v1_json`` build the tensors in one pass, without the general decode's
per-field walks (``decode_infer_request``'s ``_input``, ``_requested_outputs``, ``check_inputs``,
``_wanted``). Anything else, and anything the plain path is not sure of, goes the general way
(``v2_general``, ``v1_general``) from the start, so every error, its message and its status
are the general path's: the plain path refuses nothing itself (it calls the same ``_conform``
on the same array as the general path, whose errors it lets through unchanged).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from funade.errors import InvalidInputError
from funade.registry.signature import Signature, TensorSpec
from funade.registry.tensors import DATATYPES
from funade.serving import protocol
from funade.serving.batching import Tensors, Wanted
from funade.serving.protocol.classification import check_count
from funade.serving.runtime import _conform, check_inputs

V2 = tuple[protocol.InferRequest, Tensors, Wanted]
"""A decoded v2 request: the request, its checked tensors, the outputs it wants."""

_DOC_KEYS = frozenset({"inputs", "outputs", "id"})
_INPUT_KEYS = frozenset({"name", "datatype", "shape", "data"})
_OUTPUT_KEYS = frozenset({"name"})


def v2_json(data: bytes, signature: Signature, *, widen: bool = False) -> V2:
    """A v2 JSON body (no binary part), decoded and checked."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:  # NaN literals, or not JSON: the general path says which
        return v2_general(data, None, signature, widen=widen)
    plain = _plain_v2(doc, signature)
    if plain is not None:
        return plain
    return v2_general(data, None, signature, widen=widen, doc=doc)


def v2_general(
    data: bytes,
    header_length: int | None,
    signature: Signature,
    *,
    widen: bool = False,
    doc: Any = None,
) -> V2:
    """Any v2 body (``header_length``: its JSON part's, for binary tensors), decoded and
    checked field by field (``doc``: its JSON already parsed)."""
    request = protocol.decode_infer_request(data, header_length=header_length, doc=doc)
    inputs = check_inputs(
        {i.name: (i.datatype, i.data) for i in request.inputs}, signature, widen=widen
    )
    return request, inputs, wanted_outputs(request, signature)


def _plain_v2(doc: Any, signature: Signature) -> V2 | None:
    """``doc`` decoded if it is the plain shape and would pass every check, else None."""
    if type(doc) is not dict or not doc.keys() <= _DOC_KEYS:
        return None
    raw_inputs = doc.get("inputs")
    specs = signature.inputs
    if type(raw_inputs) is not list or len(raw_inputs) != len(specs):
        return None
    request_id = doc.get("id")
    if request_id is not None and type(request_id) is not str:
        return None
    outputs: list[protocol.RequestedOutput] | None = None
    wanted: Wanted = None
    if "outputs" in doc:
        outputs = _plain_outputs(doc["outputs"], signature)
        if outputs is None:
            return None
        wanted = frozenset(output.name for output in outputs)
    tensors: Tensors = {}
    inputs: list[protocol.InferInput] = []
    rows = -1
    for item in raw_inputs:
        if type(item) is not dict or item.keys() != _INPUT_KEYS:
            return None
        name, datatype, shape, values = item["name"], item["datatype"], item["shape"], item["data"]
        spec = _spec(specs, name)
        if (
            spec is None
            or name in tensors
            or type(datatype) is not str
            or datatype != spec.datatype
            or datatype == "BYTES"
            or type(values) is not list
            or not _plain_shape(shape, spec)
        ):
            return None
        try:
            array = np.array(values)
        except ValueError:  # ragged
            return None
        if array.dtype != DATATYPES[datatype] or array.size != math.prod(shape):
            return None
        array = array.reshape(shape)
        if array.ndim > 0:
            if rows not in (-1, array.shape[0]):
                return None
            rows = array.shape[0]
        tensors[name] = array
        inputs.append(protocol.InferInput(name, datatype, shape, array, {}))
    request = protocol.InferRequest(request_id, inputs, outputs, {}, False)
    return request, {spec.name: tensors[spec.name] for spec in specs}, wanted


def _spec(specs: list[TensorSpec], name: Any) -> TensorSpec | None:
    for spec in specs:
        if spec.name == name:
            return spec
    return None


def _plain_shape(shape: Any, spec: TensorSpec) -> bool:
    """Whether ``shape`` is a list of sizes the signature's shape takes."""
    if type(shape) is not list or len(shape) != len(spec.shape):
        return False
    for given, takes in zip(shape, spec.shape, strict=True):
        if type(given) is not int or given < 0 or (takes != -1 and given != takes):
            return False
    return True


def _plain_outputs(raw: Any, signature: Signature) -> list[protocol.RequestedOutput] | None:
    """``outputs`` asked by name only, each once, each one the model has; else None."""
    if type(raw) is not list:
        return None
    names = [spec.name for spec in signature.outputs]
    outputs: list[protocol.RequestedOutput] = []
    seen: set[str] = set()
    for item in raw:
        if type(item) is not dict or item.keys() != _OUTPUT_KEYS:
            return None
        name = item["name"]
        if type(name) is not str or name not in names or name in seen:
            return None
        seen.add(name)
        outputs.append(protocol.RequestedOutput(name=name, binary=None, parameters={}))
    return outputs


def v1_json(data: bytes, signature: Signature) -> Tensors:
    """A v1 ``:predict`` body, decoded and checked."""
    specs = signature.inputs
    if len(specs) == 1:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            return v1_general(data, signature)
        if type(doc) is dict and len(doc) == 1:
            rows = doc.get("instances")
            if type(rows) is list and rows:
                try:
                    array = np.array(rows)
                except ValueError:  # ragged: the general path says where
                    array = None
                if array is not None and array.dtype.kind in "biuf":
                    # numbers only, so no row was an object: what the general path would
                    # build, checked by the same function
                    return {specs[0].name: _conform(specs[0], None, array)}
    return v1_general(data, signature)


def v1_general(data: bytes, signature: Signature) -> Tensors:
    """Any v1 body, decoded and checked field by field."""
    v1 = protocol.decode_v1_request(data)
    tensors = protocol.v1_to_tensors(v1, [s.name for s in signature.inputs])
    return check_inputs({k: (None, v) for k, v in tensors.items()}, signature)


def wanted_outputs(request: protocol.InferRequest | None, signature: Signature) -> Wanted:
    """The outputs a v2 request asks for (None: all), each checked to exist."""
    if request is None or request.outputs is None:
        return None
    specs = {spec.name: spec for spec in signature.outputs}
    for index, output in enumerate(request.outputs):
        if specs and output.name not in specs:
            raise InvalidInputError(
                f"The model has no output '{output.name}'.",
                field="outputs",
                value=output.name,
                fix=f'Request one of {list(specs)}, or leave out "outputs" for all.',
            )
        spec = specs.get(output.name)
        if output.classification is not None and spec is not None:
            _check_classification(spec, output.classification, f"outputs[{index}]")
    return frozenset(output.name for output in request.outputs)


def _check_classification(spec: TensorSpec, count: int, where: str) -> None:
    """Refuse, before the model runs, a classification the output's signature cannot give."""
    field = f"{where}.parameters.classification"
    if spec.datatype in ("BYTES", "BOOL") or spec.shape == [-1]:  # [-1]: one value per row
        raise InvalidInputError(
            f"Output '{spec.name}' is {spec.datatype}{spec.shape}, not class scores to classify "
            "(a row of scores per input row).",
            field=field,
            value=count,
            fix=f"Ask for '{spec.name}' without classification.",
        )
    check_count(spec.name, count, spec.shape[-1], field)
