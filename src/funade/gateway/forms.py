"""The request forms the gateway can merge: which requests of each form stack together, how a
batch of them becomes one request, and how its answer is cut back into one per request.

- **v2 JSON** (``POST /v2/models/{name}/infer``): flat ``data``, no ``parameters``, outputs asked
  for by name only (or not at all);
- **v2 binary** (the binary tensor extension: a JSON header of ``Inference-Header-Content-Length``
  bytes, then each input's raw bytes): fixed-size datatypes, outputs asked for by name with at
  most a ``binary_data`` flag, and at most a ``binary_data_output`` parameter;
- **v1** (``POST /v1/models/{name}:predict``): ``instances`` (rows) or ``inputs`` (a column, or an
  object of named columns).

A request's key holds what makes it stack into exactly what it would have been alone: its
inputs' names, datatypes and shapes past the first axis (for v1, the JSON structure and value
types of every row, so the replica infers the same dtypes) and the outputs asked for. Pure
functions over bytes; ``merge.py`` schedules the calls.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson

MAX_MERGE_BODY = 16 * 1024
"""JSON bodies larger than this go alone, unparsed: merging helps small requests, and parsing a
large JSON body (64 rows of 20 features is ~25 KiB) and cutting its answer costs the gateway
more than sharing the replica's call saves (benchmarks/gateway/cpu.py: a 64-row v1 body merged
cost the gateway 1.8x its CPU, and saved the replica a fifth)."""

MAX_ROWS = 64
"""A JSON request with this many rows or more goes alone, at once."""

MAX_MERGE_BINARY_BODY = 1024 * 1024
"""Binary-tensor bodies up to this size may merge: only their JSON header is parsed, and their
tensors are joined and cut as bytes, so a 64-row body costs the gateway hardly more to merge
than a 1-row one while its share of the replica's call costs half of going alone (64 rows of
20 FP64 features: 10 KiB). How many rows one merged call holds is the revision's
``max_batch_size`` (the gateway's ``Merger``)."""

HEADER_LENGTH = b"inference-header-content-length"

Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, Headers, bytes, int]
"""(status, headers, body, revision) from the replica."""
Send = Callable[[bytes, list[tuple[str, str]]], Awaitable[Answer]]
"""Forwards a body to a replica, with headers that replace the request's own of the same name."""

ITEM_SIZES = {
    "BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2, "BF16": 2,
    "UINT32": 4, "INT32": 4, "FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8,
}  # fmt: skip
"""Bytes per element of the binary datatypes that can be cut by rows (not ``BYTES``)."""


@dataclass(frozen=True)
class Request:
    """One mergeable request: its body as it came, parsed, its rows and its form."""

    body: bytes
    doc: dict[str, Any]
    """The parsed body (for a binary request, its JSON header)."""
    rows: int
    form: str = "v2"
    """``v2`` (JSON), ``v2-binary`` or ``v1``."""
    parts: tuple[bytes, ...] = ()
    """A binary request's raw bytes, one piece per input."""


Parsed = tuple[Request, tuple[Any, ...]]
"""A mergeable request and the key it merges under."""


# v2 JSON -----------------------------------------------------------------------------------


def mergeable(body: bytes) -> tuple[dict[str, Any], int, tuple[Any, ...]] | None:
    """A v2 JSON request parsed: the document, its rows and the key it merges under, or None
    if it goes alone."""
    if len(body) > MAX_MERGE_BODY:
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or set(doc) - {"inputs", "outputs", "id"}:
        return None
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        return None
    rows = None
    shapes = []
    for tensor in inputs:
        if not isinstance(tensor, dict) or set(tensor) != {"name", "datatype", "shape", "data"}:
            return None
        shape, data = tensor["shape"], tensor["data"]
        if (
            not _is_shape(shape)
            or not isinstance(data, list)
            or (data and isinstance(data[0], list))
            or len(data) != math.prod(shape)
            or (rows is not None and shape[0] != rows)
        ):
            return None
        rows = shape[0]
        shapes.append((tensor["name"], tensor["datatype"], tuple(shape[1:])))
    outputs = doc.get("outputs")
    wanted: tuple[str, ...] | None = None
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and set(o) == {"name"} for o in outputs
        ):
            return None
        wanted = tuple(str(o["name"]) for o in outputs)
    if not rows or rows >= MAX_ROWS:
        return None
    return doc, rows, (tuple(shapes), wanted)


