"""Tensors as raw bytes: the binary tensor data extension of the Open Inference Protocol.

Triton's ``binary_tensor_data`` extension (also KServe's and MLServer's) lets a tensor travel
after the JSON part of a body instead of inside it: little-endian, row-major, no padding. ``BOOL``
is one byte per element (0 or 1); ``BYTES`` is, per element, a 4-byte little-endian unsigned
length followed by that many bytes. ``v2`` finds each tensor's bytes through its
``binary_data_size`` parameter; this module only converts one tensor.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from funade.errors import InvalidInputError
from funade.registry.tensors import numpy_dtype

__all__ = ["tensor_from_bytes", "tensor_to_bytes"]

Buffer = bytes | bytearray | memoryview

_LENGTH = struct.Struct("<I")


def tensor_to_bytes(array: npt.NDArray[Any], datatype: str, *, name: str = "tensor") -> bytes:
    """``array`` as the extension's bytes for ``datatype`` (cast to it when the dtype differs)."""
    if datatype == "BYTES":
        return _bytes_to_wire(array, name)
    little = numpy_dtype(datatype).newbyteorder("<")
    try:
        return np.ascontiguousarray(array, dtype=little).tobytes()
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"Tensor '{name}' cannot be written as {datatype}: {exc}.",
            field=name,
            value=str(array.dtype),
            fix=f"Give {datatype} values, or the datatype that matches the array.",
        ) from None


def tensor_from_bytes(
    data: Buffer, datatype: str, shape: list[int], *, field: str = "data", name: str = "tensor"
) -> npt.NDArray[Any]:
    """The tensor of ``datatype`` and ``shape`` that ``data`` holds, as a writable array that
    owns its memory (``BYTES``: an ``object`` array of ``bytes``)."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return _bytes_from_wire(data, count, field, name).reshape(shape)
    dtype = numpy_dtype(datatype)
    expected = count * dtype.itemsize
    if len(data) != expected:
        raise InvalidInputError(
            f"Tensor '{name}' is {datatype} with shape {shape}, which takes {expected} bytes "
            f"({count} elements of {dtype.itemsize}); its binary data has {len(data)}.",
            field=field,
            value=len(data),
            fix=f"Send {expected} bytes (little-endian, row-major), or correct the shape.",
        )
    if datatype == "BOOL":
        octets = np.frombuffer(data, dtype=np.uint8)
        if count and octets.max() > 1:
            raise InvalidInputError(
                f"Tensor '{name}' is BOOL, but its binary data holds a byte {int(octets.max())}.",
                field=field,
                value=int(octets.max()),
                fix="Send one byte per element: 1 for true, 0 for false.",
            )
        return octets.astype(np.bool_).reshape(shape)
    little = np.frombuffer(data, dtype=dtype.newbyteorder("<"))
    return little.astype(dtype, copy=True).reshape(shape)


def _bytes_to_wire(array: npt.NDArray[Any], name: str) -> bytes:
    parts: list[bytes] = []
    for item in np.asarray(array).reshape(-1).tolist():
        if isinstance(item, str):
            item = item.encode("utf-8")
        elif not isinstance(item, bytes):
            raise InvalidInputError(
                f"Tensor '{name}' is BYTES, but holds a {type(item).__name__} ({item!r}).",
                field=name,
                value=repr(item),
                fix="Give BYTES tensors as strings or bytes.",
            )
        parts.append(_LENGTH.pack(len(item)))
        parts.append(item)
    return b"".join(parts)


def _bytes_from_wire(data: Buffer, count: int, field: str, name: str) -> npt.NDArray[Any]:
    view = memoryview(data).cast("B")
    out = np.empty(count, dtype=object)
    offset, size = 0, len(view)
    for index in range(count):
        if offset + 4 > size:
            raise _short_bytes(name, field, count, index, size)
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > size:
            raise _short_bytes(name, field, count, index, size)
        out[index] = bytes(view[offset : offset + length])
        offset += length
    if offset != size:
        raise InvalidInputError(
            f"Tensor '{name}' holds {count} BYTES elements in {offset} bytes, but its binary "
            f"data has {size}.",
            field=field,
            value=size,
            fix="Send exactly one 4-byte little-endian length and its bytes per element, "
            "or correct the shape.",
        )
    return out


def _short_bytes(name: str, field: str, count: int, index: int, size: int) -> InvalidInputError:
    return InvalidInputError(
        f"Tensor '{name}' needs {count} BYTES elements, but its {size} bytes of binary data "
        f"end inside element {index}.",
        field=field,
        value=size,
        fix="Prefix each element with its length as a 4-byte little-endian unsigned integer, "
        "and send as many elements as the shape holds.",
    )
