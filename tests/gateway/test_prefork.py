"""The gateway's process forked from `funade up` (``funade.gateway.prefork``), and started as
``python -m funade.gateway`` when it cannot be: it serves once told to, exits unstarted when
cancelled or when its parent goes, and a gateway that cannot bind is an error naming the port.
Forks are made in a fresh interpreter (as `funade up` runs), never in the test process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from funade.deploy.backends.local import process_start_ticks
from funade.errors import FunadeError
from funade.gateway.prefork import fork_gateway
from funade.gateway.server import ensure_gateway, stop_gateway
from funade.settings import Settings
from funade.store import Database

PROBE = """
import json, os, sys
from funade.errors import FunadeError
from funade.gateway.prefork import fork_gateway
from funade.gateway.server import ensure_gateway, stop_gateway
from funade.settings import load_settings

settings = load_settings()
settings.home.mkdir(parents=True, exist_ok=True)
action, port = sys.argv[1], int(sys.argv[2])
forked = fork_gateway(settings)
if forked is None:
    print(json.dumps({"forked": False}))
    sys.exit(0)
if action == "leave":  # the parent goes without a word
    print(json.dumps({"pid": forked.pid}), flush=True)
    os._exit(0)
if action == "cancel":
    forked.cancel()
    _, status = os.waitpid(forked.pid, 0)
    print(json.dumps({"code": os.waitstatus_to_exitcode(status)}))
    sys.exit(0)
try:
    gateway = ensure_gateway(settings, "127.0.0.1", port, forked=forked)
except FunadeError as exc:
    print(json.dumps({"error": str(exc), "field": exc.field, "code": forked.poll()}))
    sys.exit(0)
print(json.dumps({"pid": gateway.pid, "url": gateway.url}), flush=True)
sys.stdin.readline()  # the test has looked
stop_gateway(settings)
"""


def _env(settings: Settings) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FUNADE_")}
    return {
        **environ,
        "FUNADE_HOME": str(settings.home),
        "FUNADE_DATABASE_URL": settings.resolved_database_url,
    }


def _probe(settings: Settings, action: str, port: int = 0) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, action, str(port)],
        env=_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def healthz(url: str) -> httpx.Response:
    """The gateway's health, once it listens (it says where once bound, then builds its app)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return httpx.get(f"{url}/healthz")
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the gateway does not listen"
            time.sleep(0.02)


def test_a_forked_gateway_serves_once_started_and_stops(
    settings: Settings, database: Database
) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", PROBE, "serve", "0"],
        env=_env(settings),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as parent:
        assert parent.stdout is not None
        assert parent.stdin is not None
        started = json.loads(parent.stdout.readline())
        pid = int(started["pid"])
        assert _comm(pid) == "funade-gateway"
        assert os.getsid(pid) == pid, "a session of its own"
        health = healthz(str(started["url"]))
        assert health.status_code == 200
        assert health.json()["table_error"] is None
        assert (settings.home / "gateway.log").read_text().startswith("funade gateway at http://")
        parent.stdin.write("\n")
        parent.stdin.close()
        assert parent.wait(timeout=60) == 0
    assert process_start_ticks(pid) is None, "stopped"


def test_a_cancelled_fork_exits_unstarted(settings: Settings, database: Database) -> None:
    assert _probe(settings, "cancel") == {"code": 0}
    assert not (settings.home / "gateway.url").exists()
    assert (settings.home / "gateway.log").read_text() == ""


def test_a_fork_exits_unstarted_when_its_parent_goes(
    settings: Settings, database: Database
) -> None:
    pid = int(_probe(settings, "leave")["pid"])
    deadline = time.monotonic() + 60
    while process_start_ticks(pid) is not None:  # gone, or a zombie for init to reap
        assert time.monotonic() < deadline, "the orphaned fork still runs"
        time.sleep(0.05)
    assert not (settings.home / "gateway.url").exists()


def test_a_forked_gateway_that_cannot_bind_is_an_error_naming_the_port(
    settings: Settings, database: Database, busy_port: int
) -> None:
    said = _probe(settings, "serve", busy_port)
    assert said["field"] == "gateway_port"
    assert str(said["error"]).startswith("The gateway did not start: ")
    assert "Address already in use" in str(said["error"])
    assert said["code"] == 1


def test_a_started_gateway_that_cannot_bind_is_an_error_naming_the_port(
    settings: Settings, database: Database, busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a fork (``python -m funade.gateway``): the same error."""
    for name, value in _env(settings).items():
        monkeypatch.setenv(name, value)
    settings.home.mkdir(parents=True, exist_ok=True)
    with pytest.raises(FunadeError, match="The gateway did not start: ") as info:
        ensure_gateway(settings, "127.0.0.1", busy_port)
    assert info.value.field == "gateway_port"
    assert info.value.value == busy_port
    assert "Address already in use" in str(info.value)
    stop_gateway(settings)  # nothing to stop: no record was written
    assert not (settings.home / "gateway.json").exists()


def test_no_fork_while_another_thread_runs(settings: Settings) -> None:
    """A fork would copy locks other threads hold; the gateway is then started as a program."""
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert fork_gateway(settings) is None
    finally:
        release.set()
        other.join()
