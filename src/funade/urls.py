"""URLs built from a host and a port, the one way: an IPv6 address goes in brackets (RFC 3986,
``http://[::1]:8000``), so a server bound to ``::`` announces a URL clients can use."""

from __future__ import annotations

__all__ = ["host_port", "http_url"]


def host_port(host: str, port: int | str) -> str:
    """``host:port``, an IPv6 address (it has colons) as ``[address]:port``."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def http_url(host: str, port: int | str, scheme: str = "http") -> str:
    """``scheme://host:port``, an IPv6 address in brackets: ``http_url("::", 8000)`` is
    ``http://[::]:8000``."""
    return f"{scheme}://{host_port(host, port)}"
