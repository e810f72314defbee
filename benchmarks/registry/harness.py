"""What the registry benchmarks share: a real control plane in a subprocess, peak-memory
readings from ``/proc``, latency statistics, and the sections they write in RESULTS.md.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import funade

RESULTS = Path(__file__).with_name("RESULTS.md")
_UP_LINE = re.compile(r"funade is up at (http://\S+)")


# Peak memory and CPU time ----------------------------------------------------------------------


def status_kib(pid: int | str, field: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (e.g. ``VmHWM``, the peak RSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(f"/proc/{pid}/status has no {field} line")


def cpu_seconds(pid: int | str) -> float:
    """User + system CPU time the process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int | str) -> None:
    """Set VmHWM back to the current RSS (Linux >= 4.0), so the next reading is one phase's."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


# The control plane -----------------------------------------------------------------------------


def isolate(home: Path) -> None:
    """Make this process and its children see only ``FUNADE_HOME=home`` of the FUNADE_* settings
    (so neither your environment nor ``~/.funade/config.toml`` changes what is measured)."""
    for name in [n for n in os.environ if n.startswith("FUNADE_")]:
        del os.environ[name]
    os.environ["FUNADE_HOME"] = str(home)


class Server:
    """``python -m funade up --port 0`` over ``home``, with only FUNADE_HOME (and ``extra``)
    of the FUNADE_* variables set. Its output goes to ``home/server.log``; SIGINT stops it."""

    def __init__(self, home: Path, extra: dict[str, str] | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNADE_")}
        env.update({"FUNADE_HOME": str(home), "COLUMNS": "200"}, **(extra or {}))
        self.home = home
        self.log = home / "server.log"
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "funade", "up", "--port", "0"],
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.process.pid
        self.url = self._wait_for_url(deadline=time.monotonic() + 60)
        credentials = json.loads((home / "credentials").read_text())
        self.api_key: str = credentials["api_key"]

    def _wait_for_url(self, deadline: float) -> str:
        while time.monotonic() < deadline:
            match = _UP_LINE.search(self.log.read_text(errors="replace"))
            if match:
                return match.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"funade up did not start; its output:\n{self.log.read_text()}")

    def stop(self) -> int:
        """SIGINT (Ctrl-C), then wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()
        return self.process.returncode

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# Statistics and reporting ----------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """Latencies of one operation, in milliseconds."""

    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def server_stack() -> str:
    """What uvicorn's "auto" runs on here: httptools and uvloop if installed, else h11, asyncio."""
    return "+".join(
        fast if importlib.util.find_spec(fast) else slow
        for fast, slow in (("httptools", "h11"), ("uvloop", "asyncio"))
    )


def machine() -> str:
    """One line saying where and when the numbers were taken."""
    source = Path(funade.__file__).parent  # the funade measured, wherever it was imported from

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True)
        return done.stdout.strip()

    commit = git("describe", "--always")
    if commit and git("status", "--porcelain", "--untracked-files=no", "--", "."):
        commit += "-dirty"  # the package measured differs from the commit (not just results)
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}) · Linux {platform.release()} · "
        f"Python {platform.python_version()} · uvicorn on {server_stack()} · "
        f"funade @ {commit or source}"
    )


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table (also readable as plain text on a terminal)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join(
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in lines
    )


def write_section(key: str, title: str, body: str) -> None:
    """Replace (or append) the section between ``<!-- key -->`` markers in RESULTS.md."""
    begin, end = f"<!-- {key}: begin (generated) -->", f"<!-- {key}: end -->"
    section = f"{begin}\n### {title}\n\n{body.strip()}\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Registry benchmark results\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)
    print(f"\nwrote section {key!r} of {RESULTS}")
