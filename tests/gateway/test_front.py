"""The gateway on its lean HTTP/1.1 front (``funade.web.front``): every route answers as on
uvicorn, and the front keeps connections alive, answers pipelined requests in order, sends
``100 Continue``, reads chunked bodies, answers HEAD without a body, speaks HTTP/1.0, streams
ASGI answers, pauses reading while the client does not read, and stops gracefully."""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvloop

from funade.gateway.app import Gateway
from funade.store import Database
from funade.web.front import Front, LifespanError, Limits
from tests.deploy.conftest import Plane
from tests.gateway.rawhttp import Reader, chunked, connect, request
from tests.servers import serve, serve_front

BODY = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}
INFER = json.dumps(BODY).encode()


def admin(plane: Plane) -> dict[str, str]:
    return {"authorization": plane.client._http.headers["authorization"]}


@pytest.fixture
def lean(calc: Plane, database: Database) -> Iterator[str]:
    with serve_front(Gateway(database, refresh_seconds=0.1, stats_seconds=0.2)) as url:
        yield url


def calls(plane: Plane) -> list[tuple[str, str, dict[str, str], bytes]]:
    """A request to every route the gateway has, with and without the key."""
    key = admin(plane)
    json_type = {"content-type": "application/json"}
    return [
        ("POST", "/v2/models/calc/infer", {**key, **json_type}, INFER),
        ("POST", "/v2/models/calc/infer", json_type, INFER),
        ("POST", "/v2/models/calc/infer", {"x-api-key": "fnd_000000000000_nope"}, INFER),
        ("POST", "/v1/models/calc:predict", {**key, **json_type}, b'{"instances": [[1, 2]]}'),
        ("POST", "/v2/models/nope/infer", {**key, **json_type}, INFER),
        ("GET", "/v2/models/calc", key, b""),
        ("GET", "/v2/models/calc/ready", key, b""),
        ("GET", "/healthz", {}, b""),
        ("GET", "/metrics", key, b""),
        ("GET", "/metrics", {}, b""),
        ("GET", "/", {}, b""),
        ("GET", "/v2", {}, b""),
        ("GET", "/v2/health/live", {}, b""),
        ("GET", "/v2/health/ready", {}, b""),
        ("DELETE", "/v2/health/ready", {}, b""),
        ("POST", "/v2/repository/index", key, b""),
        ("POST", "/v2/repository/index", {}, b"{}"),
        ("GET", "/try/calc", {}, b""),
        ("GET", "/try/_static/try.js", {}, b""),
        ("GET", "/try/calc/info", key, b""),
        ("POST", "/try/calc", {}, b""),
        ("GET", "/api/v1/whoami", {}, b""),
        ("GET", "/v2/models/calc%2Fx/infer", key, b""),
    ]


VARYING = {"table_age_seconds"}


def comparable(response: httpx.Response) -> tuple[int, str, Any]:
    kind = response.headers.get("content-type", "")
    if kind.startswith("application/json"):
        body = response.json()
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if k not in VARYING}
        return response.status_code, kind, body
    if kind.startswith("text/plain; version"):  # Prometheus: the same series, other counts
        names = sorted({ln.split("{")[0] for ln in response.text.splitlines() if ln[:1] != "#"})
        return response.status_code, kind, names
    return response.status_code, kind, response.content


def test_every_route_answers_as_on_uvicorn(calc: Plane, database: Database) -> None:
    with (
        serve_front(Gateway(database, refresh_seconds=0.1)) as lean_url,
        serve(Gateway(database, refresh_seconds=0.1)) as uvicorn_url,
    ):
        for method, path, headers, body in calls(calc):
            got = {}
            for name, base in (("lean", lean_url), ("uvicorn", uvicorn_url)):
                answer = httpx.request(method, base + path, headers=headers, content=body)
                got[name] = answer
            lean, plain = got["lean"], got["uvicorn"]
            assert comparable(lean) == comparable(plain), (method, path, lean.text, plain.text)
            for header in ("funade-revision", "funade-model-version", "www-authenticate", "allow",
                           "content-security-policy", "cache-control", "retry-after"):  # fmt: skip
                assert lean.headers.get(header) == plain.headers.get(header), (path, header)
            assert "date" in lean.headers
            assert "server" not in lean.headers, "the lean front does not name itself"


