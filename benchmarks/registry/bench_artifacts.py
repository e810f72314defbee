"""Artifact throughput and peak memory: upload and download one large file through the real
control plane, against a floor of the same bytes copied and hashed directly.

    .venv/bin/python -m benchmarks.registry.bench_artifacts --size-mb 1024

What it does, in a fresh temporary FUNADE_HOME:

1. writes ``--size-mb`` MiB of random bytes to a file, 1 MiB at a time;
2. floor: ``shutil.copyfile`` of the file plus an fsync of the copy (the server fsyncs every
   blob it commits), and a plain ``hashlib.sha256`` over it: the least work an upload can do
   (read, hash, write). Both are timed before and after the transfers; the faster time of each
   makes the floor;
3. starts ``python -m funade up --port 0`` as a subprocess and times
   ``Client.upload_artifact`` (which hashes the file first, then streams it with a PUT; the
   server hashes, writes and fsyncs) and ``Client.download_artifact`` to a new file (the
   server reads and hashes; the client hashes and writes), and checks size and digest;
4. reads each process's peak RSS (``VmHWM`` in ``/proc/<pid>/status``), reset before each
   phase through ``/proc/<pid>/clear_refs``, so every peak belongs to one phase;
5. stops the server with SIGINT, prints the tables and updates its section of RESULTS.md.

Sizes are MiB (2**20 bytes); rates are MiB/s. The machine is shared, so read the ratios to
the floor, not the absolute rates.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.registry.harness import (
    Server,
    cpu_seconds,
    isolate,
    machine,
    reset_peak,
    server_stack,
    status_kib,
    table,
    write_section,
)
from funade import Client

MIB = 1024 * 1024


def write_random(path: Path, size_mib: int) -> None:
    with path.open("wb") as handle:
        for _ in range(size_mib):
            handle.write(os.urandom(MIB))


def copy_and_fsync(source: Path, dest: Path) -> None:
    shutil.copyfile(source, dest)
    with dest.open("rb+") as handle:
        os.fsync(handle.fileno())


def sha256_of(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MIB):
            hasher.update(chunk)
    return f"sha256:{hasher.hexdigest()}"


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def floor(source: Path, scratch: Path) -> tuple[float, float]:
    """Seconds to copy+fsync and to hash ``source``."""
    copy = timed(lambda: copy_and_fsync(source, scratch))
    scratch.unlink()
    return copy, timed(lambda: sha256_of(source))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="artifact size in MiB")
    parser.add_argument("--no-results", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    size_mib: int = args.size_mb
    size = size_mib * MIB

    with tempfile.TemporaryDirectory(prefix="funade-bench-") as tmp:
        work = Path(tmp)
        source, scratch, fetched = work / "artifact.bin", work / "copy.bin", work / "fetched.bin"
        print(f"writing {size_mib} MiB of random bytes to {source} ...", flush=True)
        write_random(source, size_mib)
        floors = [floor(source, scratch)]

        home = work / "home"
        home.mkdir()
        isolate(home)
        with Server(home) as server:
            server_start = status_kib(server.pid, "VmHWM")
            client = Client(url=server.url, api_key=server.api_key)
            peaks: dict[str, tuple[int, int, int, int]] = {}  # phase -> rss before/peak x2
            times: dict[str, float] = {}
            cpu: dict[str, tuple[float, float]] = {}  # phase -> CPU seconds of server, client
            digest = ""
            for phase in ("upload", "download"):
                before = (status_kib(server.pid, "VmRSS"), status_kib("self", "VmRSS"))
                reset_peak(server.pid)
                reset_peak("self")
                print(f"{phase} ...", flush=True)
                cpu0 = (cpu_seconds(server.pid), time.process_time())
                start = time.perf_counter()
                if phase == "upload":
                    digest = client.upload_artifact(source).digest
                else:
                    client.download_artifact(digest, fetched)
                times[phase] = time.perf_counter() - start
                cpu[phase] = (cpu_seconds(server.pid) - cpu0[0], time.process_time() - cpu0[1])
                peaks[phase] = (
                    before[0],
                    status_kib(server.pid, "VmHWM"),
                    before[1],
                    status_kib("self", "VmHWM"),
                )
            client.close()
            if fetched.stat().st_size != size or sha256_of(fetched) != digest:
                sys.exit("the downloaded file differs from the uploaded one")
            fetched.unlink()
            server_exit = server.stop()
        floors.append(floor(source, scratch))

    copy_s, hash_s = min(f[0] for f in floors), min(f[1] for f in floors)
    floor_s = copy_s + hash_s

    def rate(seconds: float) -> str:
        return f"{size_mib / seconds:,.0f}"

    speed = table(
        ["step", "seconds", "MiB/s", "time vs floor", "CPU s: server / client"],
        [
            ["floor: copyfile + fsync", f"{copy_s:.2f}", rate(copy_s), "", ""],
            ["floor: sha256", f"{hash_s:.2f}", rate(hash_s), "", ""],
            ["floor: read + hash + write", f"{floor_s:.2f}", rate(floor_s), "1.00x", ""],
            *(
                [
                    f"Client.{p}_artifact",
                    f"{t:.2f}",
                    rate(t),
                    f"{t / floor_s:.2f}x",
                    f"{cpu[p][0]:.2f} / {cpu[p][1]:.2f}",
                ]
                for p, t in times.items()
            ),
        ],
    )

    def memory_row(phase: str, process: str, before: int | None, peak: int) -> list[str]:
        shown = "" if before is None else f"{before / 1024:.0f}"
        ratio = "" if before is None else f"{peak / 1024 / size_mib:.3f}"
        return [phase, process, shown, f"{peak / 1024:.0f}", ratio]

    memory = table(
        ["phase", "process", "RSS before (MiB)", "peak RSS (MiB)", "peak / artifact"],
        [
            memory_row("after start", "server", None, server_start),
            *(
                row
                for phase, (s0, s1, c0, c1) in peaks.items()
                for row in (
                    memory_row(phase, "server", s0, s1),
                    memory_row(phase, "client", c0, c1),
                )
            ),
        ],
    )

    floor_runs = ", ".join(f"{c + h:.2f} s" for c, h in floors)
    body = (
        f"{machine()}\n\n"
        f"`.venv/bin/python -m benchmarks.registry.bench_artifacts {' '.join(sys.argv[1:])}`\n\n"
        f"Artifact: {size_mib} MiB of random bytes; floor runs (before, after): {floor_runs}; "
        f"server exit code after SIGINT: {server_exit}.\n\n"
        f"{speed}\n\n{memory}\n"
    )
    print("\n" + body)
    if not args.no_results:
        http = server_stack()
        write_section(f"artifacts-{size_mib}mib-{http}", f"Artifacts: {size_mib} MiB, {http}", body)


if __name__ == "__main__":
    main()
