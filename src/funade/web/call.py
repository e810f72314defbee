"""A request and its answer as the lean front's direct entry takes and gives them (``Direct``
in ``front.py``): no ASGI scope, no messages, no per-request objects beyond these."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
Reply = tuple[int, Headers, bytes]
"""An answer: status, headers (names lower-case; no ``content-length``, the server adds it) and
body."""


@dataclass(slots=True)
class Call:
    """One request as a direct entry (``Gateway.reply``, the model server's
    ``InferenceFastPath.reply``) takes it: what the lean front (``front.py``) parsed, or an ASGI
    scope's fields. The body is read through ``receive``, ASGI's callable, so credentials are
    checked and the route's limit known before any of it is read; or, when the lean front
    already holds all of it (a ``Content-Length`` and every byte of it received), it is in
    ``body``, and the readers (the model server's and the gateway's ``read_body``) take it from
    there, their limits checked the same way, without a ``receive`` or a timer."""

    method: str
    path: str
    """Percent-decoded, as ASGI's ``path``."""
    raw_path: bytes
    query: bytes
    headers: Headers
    client: tuple[str, int] | None
    receive: Receive
    body: bytes | None = None
    """The whole body, when the front had all of it before the app asked (else None: read it
    through ``receive``)."""

    @classmethod
    def of(cls, scope: Scope, receive: Receive) -> Call:
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        return cls(
            scope["method"],
            scope["path"],
            raw,
            scope.get("query_string", b""),
            scope["headers"],
            scope.get("client"),
            receive,
        )


def error_body(code: str, message: str, fix: str = "") -> bytes:
    """The Open Inference Protocol's error shape, as the model server answers it: ``error`` a
    sentence with its fix (what tritonclient and KServe's client read), and the ``code`` and
    ``fix`` apart for programs."""
    text = f"{message} {fix}" if fix and fix not in message else message
    return orjson.dumps({"error": text, "code": code, "fix": fix})


async def send_reply(send: Send, reply: Reply) -> None:
    """``reply`` through ASGI's ``send`` (its ``content-length`` added)."""
    status, headers, body = reply
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})