def test_requests_on_one_connection_are_answered_in_order(calc: Plane, lean: str) -> None:
    key = admin(calc)
    sock = connect(lean)
    reader = Reader(sock)
    v1 = b'{"instances": [[3, 4]]}'
    # three requests in one write (pipelined), then two more one by one (kept alive)
    sock.sendall(
        request("POST", "/v2/models/calc/infer", key, INFER)
        + request("GET", "/v2/health/live")
        + request("POST", "/v1/models/calc:predict", key, v1)
    )
    first, second, third = reader.answer(), reader.answer(), reader.answer()
    assert first.status == 200, first.body
    assert json.loads(first.body)["outputs"][0]["data"] == [2.0, 4.0]
    assert first.headers["funade-revision"] == "1"
    assert (second.status, json.loads(second.body)) == (200, {"live": True})
    assert third.status == 200, third.body
    assert json.loads(third.body)["predictions"][0] == [6.0, 8.0]
    for _ in range(2):
        sock.sendall(request("GET", "/healthz"))
        assert reader.answer().status == 200
    assert not reader.closed(timeout=0.2), "kept alive"
    sock.close()


def test_a_chunked_body_is_read_whole(calc: Plane, lean: str) -> None:
    sock = connect(lean)
    reader = Reader(sock)
    headers = {**admin(calc), "transfer-encoding": "chunked"}
    sock.sendall(request("POST", "/v2/models/calc/infer", headers, chunked(INFER)))
    answer = reader.answer()
    assert answer.status == 200, answer.body
    assert json.loads(answer.body)["outputs"][0]["data"] == [2.0, 4.0]
    sock.sendall(request("GET", "/v2/health/live"))  # the connection is still in step
    assert reader.answer().status == 200
    sock.close()


def test_expect_100_continue(calc: Plane, lean: str) -> None:
    sock = connect(lean)
    reader = Reader(sock)
    headers = {**admin(calc), "expect": "100-continue", "content-length": str(len(INFER))}
    sock.sendall(request("POST", "/v2/models/calc/infer", headers))
    interim = reader.answer()
    assert interim.status == 100
    sock.sendall(INFER)
    answer = reader.answer()
    assert answer.status == 200, answer.body
    # Refused before the body is read: no 100, the refusal, and the unsent body ends the
    # connection (it cannot be told from a next request)
    headers = {"expect": "100-continue", "content-length": str(len(INFER))}
    sock.sendall(request("POST", "/v2/models/calc/infer", headers))
    refused = reader.answer()
    assert refused.status == 401
    assert refused.headers["connection"] == "close"
    assert reader.closed()
    sock.close()


def test_head_answers_have_no_body(lean: str) -> None:
    sock = connect(lean)
    reader = Reader(sock)
    sock.sendall(request("HEAD", "/v2/health/live") + request("GET", "/v2/health/live"))
    status, headers = reader.head()
    assert status.startswith(b"HTTP/1.1 200"), status
    assert headers["content-type"] == "application/json"
    after = reader.answer()  # right after the head: no body came between
    assert (after.status, json.loads(after.body)) == (200, {"live": True})
    sock.close()


def test_http_1_0_is_closed_unless_it_asks_to_keep_alive(lean: str) -> None:
    sock = connect(lean)
    reader = Reader(sock)
    sock.sendall(request("GET", "/v2/health/live", version="1.0"))
    answer = reader.answer()
    assert (answer.status, answer.headers["connection"]) == (200, "close")
    assert reader.closed()
    sock.close()
    sock = connect(lean)
    reader = Reader(sock)
    kept = {"connection": "keep-alive"}
    sock.sendall(request("GET", "/v2/health/live", kept, version="1.0"))
    answer = reader.answer()
    assert (answer.status, answer.headers["connection"]) == (200, "keep-alive")
    sock.sendall(request("GET", "/v2/health/live", version="1.0"))
    assert reader.answer().status == 200
    assert reader.closed()
    sock.close()


def test_connection_close_is_honoured(lean: str) -> None:
    sock = connect(lean)
    reader = Reader(sock)
    sock.sendall(request("GET", "/healthz", {"connection": "close"}))
    answer = reader.answer()
    assert (answer.status, answer.headers["connection"]) == (200, "close")
    assert reader.closed()
    sock.close()


# The front with small ASGI apps of the tests' own --------------------------------------------


class Streams:
    """An ASGI app: /stream answers in three parts, /big 1 MiB, /slow after ``release``; it
    counts requests and records its lifespan."""

    def __init__(self) -> None:
        self.started = 0
        self.events: list[str] = []
        self.release = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.events.append(message["type"])
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        self.started += 1
        path = scope["path"]
        if path == "/slow":
            while not self.release.is_set():
                await asyncio.sleep(0.02)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if path == "/stream":
            for part in (b"one ", b"two "):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b"three"})
        elif path == "/big":
            await send({"type": "http.response.body", "body": b"x" * (1 << 20)})
        else:
            await send({"type": "http.response.body", "body": path.encode()})


