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
               "--forms", "v2-binary", "--concurrency", "1,8", "--batch-rows", "0", "--pin",
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
    for target in ("floor", "`funade serve`", "full path", "full path, merging off"):
        assert re.search(rf"\| v2 binary tensors +\| {re.escape(target)} +\|", out), out
    assert "c1 p50 added" in out
    # merging's p99 at c8 against a gateway with merging off (FUNADE_GATEWAY_MERGE=0)
    assert re.search(r"\| \d+\.\d\d vs \d+\.\d\d ms (yes|no) +\|", out), out
    assert "total: launch to the first prediction" in out
    assert "idle CPU, % of a core" in out


def test_the_cpu_breakdown_runs() -> None:
    """cpu.py measures the floor, `funade serve` and the full path by part, for one form and
    one column; own.py the gateway's own Python, in-process."""
    command = ["benchmarks.gateway.cpu", "--duration", "1", "--warmup", "1",
               "--forms", "v1-instances", "--columns", "8x1"]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", *command], cwd=REPO, env=os.environ,
                          capture_output=True, text=True, timeout=240, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for server in ("lean", "uvicorn"):  # the gateway on each of its servers, in one run
        row = re.search(rf"^\| v1 `instances` \| c8, 1 row \| {server} \| (\d+) \| (\d+) \| "
                        r"(\d+) \| (\d+) \|", done.stdout, re.MULTILINE)  # fmt: skip
        assert row is not None, done.stdout[-2000:]
        assert all(int(value) > 0 for value in row.groups()), row.group(0)
    own = subprocess.run(
        [sys.executable, "-m", "benchmarks.gateway.own"],
        cwd=REPO,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert own.returncode == 0, own.stdout[-3000:] + own.stderr[-3000:]
    assert re.search(r"^\| lone request \(nothing out: unparsed\) \| \d+\.\d \|$", own.stdout,
                     re.MULTILINE), own.stdout  # fmt: skip
