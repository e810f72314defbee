"""Tensor data as Open Inference Protocol JSON: ``data`` lists in, strings out.

``array_from_json`` turns a JSON ``data`` list (flat or nested, row-major) into an array of the
declared datatype and shape, refusing values of another kind (a float for ``INT32``, a number
for ``BOOL``, a non-string for ``BYTES``) or out of the datatype's range; nothing is coerced
across kinds. ``texts`` is the other direction for ``BYTES``: the elements as JSON strings, or
None when some are not UTF-8.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from funade.errors import InvalidInputError
from funade.registry.tensors import DATATYPES

__all__ = ["array_from_json", "json_kind", "texts"]


def array_from_json(
    data: list[Any], datatype: str, shape: list[int], name: str, field: str
) -> npt.NDArray[Any]:
    """JSON ``data`` as an array of ``datatype`` and ``shape``, refusing values of another kind
    or out of the datatype's range."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return _bytes_from_json(data, shape, count, name, field)
    target = DATATYPES[datatype]
    try:
        raw = np.array(data)
    except ValueError:  # ragged nesting: the elements still count in row-major order
        raw = np.array(list(_flatten(data)))
    if raw.size != count:
        raise InvalidInputError(
            f"Input '{name}' has shape {shape}, which holds {count} elements, but its data "
            f"has {raw.size}.",
            field=field,
            value=f"{raw.size} values",
            fix=f"Send {count} values (flat or nested, row-major), or correct the shape.",
        )
    if count == 0:
        return np.empty(shape, dtype=target)
    kind = raw.dtype.kind
    if target.kind == "b":
        if kind != "b":
            raise _wrong_kind(name, datatype, raw, field, "JSON true/false")
    elif target.kind in "iu":
        if kind in "fO":  # integers beyond int64 arrive as float64 or object arrays
            return _big_integers(data, datatype, shape, name, field, raw)
        if kind not in "iu":
            raise _wrong_kind(name, datatype, raw, field, "integers")
        if raw.dtype != target:
            _check_range(raw, datatype, name, field)
    elif kind not in "iuf":
        raise _wrong_kind(name, datatype, raw, field, "numbers")
    elif raw.dtype != target:
        with np.errstate(over="raise"):
            try:
                raw = raw.astype(target)
            except FloatingPointError:
                raise _out_of_range(name, datatype, raw, field) from None
    return raw.astype(target, copy=False).reshape(shape)


def _bytes_from_json(
    data: list[Any], shape: list[int], count: int, name: str, field: str
) -> npt.NDArray[Any]:
    flat = data if all(isinstance(v, str) for v in data) else list(_flatten(data))
    if len(flat) != count:
        raise InvalidInputError(
            f"Input '{name}' has shape {shape}, which holds {count} elements, but its data "
            f"has {len(flat)}.",
            field=field,
            value=f"{len(flat)} values",
            fix=f"Send {count} strings (flat or nested, row-major), or correct the shape.",
        )
    out = np.empty(count, dtype=object)
    for index, value in enumerate(flat):
        if not isinstance(value, str):
            raise InvalidInputError(
                f"Input '{name}' is BYTES, but element {index} of its data is a JSON "
                f"{json_kind(value)} ({value!r}).",
                field=field,
                value=repr(value),
                fix="Send BYTES data as JSON strings (or as binary data for raw bytes).",
            )
        out[index] = value.encode("utf-8")
    return out.reshape(shape)


def _big_integers(
    data: list[Any],
    datatype: str,
    shape: list[int],
    name: str,
    field: str,
    raw: npt.NDArray[Any],
) -> npt.NDArray[Any]:
    flat = list(_flatten(data))
    if not all(type(v) is int for v in flat):
        raise _wrong_kind(name, datatype, raw, field, "integers")
    try:
        return np.array(flat, dtype=DATATYPES[datatype]).reshape(shape)
    except OverflowError:
        raise _out_of_range(name, datatype, np.array(flat, dtype=object), field) from None


def _check_range(raw: npt.NDArray[Any], datatype: str, name: str, field: str) -> None:
    info = np.iinfo(DATATYPES[datatype])
    if raw.min() < info.min or raw.max() > info.max:
        raise _out_of_range(name, datatype, raw, field)


def _out_of_range(name: str, datatype: str, raw: npt.NDArray[Any], field: str) -> InvalidInputError:
    target = DATATYPES[datatype]
    info: Any = np.iinfo(target) if target.kind in "iu" else np.finfo(target)
    low, high = (info.min, info.max) if target.kind in "iu" else (-info.max, info.max)
    return InvalidInputError(
        f"Input '{name}' has values from {raw.min()} to {raw.max()}, outside the range of "
        f"{datatype} ({low} to {high}).",
        field=field,
        value=f"{raw.min()}..{raw.max()}",
        fix=f"Send values that fit in {datatype}, or declare a wider datatype.",
    )


def _wrong_kind(
    name: str, datatype: str, raw: npt.NDArray[Any], field: str, wanted: str
) -> InvalidInputError:
    found = {
        "b": "booleans",
        "i": "integers",
        "u": "integers",
        "f": "non-integer numbers",
        "U": "strings",
    }.get(raw.dtype.kind, "mixed values (e.g. null, objects, or strings among numbers)")
    return InvalidInputError(
        f"Input '{name}' is {datatype}, but its data holds {found}.",
        field=field,
        value=found,
        fix=f"Send {datatype} data as {wanted}.",
    )


def _flatten(data: list[Any]) -> Any:
    for item in data:
        if isinstance(item, list):
            yield from _flatten(item)
        else:
            yield item


def texts(array: npt.NDArray[Any], name: str) -> list[str] | None:
    """A ``BYTES`` output's elements as JSON strings, or None if some bytes are not UTF-8."""
    out: list[str] = []
    for item in array.reshape(-1).tolist():
        if isinstance(item, bytes):
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError:
                return None
        elif not isinstance(item, str):
            raise InvalidInputError(
                f"Output '{name}' is BYTES, but holds a {type(item).__name__} ({item!r}).",
                field=f"outputs.{name}",
                value=repr(item),
                fix="Return strings or bytes for BYTES outputs.",
            )
        out.append(item)
    return out


def json_kind(value: Any) -> str:
    """The JSON type of a parsed value, for messages ("a JSON string, not an object")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__
