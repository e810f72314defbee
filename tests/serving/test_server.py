"""`funade serve` as a user runs it: a real process over a registry home or a package directory,
several worker processes behind one port, graceful shutdown, and load failures."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

import funade
from funade import sdk
from tests.serving.fakes import package, wait_ready
from tests.serving.models import Arithmetic, Slow, WhoAmI


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A funade home with three registered models (no server: the SDK runs the API in-process)."""
    home = tmp_path_factory.mktemp("serve") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FUNADE_HOME", str(home))
        try:
            funade.log_model(Slow(), "slow", sample_input=np.array([[0.0]]), alias="production")
            funade.log_model(WhoAmI(), "who", sample_input=np.array([[0.0]]))
            funade.log_model(Arithmetic(), "calc", sample_input={"x": np.ones((2, 2))})
        finally:
            sdk._close_default()
    return home


def _env(home: Path, server: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNADE_")}
    env["FUNADE_HOME"] = str(home)
    if server:
        env["FUNADE_SERVE_SERVER"] = server
    env["COLUMNS"] = "400"  # the announcement on one line
    return env


@contextmanager
def funade_serve(
    home: Path, *args: str, server: str = ""
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``funade serve ARGS --port 0`` in its own process (on ``server``, ``serve_server``'s
    choice; default: the setting's default); yields it and its URL once ready."""
    command = [sys.executable, "-m", "funade", "serve", *args, "--port", "0"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(home, server),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r" at (http://[\d.:]+)", line)
        assert match, line + process.stdout.read()
        url = match.group(1)
        wait_ready(url, timeout=60)
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()  # gracefully: with workers, the parent stops them
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait(timeout=20)
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.parametrize("server", ["lean", "uvicorn"])
def test_serves_a_registry_alias_and_finishes_in_flight_requests_on_sigterm(
    home: Path, server: str
) -> None:
    with funade_serve(home, "slow@production", server=server) as (process, url):
        answer = httpx.get(f"{url}/v2/models/slow")
        assert answer.json()["versions"] == ["1"]
        # the server it runs on: uvicorn names itself, the lean front does not
        assert answer.headers.get("server") == ("uvicorn" if server == "uvicorn" else None)
        result: list[httpx.Response] = []

        def slow_request() -> None:
            body = {"instances": [[1.5]]}
            result.append(httpx.post(f"{url}/v1/models/slow:predict", json=body, timeout=30))

        worker = threading.Thread(target=slow_request)
        worker.start()
        deadline = time.monotonic() + 10
        while 'funade_inflight_requests{model="slow"} 1.0' not in httpx.get(f"{url}/metrics").text:
            assert time.monotonic() < deadline, "the slow request never started"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        worker.join(timeout=30)
        # the signal is raised again once the in-flight request is done (as uvicorn does)
        assert process.wait(timeout=30) == -signal.SIGTERM
        assert result[0].status_code == 200
        assert result[0].json() == {"predictions": [[1.5]]}


def test_worker_processes_share_one_port_and_their_metrics(home: Path) -> None:
    with (
        funade_serve(home, "who:1", "--workers", "2") as (_, url),
        # no keep-alive: every request a new connection, which either worker may accept
        httpx.Client(base_url=url, limits=httpx.Limits(max_keepalive_connections=0)) as client,
    ):

        def ask(_: int) -> int:
            answer = client.post("/v1/models/who:predict", json={"instances": [[0.0]]})
            assert answer.status_code == 200, answer.text
            return int(answer.json()["predictions"][0])

        with ThreadPoolExecutor(16) as pool:
            pids = list(pool.map(ask, range(200)))
        assert len(set(pids)) == 2, set(pids)
        metrics = httpx.get(f"{url}/metrics").text
        counts = re.findall(
            r'^funade_requests_total\{model="who",protocol="v1",status="200"\} (\S+)$',
            metrics,
            flags=re.M,
        )
        assert [float(c) for c in counts] == [200.0]


def test_workers_stop_when_their_parent_is_killed(home: Path) -> None:
    """A parent killed with SIGKILL cannot stop its workers; they notice and stop themselves."""
    with funade_serve(home, "who:1", "--workers", "2") as (process, url):
        workers = {
            int(
                httpx.post(
                    f"{url}/v1/models/who:predict",
                    json={"instances": [[0]]},
                    headers={"connection": "close"},
                ).json()["predictions"][0]
            )
            for _ in range(20)
        }
        process.kill()
        process.wait(timeout=10)
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in workers):
            assert time.monotonic() < deadline, f"workers {workers} outlived their parent"
            time.sleep(0.05)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/v2/health/live")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serves_a_local_package_directory(home: Path, tmp_path: Path) -> None:
    directory = package(Arithmetic(), tmp_path / "adder", {"x": np.ones((2, 2))})
    with funade_serve(home, str(directory), "--name", "adder") as (_, url):
        response = httpx.post(f"{url}/v1/models/adder:predict", json={"instances": [[1, 2]]})
        assert response.json() == {"predictions": [[2.0, 4.0]]}


def test_a_model_that_does_not_exist_stops_the_server_with_the_error(home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "funade", "serve", "nosuch:1", "--port", "0"],
        capture_output=True,
        text=True,
        env=_env(home),
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "error: Model 'nosuch' does not exist in project 'default'." in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("workers", "0", "'workers' is invalid: Input should be greater than or equal to 1"),
        ("max-batch-size", "2000000", "'max_batch_size' is invalid: Input should be less than "),
        ("max-latency-ms", "1e9", "'max_latency_ms' is invalid: Input should be less than "),
        ("timeout-ms", "inf", "'timeout_ms' is invalid: Input should be less than or equal to"),
        ("max-body-bytes", "4294967296", "'max_body_bytes' is invalid: Input should be less "),
    ],
)
def test_bad_options_are_refused_before_anything_starts(
    home: Path, option: str, value: str, message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "funade", "serve", "calc:1", f"--{option}", value],
        capture_output=True,
        text=True,
        env=_env(home),
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"Serving option {message}" in done.stderr, done.stderr


def test_a_websocket_handshake_is_answered_as_plain_http(home: Path, tmp_path: Path) -> None:
    """A model server speaks no websockets (uvicorn's ``ws="none"``: their library is not even
    imported, which a replica's start skips): a handshake is an ordinary request, here a probe."""
    directory = package(Arithmetic(), tmp_path / "adder", {"x": np.ones((2, 2))})
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    with funade_serve(home, str(directory), "--name", "adder") as (_, url):
        response = httpx.get(f"{url}/v2/health/live", headers=upgrade)
        assert response.status_code == 200
        assert response.json() == {"live": True}
