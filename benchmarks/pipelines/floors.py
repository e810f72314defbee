"""The floors the pipeline benchmark compares funade with, for ``steps`` calls of ``noop``:

- (a) a plain Python loop: chained (``x = noop(x)``) or over ``range(steps)``;
- (b) a process per call, ``os.fork`` + ``waitpid``, the child calling ``noop`` and writing the
  result to a pipe: one at a time for the chain, at most ``limit`` at once for the fan. This is
  what isolation costs by itself. :class:`ForkFloor` runs it in a helper process that has
  imported what funade's zygote imports (``funade.pipelines.task``, ``serializers`` and the
  pipeline file, loaded the same way) and nothing else, because funade forks its steps from its
  zygote: ``python -m benchmarks.pipelines.floors TARGET STEPS`` reads ``chain`` or
  ``fan <limit>`` lines and answers ``<seconds> <ok>`` lines.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def loop_chain(fn: Callable[[int], int], steps: int) -> int:
    x = 0
    for _ in range(steps):
        x = fn(x)
    return x


def loop_fan(fn: Callable[[int], int], steps: int) -> list[int]:
    return [fn(i) for i in range(steps)]


def _fork_call(fn: Callable[[int], int], x: int) -> tuple[int, int]:
    """Fork a child that calls ``fn(x)`` and writes the result to a pipe; (pid, read end)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: call, write, exit without Python's shutdown
        code = 1
        try:
            os.close(read)
            os.write(write, str(fn(x)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    return pid, read


def _result(read: int, status: int) -> int:
    data = os.read(read, 64)
    os.close(read)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"a forked call failed with status {status}")
    return int(data)


def fork_chain(fn: Callable[[int], int], steps: int) -> int:
    x = 0
    for _ in range(steps):
        pid, read = _fork_call(fn, x)
        _, status = os.waitpid(pid, 0)
        x = _result(read, status)
    return x


def fork_fan(fn: Callable[[int], int], steps: int, limit: int) -> list[int]:
    waiting = deque(range(steps))
    running: dict[int, tuple[int, int]] = {}
    results: dict[int, int] = {}
    while waiting or running:
        while waiting and len(running) < limit:
            i = waiting.popleft()
            pid, read = _fork_call(fn, i)
            running[pid] = (i, read)
        pid, status = os.waitpid(-1, 0)
        if pid in running:
            i, read = running.pop(pid)
            results[i] = _result(read, status)
    return [results[i] for i in range(steps)]


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve(target: str, steps: int) -> None:
    """The helper: import what the zygote imports, then time floor (b) on request."""
    import funade.pipelines.serializers
    import funade.pipelines.task  # noqa: F401
    from funade.pipelines.loader import load_pipeline

    pipeline = load_pipeline(target)
    fn = sys.modules[pipeline.fn.__module__].noop.fn
    print(f"ready {rss_mib():.0f}", flush=True)
    for line in sys.stdin:
        shape, *rest = line.split()
        start = time.perf_counter()
        if shape == "chain":
            ok = fork_chain(fn, steps) == steps
        else:
            ok = fork_fan(fn, steps, int(rest[0])) == list(range(1, steps + 1))
        print(f"{time.perf_counter() - start!r} {int(ok)}", flush=True)


class ForkFloor:
    """The floor (b) helper process."""

    def __init__(self, target: str, steps: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.pipelines.floors", target, str(steps)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        ready = self.stdout.readline().split()
        if not ready or ready[0] != "ready":
            raise RuntimeError("the fork floor helper did not start")
        self.rss_mib = float(ready[1])

    def time(self, request: str) -> float:
        self.stdin.write(request + "\n")
        self.stdin.flush()
        seconds, ok = self.stdout.readline().split()
        if ok != "1":
            raise RuntimeError(f"floor (b) {request} gave the wrong result")
        return float(seconds)

    def close(self) -> None:
        self.stdin.close()
        self.process.wait(timeout=30)
        self.stdout.close()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
