"""Hostile input at the gateway's lean front (``funade.web.front``), over raw sockets:
request smuggling, oversized heads and bodies, slow clients, garbage, too many connections, a
fault that must not leak, and keys that are wrong or missing (refused exactly as on uvicorn)."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from funade.gateway.app import Gateway
from funade.store import Database
from funade.web.call import Call, Reply
from funade.web.front import Limits
from tests.deploy.conftest import Plane, calc, plane, until  # noqa: F401 - shared fixtures
from tests.gateway.rawhttp import Answer, Reader, chunked, connect, request
from tests.servers import serve, serve_front

INFER = json.dumps(
    {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}
).encode()
PATH = "/v2/models/calc/infer"


@pytest.fixture
def front(calc: Plane, database: Database) -> Iterator[tuple[str, Gateway]]:  # noqa: F811
    app = Gateway(database, refresh_seconds=0.1, stats_seconds=0.2)
    small = Limits(header_timeout=1.0, body_timeout=1.0, keep_alive_timeout=1.0)
    with serve_front(app, limits=small) as url:
        until(lambda: "calc" in app.table.routes, 10, "the route")
        yield url, app


def key(platform: Plane) -> dict[str, str]:
    return {"authorization": platform.client._http.headers["authorization"]}


def send_raw(url: str, data: bytes) -> tuple[Answer, bool]:
    """Send ``data`` on a new connection; the first answer, and whether the server then closed
    the connection."""
    sock = connect(url)
    try:
        sock.sendall(data)
        reader = Reader(sock)
        answer = reader.answer()
        return answer, reader.closed()
    finally:
        sock.close()


def refused(url: str, data: bytes, status: int, words: str) -> None:
    answer, closed = send_raw(url, data)
    assert answer.status == status, answer.body
    assert words in answer.body.decode(), answer.body
    assert answer.headers["connection"] == "close"
    assert closed, "the connection ends after a request that cannot be read"
    assert b"Traceback" not in answer.body


HEAD = f"POST {PATH} HTTP/1.1\r\nhost: x\r\n".encode()


SMUGGLING = [
    # CL.TE and TE.CL: both framings at once
    (HEAD + b"content-length: 6\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nG", "Transfer"),
    (HEAD + b"transfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n5c\r\nGPOST", "Transfer"),
    # two Content-Lengths, equal or not
    (HEAD + b"content-length: 3\r\ncontent-length: 3\r\n\r\nabc", "Duplicate Content-Length"),
    (HEAD + b"content-length: 3\r\ncontent-length: 40\r\n\r\nabc", "Duplicate Content-Length"),
    # lengths that are not a number
    (HEAD + b"content-length: -3\r\n\r\nabc", "Invalid character in Content-Length"),
    (HEAD + b"content-length: 3x\r\n\r\nabc", "Invalid character in Content-Length"),
    (HEAD + b"content-length: +3\r\n\r\nabc", "Invalid character in Content-Length"),
    (HEAD + b"content-length: 99999999999999999999999\r\n\r\n", "Content-Length"),
    # transfer codings other than chunked last, hidden or doubled
    (HEAD + b"transfer-encoding: gzip\r\n\r\nabc", "Transfer-Encoding"),
    (HEAD + b"transfer-encoding: chunked, identity\r\n\r\n0\r\n\r\n", "Transfer-Encoding"),
    (HEAD + b"transfer-encoding : chunked\r\n\r\n0\r\n\r\n", "Invalid header field char"),
    (HEAD + b"transfer-encoding:\x0bchunked\r\n\r\n0\r\n\r\n", "Invalid"),
    # bad chunk sizes
    (HEAD + b"transfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", "hunk size"),
    (HEAD + b"transfer-encoding: chunked\r\n\r\n" + b"f" * 20 + b"\r\nab\r\n", "hunk size"),
    (HEAD + b"transfer-encoding: chunked\r\n\r\n-1\r\nab\r\n", "hunk size"),
    # line folding, bare LF, control bytes
    (HEAD + b"x-a: 1\r\n x-b: 2\r\n\r\n", "Invalid"),
    (b"GET /healthz HTTP/1.1\nhost: x\n\n", "Expected CRLF"),
    (b"GET /healthz HTTP/1.1\r\nx-a: 1\x002\r\n\r\n", "Invalid header value char"),
    (b"GET /healthz HTTP/1.1\r\nx-a: 1\r2\r\n\r\n", "Missing expected LF"),
]
"""Requests with what request smuggling needs, and the words of each one's 400 (most begin with
``HEAD``'s lines; tests/security/test_replica_front.py adds its token after them)."""


@pytest.mark.parametrize(
    ("data", "words"),
    SMUGGLING,
    ids=lambda v: v.decode("latin-1")[len(HEAD) :][:40] if isinstance(v, bytes) else v,
)
def test_what_smuggling_needs_is_a_400_and_the_connection_ends(
    front: tuple[str, Gateway], data: bytes, words: str
) -> None:
    url, _ = front
    refused(url, data, 400, words)


