"""The gateway benchmark runs end to end on one form and one concurrency (one placement, no idle
reading), so its floor, Lua script, platform start and tables never go stale against the code
it measures. Needs wrk and taskset on a Linux host with two cores."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent

pytestmark = pytest.mark.skipif(
    not (shutil.which("wrk") and shutil.which("taskset") and len(os.sched_getaffinity(0)) >= 2),
    reason="the gateway benchmark needs wrk, taskset and two cores",
)


def test_the_gateway_benchmark_runs() -> None:
    command = ["benchmarks.gateway.bench_gateway", "--duration", "0.5", "--warmup", "0",
               "--forms", "v2-binary", "--concurrency", "1", "--batch-rows", "0", "--pin",
               "--idle", "0.5", "--no-results"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=REPO,
        env=os.environ,  # the benchmark makes its own homes and drops the FUNADE_* variables
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "every form checked on every path" in out
    for target in ("floor", "`funade serve`", "full path"):
        assert re.search(rf"\| v2 binary tensors +\| {re.escape(target)} +\|", out), out
    assert "c1 p50 added" in out
    assert "total: launch to the first prediction" in out
    assert "idle CPU, % of a core" in out
