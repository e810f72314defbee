"""Stopping `funade up` with SIGTERM (what systemd, Docker and Kubernetes send) stops its gateway
and its replicas, as Ctrl-C does: nothing keeps serving, unwatched, after a graceful stop.

Before, uvicorn re-raised SIGTERM after its own shutdown with the default handler back in
place, which killed the process before `funade up` stopped the gateway and the replicas."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import funade
from funade.deploy.backends.local import process_start_ticks
from tests.deploy.conftest import SAMPLE
from tests.security.platform import funade_up
from tests.serving.models import Arithmetic

ROOT = Path(__file__).resolve().parents[2]


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
