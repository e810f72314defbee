"""The client's address behind reverse proxies: forwarded headers count only from trusted peers.

uvicorn believes ``X-Forwarded-For`` from loopback by default, so any local process (or a proxy
that passes its clients' headers on) could claim any address with one header and pass every
allowlist. funade turns uvicorn's proxy handling off wherever it starts uvicorn, and reads the
headers here instead, only when the peer that connected is in the ``trusted_proxies`` setting.
The control plane (``api/middleware/forwarded.py``) and the gateway (``gateway/app.py``) both
rewrite the ASGI scope's ``client`` with :meth:`TrustedProxies.apply` before anything reads it,
so the IP allowlists, keys' ``allow_cidrs``, the audit log and the dashboard see one address.

The address is the right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy:
each proxy appends the address that connected to it, so entries to the left of the first
untrusted one may have been written by the client and prove nothing. ``X-Forwarded-Proto``
(http or https) is taken from a trusted peer too. The RFC 7239 ``Forwarded`` header is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, MutableMapping
from typing import Any

from funade.auth.ipallow import Network, ip_allowed, parse_networks

_SCHEMES = frozenset({"http", "https"})
_WEBSOCKET_SCHEMES = {"http": "ws", "https": "wss"}


class TrustedProxies:
    """The peers whose forwarded headers are believed (addresses or networks); none by default."""

    def __init__(self, cidrs: Iterable[str] = ()) -> None:
        self.networks: tuple[Network, ...] = parse_networks(cidrs)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str | None) -> bool:
        return bool(self.networks) and ip_allowed(address, self.networks)

    def client(self, peer: str | None, forwarded_for: Iterable[str]) -> str | None:
        """The client's address: ``peer`` unless it is a trusted proxy; then the right-most
        entry of the ``X-Forwarded-For`` values (in header order) that is not trusted (None if
        that entry is not an IP address: a proxy that wrote it is not to be believed)."""
        if not self.trusts(peer):
            return peer
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        hops = [hop for hop in hops if hop]
        if not hops:
            return peer
        for hop in reversed(hops):
            address = _address(hop)
            if address is None or not self.trusts(address):
                return address
        return _address(hops[0])  # every hop is a trusted proxy: the farthest one asked

    def apply(self, scope: MutableMapping[str, Any]) -> None:
        """Rewrite the ASGI ``scope``'s client (and scheme) from a trusted peer's headers."""
        if not self.networks or scope.get("type") not in ("http", "websocket"):
            return
        client = scope.get("client")
        peer = client[0] if client else None
        if not self.trusts(peer):
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
        forwarded = [v.decode("latin-1") for k, v in headers if k == b"x-forwarded-for"]
        if forwarded:
            address = self.client(peer, forwarded)
            scope["client"] = (address, 0) if address is not None else None
        protos = [v.decode("latin-1") for k, v in headers if k == b"x-forwarded-proto"]
        if protos:
            proto = protos[-1].split(",")[-1].strip().lower()
            if proto in _SCHEMES:
                websocket = scope["type"] == "websocket"
                scope["scheme"] = _WEBSOCKET_SCHEMES[proto] if websocket else proto


def _address(hop: str) -> str | None:
    """``hop`` as a normalised IP address (a port, ``1.2.3.4:80`` or ``[::1]:80``, dropped),
    or None if it is not one (``unknown``, a hostname, an obfuscated identifier)."""
    text = hop
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
