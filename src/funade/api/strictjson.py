"""What a JSON request body to the control plane may hold: strict JSON that every store keeps.

Python's ``json`` module, which the web framework parses bodies with, also reads ``NaN``,
``Infinity``, ``1e400`` (as infinity), lone UTF-16 surrogates (``"\\ud800"``, which no UTF-8
text can hold: the store's write fails) and integers of any size (past the store's 64-bit
columns); and any JSON parser reads ``"\\u0000"``, which PostgreSQL's text cannot hold.
``check_json_body`` refuses all of them before the body reaches a route, with an
``InvalidInputError`` that names where in the body the value is (``metrics.auc``,
``golden_examples.0.x``). orjson checks the common case in one fast pass (it refuses everything
above but integers past 64 bits, which it reads as floats, and NUL); only a body it refuses, or
one with a run of 19 digits or a ``\\u0000``, is read again to find the culprit.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from funade.errors import InvalidInputError
from funade.limits import INT64_MAX, INT64_MIN

__all__ = ["check_json_body"]

_LONG_NUMBER = re.compile(rb"[0-9]{19}")  # the shortest integers that may not fit in 64 bits
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")
"""What a JSON string may spell but no stored text holds: NUL, and lone UTF-16 surrogates."""
_MAX_DEPTH = 1024  # orjson's limit


class _NonFinite:
    """What ``NaN``, ``Infinity`` and ``-Infinity`` parse to while looking for them."""

    def __init__(self, literal: str) -> None:
        self.literal = literal


def check_json_body(data: bytes) -> None:
    """Refuse a body that is not strict JSON, or that holds non-finite numbers, lone surrogates
    or integers outside 64 bits (``InvalidInputError`` naming the place)."""
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise _diagnose(data, str(exc)) from None
    if _LONG_NUMBER.search(data) or b"\\u0000" in data:
        _check_values(json.loads(data))


def _diagnose(data: bytes, problem: str) -> InvalidInputError:
    """Why orjson refused ``data``: a value Python's parser reads (named by its place), or not
    JSON at all."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InvalidInputError(
            f"The request body is not UTF-8 (byte {exc.start} is not).",
            field="body",
            value=None,
            fix="Send JSON encoded as UTF-8.",
        )
    try:
        doc = json.loads(text, parse_constant=_NonFinite)
    except (ValueError, RecursionError):
        pass
    else:
        try:
            _check_values(doc)
        except InvalidInputError as found:
            return found
    if "depth limit" in problem:
        return InvalidInputError(
            f"The request body nests arrays and objects more than {_MAX_DEPTH} deep.",
            field="body",
            value=None,
            fix="Send a flatter document.",
        )
    return InvalidInputError(
        f"The request body is not valid JSON. {problem[:1].upper()}{problem[1:]}.",
        field="body",
        value=text[:80],
        fix="Send a JSON document with `Content-Type: application/json`.",
    )


def _check_values(doc: Any) -> None:
    """Walk ``doc`` (without recursion: it may be deep) for values no store keeps."""
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        value, place = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                where = f"{place}.{key}" if place else key
                if _NOT_TEXT.search(key):
                    raise _not_text(place or "body", key)
                stack.append((item, where))
        elif isinstance(value, list):
            stack.extend(
                (item, f"{place}.{index}" if place else str(index))
                for index, item in enumerate(value)
            )
        elif isinstance(value, str):
            if _NOT_TEXT.search(value):
                raise _not_text(place or "body", value)
        elif isinstance(value, _NonFinite) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            literal = value.literal if isinstance(value, _NonFinite) else "a number past 1e308"
            raise InvalidInputError(
                f"{place or 'The body'!r} is {literal}; JSON numbers here must be finite.",
                field=place or "body",
                value=None,
                fix="Send a finite number, or leave the value out (null where it is optional).",
            )
        elif type(value) is int and not INT64_MIN <= value <= INT64_MAX:
            raise InvalidInputError(
                f"{place or 'The body'!r} is {value}, outside the 64-bit integers this API stores.",
                field=place or "body",
                value=str(value)[:40],
                fix=f"Send an integer between {INT64_MIN} and {INT64_MAX}.",
            )


def _not_text(place: str, text: str) -> InvalidInputError:
    shown = _NOT_TEXT.sub("\ufffd", text[:80])
    if "\x00" in text:
        return InvalidInputError(
            f"{place!r} holds a NUL character (\\u0000), which stored text cannot hold.",
            field=place,
            value=shown,
            fix="Leave NUL out of text; send binary data base64-encoded.",
        )
    return InvalidInputError(
        f"{place!r} holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text.",
        field=place,
        value=shown,
        fix="Send valid Unicode: a surrogate only as half of an escaped pair (\\ud83d\\ude00).",
    )
