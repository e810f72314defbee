"""Open Inference Protocol v2 requests decoded: an inference body (JSON, or JSON followed by
Triton's binary tensor data) as an ``InferRequest`` of numpy arrays, each field checked, every
refusal an ``InvalidInputError`` naming the field (``v2`` lists the choices the spec leaves)."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from funade.errors import InvalidInputError
from funade.registry.tensors import DATATYPES
from funade.serving.protocol.binary import Buffer, tensor_from_bytes
from funade.serving.protocol.jsondata import array_from_json, json_kind
from funade.serving.protocol.types import InferInput, InferRequest, RequestedOutput

__all__ = ["decode_infer_request"]

_DATATYPE_LIST = ", ".join(DATATYPES)
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSUPPORTED = {
    "shared_memory_region": "shared memory",
    "classification": "classification of an input (only outputs are classified)",
}


def decode_infer_request(
    body: Buffer, *, header_length: int | None = None, doc: Any = None
) -> InferRequest:
    """An inference request body as an ``InferRequest``. With ``header_length`` (the
    ``Inference-Header-Content-Length`` header), ``body[:header_length]`` is the JSON and the
    rest is binary input data, taken in input order by each input's ``binary_data_size``.
    ``doc``: a JSON body (no ``header_length``) already parsed by ``orjson``, not parsed
    again."""
    view = memoryview(body)
    if header_length is None:
        header, rest = view, view[len(view) :]
    elif not 0 <= header_length <= len(view):
        raise InvalidInputError(
            f"Inference-Header-Content-Length is {header_length}, but the body has "
            f"{len(view)} bytes.",
            field="Inference-Header-Content-Length",
            value=header_length,
            fix="Give the length of the JSON part of the body, at most the body's length.",
        )
    else:
        header, rest = view[:header_length], view[header_length:]
    if doc is None or header_length is not None:
        doc = _load_json(header)
    if not isinstance(doc, dict):
        raise InvalidInputError(
            f"The request body is a JSON {json_kind(doc)}, not an object.",
            field="body",
            value=json_kind(doc),
            fix='Send an object like {"inputs": [{"name", "datatype", "shape", "data"}]}.',
        )
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list):
        raise InvalidInputError(
            'The request has no "inputs" list.'
            if raw_inputs is None
            else f'"inputs" is a JSON {json_kind(raw_inputs)}, not a list.',
            field="inputs",
            value=json_kind(raw_inputs),
            fix='Send "inputs": [{"name", "datatype", "shape", "data"}, ...].',
        )
    parameters = _parameters(doc.get("parameters"), "parameters")
    binary_output = _flag(parameters.get("binary_data_output"), "parameters.binary_data_output")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInputError(
            f'The request "id" is a JSON {json_kind(request_id)}, not a string.',
            field="id",
            value=request_id,
            fix='Give "id" as a string, or leave it out.',
        )
    inputs: list[InferInput] = []
    seen: dict[str, int] = {}
    offset = 0
    for index, item in enumerate(raw_inputs):
        infer_input, offset = _input(index, item, rest, offset, header_length is not None)
        if infer_input.name in seen:
            raise InvalidInputError(
                f"Input '{infer_input.name}' is given twice (inputs[{seen[infer_input.name]}] "
                f"and inputs[{index}]).",
                field=f"inputs[{index}].name",
                value=infer_input.name,
                fix="Send each input once.",
            )
        seen[infer_input.name] = index
        inputs.append(infer_input)
    if offset != len(rest):
        raise InvalidInputError(
            f"The body has {len(rest) - offset} bytes after the JSON that no input's "
            f"binary_data_size accounts for ({offset} of {len(rest)} used).",
            field="body",
            value=len(rest),
            fix="Set Inference-Header-Content-Length to the JSON's length, and binary_data_size "
            "on each binary input to its byte count.",
        )
    return InferRequest(
        id=request_id,
        inputs=inputs,
        outputs=_requested_outputs(doc.get("outputs")),
        parameters=parameters,
        binary_output=binary_output,
    )


def _load_json(data: memoryview) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:  # the standard library also reads NaN and Infinity, which tritonclient writes
            doc = json.loads(bytes(data))
        except (ValueError, RecursionError):  # RecursionError: nested past Python's stack
            pass
        else:
            _refuse_surrogates(doc)  # which it reads too, but no UTF-8 text holds
            return doc
        raise InvalidInputError(
            f"The request body is not valid JSON: {exc}.",
            field="body",
            value=bytes(data[:80]).decode("utf-8", "replace"),
            fix="Send a JSON object; with binary data after it, set "
            "Inference-Header-Content-Length to the JSON's length in bytes.",
        ) from None


def _refuse_surrogates(doc: Any) -> None:
    """Refuse a lone UTF-16 surrogate (``"\\ud800"``) anywhere in ``doc``, naming where: it
    cannot be encoded as UTF-8, so no name, id or BYTES element may hold one. Only bodies orjson
    refused get here (it refuses surrogates itself), so the hot path never walks a body."""
    stack: list[tuple[Any, str]] = [(doc, "body")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    raise _surrogate(where)
                stack.append((item, f"{where}.{key}" if where != "body" else key))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(value))
        elif isinstance(value, str) and _SURROGATE.search(value):
            raise _surrogate(where)


def _surrogate(where: str) -> InvalidInputError:
    return InvalidInputError(
        f"{where} holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text.",
        field=where,
        value=None,
        fix="Send valid Unicode (a surrogate only as half of an escaped pair), or raw bytes as "
        "binary data.",
    )


def _shown(value: Any) -> str:
    """A value for a message: short, whatever the client sent."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _input(
    index: int, item: Any, rest: memoryview, offset: int, has_header: bool
) -> tuple[InferInput, int]:
    where = f"inputs[{index}]"
    if not isinstance(item, dict):
        raise InvalidInputError(
            f"{where} is a JSON {json_kind(item)}, not an object.",
            field=where,
            value=json_kind(item),
            fix='Give each input as {"name", "datatype", "shape", "data"}.',
        )
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInputError(
            f"{where} has no name.",
            field=f"{where}.name",
            value=name,
            fix='Give each input a "name" string.',
        )
    datatype = item.get("datatype")
    if type(datatype) is not str or datatype not in DATATYPES:  # an object or a list: unhashable
        raise InvalidInputError(
            f"Input '{name}' has datatype {_shown(datatype)}, which is not an Open Inference "
            "Protocol datatype.",
            field=f"{where}.datatype",
            value=datatype if type(datatype) is str else json_kind(datatype),
            fix=f"Use one of: {_DATATYPE_LIST}.",
        )
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(
        type(d) is int and d >= 0
        for d in shape  # bools are ints, but not sizes
    ):
        raise InvalidInputError(
            f"Input '{name}' has shape {shape!r}, which is not a list of sizes.",
            field=f"{where}.shape",
            value=shape,
            fix='Give "shape" as a list of non-negative integers, e.g. [2, 3].',
        )
    parameters = _parameters(item.get("parameters"), f"{where}.parameters")
    _refuse_unsupported(parameters, f"{where}.parameters")
    size = parameters.get("binary_data_size")
    data = item.get("data")
    if size is None:
        if not isinstance(data, list):
            raise InvalidInputError(
                f"Input '{name}' has no \"data\" list"
                + ("." if data is None else f" (it is a JSON {json_kind(data)})."),
                field=f"{where}.data",
                value=json_kind(data),
                fix='Give the values as "data": [...] (flat or nested, row-major), or send them '
                "as binary data with the binary_data_size parameter.",
            )
        try:
            array = array_from_json(data, datatype, shape, name, f"{where}.data")
        except (ValueError, OverflowError) as exc:  # numpy refused the shape itself
            raise _unshapeable(name, shape, where, exc) from None
        return InferInput(name, datatype, shape, array, parameters), offset
    if type(size) is not int or size < 0:
        raise InvalidInputError(
            f"Input '{name}' has binary_data_size {size!r}, which is not a byte count.",
            field=f"{where}.parameters.binary_data_size",
            value=size,
            fix="Give binary_data_size as a non-negative integer.",
        )
    if data is not None:
        raise InvalidInputError(
            f"Input '{name}' has both \"data\" and binary_data_size.",
            field=f"{where}.data",
            value=json_kind(data),
            fix='Send the values either in "data" or as binary data, not both.',
        )
    if size and not has_header:
        raise InvalidInputError(
            f"Input '{name}' declares {size} bytes of binary data, but the request has no "
            "Inference-Header-Content-Length header, so its body is all JSON.",
            field=f"{where}.parameters.binary_data_size",
            value=size,
            fix="Send the Inference-Header-Content-Length header with the JSON's length, and "
            "the binary data after the JSON.",
        )
    if offset + size > len(rest):
        raise InvalidInputError(
            f"Input '{name}' declares {size} bytes of binary data, but only "
            f"{len(rest) - offset} remain after the JSON and the inputs before it.",
            field=f"{where}.parameters.binary_data_size",
            value=size,
            fix="Append each binary input's bytes after the JSON, in input order, or correct "
            "binary_data_size.",
        )
    try:
        array = tensor_from_bytes(
            rest[offset : offset + size],
            datatype,
            shape,
            field=f"{where}.parameters.binary_data_size",
            name=name,
        )
    except (ValueError, OverflowError) as exc:  # numpy refused the shape itself
        raise _unshapeable(name, shape, where, exc) from None
    return InferInput(name, datatype, shape, array, parameters), offset + size


