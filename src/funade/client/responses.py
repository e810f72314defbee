"""How the client reads the control plane's answers: an error answer becomes the funade error
its ``code`` names, and a 404 is told apart from "no such project" by the field it names."""

from __future__ import annotations

import httpx

from funade.errors import (
    ERROR_FIELD_HEADER,
    APIError,
    AuthenticationError,
    error_class_for_code,
)

__all__ = ["is_missing", "raise_for_error"]


def is_missing(response: httpx.Response, field: str) -> bool:
    """A 404 about the thing looked up (its ``field``), not about, say, its project. A 404
    without the header (a control plane from before it) still counts as missing."""
    return response.status_code == 404 and response.headers.get(ERROR_FIELD_HEADER, field) == field


def raise_for_error(response: httpx.Response) -> None:
    """Turn an error response into the funade error class its ``code`` names."""
    if response.status_code < 400:
        return
    response.read()  # a streamed response has not read its body yet
    try:
        body = response.json().get("error", {})
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("message") or f"HTTP {response.status_code} from {response.url}")
    code = str(body.get("code", ""))
    kwargs = {"field": body.get("field"), "value": body.get("value"), "fix": body.get("fix")}
    cls = error_class_for_code(code)
    if response.status_code == 401 and cls is None:
        cls = AuthenticationError
    if cls is None:
        raise APIError(
            message, status_code=response.status_code, code=code or "api_error", **kwargs
        )
    raise cls(message, **kwargs)
