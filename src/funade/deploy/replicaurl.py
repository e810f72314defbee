"""A replica's URL, and the one place that turns it into a connection.

A replica listens either on TCP (``http://host:port``: Kubernetes Services, replicas started with
``replica_transport = "tcp"``) or on a Unix domain socket (``unix:/abs/path.sock``, the house
convention the control plane's own socket uses). Everything that talks to a replica — the
gateway's ``Upstream``, the backends' readiness probe, the controller's verification — reads the
URL here: ``address`` for a raw connection, ``ReplicaHTTP`` for an httpx one.

Over a Unix socket the ``Host`` header is ``replica`` (a name, not the socket's path).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:  # imported when used: the gateway and `funade serve` read URLs, not httpx
    import httpx

__all__ = ["UNIX_PATH_MAX", "UNIX_PREFIX", "Address", "ReplicaHTTP", "address", "unix_url"]

UNIX_PATH_MAX = 107
"""The longest path a Unix socket can have on Linux (``sun_path`` is 108 bytes, NUL included)."""
UNIX_PREFIX = "unix:"
UNIX_AUTHORITY = "replica"
"""The ``Host`` header of a request over a Unix socket."""


@dataclass(frozen=True)
class Address:
    """Where a replica listens: a Unix socket's path, or a host and port."""

    socket: str | None
    host: str
    port: int
    authority: str
    """What the ``Host`` header says."""


def unix_url(path: str) -> str:
    """The URL of a replica listening on the Unix socket at ``path`` (absolute)."""
    return f"{UNIX_PREFIX}{path}"


def address(url: str) -> Address:
    """Where the replica at ``url`` listens; ValueError if it is neither ``unix:/abs/path`` nor
    ``http://host:port``."""
    if url.startswith(UNIX_PREFIX):
        path = url.removeprefix(UNIX_PREFIX)
        if not path.startswith("/"):
            raise ValueError(f"replica URL {url!r} is not unix:/absolute/path")
        return Address(path, "", 0, UNIX_AUTHORITY)
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or parts.hostname is None or port is None:
        raise ValueError(f"replica URL {url!r} is neither http://host:port nor unix:/path")
    return Address(None, parts.hostname, port, parts.netloc)


class ReplicaHTTP:
    """Blocking httpx clients to replicas by URL: one for every TCP replica, one per Unix socket
    (the most recently used ``keep`` of them; older ones are closed). Safe across threads: a
    client is closed once no request uses it, whether it was let go (``keep``) or the whole
    object was closed (``close``) meanwhile; a request after ``close`` gets a client of its
    own, closed when it is answered. None leaves a socket to the garbage collector."""

    def __init__(self, timeout: float, *, keep: int = 64) -> None:
        import httpx

        self.timeout = timeout
        self.keep = keep
        self._tcp = httpx.Client(timeout=timeout, trust_env=False)
        self._unix: OrderedDict[str, httpx.Client] = OrderedDict()
        self._lock = threading.Lock()
        self._closed = False
        self._busy: dict[int, int] = {}
        """Requests under way per client (by ``id``)."""
        self._retired: set[int] = set()
        """Clients let go while a request used them: closed when the last one ends."""

    def request(self, method: str, url: str, path: str, **kwargs: Any) -> httpx.Response:
        """``method`` ``path`` (``/v2/...``) on the replica at ``url``. An unusable URL is an
        ``httpx.InvalidURL`` (an ``httpx.HTTPError``, as an unreachable replica is)."""
        import httpx

        try:
            where = address(url)
        except ValueError as exc:
            raise httpx.InvalidURL(str(exc)) from None
        client = self._client(where.socket)
        target = f"http://{UNIX_AUTHORITY}{path}" if where.socket else f"{url.rstrip('/')}{path}"
        try:
            return client.request(method, target, **kwargs)
        finally:
            self._done(client)

    def _client(self, socket: str | None) -> httpx.Client:
        """The client for ``socket`` (None: TCP), counted as in use until ``_done``."""
        import httpx

        with self._lock:
            client = self._tcp if socket is None else self._unix.get(socket)
            if self._closed or client is None:
                transport = _unix_transport(socket) if socket is not None else None
                client = httpx.Client(transport=transport, timeout=self.timeout, trust_env=False)
                if self._closed:  # a thread still probing after close: a client for this call
                    self._retired.add(id(client))
                elif socket is not None:
                    self._unix[socket] = client
                    while len(self._unix) > self.keep:
                        self._let_go(self._unix.popitem(last=False)[1])
            elif socket is not None:
                self._unix.move_to_end(socket)
            self._busy[id(client)] = self._busy.get(id(client), 0) + 1
            return client

    def _done(self, client: httpx.Client) -> None:
        with self._lock:
            left = self._busy.pop(id(client)) - 1
            if left:
                self._busy[id(client)] = left
                return
            if id(client) not in self._retired:
                return
            self._retired.discard(id(client))
        client.close()

    def _let_go(self, client: httpx.Client) -> None:
        """Close ``client`` now, or once the requests using it end (``_lock`` held)."""
        if self._busy.get(id(client)):
            self._retired.add(id(client))
        else:
            client.close()

    def get(self, url: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, path, **kwargs)

    def post(self, url: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, path, **kwargs)

    def __enter__(self) -> ReplicaHTTP:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._let_go(self._tcp)
            while self._unix:
                self._let_go(self._unix.popitem()[1])


def _unix_transport(path: str) -> httpx.HTTPTransport:
    """httpx's transport over the Unix socket at ``path``, whose failed connections are closed
    (httpcore's leave the socket to the garbage collector when ``connect`` fails: a replica
    gone, or not yet listening, made a ``ResourceWarning`` per probe)."""
    import socket

    import httpcore
    import httpx
    from httpcore._backends.sync import SyncStream

    class ClosingBackend(httpcore.SyncBackend):
        def connect_unix_socket(
            self,
            path: str,
            timeout: float | None = None,
            socket_options: Any = None,
        ) -> httpcore.NetworkStream:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                for option in socket_options or ():
                    sock.setsockopt(*option)
                sock.settimeout(timeout)
                sock.connect(path)
            except TimeoutError as exc:
                sock.close()
                raise httpcore.ConnectTimeout(str(exc)) from exc
            except OSError as exc:
                sock.close()
                raise httpcore.ConnectError(str(exc)) from exc
            return SyncStream(sock)

    transport = httpx.HTTPTransport(uds=path, verify=False)  # never TLS: no CA bundle to load
    transport._pool = httpcore.ConnectionPool(uds=path, network_backend=ClosingBackend())
    return transport
