"""A real `funade up` in a subprocess, over a home whose parent any user can reach (so only
funade itself keeps the home private), for tests of what model code and pipelines can reach."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class Up:
    process: subprocess.Popen[str]
    home: Path
    sandbox: Path
    url: str
    gateway: str
    output: list[str]

    @property
    def admin_key(self) -> str:
        key: str = json.loads((self.home / "credentials").read_text())["api_key"]
        return key

    def replica_pids(self) -> dict[str, list[int]]:
        """The pids of each deployment's replicas, from the backend's records."""
        out: dict[str, list[int]] = {}
        for record in (self.home / "replicas").glob("*.json"):
            data = json.loads(record.read_text())
            out.setdefault(data["spec"]["deployment"], []).append(int(data["pid"]))
        return out


@contextmanager
def funade_up(root: Path, sandbox: Path, **env: str) -> Iterator[Up]:
    """`funade up` with ``FUNADE_HOME`` = ``root/home`` and ``FUNADE_SANDBOX_DIR`` = ``sandbox``,
    and ``env`` added to its environment; stopped (with its replicas) at the end."""
    home = root / "home"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FUNADE_")}
    environ |= {
        "FUNADE_HOME": str(home),
        "FUNADE_SANDBOX_DIR": str(sandbox),
        "COLUMNS": "400",
        **env,
    }
    command = [sys.executable, "-m", "funade", "up", "--port", "0", "--gateway-port", "0"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environ
    )
    lines: list[str] = []
    try:
        url = gateway = ""
        deadline = time.monotonic() + 120
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if match := re.search(r"funade is up at (http://\S+)", line):
                url = match.group(1)
            if match := re.search(r"gateway at (http://\S+)", line):
                gateway = match.group(1)
            if "Press Ctrl-C" in line:
                break
        assert url, "".join(lines)
        assert gateway, "".join(lines)
        yield Up(process, home, sandbox, url, gateway, lines)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def wait_rollout(url: str, key: str, name: str, timeout: float = 120) -> dict[str, object]:
    """Poll until deployment ``name``'s newest rollout has ended; the deployment."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(
            f"{url}/api/v1/deployments/{name}", headers={"authorization": f"Bearer {key}"}
        )
        response.raise_for_status()
        deployment: dict[str, object] = response.json()
        rollout = deployment.get("rollout")
        if isinstance(rollout, dict) and rollout.get("state") in ("succeeded", "failed"):
            return deployment
        assert time.monotonic() < deadline, f"rollout of {name} stuck: {rollout}"
        time.sleep(0.2)