def test_a_smuggled_request_after_a_good_one_is_not_served(
    calc: Plane,  # noqa: F811
    front: tuple[str, Gateway],
) -> None:
    """The good request is answered in its turn, then the refusal; the request hidden in the
    bad one's body never reaches the gateway."""
    url, app = front
    sock = connect(url)
    reader = Reader(sock)
    hidden = request("POST", PATH, key(calc), INFER)
    bad = HEAD + b"content-length: %d\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n" % (
        len(hidden) + 5
    )
    sock.sendall(request("POST", PATH, key(calc), INFER) + bad + hidden)
    first = reader.answer()
    assert first.status == 200, first.body
    second = reader.answer()
    assert second.status == 400
    assert reader.closed()
    sock.close()
    served = app.requests.labels("calc", "1", "200")._value.get()
    assert served == 1, "only the first request was forwarded"


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"FOO /healthz HTTP/1.1\r\n\r\n", 400, "Invalid method"),
        (b"GET /healthz HTTP/2.0\r\n\r\n", 505, "HTTP/2.0 is not supported"),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "PRI"),  # HTTP/2's preface
        (b"GET /healthz HTTP/1.2\r\n\r\n", 400, "Invalid HTTP version"),
        (b"GET /healthz HTTX/1.1\r\n\r\n", 400, "Invalid"),
        (b"GET * HTTP/1.1\r\n\r\n", 400, "target must be a path"),
        (b"GET example.com:443 HTTP/1.1\r\n\r\n", 400, "Invalid"),
        (b"GET /\xff HTTP/1.1\r\n\r\n", 400, "Invalid"),
        (b"GET /a b HTTP/1.1\r\n\r\n", 400, "Invalid"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", 400, "Invalid"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)), 400, "Invalid"),
        (bytes(range(256)), 400, "Invalid"),
    ],
)
def test_garbage_is_a_400_and_the_connection_ends(
    front: tuple[str, Gateway], data: bytes, status: int, words: str
) -> None:
    url, _ = front
    refused(url, data, status, words)


def test_oversized_heads_are_a_431(front: tuple[str, Gateway]) -> None:
    url, _ = front
    big = request("GET", "/healthz", {"x-big": "a" * 40_000})
    refused(url, big, 431, "too large")
    many = request("GET", "/healthz", {f"x-h{i}": "1" for i in range(101)})
    refused(url, many, 431, "more than 100 headers")
    long_target = request("GET", "/healthz?" + "q" * 40_000)
    refused(url, long_target, 431, "too large")
    # sent a little at a time, never ending: refused once past the limit, not held
    sock = connect(url)
    reader = Reader(sock)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nx-a: ")
    time.sleep(0.2)  # read on its own: what follows is a head under way, counted as it comes
    with contextlib.suppress(OSError):  # the server may close while this still sends
        for _ in range(100):
            sock.sendall(b"a" * 1000)
    assert reader.answer().status == 431
    sock.close()
    # just under the limits is served
    fits = request("GET", "/healthz", {f"x-h{i}": "a" * 200 for i in range(99)})
    answer, _ = send_raw(url, fits)
    assert answer.status == 200


def test_bodies_over_the_deployments_limit_are_a_413(
    calc: Plane,  # noqa: F811
    front: tuple[str, Gateway],
) -> None:
    url, app = front
    calc.client.update_deployment("calc", policy={"max_body_bytes": 200})
    until(lambda: app.table.routes["calc"].policy.max_body_bytes == 200, 5, "the policy")
    big = json.dumps(
        {"inputs": [{"name": "x", "datatype": "FP64", "shape": [40, 2], "data": [1.0] * 80}]}
    ).encode()
    # declared: refused before any of it is read (a client that waits for 100 sends nothing)
    declared = request(
        "POST", PATH, {**key(calc), "expect": "100-continue", "content-length": "999999999999"}
    )
    answer, closed = send_raw(url, declared)
    assert answer.status == 413
    assert "this deployment takes at most 200" in json.loads(answer.body)["error"]
    assert closed
    # chunked: refused once past the limit
    answer, closed = send_raw(
        url, request("POST", PATH, {**key(calc), "transfer-encoding": "chunked"}, chunked(big))
    )
    assert answer.status == 413
    assert "over the 200 bytes" in json.loads(answer.body)["error"]
    # a small one still passes
    assert send_raw(url, request("POST", PATH, key(calc), INFER))[0].status == 200


