"""The gateway's client to its replicas, against raw servers that answer as replicas may:
kept alive, closed while idle, chunked, slow, not HTTP; over TCP and over a Unix socket."""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from funade.gateway.upstream import Upstream, UpstreamError

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
CHUNKED = (
    b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{"a\r\n5\r\n": 1}\r\n0\r\n\r\n'
)

Handler = Callable[[socket.socket, int], None]


@contextmanager
def raw_server(handle: Handler, unix: bool = False) -> Iterator[tuple[str, list[int]]]:
    """A server calling ``handle(conn, n)`` for its n-th connection; yields its URL and the
    list of connections it accepted. ``unix``: on a Unix socket (``unix:/path``)."""
    if unix:
        with tempfile.TemporaryDirectory(prefix="up-") as directory:
            path = str(Path(directory) / "r.sock")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(path)
            sock.listen()
            with _accepting(sock, handle, f"unix:{path}") as served:
                yield served
        return
    sock = socket.create_server(("127.0.0.1", 0))
    with _accepting(sock, handle, f"http://127.0.0.1:{sock.getsockname()[1]}") as served:
        yield served


@contextmanager
def _accepting(sock: socket.socket, handle: Handler, url: str) -> Iterator[tuple[str, list[int]]]:
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            accepted.append(len(accepted))
            threading.Thread(target=handle, args=(conn, len(accepted)), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield url, accepted
    finally:
        sock.close()


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    while len(rest) < length:
        rest += conn.recv(65536)
    return head


def answers(reply: bytes, per_connection: int = 1000) -> Handler:
    def handle(conn: socket.socket, _: int) -> None:
        with conn:
            for _ in range(per_connection):
                if not read_request(conn):
                    return
                conn.sendall(reply)

    return handle


def run(
    upstream: Upstream, url: str, times: int = 1, timeout: float = 5
) -> list[tuple[int, bytes]]:
    async def go() -> list[tuple[int, bytes]]:
        out = []
        try:
            for _ in range(times):
                status, _, body = await upstream.request(url, "POST", "/v2/x", [], b"{}", timeout)
                out.append((status, body))
        finally:
            upstream.close()  # its connections belong to this event loop
        return out

    return asyncio.run(go())


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
def test_connections_are_kept_alive_and_reused(unix: bool) -> None:
    with raw_server(answers(OK), unix) as (url, accepted):
        assert run(Upstream(), url, times=5) == [(200, b"{}")] * 5
    assert len(accepted) == 1


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
def test_a_connection_the_replica_closed_while_idle_is_replaced_once(unix: bool) -> None:
    with raw_server(answers(OK, per_connection=1), unix) as (url, accepted):
        assert run(Upstream(), url, times=3) == [(200, b"{}")] * 3
    assert len(accepted) == 3


def test_chunked_answers_are_decoded_and_headers_lowercased() -> None:
    with raw_server(answers(CHUNKED)) as (url, _):

        async def go() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            upstream = Upstream()
            try:
                return await upstream.request(url, "POST", "/", [], b"", 5)
            finally:
                upstream.close()

        status, headers, body = asyncio.run(go())
    assert (status, body) == (200, b'{"a": 1}')
    assert (b"transfer-encoding", b"chunked") in headers


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"SSH-2.0-OpenSSH_9.2\r\n", r"the replica's answer is not HTTP"),
        (OK[:-1], "the replica closed the connection"),
        (b"", "the replica closed the connection"),
    ],
    ids=["not-http", "cut-short", "nothing"],
)
def test_an_answer_that_is_not_whole_is_an_upstream_error(reply: bytes, message: str) -> None:
    with (
        raw_server(answers(reply, per_connection=1)) as (url, _),
        pytest.raises(UpstreamError, match=message),
    ):
        run(Upstream(), url)


def test_a_refused_connection_is_an_upstream_error() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    with pytest.raises(UpstreamError, match=r"cannot connect to 127\.0\.0\.1"):
        run(Upstream(), url)


def test_a_slow_replica_times_out_and_its_connection_is_not_reused() -> None:
    release = threading.Event()

    def slow_then_ok(conn: socket.socket, n: int) -> None:
        with conn:
            read_request(conn)
            if n == 1:
                release.wait(5)
            conn.sendall(OK)
            read_request(conn)

    upstream = Upstream()
    with raw_server(slow_then_ok) as (url, accepted):
        with pytest.raises(TimeoutError):
            run(upstream, url, timeout=0.2)
        release.set()
        assert run(upstream, url) == [(200, b"{}")]
    assert len(accepted) == 2, "the timed-out connection was closed, a new one made"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("unix:relative.sock", r"'unix:relative\.sock' is not unix:/absolute/path"),
        ("ftp://127.0.0.1:21", r"'ftp://127\.0\.0\.1:21' is neither http://host:port nor"),
        ("http://127.0.0.1", r"is neither http://host:port nor unix:/path"),
        ("http://127.0.0.1:99999", r"is neither http://host:port nor unix:/path"),
    ],
)
def test_a_url_that_is_neither_http_host_port_nor_unix_is_refused(url: str, message: str) -> None:
    with pytest.raises(UpstreamError, match=message):
        run(Upstream(), url)


def test_over_a_unix_socket_the_host_header_names_the_replica_not_the_path() -> None:
    heads: list[bytes] = []

    def record(conn: socket.socket, _: int) -> None:
        with conn:
            heads.append(read_request(conn))
            conn.sendall(OK)

    with raw_server(record, unix=True) as (url, _):
        assert run(Upstream(), url) == [(200, b"{}")]
    assert b"\r\nhost: replica\r\n" in heads[0]


def test_a_unix_socket_gone_is_an_upstream_error_naming_it() -> None:
    with raw_server(answers(OK), unix=True) as (url, _):
        assert run(Upstream(), url) == [(200, b"{}")]
    path = url.removeprefix("unix:")
    assert not Path(path).exists()
    with pytest.raises(UpstreamError, match=f"cannot connect to {path}"):
        run(Upstream(), url)


def test_forget_closes_the_idle_connections_to_a_unix_replica() -> None:
    closed = threading.Event()

    def notice_close(conn: socket.socket, _: int) -> None:
        with conn:
            while read_request(conn):
                conn.sendall(OK)
        closed.set()

    with raw_server(notice_close, unix=True) as (url, accepted):

        async def go() -> None:
            upstream = Upstream()
            await upstream.request(url, "POST", "/v2/x", [], b"{}", 5)
            upstream.forget(url)
            await upstream.request(url, "POST", "/v2/x", [], b"{}", 5)
            upstream.close()

        asyncio.run(go())
        assert closed.wait(5), "the forgotten connection was closed"
    assert len(accepted) == 2
