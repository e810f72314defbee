"""Checks the API key of every request to a keyed route before anything reads its body.

The web framework reads and parses a JSON body before a route's dependencies run, and the body
limit refuses a large body by its length: so without this, a caller with no key (or a wrong
one) learned from a 413 or a 422 what a route accepts. Here the key is checked first, with the
same function the routes' dependency uses (``deps.current_principal``), and the principal is
kept in the request's scope, where that dependency finds it instead of checking again. Which
key the route needs (its scope) is still the route's dependency's business.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from funade.api.deps import current_principal
from funade.api.errors import error_response
from funade.api.state import AppState
from funade.errors import FunadeError

PUBLIC_PATHS = frozenset({"/api/v1/health"})
"""Paths under ``/api/`` that need no key."""
_BROWSER_METHODS = frozenset({"GET", "HEAD"})


def needs_key(method: str, path: str) -> bool:
    """Whether a request needs an API key: everything under ``/api/`` but health, ``/metrics``,
    and queries to ``/graphql`` (a GET there is the explorer page). Dashboard pages sign in
    with a session of their own (``funade.ui``); documentation and static files are public."""
    if path.startswith("/api/"):
        return path not in PUBLIC_PATHS
    if path == "/graphql":
        return method not in _BROWSER_METHODS
    return path == "/metrics"


class AuthenticateFirstMiddleware:
    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not needs_key(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            await run_in_threadpool(current_principal, Request(scope), self.state)
        except FunadeError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)
