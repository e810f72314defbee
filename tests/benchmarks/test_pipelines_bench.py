"""The pipeline benchmark runs end to end (a few steps, one round), so it never goes stale
against the code it measures: every case, floor and table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def test_the_pipeline_benchmark_runs() -> None:
    command = ["benchmarks.pipelines.bench_pipelines", "--steps", "3", "--rounds", "1"]
    done = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=REPO,
        env=os.environ,  # the benchmark makes its own home and drops the FUNADE_* variables
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for row in (
        "| chain uncached |",
        "| chain cached |",
        "| fan uncached |",
        "| fan cached |",
        "| funade --help |",
        "| funade models list, remote |",
        "| funade models list, local |",
        "| chain cached, local |",
        "| chain cached, remote |",
        "| chain uncached, local |",
        "| `python -c pass` (floor) |",
    ):
        assert out.count(row) >= 1, (row, out)
    assert "report_run" in out  # the calls of the runs, timed on the client class
    assert "3 no-op steps" in out
