"""Caps request bodies (JSON routes; artifact uploads have their own, larger limit), and refuses
a JSON body that is not strict JSON (``api/strictjson.py``) before any route parses it."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from funade.api.errors import error_response
from funade.api.strictjson import check_json_body
from funade.errors import FunadeError, PayloadTooLargeError


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    def _error(self) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"The request body is larger than {self.max_bytes} bytes.",
            field="body",
            value=self.max_bytes,
            fix="Send less (e.g. fewer golden examples), or raise FUNADE_MAX_JSON_BYTES.",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(tag in scope["path"] for tag in self.exempt):
            await self.app(scope, receive, send)
            return
        content_type = b""
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await error_response(self._error())(scope, receive, send)
                return
            if name == b"content-type":
                content_type = value
        if is_json(content_type):
            await self._json(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException passes through the framework's body parsing unchanged
                    # and is rendered by api.errors like every other error.
                    raise HTTPException(413, detail=str(self._error()))
            return message

        await self.app(scope, limited_receive, send)

    async def _json(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the whole (capped) body, check it, and hand it on as one message."""
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client is gone: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await error_response(self._error())(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body:
            try:
                check_json_body(body)
            except FunadeError as exc:
                await error_response(exc)(scope, receive, send)
                return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # what comes after the body: a disconnect
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def is_json(content_type: bytes) -> bool:
    """Whether the framework parses a body of ``content_type`` as JSON
    (``application/json`` or ``application/*+json``)."""
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )
