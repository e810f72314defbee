"""The servers compared, started as subprocesses pinned to one core, and how each is checked.

- ``floor``: ``benchmarks.serving.floor_server`` (bare ASGI on uvicorn, ``model.predict`` per
  request);
- ``funade``: ``.venv/bin/funade serve NAME:1`` over the prepared FUNADE_HOME, default settings
  (adaptive batching on), the package as ``funade.log_model`` makes it by default (outputs
  ``predict`` and ``predict_proba``; the requests ask for ``predict``, so only that is
  computed, the same work as the floor and KServe);
- ``kserve``: ``benchmarks.serving.kserve_server`` (``kserve.ModelServer``, v2 REST).

``start`` measures the cold start: wall time from spawning the command to the first response
that carries the right predictions, polling ``POST .../infer`` every 2 ms while the port is
closed and every 25 ms once the server answers without the prediction (funade answers 503 while
its model loads, and answering a poll every 2 ms would take CPU from the loading on its core).
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from benchmarks.registry.harness import status_kib
from benchmarks.serving.models import Prepared, predictions

SYSTEMS = {
    "floor": "floor (bare ASGI + uvicorn)",
    "funade": "funade serve",
    "kserve": "KServe ModelServer",
}
POLL_SECONDS = 0.002  # while the port is closed: costs the server nothing
LOADING_POLL_SECONDS = 0.025  # once it answers (503 while loading): each answer costs it CPU
_BATCH = re.compile(rb"^funade_batch_size_(sum|count)\{[^}]*\} (\S+)$", re.MULTILINE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def served_name(system: str, prepared: Prepared) -> str:
    return prepared.registered.get(system, prepared.kind)


def command(system: str, prepared: Prepared, port: int, *, kserve_logs: bool) -> list[str]:
    python, name = sys.executable, served_name(system, prepared)
    model = str(prepared.joblib_file)
    if system == "floor":
        return [python, "-m", "benchmarks.serving.floor_server", model, "--name", name,
                "--port", str(port)]  # fmt: skip
    if system == "kserve":
        quiet = [] if kserve_logs else ["--quiet"]
        return [python, "-m", "benchmarks.serving.kserve_server", model, "--name", name,
                "--port", str(port), *quiet]  # fmt: skip
    funade = str(Path(python).with_name("funade"))
    return [funade, "serve", f"{name}:1", "--port", str(port)]


def post(port: int, path: str, body: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass
class Running:
    """One server process, up and answering correctly."""

    system: str
    process: subprocess.Popen[bytes]
    port: int
    path: str  # the v2 infer path
    cold_start: float  # seconds from spawn to the first correct prediction
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def memory_mib(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) in MiB: resident now, and the peak so far."""
        pid = self.process.pid
        return status_kib(pid, "VmRSS") / 1024, status_kib(pid, "VmHWM") / 1024

    def batch_totals(self) -> tuple[float, float] | None:
        """funade's (rows, model calls) so far, from /metrics; None for the other servers."""
        if not self.system.startswith("funade"):
            return None
        _, text = get(self.port, "/metrics")
        found = {kind.decode(): float(value) for kind, value in _BATCH.findall(text)}
        return found.get("sum", 0.0), found.get("count", 0.0)

    def stop(self) -> int:
        """SIGINT (Ctrl-C), then wait; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start(
    system: str,
    prepared: Prepared,
    check_body: bytes,
    expected: list[int],
    *,
    core: int | str,
    log_dir: Path,
    kserve_logs: bool = False,
    deadline: float = 120.0,
) -> Running:
    """Spawn ``system`` on ``core`` (or a taskset list, e.g. ``"0,1"``) and wait until it
    predicts ``expected`` for ``check_body``."""
    port = free_port()
    path = f"/v2/models/{served_name(system, prepared)}/infer"
    log = log_dir / f"{prepared.kind}-{system}-{port}.log"
    argv = ["taskset", "-c", str(core), *command(system, prepared, port, kserve_logs=kserve_logs)]
    env = {**os.environ, "COLUMNS": "200"}
    with log.open("wb") as log_file:
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    last = "no answer"
    while time.perf_counter() - started < deadline:
        if process.poll() is not None:
            break
        pause = POLL_SECONDS
        try:
            status, body = post(port, path, check_body, timeout=5)
        except OSError as exc:  # not listening yet
            last = f"{type(exc).__name__}: {exc}"
        else:
            if status == 200 and predictions(body) == expected:
                return Running(system, process, port, path, time.perf_counter() - started, log)
            last = f"HTTP {status}: {body[:200]!r}"
            pause = LOADING_POLL_SECONDS
        time.sleep(pause)
    if process.poll() is None:
        process.kill()
        process.wait()
    raise RuntimeError(
        f"{system} did not answer correctly within {deadline:.0f} s (last: {last}); its output:\n"
        + log.read_text(errors="replace")[-3000:]
    )


def verify(running: Running, bodies: dict[int, bytes], expected: dict[int, list[int]]) -> None:
    """Every request body gets the estimator's own predictions back."""
    for rows, body in bodies.items():
        status, answer = post(running.port, running.path, body)
        got = predictions(answer)
        if status != 200 or got != expected[rows]:
            raise RuntimeError(
                f"{running.system} answered {rows}-row requests wrongly: HTTP {status}, "
                f"{answer[:300]!r}"
            )


def input_name_served(running: Running) -> str:
    """The first input's name in ``GET /v2/models/{name}`` (funade's signature)."""
    status, body = get(running.port, running.path.removesuffix("/infer"))
    if status != 200:
        raise RuntimeError(f"GET model metadata: HTTP {status}: {body[:200]!r}")
    return str(orjson.loads(body)["inputs"][0]["name"])