def stack(batch: list[Request]) -> bytes:
    """One v2 JSON request whose inputs are the batch's, stacked along the first axis."""
    first = batch[0].doc
    inputs = []
    for index, tensor in enumerate(first["inputs"]):
        data: list[Any] = []
        for request in batch:
            data += request.doc["inputs"][index]["data"]
        shape = [sum(r.rows for r in batch), *tensor["shape"][1:]]
        inputs.append({**tensor, "shape": shape, "data": data})
    merged: dict[str, Any] = {"inputs": inputs}
    if "outputs" in first:
        merged["outputs"] = first["outputs"]
    return orjson.dumps(merged)


def split(payload: bytes, batch: list[Request]) -> list[bytes] | None:
    """A merged v2 JSON answer cut into one answer per request, or None if it cannot be."""
    doc = _object(payload)
    if doc is None or set(doc) - {"model_name", "model_version", "id", "outputs"}:
        return None
    cut = _cut_outputs(doc.get("outputs"), batch, b"")
    if cut is None:
        return None
    return [orjson.dumps(_answer(doc, request, outputs)) for request, (outputs, _) in cut]


# v2 binary ---------------------------------------------------------------------------------


def mergeable_binary(body: bytes, header_length: bytes) -> Parsed | None:
    """A request with the binary tensor extension parsed, or None if it goes alone."""
    if len(body) > MAX_MERGE_BINARY_BODY or not header_length.isdigit():
        return None
    length = int(header_length)
    doc = _object(body[:length]) if 0 < length <= len(body) else None
    if doc is None or set(doc) - {"inputs", "outputs", "id", "parameters"}:
        return None
    parameters = doc.get("parameters", {})
    if not isinstance(parameters, dict) or set(parameters) - {"binary_data_output"}:
        return None
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        return None
    rows = None
    shapes = []
    parts = []
    offset = length
    for tensor in inputs:
        if not isinstance(tensor, dict) or set(tensor) != {
            "name",
            "datatype",
            "shape",
            "parameters",
        }:
            return None
        shape, datatype, size = tensor["shape"], tensor["datatype"], tensor["parameters"]
        if (
            not _is_shape(shape)
            or datatype not in ITEM_SIZES
            or not isinstance(size, dict)
            or set(size) != {"binary_data_size"}
            or size["binary_data_size"] != math.prod(shape) * ITEM_SIZES[datatype]
            or (rows is not None and shape[0] != rows)
        ):
            return None
        rows = shape[0]
        shapes.append((tensor["name"], datatype, tuple(shape[1:])))
        end = offset + size["binary_data_size"]
        parts.append(body[offset:end])
        offset = end
    if offset != len(body) or not rows:
        return None
    wanted = _binary_outputs(doc.get("outputs"))
    if wanted is None:
        return None
    key = ("v2-binary", tuple(shapes), wanted, orjson.dumps(parameters))
    return Request(body, doc, rows, "v2-binary", tuple(parts)), key


def _binary_outputs(outputs: Any) -> tuple[Any, ...] | None:
    """The outputs asked for, as a key: by name, with a ``binary_data`` flag at most."""
    if outputs is None:
        return ()
    if not isinstance(outputs, list):
        return None
    wanted = []
    for output in outputs:
        if not isinstance(output, dict) or set(output) - {"name", "parameters"}:
            return None
        parameters = output.get("parameters", {})
        if not isinstance(parameters, dict) or set(parameters) - {"binary_data"}:
            return None
        wanted.append((output.get("name"), orjson.dumps(parameters)))
    return tuple(wanted)


