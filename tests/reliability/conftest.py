"""The whole platform as `funade up` runs it (control plane, gateway, replicas: real processes)
and a steady loopback load against it that counts every failed request."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import funade
from funade.client import Client
from tests.serving.models import Arithmetic, CrashOnLoad, Drifting

SAMPLE = {"x": np.array([[1.0, 2.0], [3.0, 4.0]])}
REPORTS: list[str] = []
"""The request counts of the scenarios run in this process, not yet attached to a test report."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Carry each scenario's counts on its test report (pytest-xdist sends reports, not globals,
    from its workers to the process that prints the summary)."""
    outcome = yield
    report = outcome.get_result()
    report.user_properties.extend(("reliability", line) for line in REPORTS)
    REPORTS.clear()


BODY = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}


class Platform:
    """`funade up` over one home, started, killed with SIGKILL and started again; its replicas
    local processes, or containers (``backend`` podman, with the settings ``env`` gives)."""

    def __init__(
        self, home: Path, backend: str = "local", env: dict[str, str] | None = None
    ) -> None:
        self.home = home
        self.backend = backend
        self.env = {"FUNADE_BACKEND": backend, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.gateway = ""
        self.gateway_pid = 0
        self.log = home / "up.log"

    def start(self, timeout: float = 90) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNADE_")}
        env.update(FUNADE_HOME=str(self.home), COLUMNS="400", **self.env)
        self.home.mkdir(parents=True, exist_ok=True)
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "funade", "up", "--port", "0", "--gateway-port", "0"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while True:
            text = self.log.read_bytes()[offset:].decode(errors="replace")
            if "Press Ctrl-C" in text:
                break
            assert self.process.poll() is None, text
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
        up = re.search(r"funade is up at (http://\S+)", text)
        gateway = re.search(r"gateway at (http://\S+) \(pid (\d+)", text)
        assert up, text
        assert gateway, text
        self.url, self.gateway, self.gateway_pid = up[1], gateway[1], int(gateway[2])

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def client(self) -> Client:
        key = json.loads((self.home / "credentials").read_text())["api_key"]
        return Client(url=self.url, api_key=key)

    def replica_ids(self, deployment: str) -> list[str]:
        """The replicas of ``deployment`` the backend knows, running or not yet forgotten."""
        if self.backend == "local":
            return sorted(p.stem for p in (self.home / "replicas").glob(f"{deployment}-r*.json"))
        from funade.deploy.backends.container import LABEL, owner_of

        listed = subprocess.run(
            [
                self.backend,
                "ps",
                "--all",
                f"--filter=label={LABEL}.owner={owner_of(self.home)}",
                f"--filter=label={LABEL}.deployment={deployment}",
                "--format={{.Names}}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return sorted(name.removeprefix("funade-") for name in listed.stdout.split())

    def kill_replica(self, replica_id: str) -> None:
        """SIGKILL to the replica's process (its server and workers: a container's all)."""
        if self.backend == "local":
            record = json.loads((self.home / "replicas" / f"{replica_id}.json").read_text())
            os.kill(record["pid"], signal.SIGKILL)
        else:
            subprocess.run(
                [self.backend, "kill", "--signal=KILL", f"funade-{replica_id}"],
                capture_output=True,
                check=True,
            )

    def wait_rollout(self, client: Client, name: str, timeout: float | None = None) -> Any:
        # In containers, the first replica of a version waits for its image to be built.
        timeout = timeout or (120 if self.backend == "local" else 600)
        deadline = time.monotonic() + timeout
        while True:
            rollout = client.get_deployment(name).rollout
            if rollout is not None and rollout.state not in ("verifying", "progressing"):
                return rollout
            assert time.monotonic() < deadline, rollout
            time.sleep(0.2)


@contextmanager
def started(
    home: Path, backend: str = "local", env: dict[str, str] | None = None
) -> Iterator[Platform]:
    """`funade up` with calc:1, calc:2 (good), calc:3 (drifts under FAKE_MODEL_DRIFT) and calc:4
    (crashes on load under FAKE_MODEL_CRASH) registered; stopped at the end."""
    platform = Platform(home, backend, env)
    platform.start()
    try:
        with platform.client() as client:
            for model in (Arithmetic(), Arithmetic(), Drifting(), CrashOnLoad()):
                funade.log_model(model, "calc", sample_input=SAMPLE, client=client, progress=False)
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The platform of ``started``, its replicas local processes."""
    with started(tmp_path_factory.mktemp("reliability") / "home") as platform:
        yield platform


@dataclass
class Load:
    """``threads`` loopback clients, each sending up to ``rate`` requests a second to one
    deployment through the gateway, counting every answer that is not a correct 200."""

    url: str
    key: str
    threads: int = 3
    rate: float = 100.0
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    revisions: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Load:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)

    def _run(self) -> None:
        gap = 1.0 / self.rate
        with httpx.Client(headers={"x-api-key": self.key}, timeout=30) as http:
            while not self._stop.is_set():
                began = time.monotonic()
                problem, revision = None, ""
                try:
                    answer = http.post(self.url, json=BODY)
                    revision = answer.headers.get("funade-revision", "")
                    if answer.status_code != 200:
                        problem = f"HTTP {answer.status_code}: {answer.text[:200]}"
                    elif answer.json()["outputs"][0]["data"] != [2.0, 4.0]:
                        problem = f"wrong answer: {answer.text[:200]}"
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    problem = repr(exc)
                with self._lock:
                    if problem is None:
                        self.ok += 1
                        self.revisions[revision] = self.revisions.get(revision, 0) + 1
                    else:
                        self.failures.append(problem)
                self._stop.wait(max(0.0, gap - (time.monotonic() - began)))

    def report(self, what: str) -> str:
        text = (
            f"{what}: {self.ok + len(self.failures)} requests, {self.ok} ok, "
            f"{len(self.failures)} failed; by revision {dict(sorted(self.revisions.items()))}"
        )
        REPORTS.append(text)
        return text


def load_for(platform: Platform, client: Client, deployment: str) -> Load:
    key = client.create_key(f"load-{deployment}", ["predict"], project="default").key
    return Load(f"{platform.gateway}/v2/models/{deployment}/infer", key)


def wait_routed(platform: Platform, key: str, deployment: str, timeout: float = 15) -> None:
    """Until the gateway answers for ``deployment`` (it reloads its table every second)."""
    deadline = time.monotonic() + timeout
    url = f"{platform.gateway}/v2/models/{deployment}/infer"
    while httpx.post(url, json=BODY, headers={"x-api-key": key}).status_code != 200:
        assert time.monotonic() < deadline, f"{deployment} is not routed"
        time.sleep(0.1)
