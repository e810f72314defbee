"""The load generator: ``wrk`` with ``infer.lua`` (or ``cycle.lua``), pinned to given cores.

A run is one wrk thread with ``connections`` connections, each keeping one request in flight
(the concurrency), for a fixed duration; ``infer.lua`` sends one fixed body, ``cycle.lua`` a
file of many bodies in turn (``write_bodies``), and both print the numbers as a JSON line,
parsed here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).with_name("infer.lua")
CYCLE_LUA = Path(__file__).with_name("cycle.lua")
MARK = "WRK_JSON "


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    rows_per_request: int
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def rows_per_second(self) -> float:
        return self.rps * self.rows_per_request


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install -y wrk)")
    return found


def run_wrk(
    url: str,
    body_file: Path,
    *,
    connections: int,
    seconds: float,
    rows: int,
    core: int | str,
    headers: dict[str, str] | None = None,
    script: Path = LUA,
) -> LoadResult:
    """``wrk -t1 -c<connections> -d<seconds>s`` on ``core`` (a core or a taskset list such as
    ``"0,1"``), POSTing ``body_file`` to ``url`` with ``script`` (``CYCLE_LUA``: a file of
    ``write_bodies``)."""
    command = [
        "taskset",
        "-c",
        str(core),
        wrk_binary(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
        "--",
        str(body_file),
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=seconds + 60
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(MARK)), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    doc = json.loads(line[len(MARK) :])
    return LoadResult(
        requests=doc["requests"],
        seconds=doc["duration_us"] / 1e6,
        rows_per_request=rows,
        p50_ms=doc["p50_us"] / 1000,
        p99_ms=doc["p99_us"] / 1000,
        errors={k: doc[k] for k in ("connect", "read", "write", "status", "timeout") if doc[k]},
    )


def write_bodies(path: Path, bodies: list[tuple[bytes, dict[str, str]]]) -> None:
    """Write ``(body, headers)`` pairs as ``cycle.lua`` reads them: per body a line of its length
    and its own headers (tab-separated ``Name: value``), then its bytes."""
    with path.open("wb") as out:
        for body, headers in bodies:
            fields = [str(len(body)), *(f"{name}: {value}" for name, value in headers.items())]
            out.write("\t".join(fields).encode() + b"\n" + body)
