"""The control plane's OpenAPI document, with the error answers of every operation.

FastAPI documents the success answer of each route and, for routes with parameters, a 422 in
its own validation-error shape. This adds, once for every operation from what it is (whether it
needs a key, takes a body, has parameters, changes anything), the error statuses it can answer
with, each in funade's error shape (``schemas.ErrorOut``), so a client generated from the
document, or a fuzzer reading it, knows every status it may get.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from funade.api.middleware.authfirst import needs_key
from funade.api.schemas import ErrorOut
from funade.errors import ERROR_FIELD_HEADER

__all__ = ["ERRORS", "install"]

ERRORS: dict[str, str] = {
    "400": "The body could not be used as sent: bytes that do not hash to the digest in the "
    "URL (artifact uploads), or a body the server could not read.",
    "401": "No API key, or one that is malformed, unknown, revoked or expired. Checked before "
    "the body is read.",
    "403": "The key lacks the scope this needs in the project, or the address is not allowed.",
    "404": "No such project, model, version, alias, artifact, key, deployment, run or schedule "
    "(also: one of another project).",
    "409": "The name is taken, or the thing is in use or in a state that does not allow this.",
    "413": "The body is larger than the server accepts (FUNADE_MAX_JSON_BYTES; artifacts: "
    "FUNADE_MAX_ARTIFACT_BYTES).",
    "422": "A parameter or a field of the body is invalid: not strict JSON (NaN, Infinity, an "
    "integer past 64 bits, a lone surrogate or a NUL in a string, a NUL in the URL), of the "
    "wrong type, out of range, too long, or a name, cursor or reference that is not allowed. "
    "The error names the field, the value and the fix.",
}
_CHANGES = frozenset({"post", "put", "patch", "delete"})
_SCHEMA_REF = {"$ref": "#/components/schemas/ErrorOut"}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` document the error answers of every operation."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document_errors(FastAPI.openapi(app))  # FastAPI builds and caches the document
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_errors(document: dict[str, Any]) -> None:
    """Add funade's error answers to every operation of ``document``, in place."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    error_schema = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorOut"] = error_schema
    components.setdefault("securitySchemes", {})["apiKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer fnd_...` (or the `X-API-Key` header).",
    }
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            statuses = _statuses(method, path, operation)
            if needs_key(method.upper(), path):
                operation["security"] = [{"apiKey": []}]
            responses = operation.setdefault("responses", {})
            for status in statuses:
                responses[status] = _response(status)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


def _statuses(method: str, path: str, operation: dict[str, Any]) -> list[str]:
    if not needs_key(method.upper(), path):
        return ["422"] if operation.get("requestBody") or operation.get("parameters") else []
    statuses = ["401", "403", "404"]
    if operation.get("requestBody"):
        statuses += ["400", "413"]
    if method in _CHANGES:
        statuses.append("409")
    if operation.get("requestBody") or operation.get("parameters"):
        statuses.append("422")
    return sorted(statuses)


def _response(status: str) -> dict[str, Any]:
    headers: dict[str, Any] = {
        ERROR_FIELD_HEADER: {
            "description": "The field the error is about, as in the body's `error.field` "
            "(characters outside printable ASCII, and `%`, percent-encoded).",
            "schema": {"type": "string"},
        }
    }
    if status == "401":
        headers["WWW-Authenticate"] = {"schema": {"type": "string", "const": "Bearer"}}
    return {
        "description": ERRORS[status],
        "headers": headers,
        "content": {"application/json": {"schema": _SCHEMA_REF}},
    }
