"""A replica's URL and the clients made from it: `funade serve --uds` as a real process, asked
for readiness (the backends' probe) and verified (the controller's check) over its socket."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from funade.deploy.backends.base import ReplicaState
from funade.deploy.backends.health import Health, probe
from funade.deploy.replicaurl import Address, ReplicaHTTP, address, unix_url
from funade.deploy.verify import verify
from tests.serving.fakes import arithmetic_package

TOKEN = "s3cret-token"
GOLDEN = [
    {
        "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}],
        "outputs": [{"name": "double", "shape": [1, 2], "datatype": "FP64", "data": [2.0, 4.0]}],
    }
]


def listening_tcp_inodes() -> set[str]:
    """The socket inodes of every TCP socket of this machine in LISTEN state."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            next(handle)
            for line in handle:
                fields = line.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    inodes.add(fields[9])
    return inodes


def socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[len("socket:[") : -1])
    return out


def wait_for(path: Path, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, "funade serve exited"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def until_ready(http: ReplicaHTTP, url: str, process: subprocess.Popen[bytes]) -> None:
    health = Health()
    deadline = time.monotonic() + 60
    while probe(http, url, TOKEN, health)[0] is not ReplicaState.READY:
        assert process.poll() is None, "funade serve exited"
        assert time.monotonic() < deadline, "not ready in 60 s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """`funade serve PACKAGE --uds PATH` with a token; its URL and pid once ready."""
    directory = arithmetic_package(tmp_path_factory.mktemp("pkg") / "calc")
    with tempfile.TemporaryDirectory(prefix="uds-") as sockets:
        path = os.path.join(sockets, "r.sock")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNADE_")}
        env["FUNADE_HOME"] = str(tmp_path_factory.mktemp("home"))
        env["FUNADE_REPLICA_TOKEN"] = TOKEN
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "funade",
                "serve",
                str(directory),
                "--name",
                "calc",
                "--uds",
                path,
                "--url-file",
                os.path.join(sockets, "url"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(Path(sockets) / "url", process)
            url = (Path(sockets) / "url").read_text()
            with ReplicaHTTP(5) as http:
                until_ready(http, url, process)
            yield url, process.pid
        finally:
            process.terminate()
            process.wait(30)
        assert not os.path.exists(path), "the server removes its socket when it stops"


def test_the_url_of_a_unix_replica_is_unix_and_its_path(served: tuple[str, int]) -> None:
    url, _ = served
    assert url.startswith("unix:/")
    assert url.endswith("/r.sock")
    assert url == unix_url(url.removeprefix("unix:"))


def test_the_socket_is_the_replicas_alone_and_no_tcp_port_is_open(
    served: tuple[str, int],
) -> None:
    url, pid = served
    mode = os.stat(url.removeprefix("unix:")).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600
    assert not socket_inodes(pid) & listening_tcp_inodes()


def test_verification_over_the_socket_passes_and_reports_a_difference(
    served: tuple[str, int],
) -> None:
    url, _ = served
    http = ReplicaHTTP(10)
    try:
        assert verify(http, url, "calc", GOLDEN, [], token=TOKEN) == []
        wrong = [{**GOLDEN[0], "outputs": [{**GOLDEN[0]["outputs"][0], "data": [2.0, 5.0]}]}]
        problems = verify(http, url, "calc", wrong, [], token=TOKEN)
        assert len(problems) == 1
        assert problems[0].startswith("golden example 1: output 'double'")
    finally:
        http.close()


def test_a_socket_that_is_gone_fails_the_probe_and_verification(tmp_path: Path) -> None:
    url = unix_url(str(tmp_path / "gone.sock"))
    http = ReplicaHTTP(2)
    try:
        assert probe(http, url, TOKEN, Health()) == (ReplicaState.STARTING, "")
        ready = Health(ever_ready=True, failures=2)
        state, why = probe(http, url, TOKEN, ready)
        assert state is ReplicaState.FAILED
        assert why.startswith("health check failed: ConnectError")
        problems = verify(http, url, "calc", GOLDEN, [], token=TOKEN)
        assert problems[0].startswith("golden example 1: the replica did not answer (ConnectError")
    finally:
        http.close()


def test_unix_clients_beyond_keep_are_closed(served: tuple[str, int], tmp_path: Path) -> None:
    url, _ = served
    http = ReplicaHTTP(2, keep=1)
    try:
        with pytest.raises(httpx.ConnectError):
            http.get(unix_url(str(tmp_path / "other.sock")), "/v2/health/live")
        assert http.get(url, "/v2/health/live").status_code == 200
        assert list(http._unix) == [url.removeprefix("unix:")]
    finally:
        http.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("unix:/run/x/r.sock", Address("/run/x/r.sock", "", 0, "replica")),
        ("http://127.0.0.1:8080", Address(None, "127.0.0.1", 8080, "127.0.0.1:8080")),
        ("http://svc.ns.svc:80", Address(None, "svc.ns.svc", 80, "svc.ns.svc:80")),
    ],
)
def test_addresses(url: str, expected: Address) -> None:
    assert address(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("unix:r.sock", "replica URL 'unix:r.sock' is not unix:/absolute/path"),
        ("https://a:1", "replica URL 'https://a:1' is neither http://host:port nor unix:/path"),
        ("http://a", "replica URL 'http://a' is neither http://host:port nor unix:/path"),
        ("", "replica URL '' is neither http://host:port nor unix:/path"),
    ],
)
def test_urls_that_are_not_replica_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match="replica URL") as raised:
        address(url)
    assert str(raised.value) == message
    http = ReplicaHTTP(1)
    with pytest.raises(httpx.InvalidURL, match="replica URL"):
        http.get(url, "/v2/health/ready")
    http.close()


def test_sigterm_stops_a_unix_server_and_removes_its_socket(tmp_path: Path) -> None:
    directory = arithmetic_package(tmp_path / "calc")
    with tempfile.TemporaryDirectory(prefix="uds-") as sockets:
        path = Path(sockets) / "s"
        process = subprocess.Popen(
            [sys.executable, "-m", "funade", "serve", str(directory), "--uds", str(path)],
            env={**os.environ, "FUNADE_HOME": str(tmp_path / "home")},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(path, process)
        with ReplicaHTTP(5) as http:
            until_ready(http, unix_url(str(path)), process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == -signal.SIGTERM  # uvicorn raises the signal again once done
        assert not path.exists()


def _slow_unix_server(path: Path, accepted: threading.Event, release: threading.Event) -> None:
    """Answer one request on ``path`` once ``release`` is set (``accepted`` set on connect)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)
        server.settimeout(10)
        connection, _ = server.accept()
        with connection:
            accepted.set()
            connection.recv(65536)
            release.wait(10)
            connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")