def _stack_binary(batch: list[Request]) -> tuple[bytes, list[tuple[str, str]]]:
    first = batch[0].doc
    total = sum(r.rows for r in batch)
    inputs = []
    pieces = []
    for index, tensor in enumerate(first["inputs"]):
        data = [request.parts[index] for request in batch]
        pieces += data
        size = {"binary_data_size": sum(len(d) for d in data)}
        inputs.append({**tensor, "shape": [total, *tensor["shape"][1:]], "parameters": size})
    merged: dict[str, Any] = {"inputs": inputs}
    merged.update({k: first[k] for k in ("outputs", "parameters") if k in first})
    header = orjson.dumps(merged)
    return header + b"".join(pieces), [(HEADER_LENGTH.decode(), str(len(header)))]


def _split_binary(payload: bytes, headers: Headers, batch: list[Request]) -> list[Cut] | None:
    length_value = dict(headers).get(HEADER_LENGTH)
    length = int(length_value) if length_value is not None and length_value.isdigit() else None
    doc = _object(payload if length is None else payload[:length])
    if doc is None or set(doc) - {"model_name", "model_version", "id", "outputs", "parameters"}:
        return None
    cut = _cut_outputs(doc.get("outputs"), batch, payload[length:] if length else b"")
    if cut is None:
        return None
    answers: list[Cut] = []
    for request, (outputs, binary) in cut:
        head = orjson.dumps(_answer(doc, request, outputs))
        if length is None:
            answers.append((head, []))
        else:
            answers.append((head + binary, [(HEADER_LENGTH, str(len(head)).encode())]))
    return answers


# v1 ----------------------------------------------------------------------------------------


def mergeable_v1(body: bytes) -> Parsed | None:
    """A v1 ``:predict`` request parsed, or None if it goes alone: every row must have the same
    JSON structure and value types (so the stacked rows decode as each request's would)."""
    if len(body) > MAX_MERGE_BODY:
        return None
    doc = _object(body)
    if doc is None or len(doc) != 1:
        return None
    ((field_name, values),) = doc.items()
    if field_name not in ("instances", "inputs"):
        return None
    if isinstance(values, dict):  # named columns: {"name": [rows...], ...}
        if field_name != "inputs" or not values:
            return None
        columns = []
        rows = None
        for name in sorted(values):
            column = values[name]
            if not isinstance(column, list) or len(column) >= MAX_ROWS:
                return None
            kind = _rows_kind(column)
            if kind is None or (rows is not None and len(column) != rows):
                return None
            rows = len(column)
            columns.append((name, kind))
        assert rows is not None
        return Request(body, doc, rows, "v1"), ("v1", field_name, tuple(columns))
    if not isinstance(values, list) or len(values) >= MAX_ROWS:  # before looking at each row
        return None
    kind = _rows_kind(values)
    if kind is None:
        return None
    return Request(body, doc, len(values), "v1"), ("v1", field_name, kind)


def _rows_kind(rows: Any) -> Any:
    """The structure every row of ``rows`` shares, or None if they differ or hold nulls."""
    if not isinstance(rows, list) or not rows:
        return None
    kind = _kind(rows[0])
    if kind is None or any(_kind(row) != kind for row in rows[1:]):
        return None
    return kind


def _kind(value: Any) -> Any:
    """A value's JSON structure and leaf types: 'f', 'i', 'b', 's', 'b64', tuples for lists,
    ('d', ...) for objects; None for nulls and anything else."""
    kind = type(value)
    if kind is float:
        return "f"
    if kind is int:
        return "i"
    if kind is bool:
        return "b"
    if kind is str:
        return "s"
    if kind is list:
        kinds = tuple(_kind(v) for v in value)
        return None if None in kinds else kinds
    if kind is dict:
        if set(value) == {"b64"}:
            return "b64" if isinstance(value["b64"], str) else None
        kinds = tuple((k, _kind(v)) for k, v in sorted(value.items()))
        return None if any(k is None for _, k in kinds) else ("d", kinds)
    return None


def _stack_v1(batch: list[Request]) -> bytes:
    ((field_name, first),) = batch[0].doc.items()
    if isinstance(first, dict):
        return orjson.dumps(
            {
                field_name: {
                    name: [v for r in batch for v in r.doc[field_name][name]] for name in first
                }
            }
        )
    return orjson.dumps({field_name: [v for r in batch for v in r.doc[field_name]]})


