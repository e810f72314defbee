"""Opaque cursors for keyset pagination: stable under inserts, O(page) per request."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, TypeVar

from funade.errors import InvalidInputError

MAX_LIMIT = 500
T = TypeVar("T")


def encode_cursor(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, json.JSONDecodeError):
        value = None
    if not isinstance(value, dict):
        raise InvalidInputError(
            f"Cursor {cursor!r} is not one this server issued.",
            field="cursor",
            value=cursor,
            fix="Pass the `next_cursor` of the previous page unchanged, or omit it for page one.",
        )
    return value


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
