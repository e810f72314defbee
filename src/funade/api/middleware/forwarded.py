"""Sets the client's address from a trusted proxy's ``X-Forwarded-For`` (``auth/forwarded.py``),
outermost, so the IP allowlist, keys' ``allow_cidrs``, the audit log and the dashboard read it."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from funade.auth.forwarded import TrustedProxies


class ForwardedMiddleware:
    def __init__(self, app: ASGIApp, trusted_proxies: Iterable[str]) -> None:
        self.app = app
        self.proxies = TrustedProxies(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.proxies.apply(scope)
        await self.app(scope, receive, send)
