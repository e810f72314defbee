"""Tensors: numpy arrays named and typed the way the Open Inference Protocol (OIP) names them.

A tensor in OIP JSON is ``{"name", "datatype", "shape", "data"}`` with ``data`` flattened in
row-major order. Strings are ``BYTES`` tensors, held in memory as numpy ``object`` arrays of
``str`` (or ``bytes``) and written to JSON as ``str``. ``as_tensors`` turns what a person passes
to ``predict`` (an array, a list, a DataFrame, a dict of arrays) into named tensors.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from typing import cast as typing_cast

import numpy as np
import numpy.typing as npt

from funade.errors import InvalidInputError

Tensors = dict[str, npt.NDArray[Any]]
InputFormat = Literal["tensor", "columns", "tensors"]
Datatype = Literal[
    "BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip

DEFAULT_INPUT_NAME = "input"

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_BY_DTYPE = {dtype: name for name, dtype in DATATYPES.items() if name != "BYTES"}


def numpy_dtype(datatype: str) -> np.dtype[Any]:
    """The numpy dtype that holds an OIP ``datatype`` (``BYTES`` → ``object``)."""
    try:
        return DATATYPES[datatype]
    except KeyError:
        raise InvalidInputError(
            f"'{datatype}' is not an Open Inference Protocol datatype.",
            field="datatype",
            value=datatype,
            fix=f"Use one of: {', '.join(DATATYPES)}.",
        ) from None


def datatype_of(array: npt.NDArray[Any], *, name: str = "tensor") -> Datatype:
    """The OIP datatype of ``array``; strings and bytes (also in object arrays) are ``BYTES``."""
    if array.dtype in _BY_DTYPE:
        return typing_cast(Datatype, _BY_DTYPE[array.dtype])
    if array.dtype.kind in "US":
        return "BYTES"
    if array.dtype.kind == "O":
        bad = next((v for v in array.flat if not isinstance(v, str | bytes)), None)
        if bad is None:
            return "BYTES"
        raise InvalidInputError(
            f"'{name}' holds Python objects ({type(bad).__name__} {bad!r}); only numbers, "
            "booleans and strings can be sent as tensors.",
            field=name,
            value=f"object array containing {type(bad).__name__}",
            fix="Convert it to a numeric or string array first (missing strings: fill them).",
        )
    raise InvalidInputError(
        f"'{name}' has dtype {array.dtype}, which has no Open Inference Protocol datatype.",
        field=name,
        value=str(array.dtype),
        fix="Convert it to numbers, booleans or strings first, e.g. .astype('float64') or "
        ".astype(str).",
    )


def normalize(value: Any, *, name: str = "tensor") -> npt.NDArray[Any]:
    """``value`` as an array with an OIP datatype: 0-d becomes 1-d, str/bytes become objects."""
    array = np.atleast_1d(np.asarray(value))
    datatype_of(array, name=name)
    if array.dtype.kind in "US":
        array = array.astype(object)
    return array


def cast(array: npt.NDArray[Any], datatype: str, *, name: str) -> npt.NDArray[Any]:
    """``array`` converted to ``datatype`` if no value changes kind (int → float is fine,
    float → int, str → number or a value out of range is refused)."""
    target = numpy_dtype(datatype)
    if array.size == 0:
        return array.astype(target)
    given = datatype_of(array, name=name)
    if given == datatype:
        return array.astype(object, copy=False) if datatype == "BYTES" else array
    refused = InvalidInputError(
        f"Input '{name}' has datatype {given}, but the model expects {datatype}.",
        field=name,
        value=f"{given} array",
        fix=f"Pass {datatype} values ({_describe(target)}).",
    )
    kind = array.dtype.kind
    if not ((target.kind in "iu" and kind in "iu") or (target.kind == "f" and kind in "iuf")):
        raise refused  # strings, booleans, or floats into integers
    if target.kind in "iu":
        info = np.iinfo(target)
        low, high = array.min(), array.max()
        if low < info.min or high > info.max:
            raise InvalidInputError(
                f"Input '{name}' has values from {low} to {high}, outside the range of "
                f"{datatype} ({info.min} to {info.max}).",
                field=name,
                value=f"{given} values {low}..{high}",
                fix=f"Pass values that fit in {datatype}.",
            )
    return array.astype(target)


def _describe(dtype: np.dtype[Any]) -> str:
    return "strings" if dtype.kind == "O" else f"numpy {dtype}"


def tensor_to_json(name: str, array: npt.NDArray[Any]) -> dict[str, Any]:
    """One tensor as OIP JSON with flattened row-major ``data``."""
    array = normalize(array, name=name)
    datatype = datatype_of(array, name=name)
    flat = array.reshape(-1)
    data = [_text(v, name) for v in flat] if datatype == "BYTES" else flat.tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def _text(value: str | bytes, name: str) -> str:
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(
            f"'{name}' holds bytes that are not UTF-8 text, which OIP JSON cannot carry.",
            field=name,
            value=repr(value[:20]),
            fix="Base64-encode binary values (e.g. images) into strings first.",
        ) from None


def tensor_from_json(obj: Mapping[str, Any]) -> tuple[str, npt.NDArray[Any]]:
    """An OIP JSON tensor as ``(name, array)``, checking datatype, shape and data agree."""
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInputError(
            "A tensor has no name.",
            field="name",
            value=name,
            fix='Give every tensor a "name".',
        )
    datatype, shape = obj.get("datatype"), obj.get("shape")
    target = numpy_dtype(str(datatype))
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InvalidInputError(
            f"Tensor '{name}' has shape {shape!r}, which is not a list of sizes.",
            field=f"{name}.shape",
            value=shape,
            fix='Give "shape" as a list of non-negative integers, e.g. [2, 3].',
        )
    data = obj.get("data")
    if not isinstance(data, list):
        data = [data]
    try:
        raw = np.asarray(data, dtype=object if datatype == "BYTES" else None).reshape(-1)
    except ValueError:
        raw = np.asarray(list(_flatten(data)), dtype=object)
    if raw.size != math.prod(shape):
        raise InvalidInputError(
            f"Tensor '{name}' has {raw.size} values, but its shape {shape} needs "
            f"{math.prod(shape)}.",
            field=f"{name}.data",
            value=f"{raw.size} values",
            fix="Send as many values as the shape's sizes multiply to.",
        )
    if target.kind in "iu" and raw.dtype.kind in "fO":
        raw = _big_integers(data, raw, str(datatype), name)  # past int64: not as floats
    if datatype != "BYTES" and raw.dtype.kind not in "biuf":
        raise InvalidInputError(
            f"Tensor '{name}' is {datatype} but its data are not all numbers.",
            field=f"{name}.data",
            value=str(raw.dtype),
            fix=f"Send {datatype} data as JSON numbers.",
        )
    return name, cast(raw.reshape(shape), str(datatype), name=name).astype(target, copy=False)


def _big_integers(data: list[Any], raw: npt.NDArray[Any], datatype: str, name: str) -> Any:
    """JSON integers numpy read as floats or objects (past int64, as UINT64 may be) exactly, as
    ``datatype``; anything else as ``raw`` was, for the checks that follow."""
    values = list(_flatten(data))
    if not all(type(v) is int for v in values):
        return raw
    target = numpy_dtype(datatype)
    try:
        return np.array(values, dtype=target)
    except OverflowError:
        info = np.iinfo(target)
        raise InvalidInputError(
            f"Tensor '{name}' has values from {min(values)} to {max(values)}, outside the range "
            f"of {datatype} ({info.min} to {info.max}).",
            field=f"{name}.data",
            value=f"{min(values)}..{max(values)}",
            fix=f"Send values that fit in {datatype}.",
        ) from None


def _flatten(data: Iterable[Any]) -> Iterable[Any]:
    for item in data:
        if isinstance(item, list):
            yield from _flatten(item)
        else:
            yield item


def tensors_to_json(tensors: Mapping[str, npt.NDArray[Any]]) -> list[dict[str, Any]]:
    """Named tensors as a list of OIP JSON tensors, in order."""
    return [tensor_to_json(name, array) for name, array in tensors.items()]


def tensors_from_json(objs: Iterable[Mapping[str, Any]]) -> Tensors:
    """A list of OIP JSON tensors as named arrays."""
    out: Tensors = {}
    for obj in objs:
        name, array = tensor_from_json(obj)
        out[name] = array
    return out


def as_tensors(user_input: Any, *, field: str = "input") -> tuple[InputFormat, Tensors]:
    """What a user passes (array, list, Series, DataFrame, dict of arrays) as named tensors and
    the format it came in. One array is named ``"input"``; DataFrame columns keep their names."""
    if isinstance(user_input, Mapping):
        if not user_input:
            raise InvalidInputError(
                "The input is an empty dict.",
                field=field,
                value={},
                fix="Pass a dict of named arrays, e.g. {'x': X}.",
            )
        return "tensors", {_key(k, field): normalize(v, name=str(k)) for k, v in user_input.items()}
    if is_dataframe(user_input):
        return "columns", dataframe_columns(user_input, field=field)
    if isinstance(user_input, str | bytes) or np.ndim(user_input) == 0:
        raise InvalidInputError(
            f"The input is a single {type(user_input).__name__}, not a batch.",
            field=field,
            value=user_input,
            fix="Pass an array, a list of rows, a DataFrame or a dict of arrays.",
        )
    values = user_input.to_numpy() if _is_series(user_input) else user_input
    return "tensor", {DEFAULT_INPUT_NAME: normalize(values, name=DEFAULT_INPUT_NAME)}


def dataframe_columns(frame: Any, *, field: str = "input") -> Tensors:
    """Each column of a pandas DataFrame as a 1-d tensor named after the column."""
    bad = [c for c in frame.columns if not isinstance(c, str)]
    if bad:
        raise InvalidInputError(
            f"The DataFrame has columns that are not strings: {bad[:5]!r}.",
            field=f"{field}.columns",
            value=[str(c) for c in bad[:5]],
            fix="Give the columns string names, or pass df.to_numpy() as one array.",
        )
    return {str(c): normalize(frame[c].to_numpy(), name=str(c)) for c in frame.columns}


def _key(key: object, field: str) -> str:
    if isinstance(key, str) and key:
        return key
    raise InvalidInputError(
        f"The input dict has a key {key!r} that is not a non-empty string.",
        field=field,
        value=repr(key),
        fix="Name each array with a string, e.g. {'x': X}.",
    )


def is_dataframe(value: object) -> bool:
    """True for a pandas DataFrame, without importing pandas."""
    return any(c.__name__ == "DataFrame" and c.__module__.startswith("pandas") for c in _mro(value))


def _is_series(value: object) -> bool:
    return any(c.__name__ == "Series" and c.__module__.startswith("pandas") for c in _mro(value))


def _mro(value: object) -> tuple[type, ...]:
    return type(value).__mro__
