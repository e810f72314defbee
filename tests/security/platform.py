"""A real `funade up` in a subprocess over a home of its own, for tests of what the platform
does as a whole: what model code and pipelines can reach, signals, forwarded headers."""

from __future__ import annotations

import json
import os
import queue
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

import httpx

from funade.client import Client
from funade.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Up:
    """A `funade up` subprocess over its own home, and what it printed."""

    process: subprocess.Popen[str]
    home: Path
    sandbox: Path
    url: str = ""
    gateway_url: str = ""
    gateway_pid: int = 0
    key: str = ""
    """The global admin key `funade up` made."""
    seen: list[str] = field(default_factory=list)

    def client(self, project: str | None = None) -> Client:
        return Client(
            url=self.url, api_key=self.key, project=project, settings=Settings(home=self.home)
        )

    def replica_pids(self) -> dict[str, list[int]]:
        """The pids of each deployment's replicas, from the backend's records."""
        out: dict[str, list[int]] = {}
        for record in (self.home / "replicas").glob("*.json"):
            data = json.loads(record.read_text())
            out.setdefault(data["spec"]["deployment"], []).append(int(data["pid"]))
        return out


@contextmanager
def funade_up(home: Path, *args: str, **env: str) -> Iterator[Up]:
    """Start `funade up` on free ports over ``home``, with ``args`` (e.g. ``--demo``) on its
    command line and ``env`` added to its environment (``FUNADE_SANDBOX_DIR`` defaults to the
    test's, so nothing lands in /var/lib); stop it (SIGINT, then kill) at the end unless the
    test did."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FUNADE_")}
    environ.update(FUNADE_HOME=str(home), COLUMNS="400", **env)
    if "FUNADE_SANDBOX_DIR" not in environ:
        environ["FUNADE_SANDBOX_DIR"] = os.environ["FUNADE_SANDBOX_DIR"]
    command = [sys.executable, "-m", "funade", "up", "--port", "0", "--gateway-port", "0", *args]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environ,
        cwd=ROOT,
    )
    up = Up(process, home, Path(environ["FUNADE_SANDBOX_DIR"]))
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:  # in a thread, so that waiting for a line has a deadline
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    def wait_for(pattern: str, seconds: float) -> re.Match[str]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            up.seen.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(up.seen)}")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        up.url = wait_for(r"funade is up at (http://\S+)", 120).group(1)
        gateway = wait_for(r"gateway at (http://\S+) \(pid (\d+)", 30)
        up.gateway_url, up.gateway_pid = gateway.group(1), int(gateway.group(2))
        up.key = json.loads((home / "credentials").read_text())["api_key"]
        wait_for(r"Press Ctrl-C", 240 if args else 30)  # a demo trains and deploys first
        yield up
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=10)  # the output ends with the process
        if process.stdout is not None:
            process.stdout.close()


def wait_rollout(up: Up, name: str, timeout: float = 120) -> dict[str, object]:
    """Poll until deployment ``name``'s newest rollout has ended; the deployment."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(
            f"{up.url}/api/v1/deployments/{name}", headers={"authorization": f"Bearer {up.key}"}
        )
        response.raise_for_status()
        deployment: dict[str, object] = response.json()
        rollout = deployment.get("rollout")
        if isinstance(rollout, dict) and rollout.get("state") in ("succeeded", "failed"):
            return deployment
        assert time.monotonic() < deadline, f"rollout of {name} stuck: {rollout}"
        time.sleep(0.2)