def _split_v1(payload: bytes, batch: list[Request]) -> list[bytes] | None:
    doc = _object(payload)
    predictions = doc.get("predictions") if doc is not None and len(doc) == 1 else None
    if not isinstance(predictions, list) or len(predictions) != sum(r.rows for r in batch):
        return None
    answers = []
    offset = 0
    for request in batch:
        answers.append(orjson.dumps({"predictions": predictions[offset : offset + request.rows]}))
        offset += request.rows
    return answers


# Shared ------------------------------------------------------------------------------------

Cut = tuple[bytes, Headers]
"""One request's answer body, and the headers that replace the merged answer's."""


def stack_any(batch: list[Request]) -> tuple[bytes, list[tuple[str, str]]]:
    """The merged body of a batch of one form, and the headers it needs."""
    form = batch[0].form
    if form == "v2-binary":
        return _stack_binary(batch)
    return (_stack_v1(batch) if form == "v1" else stack(batch)), []


def split_any(payload: bytes, headers: Headers, batch: list[Request]) -> list[Cut] | None:
    """The merged answer cut into one per request, or None if it cannot be."""
    form = batch[0].form
    if form == "v2-binary":
        return _split_binary(payload, headers, batch)
    answers = _split_v1(payload, batch) if form == "v1" else split(payload, batch)
    return None if answers is None else [(a, []) for a in answers]


def _object(raw: bytes) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _is_shape(shape: Any) -> TypeGuard[list[int]]:
    return isinstance(shape, list) and bool(shape) and all(type(n) is int and n >= 0 for n in shape)


def _answer(doc: dict[str, Any], request: Request, outputs: list[Any]) -> dict[str, Any]:
    answer: dict[str, Any] = {k: doc[k] for k in ("model_name", "model_version") if k in doc}
    answer["outputs"] = outputs
    if "parameters" in doc:
        answer["parameters"] = doc["parameters"]
    if "id" in request.doc:
        answer["id"] = request.doc["id"]
    return answer


def _cut_outputs(
    outputs: Any, batch: list[Request], binary: bytes
) -> list[tuple[Request, tuple[list[Any], bytes]]] | None:
    """Each request's outputs (JSON ``data`` cut by rows, or its share of ``binary``, which
    holds the outputs with ``binary_data_size`` in order), or None if one cannot be cut."""
    if not isinstance(outputs, list):
        return None
    total = sum(r.rows for r in batch)
    parts: list[list[dict[str, Any]]] = [[] for _ in batch]
    pieces: list[list[bytes]] = [[] for _ in batch]
    offset_bytes = 0
    for output in outputs:
        if not isinstance(output, dict):
            return None
        shape = output.get("shape")
        parameters = output.get("parameters")
        if not _is_shape(shape) or shape[0] != total or not total:
            return None
        if parameters is not None:  # binary: its bytes follow the header, in output order
            if (
                set(output) != {"name", "datatype", "shape", "parameters"}
                or not isinstance(parameters, dict)
                or set(parameters) != {"binary_data_size"}
            ):
                return None
            size = parameters["binary_data_size"]
            if not isinstance(size, int) or size % total or offset_bytes + size > len(binary):
                return None
            per_row = size // total
            start = offset_bytes
            for index, request in enumerate(batch):
                piece = binary[start : start + request.rows * per_row]
                pieces[index].append(piece)
                size_of = {"binary_data_size": len(piece)}
                shape_of = [request.rows, *shape[1:]]
                parts[index].append({**output, "shape": shape_of, "parameters": size_of})
                start += request.rows * per_row
            offset_bytes += size
            continue
        data = output.get("data")
        if (
            set(output) != {"name", "datatype", "shape", "data"}
            or not isinstance(data, list)
            or (data and isinstance(data[0], list))
        ):
            return None
        per_row = math.prod(shape[1:])
        if len(data) != total * per_row:
            return None
        offset = 0
        for index, request in enumerate(batch):
            piece_data = data[offset * per_row : (offset + request.rows) * per_row]
            parts[index].append({**output, "shape": [request.rows, *shape[1:]], "data": piece_data})
            offset += request.rows
    if offset_bytes != len(binary):
        return None
    return [
        (request, (part, b"".join(piece)))
        for request, part, piece in zip(batch, parts, pieces, strict=True)
    ]