def test_streamed_answers_are_chunked_or_end_with_the_connection() -> None:
    app = Streams()
    with serve_front(app) as url:
        sock = connect(url)
        reader = Reader(sock)
        sock.sendall(request("GET", "/stream") + request("GET", "/after"))
        streamed = reader.answer()
        assert streamed.headers["transfer-encoding"] == "chunked"
        assert streamed.body == b"one two three"
        assert reader.answer().body == b"/after"
        sock.close()
        sock = connect(url)
        reader = Reader(sock)
        sock.sendall(request("GET", "/stream", {"connection": "keep-alive"}, version="1.0"))
        old = reader.answer()
        assert "transfer-encoding" not in old.headers
        assert "content-length" not in old.headers
        assert old.body == b"one two three"
        assert reader.closed()
        sock.close()
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]


def test_reading_pauses_while_the_client_does_not_read() -> None:
    app = Streams()
    with serve_front(app) as url:
        sock = connect(url)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(request("GET", "/big") * 64)  # 64 MiB of answers asked for, none read
        seen = -1
        while seen != app.started:  # until the server stops taking requests
            seen = app.started
            time.sleep(0.5)
        assert app.started < 64, "answers wait for the client to read"
        reader = Reader(sock)
        bodies = [reader.answer().body for _ in range(64)]
        assert all(body == b"x" * (1 << 20) for body in bodies)
        assert app.started == 64
        sock.close()


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout() -> None:
    with serve_front(Streams(), limits=Limits(keep_alive_timeout=0.5)) as url:
        sock = connect(url)
        reader = Reader(sock)
        sock.sendall(request("GET", "/a"))
        assert reader.answer().status == 200
        assert reader.closed(timeout=20)
        sock.close()


def test_a_graceful_stop_finishes_requests_in_flight() -> None:
    """On stop: no new connections, idle kept-alive ones closed, the request in flight answered
    (then its connection closed), the lifespan's shutdown run."""
    app = Streams()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    front = Front(app)
    thread = threading.Thread(target=lambda: uvloop.run(front.serve([sock])), daemon=True)
    thread.start()
    assert front.started.wait(20)
    url = f"http://127.0.0.1:{port}"
    idle = connect(url)
    idle_reader = Reader(idle)
    idle.sendall(request("GET", "/a"))
    assert idle_reader.answer().status == 200
    busy = connect(url)
    busy_reader = Reader(busy)
    busy.sendall(request("GET", "/slow"))
    while app.started < 2:
        time.sleep(0.02)
    front.stop()
    assert idle_reader.closed(), "the idle kept-alive connection is closed"
    with pytest.raises(ConnectionRefusedError):  # no new connections
        socket.create_connection(("127.0.0.1", port), timeout=5)
    assert thread.is_alive(), "still serving the request in flight"
    app.release.set()
    answer = busy_reader.answer()
    assert (answer.status, answer.body, answer.headers["connection"]) == (200, b"/slow", "close")
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]


def test_a_lifespan_startup_failure_stops_the_front() -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no store"})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    with pytest.raises(LifespanError, match="the app did not start: no store"):
        uvloop.run(Front(failing).serve([sock]))


def _switches(native_id: int) -> int:
    """How many times the thread ``native_id`` has given up its core (each sleep, each wait)."""
    status = Path(f"/proc/self/task/{native_id}/status").read_text()
    return int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)$", status, re.M)[1])  # type: ignore[index]


def test_at_rest_the_front_sleeps_and_the_next_connection_finds_its_clock_current() -> None:
    """With no connection open the sweeper sleeps until one opens (it ticked four times a second
    at rest); that connection's deadlines and ``date`` start from the time it opened, not from
    the last tick before the rest (a stale clock would time its head out at once)."""
    limits = Limits(keep_alive_timeout=0.4, header_timeout=0.4)  # a sweep every 0.1 s
    front = Front(Streams(), limits=limits)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=lambda: uvloop.run(front.serve([sock])), daemon=True)
    thread.start()
    assert front.started.wait(20)
    try:
        time.sleep(0.3)
        assert thread.native_id is not None
        before = _switches(thread.native_id)
        time.sleep(1.5)  # fifteen sweeps, were it sweeping
        assert _switches(thread.native_id) - before <= 2, "the server woke at rest"
        client = connect(f"http://127.0.0.1:{sock.getsockname()[1]}")
        reader = Reader(client)
        head = request("GET", "/late")
        client.sendall(head[:10])
        time.sleep(0.2)  # within the head's 0.4 s, counted from the connection's opening
        client.sendall(head[10:])
        answer = reader.answer()
        assert (answer.status, answer.body) == (200, b"/late")
        sent = email.utils.parsedate_to_datetime(answer.headers["date"]).timestamp()
        assert abs(sent - time.time()) < 2.0, "the date header is current"
        assert reader.closed(timeout=10), "the sweeper, woken, closes it when idle"
        client.close()
    finally:
        front.stop()
        thread.join(timeout=40)
