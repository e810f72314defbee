"""Refuses a NUL character (``%00``) in the path or the query string of a request.

Names and filters in URLs are compared with stored text, and PostgreSQL's text cannot hold a
NUL: the query failed in the database (a 500 and a dropped connection) instead of finding
nothing. No name, filter or cursor funade issues holds one, so it is refused before routing,
with a 422 naming the query parameter (or ``path``). Lone surrogates cannot get here: URLs are
decoded with replacement characters.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from funade.api.errors import error_response
from funade.errors import InvalidInputError


class NoNulInURLMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            field = nul_in_url(scope["path"], scope.get("query_string", b""))
            if field is not None:
                error = InvalidInputError(
                    f"The {'path' if field == 'path' else f'query parameter {field!r}'} holds "
                    "a NUL character (%00), which no name or filter holds.",
                    field=field,
                    value=None,
                    fix="Leave %00 out of the URL.",
                )
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def nul_in_url(path: str, query: bytes) -> str | None:
    """``path`` if the (decoded) path holds a NUL, else the first query parameter that does
    (``query`` if none can be named), else None."""
    if "\x00" in path:
        return "path"
    if b"%00" not in query and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "%00") or "query"
    return "query"
