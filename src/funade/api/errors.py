"""Maps funade's errors, and the web framework's own, to JSON error responses.

Every error response is ``{"error": {"code", "message", "field"?, "value"?, "fix"?}}``; nothing
ever answers with a traceback.
"""

from __future__ import annotations

import logging

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


def status_for(error: e.FunadeError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(error: e.FunadeError) -> JSONResponse:
    status = status_for(error)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if error.field is not None and error.field.isascii():
        headers[e.ERROR_FIELD_HEADER] = error.field
    return JSONResponse({"error": error.to_dict()}, status_code=status, headers=headers)


async def handle_funade_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, e.FunadeError)
    if isinstance(exc, e.ArtifactCorruptError):
        log.error("%s", exc)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    field = ".".join(loc) or "body"
    value = first.get("input")
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
    return JSONResponse({"error": body}, status_code=exc.status_code, headers=exc.headers)


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