def test_slow_clients_are_cut_off(calc: Plane, front: tuple[str, Gateway]) -> None:  # noqa: F811
    url, _ = front
    # a head sent a byte at a time (slowloris): 408 once its time is up
    sock = connect(url)
    reader = Reader(sock)
    sent = 0
    with contextlib.suppress(OSError):
        for byte in b"GET /healthz HTTP/1.1\r\nx-a: " + b"a" * 200:
            sock.sendall(bytes([byte]))
            sent += 1
            time.sleep(0.05)
    assert sent < 200, "cut off before the head ended"
    answer = reader.answer()
    assert answer.status == 408
    sock.close()
    # a body that stalls: 408
    sock = connect(url)
    reader = Reader(sock)
    sock.sendall(request("POST", PATH, {**key(calc), "content-length": "100"}) + b"{")
    answer = reader.answer()
    assert answer.status in (400, 408), answer.body  # the gateway sees the body cut short
    assert reader.closed()
    sock.close()
    # a connection that never sends a byte is closed
    sock = connect(url)
    assert Reader(sock).closed()
    sock.close()


def test_too_many_connections_are_a_503(database: Database) -> None:
    app = Gateway(database, refresh_seconds=3600)
    with serve_front(app, limits=Limits(max_connections=3)) as url:
        held = [connect(url) for _ in range(3)]
        for sock in held:
            sock.sendall(request("GET", "/v2/health/live"))
            assert Reader(sock).answer().status == 200
        answer, closed = send_raw(url, request("GET", "/v2/health/live"))
        assert answer.status == 503
        assert "too many connections" in answer.body.decode()
        assert closed
        held.pop().close()
        deadline = time.monotonic() + 10
        while send_raw(url, request("GET", "/v2/health/live"))[0].status != 200:
            assert time.monotonic() < deadline, "a freed slot is taken again"
            time.sleep(0.05)
        for sock in held:
            sock.close()


def test_an_upgrade_is_answered_as_plain_http_then_closed(front: tuple[str, Gateway]) -> None:
    url, _ = front
    upgrade = {"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13"}
    answer, closed = send_raw(url, request("GET", "/healthz", upgrade) + b"\x81\x05hello")
    assert answer.status == 200
    assert closed


def test_a_fault_never_leaks_a_traceback(database: Database) -> None:
    class Faulty(Gateway):
        async def reply(self, call: Call) -> Reply:
            raise RuntimeError("secret-detail in the fault")

        async def _health(self, send: Any) -> None:
            raise RuntimeError("secret-detail in the fault")

    with serve_front(Faulty(database, refresh_seconds=3600)) as url:
        for path in (PATH, "/healthz"):
            answer = httpx.post(url + path, content=INFER) if "models" in path else None
            answer = answer or httpx.get(url + path)
            assert answer.status_code == 500
            assert answer.json()["code"] == "internal"
            assert "secret" not in answer.text
            assert "Traceback" not in answer.text


def test_wrong_or_missing_keys_are_refused_as_on_uvicorn(
    calc: Plane,  # noqa: F811
    database: Database,
) -> None:
    wrong = {"authorization": "Bearer fnd_000000000000_nope"}
    cases = [
        ("POST", PATH, {}, INFER),
        ("POST", PATH, wrong, INFER),
        ("POST", PATH, {"x-api-key": "nope"}, INFER),
        ("POST", "/v1/models/calc:predict", wrong, b'{"instances": [[1, 2]]}'),
        ("GET", "/v2/models/calc", {}, b""),
        ("GET", "/metrics", {}, b""),
        ("GET", "/metrics", wrong, b""),
        ("POST", "/v2/repository/index", wrong, b""),
        ("GET", "/try/calc/info", {}, b""),
        ("GET", "/try/calc/info", wrong, b""),
    ]
    with (
        serve_front(Gateway(database, refresh_seconds=0.1)) as lean,
        serve(Gateway(database, refresh_seconds=0.1)) as plain,
    ):
        for method, path, headers, body in cases:
            got = [
                httpx.request(method, base + path, headers=headers, content=body)
                for base in (lean, plain)
            ]
            assert got[0].status_code in (401, 403), (path, got[0].text)
            assert got[0].status_code == got[1].status_code, (path, got[0].text, got[1].text)
            assert got[0].content == got[1].content, path
            assert got[0].headers.get("www-authenticate") == got[1].headers.get("www-authenticate")


def test_a_flood_of_pipelined_requests_is_read_only_as_answered(
    front: tuple[str, Gateway],
) -> None:
    """Thousands of requests in one write: answered in order, without reading ahead of them."""
    url, _ = front
    sock = connect(url)
    sock.sendall(request("GET", "/v2/health/live") * 2000)
    reader = Reader(sock)
    answers = [reader.answer() for _ in range(2000)]
    assert {a.status for a in answers} == {200}
    sock.close()


def test_half_sent_requests_and_resets_leave_the_server_serving(
    front: tuple[str, Gateway],
) -> None:
    url, _ = front
    for partial in (
        b"GET /heal",
        b"POST " + PATH.encode() + b" HTTP/1.1\r\ncontent-length: 9\r\n\r\n{",
    ):
        sock = connect(url)
        sock.sendall(partial)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # a reset
    assert httpx.get(f"{url}/v2/health/live").status_code == 200
