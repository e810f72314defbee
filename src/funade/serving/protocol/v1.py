"""KServe's v1 protocol (TensorFlow Serving's REST format): instances in, predictions out.

A request is ``{"instances": [...]}``, a list of rows (each a number, string or list, or an
object naming each input of a multi-input model), or ``{"inputs": ...}``, columnar: a list for a
single-input model or an object mapping each input name to its list. Binary values may be given
as ``{"b64": "..."}``, as in TensorFlow Serving.

The response is ``{"predictions": [...]}``, one entry per row: the row of the single (or
``primary``) output, or, for several outputs and no ``primary``, an object ``{name: row}`` per
row, which is what TensorFlow Serving's row format answers for a model with several outputs.
Bytes that are not UTF-8 are written as ``{"b64": "..."}``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from funade.errors import InvalidInputError
from funade.registry.tensors import datatype_of

__all__ = ["V1Request", "decode_v1_request", "encode_v1_response", "v1_to_tensors"]

Tensors = dict[str, npt.NDArray[Any]]


@dataclass(slots=True)
class V1Request:
    """A decoded v1 request: exactly one of ``instances`` (rows) and ``inputs`` (columns)."""

    instances: Any | None
    inputs: Any | None


def decode_v1_request(body: bytes) -> V1Request:
    """A v1 ``:predict`` body as a ``V1Request``, checking its outer shape only."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(
            f"The request body is not valid JSON: {exc}.",
            field="body",
            value=bytes(body[:80]).decode("utf-8", "replace"),
            fix='Send a JSON object like {"instances": [[1.0, 2.0], [3.0, 4.0]]}.',
        ) from None
    if not isinstance(doc, dict):
        raise InvalidInputError(
            f"The request body is a JSON {type(doc).__name__}, not an object.",
            field="body",
            value=type(doc).__name__,
            fix='Send {"instances": [...]} (rows) or {"inputs": ...} (columns).',
        )
    if ("instances" in doc) == ("inputs" in doc):
        both = "instances" in doc
        raise InvalidInputError(
            'The request has both "instances" and "inputs".'
            if both
            else f'The request has neither "instances" nor "inputs" (it has {sorted(doc)}).',
            field="body",
            value=sorted(doc),
            fix='Send rows as {"instances": [...]} or columns as {"inputs": ...}, not both.'
            if both
            else 'Send rows as {"instances": [...]} or columns as {"inputs": ...}.',
        )
    if "instances" in doc:
        instances = doc["instances"]
        if not isinstance(instances, list) or not instances:
            raise InvalidInputError(
                '"instances" must be a non-empty list of rows.',
                field="instances",
                value=instances if not isinstance(instances, list) else [],
                fix='Send {"instances": [row, ...]}, one row per prediction.',
            )
        return V1Request(instances=instances, inputs=None)
    inputs = doc["inputs"]
    if not isinstance(inputs, list | dict) or not inputs:
        raise InvalidInputError(
            '"inputs" must be a non-empty list, or an object mapping input names to lists.',
            field="inputs",
            value=inputs if not isinstance(inputs, list | dict) else type(inputs)(),
            fix='Send {"inputs": [...]} for one input, or {"inputs": {"name": [...], ...}}.',
        )
    return V1Request(instances=None, inputs=inputs)


def v1_to_tensors(request: V1Request, input_names: list[str]) -> Tensors:
    """The request's values as one array per input, in ``input_names`` order: numbers as
    int64/float64 (or bool) arrays, strings as ``object`` arrays of UTF-8 ``bytes``."""
    if request.instances is not None:
        return _from_rows(request.instances, input_names)
    inputs = request.inputs
    if isinstance(inputs, dict):
        _check_names(set(inputs), input_names, "inputs")
        return {name: _array(inputs[name], f"inputs.{name}") for name in input_names}
    _single(input_names, "inputs")
    return {input_names[0]: _array(inputs, "inputs")}


def _from_rows(rows: list[Any], input_names: list[str]) -> Tensors:
    named = [isinstance(row, dict) and not _is_b64(row) for row in rows]
    if all(named):
        for index, row in enumerate(rows):
            _check_names(set(row), input_names, f"instances[{index}]")
        return {
            name: _array([row[name] for row in rows], f"instances[*].{name}")
            for name in input_names
        }
    if any(named):
        raise InvalidInputError(
            "Some instances are objects of named inputs and some are not.",
            field=f"instances[{named.index(not named[0])}]",
            value=[type(row).__name__ for row in rows[:5]],
            fix="Send every instance in the same form.",
        )
    _single(input_names, "instances")
    return {input_names[0]: _array(rows, "instances")}


