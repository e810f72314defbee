"""Reading request bodies: what kind they are, within the size limit, cut-off bodies refused.

A body is one of three kinds, by its ``Content-Type``:

- ``json``: ``application/json``, ``text/plain``, none at all, or
  ``application/x-www-form-urlencoded`` (what ``curl -d`` sends unless told otherwise): parsed
  as JSON;
- ``binary``: ``application/octet-stream``, the binary tensor data extension (JSON header, then
  raw tensor bytes);
- ``image``: ``image/*`` (one photo) or ``multipart/form-data`` (one or more uploaded files).

Anything else is refused with 415, before the body is read. A body may be compressed
(``Content-Encoding: gzip`` or ``deflate``, as ``tritonclient`` sends when asked); the size limit
applies to it decompressed as well.
"""

from __future__ import annotations

import asyncio
import importlib.util
import zlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from funade.errors import InvalidInputError, PayloadTooLargeError
from funade.web.call import Receive

Kind = Literal["json", "binary", "image"]

_ENCODINGS = ("identity", "gzip", "deflate")
_JSON_TYPES = ("application/json", "text/plain", "", "application/x-www-form-urlencoded")
MAX_FILES = 64
"""Most files one multipart upload may carry (one prediction each)."""


class BodyTimeoutError(InvalidInputError):
    """The body did not arrive in full within the request timeout (HTTP 408)."""

    code = "request_timeout"


class UnsupportedMediaTypeError(InvalidInputError):
    """The body's content type is not one this endpoint reads (HTTP 415)."""

    code = "unsupported_media_type"


@dataclass(frozen=True, slots=True)
class Body:
    kind: Kind
    media_type: str
    data: bytes
    headers: dict[bytes, bytes]
    """The request's headers as sent (names lower-case, as ASGI gives them), read once."""

    def header(self, name: bytes) -> str | None:
        """One header's value (``name`` lower-case), or None."""
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else None


def _kind(content_type: bytes, *, binary_allowed: bool) -> tuple[Kind, str]:
    """The kind of a body of ``content_type`` and its media type, or
    ``UnsupportedMediaTypeError``."""
    media_type = content_type.decode("latin-1").split(";")[0].strip().lower()
    if media_type in _JSON_TYPES:
        return "json", media_type
    if media_type == "application/octet-stream" and binary_allowed:
        return "binary", media_type
    if media_type.startswith("image/") or media_type == "multipart/form-data":
        return "image", media_type
    accepted = "JSON (application/json)"
    if binary_allowed:
        accepted += (
            ", the binary tensor extension (application/octet-stream with "
            "Inference-Header-Content-Length)"
        )
    raise UnsupportedMediaTypeError(
        f"Content type {media_type!r} is not accepted here.",
        field="content-type",
        value=media_type,
        fix=f"Send {accepted}, an image (image/jpeg, image/png...) or a multipart/form-data "
        "upload of images.",
    )


async def read_body(
    raw_headers: list[tuple[bytes, bytes]],
    receive: Receive,
    limit: int,
    timeout: float,
    *,
    binary_allowed: bool = True,
    whole: bytes | None = None,
) -> Body:
    """The whole body (its request's ``raw_headers``, names lower-case, read through ASGI's
    ``receive``), refused past ``limit`` bytes (413) — by its declared length before
    anything is read, else as it streams in — or if it has not arrived within ``timeout``
    seconds (408: a client that stalls or never sends what it declared). ``whole``: the body
    the front already holds in full (``Call.body``), taken as it is, no ``receive`` nor timer,
    after the same checks of its type, encoding and length."""
    headers = dict(raw_headers)  # one pass, not one list scan per lookup
    kind, media_type = _kind(headers.get(b"content-type", b""), binary_allowed=binary_allowed)
    encoding = headers.get(b"content-encoding", b"identity").decode("latin-1").strip().lower()
    if encoding not in _ENCODINGS:
        raise UnsupportedMediaTypeError(
            f"Content encoding {encoding!r} is not accepted here.",
            field="content-encoding",
            value=encoding,
            fix="Send the body uncompressed, or compressed with gzip or deflate.",
        )
    raw_length = headers.get(b"content-length")
    declared = raw_length.decode("latin-1") if raw_length is not None else None
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    if whole is not None:
        if len(whole) > limit:
            raise _too_large(len(whole), limit)
        data = _decompress(whole, encoding, limit) if encoding != "identity" else whole
        return Body(kind, media_type, data, headers)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise _too_large(size, limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        of = f" of {declared}" if declared is not None else ""
        raise BodyTimeoutError(
            f"The request body did not arrive within {timeout * 1000:g} ms ({size}{of} bytes "
            "came).",
            field="body",
            value=size,
            fix="Send the whole body at once, with a Content-Length that matches it.",
        ) from None
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if encoding != "identity":
        data = _decompress(data, encoding, limit)
    return Body(kind, media_type, data, headers)


def _decompress(data: bytes, encoding: str, limit: int) -> bytes:
    """A gzip or deflate (zlib, or raw as some clients send it) body, at most ``limit`` bytes
    once decompressed."""
    wbits = zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS
    try:
        try:
            inflater = zlib.decompressobj(wbits)
            out = inflater.decompress(data, limit + 1)
        except zlib.error:
            if encoding != "deflate":
                raise
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise InvalidInputError(
            f"The {encoding} body could not be decompressed: {exc}.",
            field="content-encoding",
            value=encoding,
            fix=f"Send a complete {encoding} stream, or the body uncompressed.",
        ) from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise _too_large(len(out), limit)
    if not inflater.eof:
        raise InvalidInputError(
            f"The {encoding} body is cut off ({len(data)} compressed bytes).",
            field="content-encoding",
            value=encoding,
            fix=f"Send the complete {encoding} stream.",
        )
    return out


async def uploaded_files(body: Body) -> list[bytes]:
    """The files of an image body: the body itself for ``image/*``, every file part (in order)
    of a multipart upload."""
    if body.media_type != "multipart/form-data":
        if not body.data:
            raise InvalidInputError(
                "The image body is empty.",
                field="body",
                value=0,
                fix="Send the photo's bytes as the request body.",
            )
        return [body.data]

    if importlib.util.find_spec("python_multipart") is None:
        raise UnsupportedMediaTypeError(
            "This server cannot read multipart uploads: python-multipart is not installed.",
            field="content-type",
            value=body.media_type,
            fix="Send the photo as the raw body (Content-Type: image/jpeg), or install "
            "'funade[images]' where the model is served.",
        )

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body.data

    headers = Headers(raw=list(body.headers.items()))
    parser = MultiPartParser(headers, stream(), max_files=MAX_FILES, max_fields=100)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidInputError(
            f"The multipart upload could not be read: {exc.message}",
            field="body",
            value="multipart/form-data",
            fix=f"Send a multipart/form-data body with up to {MAX_FILES} image files.",
        ) from None
    try:
        files = [item for _, item in form.multi_items() if isinstance(item, UploadFile)]
        if not files:
            raise InvalidInputError(
                "The multipart upload has no file.",
                field="body",
                value=sorted(form.keys()),
                fix="Attach the photo as a file field (e.g. curl -F image=@photo.jpg).",
            )
        return [await file.read() for file in files]
    finally:
        await form.close()


def _too_large(size: int, limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The request body has more than {limit} bytes ({size}).",
        field="body",
        value=size,
        fix="Send fewer rows per request, or raise the server's max_body_bytes.",
    )