def test_a_client_let_go_while_a_request_uses_it_is_closed_after_the_answer(
    tmp_path: Path,
) -> None:
    """A request under way when its client is let go (``keep``) and the whole object closed (a
    backend closing while its thread still probes) gets its answer; the client is closed then,
    its socket with it (the suite fails on a socket left to the garbage collector)."""
    path = tmp_path / "slow.sock"
    accepted, release = threading.Event(), threading.Event()
    server = threading.Thread(target=_slow_unix_server, args=(path, accepted, release))
    server.start()
    while not path.exists():
        time.sleep(0.01)
    http = ReplicaHTTP(5, keep=1)
    answers: list[httpx.Response | BaseException] = []

    def ask() -> None:
        try:
            answers.append(http.get(unix_url(str(path)), "/v2/health/ready"))
        except BaseException as exc:
            answers.append(exc)

    asking = threading.Thread(target=ask)
    asking.start()
    assert accepted.wait(10)
    with pytest.raises(httpx.ConnectError):  # another socket: the slow one's client let go
        http.get(unix_url(str(tmp_path / "gone.sock")), "/v2/health/ready")
    assert list(http._unix) == [str(tmp_path / "gone.sock")]
    http.close()
    release.set()
    asking.join(10)
    server.join(10)
    (answer,) = answers
    assert isinstance(answer, httpx.Response), answer
    assert (answer.status_code, answer.text) == (200, "ok")
    assert (http._busy, http._retired) == ({}, set()), "closed once answered"
    with pytest.raises(httpx.ConnectError):  # after close: a client for the call alone
        http.get(unix_url(str(path)), "/v2/health/ready")
    assert (http._busy, http._retired) == ({}, set())