def _single(input_names: list[str], field: str) -> None:
    if len(input_names) != 1:
        example = ", ".join(f'"{name}": ...' for name in input_names)
        raise InvalidInputError(
            f"The model takes {len(input_names)} inputs ({', '.join(input_names)}), so the "
            "values must name them.",
            field=field,
            value=input_names,
            fix=f'Send {{"instances": [{{{example}}}, ...]}} or {{"inputs": {{{example}}}}}.',
        )


def _check_names(given: set[str], input_names: list[str], field: str) -> None:
    missing = [name for name in input_names if name not in given]
    unexpected = sorted(given - set(input_names))
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"lacks {', '.join(map(repr, missing))}")
        if unexpected:
            problems.append(f"has unknown {', '.join(map(repr, unexpected))}")
        raise InvalidInputError(
            f"{field} {' and '.join(problems)}.",
            field=field,
            value=sorted(given),
            fix=f"The model takes the inputs {', '.join(input_names)}; name exactly those.",
        )


def _array(value: Any, field: str) -> npt.NDArray[Any]:
    try:
        array = np.array(value)
    except ValueError:
        raise InvalidInputError(
            f"The rows of {field} have different shapes.",
            field=field,
            value="ragged lists",
            fix="Give every row the same number of values (and the same nesting).",
        ) from None
    kind = array.dtype.kind
    if kind in "biuf":
        return array
    if kind == "U" and not all(isinstance(v, str) for v in _leaves(value)):
        raise _mixed(field)
    out = np.empty(array.size, dtype=object)
    for index, leaf in enumerate(array.reshape(-1).tolist()):
        out[index] = _as_bytes(leaf, field)
    return out.reshape(array.shape)


def _as_bytes(leaf: Any, field: str) -> bytes:
    if isinstance(leaf, str):
        return leaf.encode("utf-8")
    if _is_b64(leaf):
        try:
            return base64.b64decode(leaf["b64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise InvalidInputError(
                f"{field} has a b64 value that is not base64.",
                field=field,
                value=str(leaf["b64"])[:40],
                fix='Give binary values as {"b64": "<standard base64>"}.',
            ) from None
    raise _mixed(field)


def _mixed(field: str) -> InvalidInputError:
    return InvalidInputError(
        f"{field} mixes strings with other values, or holds null or objects.",
        field=field,
        value="mixed values",
        fix='Send all numbers (or booleans), or all strings; binary values as {"b64": ...}.',
    )


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _leaves(value: Any) -> Any:
    if isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def encode_v1_response(
    outputs: Mapping[str, npt.NDArray[Any]], *, primary: str | None = None
) -> bytes:
    """``{"predictions": [...]}``: the rows of ``primary`` (or of the only output), else one
    ``{name: value}`` object per row."""
    if primary is not None or len(outputs) == 1:
        name = primary if primary is not None else next(iter(outputs))
        if name not in outputs:
            raise InvalidInputError(
                f"The model gave no output '{name}'.",
                field="outputs",
                value=name,
                fix=f"Pick one of {list(outputs)}.",
            )
        return orjson.dumps({"predictions": _rows(outputs[name], name)}, option=_NUMPY)
    columns = {name: _rows(array, name) for name, array in outputs.items()}
    counts = {name: len(_as_list(column)) for name, column in columns.items()}
    if len(set(counts.values())) > 1:
        raise InvalidInputError(
            f"The model's outputs have different numbers of rows ({counts}), so they cannot "
            "be answered row by row.",
            field="outputs",
            value=counts,
            fix="Return the same number of rows in every output, or pick a primary output.",
        )
    lists = {name: _as_list(column) for name, column in columns.items()}
    rows = [{name: lists[name][i] for name in lists} for i in range(next(iter(counts.values())))]
    return orjson.dumps({"predictions": rows})


_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def _rows(array: npt.NDArray[Any], name: str) -> Any:
    """``array`` as JSON-ready rows: numeric arrays stay arrays (orjson writes them)."""
    array = np.atleast_1d(np.asarray(array))
    datatype = datatype_of(array, name=name)
    if datatype != "BYTES":
        return np.ascontiguousarray(array.astype(array.dtype.newbyteorder("="), copy=False))
    return _texts(array.tolist())


def _texts(value: Any) -> Any:
    if isinstance(value, list):
        return [_texts(item) for item in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    return value


def _as_list(column: Any) -> list[Any]:
    return column.tolist() if isinstance(column, np.ndarray) else list(column)
