"""Opaque cursors for keyset pagination: stable under inserts, O(page) per request."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from funade.errors import InvalidInputError
from funade.limits import INT64_MAX, INT64_MIN

MAX_LIMIT = 500
_SURROGATE = re.compile("[\ud800-\udfff]")
T = TypeVar("T")


def encode_cursor(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(
    cursor: str | None, fields: Mapping[str, type[int] | type[str]]
) -> dict[str, Any] | None:
    """The position ``cursor`` holds (None for page one): exactly ``fields``, each of its type
    (an integer within 64 bits). Anything else, a forged or damaged cursor, is refused with a
    422 naming ``cursor``, before it reaches a query."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, RecursionError):
        value = None
    if not _fits(value, fields):
        raise InvalidInputError(
            f"Cursor {cursor[:80]!r} is not one this server issued.",
            field="cursor",
            value=cursor[:80],
            fix="Pass the `next_cursor` of the previous page unchanged, or omit it for page one.",
        )
    return value  # type: ignore[no-any-return]


def _fits(value: Any, fields: Mapping[str, type[int] | type[str]]) -> bool:
    if not isinstance(value, dict) or set(value) != set(fields):
        return False
    for name, kind in fields.items():
        item = value[name]
        if type(item) is not kind:  # not a bool for an int, nor a float
            return False
        if isinstance(item, int) and not INT64_MIN <= item <= INT64_MAX:
            return False
        if isinstance(item, str) and ("\x00" in item or _SURROGATE.search(item)):
            return False
    return True


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(
            f"limit {limit} is out of range.",
            field="limit",
            value=limit,
            fix=f"Ask for 1 to {MAX_LIMIT} items per page and follow `next_cursor` for more.",
        )
    return limit


def page_of(
    rows: list[T], limit: int, position: Callable[[T], dict[str, Any]]
) -> tuple[list[T], str | None]:
    """Cut ``rows`` (fetched with ``limit + 1``) to a page and the cursor after its last row."""
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(position(rows[-1])) if more and rows else None
