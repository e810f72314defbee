"""The `funade` command timed as a user runs it: a new process per call, command to exit.

Each case is ``python -m funade ...`` with the benchmark's environment (only ``FUNADE_HOME`` of
the FUNADE_* settings), in two modes:

- **local**: no ``FUNADE_URL``, so the command runs the API in-process over ``FUNADE_HOME`` (what
  `funade pipeline run` does on a laptop);
- **remote**: ``FUNADE_URL`` and ``FUNADE_API_KEY`` name the benchmark process's own control
  plane (``unix:`` its socket, the admin key), so the command is only a client.

The floor is ``python -c pass``: starting the interpreter, which any Python command pays.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True)
class CliCase:
    name: str
    args: tuple[str, ...]
    remote: bool = False
    target: float | None = None
    """Seconds (the issue's figure), if the issue gives one."""
    steps: int | None = None
    """A pipeline run: the steps it must report, and whether from the cache."""
    cached: bool = True


def cli_cases(pipelines: Path, steps: int) -> list[CliCase]:
    run = ("pipeline", "run", f"{pipelines}:chain", "--no-logs", "--json")
    return [
        CliCase("funade --help", ("--help",), target=0.5),
        CliCase("funade models list, remote", ("models", "list"), remote=True, target=0.5),
        CliCase("funade models list, local", ("models", "list")),
        CliCase("chain cached, local", run, target=1.5, steps=steps),
        CliCase("chain cached, remote", run, remote=True, target=1.5, steps=steps),
        CliCase("chain uncached, local", (*run, "--no-cache"), steps=steps, cached=False),
    ]


@dataclass(frozen=True)
class CliTiming:
    wall: float
    run_seconds: float | None
    """A pipeline run's own duration, as the run records it."""


def run_cli(case: CliCase, *, address: str, api_key: str) -> CliTiming:
    env = dict(os.environ)
    if case.remote:
        env.update(FUNADE_URL=address, FUNADE_API_KEY=api_key)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "funade", *case.args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{case.name}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    if case.steps is None:
        return CliTiming(wall, None)
    run: dict[str, Any] = json.loads(done.stdout)
    want = "cached" if case.cached else "succeeded"
    states = {s["state"] for s in run["steps"]}
    if run["state"] != "succeeded" or states != {want} or len(run["steps"]) != case.steps:
        raise RuntimeError(f"{case.name}: run {run['id']} {run['state']}, steps {states}")
    return CliTiming(wall, float(run["duration_seconds"]))


def python_start() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start
