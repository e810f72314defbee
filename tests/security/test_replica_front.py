"""Hostile input at a replica (`funade serve`) on the lean front (``funade.web.front``, the
default ``serve_server``), over raw sockets: its token checked before any of the body is read,
bodies over its limit refused before they are read, what request smuggling needs refused, slow
clients cut off. The server is the app `funade serve` builds, on the front it runs, with short
timeouts (the front's own refusals are tested at length on the gateway:
tests/security/test_gateway_front.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from funade.serving.app import create_model_app
from funade.serving.config import ServeConfig
from funade.web.front import Limits
from tests.gateway.rawhttp import Reader, chunked, connect, request
from tests.security.test_gateway_front import HEAD, PATH, SMUGGLING, refused, send_raw
from tests.servers import serve_front
from tests.serving.fakes import arithmetic_package, loaded, wait_ready

TOKEN = "replica-s3cret"
AUTH = {"authorization": f"Bearer {TOKEN}"}
INFER = json.dumps(
    {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}
).encode()
LIMIT = 2000


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    target = loaded(arithmetic_package(tmp_path_factory.mktemp("calc") / "package"))
    config = ServeConfig(source="calc", name="calc", token=TOKEN, max_body_bytes=LIMIT)
    app = create_model_app(config, lambda: target)
    small = Limits(header_timeout=1.0, body_timeout=1.0, keep_alive_timeout=1.0)
    with serve_front(app, limits=small) as url:
        wait_ready(url)
        yield url


def test_a_good_request_is_answered(replica: str) -> None:
    answer, _ = send_raw(replica, request("POST", PATH, AUTH, INFER))
    assert answer.status == 200, answer.body
    assert json.loads(answer.body)["model_name"] == "calc"
    assert "connection" not in answer.headers, "kept alive"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong"},
        {"authorization": f"Basic {TOKEN}"},
        {"authorization": f"bearer {TOKEN}"},
        {"x-api-key": TOKEN},
    ],
    ids=["missing", "wrong", "basic", "lower-case scheme", "api key header"],
)
@pytest.mark.parametrize("path", [PATH, "/v1/models/calc:predict", "/v2/models/calc"])
def test_a_wrong_or_missing_token_is_a_401_before_the_body_is_read(
    replica: str, headers: dict[str, str], path: str
) -> None:
    """The head alone, a body announced (and promised with 100-continue) but never sent: the
    401 comes at once, without a 100 Continue, and the connection ends (the unread body cannot
    be told from a next request)."""
    head = request("POST", path, {**headers, "content-length": "100000", "expect": "100-continue"})
    sock = connect(replica)
    try:
        sock.sendall(head)
        reader = Reader(sock)
        answer = reader.answer(timeout=5)
        assert answer.status == 401, answer.body
        assert json.loads(answer.body)["code"] == "unauthenticated"
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.headers["connection"] == "close"
        assert reader.closed()
    finally:
        sock.close()


def test_probes_need_no_token_but_everything_else_does(replica: str) -> None:
    for path in ("/v2/health/live", "/v2/health/ready", "/"):
        assert send_raw(replica, request("GET", path))[0].status == 200
    for method, path in (("GET", PATH), ("GET", "/metrics"), ("DELETE", "/v2/models/calc")):
        assert send_raw(replica, request(method, path))[0].status == 401
    # with it, a wrong method on an inference route is the protocol's 405
    answer, _ = send_raw(replica, request("GET", PATH, AUTH))
    assert answer.status == 405
    assert json.loads(answer.body)["code"] == "method_not_allowed"


def test_bodies_over_the_limit_are_a_413(replica: str) -> None:
    # by the declared length, before any of it is sent
    sock = connect(replica)
    try:
        sock.sendall(request("POST", PATH, {**AUTH, "content-length": str(LIMIT + 1)}))
        reader = Reader(sock)
        answer = reader.answer(timeout=5)
        assert answer.status == 413, answer.body
        assert json.loads(answer.body)["field"] == "body"
        assert reader.closed()
    finally:
        sock.close()
    # chunked (no length declared): as it streams in
    big = b'{"inputs": [' + b" " * (LIMIT * 2) + b"]}"
    answer, closed = send_raw(
        replica,
        request("POST", PATH, {**AUTH, "transfer-encoding": "chunked"}, chunked(big, 500)),
    )
    assert answer.status == 413, answer.body
    assert f"more than {LIMIT} bytes" in json.loads(answer.body)["error"]
    assert closed, "the rest of the body is never read"
    # a small one still passes, on a new connection
    assert send_raw(replica, request("POST", PATH, AUTH, INFER))[0].status == 200


@pytest.mark.parametrize(
    ("data", "words"),
    SMUGGLING,
    ids=lambda v: v.decode("latin-1")[len(HEAD) :][:40] if isinstance(v, bytes) else v,
)
def test_what_smuggling_needs_is_a_400_and_the_connection_ends(
    replica: str, data: bytes, words: str
) -> None:
    with_token = data.replace(HEAD, HEAD + f"authorization: Bearer {TOKEN}\r\n".encode(), 1)
    refused(replica, with_token, 400, words)


def test_slow_clients_are_cut_off(replica: str) -> None:
    # a head sent a byte at a time (slowloris): 408 once its time is up
    sock = connect(replica)
    reader = Reader(sock)
    sent = 0
    try:
        for byte in b"GET /v2/health/live HTTP/1.1\r\nx-a: " + b"a" * 200:
            sock.sendall(bytes([byte]))
            sent += 1
            time.sleep(0.05)
    except OSError:
        pass
    assert sent < 200, "cut off before the head ended"
    assert reader.answer().status == 408
    sock.close()
    # a body that stalls: the front's 408 (or the app's, whichever comes first), then close
    sock = connect(replica)
    reader = Reader(sock)
    sock.sendall(request("POST", PATH, {**AUTH, "content-length": "100"}) + b"{")
    answer = reader.answer()
    assert answer.status == 408, answer.body
    assert reader.closed()
    sock.close()


def test_an_absolute_target_is_read_for_its_path_only(replica: str) -> None:
    """An absolute-form target is read for its path only (no proxying to another host)."""
    answer, _ = send_raw(
        replica, request("POST", "http://169.254.169.254/v2/models/calc/infer", AUTH, INFER)
    )
    assert answer.status == 200, answer.body
