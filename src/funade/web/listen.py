"""Listening sockets for funade's servers, made before the server runs (so its address can be
announced at once, and its workers can inherit it)."""

from __future__ import annotations

import socket

BACKLOG = 2048


def listen_tcp(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (IPv6 when ``host`` has a colon) and already
    listening: a client that connects between the address being announced and the server
    starting waits in the backlog rather than being refused. Inherited by worker processes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock
