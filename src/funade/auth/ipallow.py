"""Matching client addresses against IP/CIDR allowlists (control plane and gateway)."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    return _networks(tuple(cidrs))


@functools.lru_cache(maxsize=1024)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    """Cached: a key's own allowlist is checked on every request it makes."""
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def ip_allowed(address: str | None, networks: tuple[Network, ...]) -> bool:
    """True if ``networks`` is empty or ``address`` is inside one of them."""
    if not networks:
        return True
    if address is None:
        return False
    ip = _address(address)
    if ip is None:
        return False
    return any(ip.version == net.version and ip in net for net in networks)


@functools.lru_cache(maxsize=4096)
def _address(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``address`` parsed (an IPv4-mapped IPv6 address as its IPv4 one), or None if it is not
    one. Cached: the gateway checks every request's client address, and parsing it cost more
    than the check (a few thousand recent clients are kept)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
