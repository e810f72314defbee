"""Maps funade's errors, and the web framework's own, to JSON error responses.

Every error response is ``{"error": {"code", "message", "field"?, "value"?, "fix"?}}``; nothing
ever answers with a traceback.
"""

from __future__ import annotations

import logging
import math
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from funade import errors as e

log = logging.getLogger("funade.api")

STATUS: dict[type[e.FunadeError], int] = {
    e.InvalidInputError: 422,
    e.DigestMismatchError: 400,
    e.InvalidArtifactError: 422,
    e.PayloadTooLargeError: 413,
    e.NotFoundError: 404,
    e.ConflictError: 409,
    e.AuthenticationError: 401,
    e.PermissionDeniedError: 403,
    e.ArtifactCorruptError: 500,
    e.ModelLoadError: 422,
}


_LOCATIONS = ("body", "query", "path", "header", "cookie")
MAX_ECHO = 200
"""The longest string value an error echoes back."""


def status_for(error: e.FunadeError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


class SafeJSONResponse(JSONResponse):
    """A JSON response that renders whatever it is given: a lone surrogate (which UTF-8 cannot
    encode) becomes U+FFFD and a non-finite number (which JSON cannot write) a string, instead
    of a failure halfway through an answer. Errors and GraphQL answers echo what clients sent,
    so they are rendered with it."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except (UnicodeEncodeError, ValueError):
            return super().render(_scrub(content))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {_scrub(str(k)): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")
MAX_FIELD_HEADER = 200


def field_header(field: str) -> str:
    """``field`` as the value of the ``Funade-Error-Field`` header: printable ASCII as it is,
    anything else (a control character, a newline, non-ASCII) and ``%`` percent-encoded as
    UTF-8, so a field named by a client can never break the response's headers."""
    return quote(field[:MAX_FIELD_HEADER], safe=_HEADER_SAFE, errors="replace")


def error_response(error: e.FunadeError) -> JSONResponse:
    status = status_for(error)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if error.field is not None:
        headers[e.ERROR_FIELD_HEADER] = field_header(error.field)
    return SafeJSONResponse({"error": error.to_dict()}, status_code=status, headers=headers)


async def handle_funade_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, e.FunadeError)
    if isinstance(exc, e.ArtifactCorruptError):
        log.error("%s", exc)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    loc = list(first.get("loc", ()))
    if loc and loc[0] in _LOCATIONS:  # where the value was, not a field ("query" may be one)
        loc = loc[1:]
    field = ".".join(str(p) for p in loc) or "body"
    value = first.get("input")
    if isinstance(value, str) and len(value) > MAX_ECHO:
        value = value[: MAX_ECHO - 3] + "..."
    kind = first.get("type", "")
    if kind == "json_invalid":
        error = e.InvalidInputError(
            "The request body is not valid JSON.",
            field="body",
            fix="Send a JSON document with `Content-Type: application/json`.",
        )
    elif kind == "missing":
        error = e.InvalidInputError(
            f"{field!r} is required.", field=field, fix=f"Add {field!r} to the request."
        )
    elif kind == "extra_forbidden":
        error = e.InvalidInputError(
            f"{field!r} is not a field of this request.",
            field=field,
            value=value,
            fix="Remove it; see the request schema at /docs.",
        )
    else:
        error = e.InvalidInputError(
            f"{field!r} is invalid: {first.get('msg', 'bad value')}.",
            field=field,
            value=value,
            fix="See the request schema at /docs.",
        )
    return error_response(error)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
        exc.status_code, "http_error"
    )
    message = {
        404: "There is no such endpoint.",
        405: "This endpoint does not accept that method.",
    }.get(exc.status_code, str(exc.detail))
    body = {"code": code, "message": message, "fix": "See the API reference at /docs."}
    return SafeJSONResponse({"error": body}, status_code=exc.status_code, headers=exc.headers)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    body = {
        "code": "internal_error",
        "message": "The server hit an unexpected error; it has been logged.",
        "fix": "Retry; if it persists, report it with the server log.",
    }
    return JSONResponse({"error": body}, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(e.FunadeError, handle_funade_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
