"""Refuses clients whose address is outside the control plane's allowlist."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from funade.api.errors import error_response
from funade.auth.ipallow import ip_allowed, parse_networks
from funade.errors import PermissionDeniedError

PUBLIC_PATHS = frozenset({"/healthz", "/api/v1/health"})


class IPAllowlistMiddleware:
    def __init__(self, app: ASGIApp, cidrs: Iterable[str]) -> None:
        self.app = app
        self.networks = parse_networks(cidrs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        host = client[0] if client else None
        if ip_allowed(host, self.networks):
            await self.app(scope, receive, send)
            return
        error = PermissionDeniedError(
            f"Address {host!r} is not allowed to use this control plane.",
            field="client_ip",
            value=host,
            fix="Call from an allowed network, or add yours to FUNADE_ALLOW_CIDRS.",
        )
        await error_response(error)(scope, receive, send)
