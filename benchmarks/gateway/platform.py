"""``funade up`` as a user starts it, with one deployment behind its gateway: its cold start
split into phases, its idle CPU, and the credentials a benchmark needs to call it.

The deployment is ``lr:1`` with the rules users set: an IP allowlist (``127.0.0.0/8``), a
deployment-wide and a per-key rate limit far above any load here (checked on every request,
never refusing), and a predict key; the gateway runs as ``funade up`` starts it (metrics and
traffic figures on, merging on).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

import funade
from benchmarks.registry.harness import cpu_seconds

NEVER = {"per_second": 1_000_000, "burst": 1_000_000}  # checked on every request, never refuses
POLICY = {"allow_cidrs": ["127.0.0.0/8"], "rate_limit": NEVER, "key_rate_limit": NEVER}
TERMINAL = ("succeeded", "failed", "rolled_back", "aborted", "superseded")


@dataclass
class Platform:
    """A running ``funade up`` with ``lr`` deployed; ``phases`` is its cold start."""

    process: subprocess.Popen[bytes]
    api: str
    gateway: str
    replica: str = ""
    token: str = ""  # the replica's token (it answers only with it)
    key: str = ""  # a predict key for the gateway
    phases: dict[str, float] = field(default_factory=dict)  # seconds, in order

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def launch(
    home: Path,
    log: Path,
    cores: str,
    first_request: Callable[[str, str], str | None],
    transport: str = "unix",
    timeout: float = 120,
) -> Platform:
    """Start ``funade up`` on ``cores`` (a taskset list) over ``home`` and deploy ``lr:1``;
    ``first_request(gateway, key)`` is polled until it returns None (a right prediction; else
    it says what came back). Times each phase from the launch to that first prediction.
    ``transport``: how the gateway reaches the replica (``replica_transport``); ``timeout``:
    seconds from the launch to that first prediction at most."""
    command = ["taskset", "-c", cores, str(Path(sys.executable).with_name("funade")),
               "up", "--port", "0", "--gateway-port", "0"]  # fmt: skip
    # As root, the replica runs as its project's user: its sandbox must be reachable by it.
    home.parent.chmod(0o711)
    env = {**os.environ, "FUNADE_HOME": str(home), "COLUMNS": "400",
           "FUNADE_SANDBOX_DIR": str(home.parent / f"sandbox-{home.name}"),
           "FUNADE_REPLICA_TRANSPORT": transport}  # fmt: skip
    began = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout
    while "Press Ctrl-C" not in (text := log.read_text(errors="replace")):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"funade up did not start:\n{text}")
        time.sleep(0.01)
    api, gateway = (
        re.search(r"funade is up at (http://\S+)", text),
        re.search(r"gateway at (http://\S+) ", text),
    )
    if api is None or gateway is None:
        raise RuntimeError(f"funade up printed no URLs:\n{text}")
    platform = Platform(process, api[1], gateway[1])
    try:
        httpx.get(f"{platform.api}/healthz").raise_for_status()
        mark = time.perf_counter()
        platform.phases["`funade up` until its API answers"] = mark - began
        admin = json.loads((home / "credentials").read_text())["api_key"]
        with funade.Client(url=platform.api, api_key=admin) as client:
            platform.key = client.create_key("bench", ["predict"], project="default").key
            mark = _phase(platform, "a predict key made", mark)
            client.create_deployment("lr", version="1", policy=POLICY)
            while (state := _state(client)) not in TERMINAL:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the rollout is still {state}")
                time.sleep(0.02)
            if state != "succeeded":
                raise RuntimeError(f"the rollout {state}")
            mark = _phase(platform, "deploy call until the rollout succeeded (verified)", mark)
            platform.replica = client.get_deployment("lr").replicas[0].url
        while True:
            sent = time.perf_counter()
            if (wrong := first_request(platform.gateway, platform.key)) is None:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway never answered with a prediction: {wrong}")
            time.sleep(0.01)
        _phase(platform, "until the gateway routes to it", mark, sent)
        _phase(platform, "the first prediction through the gateway", sent)
        platform.phases["total: launch to the first prediction"] = time.perf_counter() - began
        with sqlite3.connect(home / "funade.db") as db:  # the replica answers only with it
            row = db.execute("SELECT token FROM replicas WHERE url = ?", (platform.replica,))
            platform.token = str(row.fetchone()[0])
    except BaseException:
        platform.stop()
        raise
    return platform


def _state(client: funade.Client) -> str:
    rollout = client.get_deployment("lr").rollout
    return rollout.state if rollout is not None else "pending"


def _phase(platform: Platform, name: str, since: float, until: float | None = None) -> float:
    now = time.perf_counter() if until is None else until
    platform.phases[name] = now - since
    return now


def descendants(pid: int) -> list[int]:
    """``pid`` and every process under it (from each process's parent in /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def idle_cpu(pid: int, seconds: float) -> float:
    """CPU used by ``pid`` and all its descendants over ``seconds`` of wall time, in % of one
    core (user + system time from /proc/<pid>/stat)."""

    def used() -> dict[int, float]:
        out = {}
        for process in descendants(pid):
            with contextlib.suppress(OSError):
                out[process] = cpu_seconds(process)
        return out

    before, began = used(), time.perf_counter()
    time.sleep(seconds)
    after, wall = used(), time.perf_counter() - began
    spent = sum(total - before.get(process, 0.0) for process, total in after.items())
    return 100 * spent / wall


@contextlib.contextmanager
def extra_gateway(
    home: Path, work: Path, cores: str, name: str, env: dict[str, str]
) -> Iterator[tuple[str, int]]:
    """Another `funade gateway` over ``home`` (on ``cores``, with ``env`` added: its server, or
    merging off), once it routes to the deployment; its URL and pid."""
    url_file = work / f"gateway-{name}.url"
    command = ["taskset", "-c", cores, str(Path(sys.executable).with_name("funade")),
               "gateway", "--port", "0", "--url-file", str(url_file)]  # fmt: skip
    with (work / f"gateway-{name}.log").open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "FUNADE_HOME": str(home), **env},
        )
    try:
        deadline = time.monotonic() + 60
        while not url_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {name} gateway did not start")
            time.sleep(0.05)
        url = url_file.read_text().strip()
        while not _routes(url):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {name} gateway never routed to the deployment")
            time.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(30)


def _routes(url: str) -> bool:
    """Whether the gateway at ``url`` listens and routes to a deployment."""
    try:
        return bool(httpx.get(f"{url}/healthz").json()["deployments"])
    except httpx.TransportError:  # bound, not yet listening
        return False
