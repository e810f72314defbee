"""Stopping `funade up` with SIGTERM (what systemd, Docker and Kubernetes send) stops its gateway
and its replicas, as Ctrl-C does: nothing keeps serving, unwatched, after a graceful stop.

Before, uvicorn re-raised SIGTERM after its own shutdown with the default handler back in
place, which killed the process before `funade up` stopped the gateway and the replicas."""

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

import funade
from funade.client import Client
from funade.deploy.backends.local import process_start_ticks
from funade.settings import Settings
from tests.deploy.conftest import SAMPLE
from tests.serving.models import Arithmetic

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Up:
    """A `funade up` subprocess over its own home, and what it printed."""

    process: subprocess.Popen[str]
    home: Path
    url: str = ""
    gateway_url: str = ""
    gateway_pid: int = 0
    key: str = ""
    seen: list[str] = field(default_factory=list)

    def client(self) -> Client:
        return Client(url=self.url, api_key=self.key, settings=Settings(home=self.home))


@contextmanager
def funade_up(home: Path) -> Iterator[Up]:
    """Start `funade up` on free ports over ``home``; stop it (SIGINT, then kill) at the end
    unless the test did."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNADE_")}
    env.update(FUNADE_HOME=str(home), COLUMNS="400")
    command = [sys.executable, "-m", "funade", "up", "--port", "0", "--gateway-port", "0"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT
    )
    up = Up(process, home)
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


def alive(pid: int) -> bool:
    return process_start_ticks(pid) is not None


def test_sigterm_stops_the_gateway_and_the_replicas(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pids: list[int] = []
    try:
        with funade_up(home) as up:
            pids.append(up.gateway_pid)
            with up.client() as client:
                funade.log_model(
                    Arithmetic(), "calc", sample_input=SAMPLE, client=client, progress=False
                )
                client.create_deployment("calc")
                deadline = time.monotonic() + 120
                while (rollout := client.get_deployment("calc").rollout) is None or (
                    rollout.state != "succeeded"
                ):
                    assert rollout is None or rollout.state not in ("failed", "aborted"), rollout
                    assert time.monotonic() < deadline, f"rollout stuck: {rollout}"
                    time.sleep(0.2)
            records = [json.loads(p.read_text()) for p in (home / "replicas").glob("*.json")]
            pids += [int(r["pid"]) for r in records]
            assert len(pids) == 2, "the gateway and the deployment's replica"
            assert all(alive(pid) for pid in pids)

            up.process.send_signal(signal.SIGTERM)
            code = up.process.wait(timeout=90)

            assert code == 0, "".join(up.seen)  # a graceful stop, as after Ctrl-C
            deadline = time.monotonic() + 10
            while any(alive(pid) for pid in pids):
                running = [pid for pid in pids if alive(pid)]
                assert time.monotonic() < deadline, f"still running after SIGTERM: {running}"
                time.sleep(0.1)
            assert not (home / "gateway.json").exists()
            assert list((home / "replicas").glob("*.json")) == []
    finally:
        for pid in pids:  # what the bug left behind
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)
