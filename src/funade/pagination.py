"""Opaque cursors for keyset pagination: stable under inserts, O(page) per request."""

from __future__ import annotations

import base64
import json
from typing import Any

from funade.errors import InvalidInputError

MAX_LIMIT = 500


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
