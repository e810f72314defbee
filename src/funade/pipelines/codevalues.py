"""Plain values a step's code reads (module constants, defaults), as text a cache key hashes.

:func:`atom` covers the values that hold no other values of interest: ``None``, booleans,
numbers, text, bytes, dates and times, decimals and fractions, UUIDs, paths, ranges, compiled
regular expressions, loggers (by name), typing constructs, and numpy arrays and scalars of a
non-object dtype (by dtype, shape and bytes). Containers, enums and code are the business of
``codehash``; anything else cannot be hashed.
"""

from __future__ import annotations

import datetime
import decimal
import fractions
import hashlib
import logging
import pathlib
import re
import sys
import types
import uuid
from typing import Any

__all__ = ["atom", "type_name"]

_SCALARS = (type(None), bool, int, float, complex, str, bytes, bytearray)
_BY_REPR = (
    datetime.date,
    datetime.time,
    datetime.timedelta,
    datetime.tzinfo,
    decimal.Decimal,
    fractions.Fraction,
    uuid.UUID,
    pathlib.PurePath,
    range,
    slice,
    type(Ellipsis),
    type(NotImplemented),
)
_LONG = 256


def type_name(value: Any) -> str:
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _text(kind: str, text: str | bytes) -> str:
    if len(text) <= _LONG:
        return f"{kind}:{text!r}"
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return f"{kind}:sha256:{hashlib.sha256(data).hexdigest()}"


def atom(value: Any) -> str | None:
    """The hashable text of ``value`` when it is a plain value; None otherwise."""
    kind = type(value)
    if kind in _SCALARS:
        if kind is str or kind is bytes or kind is bytearray:
            return _text(kind.__name__, value)
        return f"{kind.__name__}:{value!r}"
    if isinstance(value, _BY_REPR):
        return f"{type_name(value)}:{value!r}"
    if isinstance(value, re.Pattern):
        return f"re:{value.flags}:{_text('p', value.pattern)}"
    if isinstance(value, logging.Logger):
        return f"logger:{value.name}"
    if isinstance(value, types.GenericAlias | types.UnionType) or kind.__module__ in (
        "typing",
        "typing_extensions",
    ):
        return f"typing:{value!r}"
    if kind.__name__ == "_tuplegetter" and kind.__module__ == "collections":
        return f"field:{value.__reduce__()[1]!r}"  # a NamedTuple's field accessor
    return _numpy(value)


def _numpy(value: Any) -> str | None:
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return None
    if isinstance(value, numpy.ndarray | numpy.generic) and not value.dtype.hasobject:
        data = numpy.ascontiguousarray(value).tobytes()
        shape = getattr(value, "shape", ())
        return f"numpy:{value.dtype.str}:{shape}:{hashlib.sha256(data).hexdigest()}"
    return None