def _unshapeable(name: str, shape: list[int], where: str, exc: Exception) -> InvalidInputError:
    """A shape no array can have: more than 64 dimensions, or a size past 64 bits (with a 0
    elsewhere, so the element count still matched)."""
    return InvalidInputError(
        f"Input '{name}' has shape {_shown(shape)}, which no array can have ({exc}).",
        field=f"{where}.shape",
        value=_shown(shape),
        fix="Give at most 64 dimensions, each a size below 2**63.",
    )


def _requested_outputs(raw: Any) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidInputError(
            f'"outputs" is a JSON {json_kind(raw)}, not a list.',
            field="outputs",
            value=json_kind(raw),
            fix='Send "outputs": [{"name": ...}, ...], or leave it out for every output.',
        )
    outputs: list[RequestedOutput] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = f"outputs[{index}]"
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise InvalidInputError(
                f"{where} has no name.",
                field=f"{where}.name",
                value=name if isinstance(item, dict) else json_kind(item),
                fix='Give each requested output as {"name": ..., "parameters": {...}}.',
            )
        if name in seen:
            raise InvalidInputError(
                f"Output '{name}' is requested twice.",
                field=f"{where}.name",
                value=name,
                fix="Request each output once.",
            )
        seen.add(name)
        parameters = _parameters(item.get("parameters"), f"{where}.parameters")
        _refuse_unsupported(parameters, f"{where}.parameters", allowed=("classification",))
        binary = parameters.get("binary_data")
        if binary is not None:
            binary = _flag(binary, f"{where}.parameters.binary_data")
        count = parameters.get("classification")
        if count is not None and (type(count) is not int or count < 1):
            raise InvalidInputError(
                f"Output '{name}' asks for classification {count!r}, which is not a count of "
                "classes.",
                field=f"{where}.parameters.classification",
                value=count,
                fix="Give classification as a positive integer: how many of the top classes to "
                "return.",
            )
        outputs.append(
            RequestedOutput(name=name, binary=binary, parameters=parameters, classification=count)
        )
    return outputs


def _parameters(raw: Any, field: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInputError(
            f'"{field}" is a JSON {json_kind(raw)}, not an object.',
            field=field,
            value=json_kind(raw),
            fix='Give parameters as an object, e.g. {"binary_data_output": true}.',
        )
    return raw


def _flag(raw: Any, field: str) -> bool:
    if raw is None:
        return False
    if not isinstance(raw, bool):
        raise InvalidInputError(
            f"{field} is {raw!r}, not true or false.",
            field=field,
            value=raw,
            fix="Give it as JSON true or false.",
        )
    return raw


def _refuse_unsupported(
    parameters: dict[str, Any], field: str, allowed: tuple[str, ...] = ()
) -> None:
    for key, feature in _UNSUPPORTED.items():
        if key in parameters and key not in allowed:
            raise InvalidInputError(
                f"This server does not support {feature} ('{key}' in {field}).",
                field=f"{field}.{key}",
                value=parameters[key],
                fix=f"Leave out '{key}' and send or receive the tensor itself.",
            )
