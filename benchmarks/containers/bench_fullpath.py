"""Containers: the full data-plane path of `funade up` at concurrency 64 (client → gateway → one
replica), the replica a podman container against a local process, in one run (issue 22's
target: the container's req/s at least 0.9x the local one's).

    .venv/bin/python -m benchmarks.containers.bench_fullpath --duration 10 --rounds 3

What it does (Linux, root, podman as ``scripts/podman-setup`` leaves it, ``wrk``):

1. two fresh FUNADE_HOMEs, each with the serving benchmark's LogisticRegression registered as
   ``lr:1`` (``benchmarks.serving.models.prepare``); one with ``backend = "podman"`` (its image
   built on demand on scripts/podman-setup's base, funade from a wheel of this checkout);
2. ``funade up`` over each (``benchmarks.gateway.platform.launch``: ``lr`` deployed with an
   allowlist, a deployment-wide and a per-key rate limit that never refuse, and a predict key),
   both running throughout, nothing pinned (servers and ``wrk`` share both cores);
3. ``--rounds`` rounds, the order of the two alternating: ``wrk`` at 64 connections sends
   single-row v2 JSON bodies (2,048 distinct rows, asking for ``predict``) to each gateway,
   ``--warmup`` seconds discarded, then ``--duration`` measured; the best round of each is kept;
4. prints the table and replaces its section of ``containers/RESULTS.md`` (``--no-results``).

The machine is shared and noisy: read the ratio within a run, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import httpx

import funade
from benchmarks.gateway import platform as up
from benchmarks.gateway.forms import FORMS, distinct_rows
from benchmarks.registry import harness
from benchmarks.serving.load import CYCLE_LUA, LoadResult, run_wrk, write_bodies
from benchmarks.serving.models import FEATURES, infer_body, prepare

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).with_name("RESULTS.md")
BASE = os.environ.get("FUNADE_BASE_IMAGE", "localhost/funade-base:bookworm-py311")
CONF = Path(os.environ.get("FUNADE_CI_CACHE", "/var/cache/funade-ci")) / "containers.conf"
BACKENDS = ("local", "podman")
BODIES = 2048


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2, help="discarded seconds before each")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best of each kept")
    parser.add_argument("--concurrency", type=int, default=64, help="wrk connections")
    parser.add_argument("--base", default=BASE, help="base image (scripts/podman-setup's)")
    parser.add_argument("--no-results", action="store_true", help="do not update RESULTS.md")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if "CONTAINERS_CONF" not in os.environ and CONF.is_file():
        os.environ["CONTAINERS_CONF"] = str(CONF)
    began = time.perf_counter()
    runs: dict[str, list[LoadResult]] = {backend: [] for backend in BACKENDS}
    with tempfile.TemporaryDirectory(prefix="bench-fullpath-") as scratch:
        work = Path(scratch)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work), str(ROOT)],
            check=True,
        )
        (wheel,) = work.glob("funade-*.whl")
        form = FORMS["v2-outputs"]
        with contextlib.ExitStack() as stack:
            platforms: dict[str, up.Platform] = {}
            reached: dict[str, str] = {}
            for backend in BACKENDS:
                home = work / f"home-{backend}"
                home.mkdir()
                harness.isolate(home)
                with funade.Client() as client:
                    prepared = prepare("lr", work, client)
                if backend != "local":
                    os.environ.update(
                        FUNADE_BACKEND=backend,
                        FUNADE_CONTAINER_BASE_IMAGE=args.base,
                        FUNADE_CONTAINER_FUNADE_WHEEL=str(wheel),
                    )
                check = infer_body(prepared.input_name, prepared.rows[:1])
                want = [int(v) for v in prepared.estimator.predict(prepared.rows[:1])]

                def first_request(gateway: str, key: str) -> str | None:
                    answer = httpx.post(
                        f"{gateway}/v2/models/lr/infer",
                        content=check,  # noqa: B023 - called before the next iteration
                        headers={"X-API-Key": key, "Content-Type": "application/json"},
                    )
                    if answer.status_code == 200:
                        got, _ = form.read(answer.content, answer.headers)
                        if got == want:  # noqa: B023
                            return None
                    return f"HTTP {answer.status_code} {answer.content[:300]!r}"

                # The container's first start builds its image: minutes on a loaded machine.
                platform = up.launch(
                    home, work / f"up-{backend}.log", "0,1", first_request, timeout=900
                )
                stack.callback(platform.stop)
                platforms[backend] = platform
                print(f"{backend}: cold start {platform.phases}", flush=True)
                print(f"{backend}: the gateway reaches its replica at {platform.replica}")
                reached[backend] = platform.replica.partition(":")[0]
            rows = distinct_rows(BODIES, FEATURES, seed=1)
            bodies = work / "bodies"
            write_bodies(bodies, [form.body(prepared.input_name, rows[i : i + 1])
                                  for i in range(BODIES)])  # fmt: skip
            for round_ in range(args.rounds):
                order = BACKENDS if round_ % 2 == 0 else BACKENDS[::-1]
                for backend in order:
                    platform = platforms[backend]
                    url = f"{platform.gateway}/v2/models/lr/infer"
                    if args.warmup > 0:
                        load(url, platform.key, bodies, args.warmup, args.concurrency)
                    got = load(url, platform.key, bodies, args.duration, args.concurrency)
                    errors = f"  ERRORS {got.errors}" if got.errors else ""
                    said = (
                        f"{got.rps:>8,.0f} req/s  p50 {got.p50_ms:6.2f}  p99 {got.p99_ms:7.2f} ms"
                    )
                    print(f"round {round_ + 1} {backend:<7} {said}{errors}", flush=True)
                    runs[backend].append(got)
    report(runs, args, time.perf_counter() - began, reached)


def load(url: str, key: str, bodies: Path, seconds: float, concurrency: int) -> LoadResult:
    """``wrk`` at ``concurrency`` connections on both cores, cycling through ``bodies``."""
    return run_wrk(
        url,
        bodies,
        connections=concurrency,
        seconds=seconds,
        rows=1,
        core="0,1",
        headers={"X-API-Key": key},
        script=CYCLE_LUA,
    )


HEADER = [
    "replica",
    "best req/s",
    "median req/s",
    "each round",
    "p50 ms (best)",
    "p99 ms (best)",
    "errors",
]


def report(
    runs: dict[str, list[LoadResult]],
    args: argparse.Namespace,
    took: float,
    reached: dict[str, str],
) -> None:
    best = {name: max(done, key=lambda got: got.rps) for name, done in runs.items()}
    median = {name: statistics.median(got.rps for got in done) for name, done in runs.items()}
    ratio = best["podman"].rps / best["local"].rps
    median_ratio = median["podman"] / median["local"]
    rows = [
        [title, f"{best[name].rps:,.0f}", f"{median[name]:,.0f}",
         " / ".join(f"{got.rps:,.0f}" for got in runs[name]),
         f"{best[name].p50_ms:.2f}", f"{best[name].p99_ms:.2f}",
         str({k: v for got in runs[name] for k, v in got.errors.items()} or "none")]
        for name, title in (("local", "local process"), ("podman", "podman container"))
    ]  # fmt: skip
    command = " ".join(["python -m benchmarks.containers.bench_fullpath", *sys.argv[1:]])
    body = "\n\n".join(
        [
            harness.machine(),
            f"`.venv/bin/{command}`: c{args.concurrency}, single-row v2 JSON bodies through "
            f"the gateway (allowlist, predict key, two rate limits), {args.warmup:g} s warm-up "
            f"+ {args.duration:g} s measured per run, {args.rounds} rounds in alternating "
            f"order; servers and wrk on both cores; each on its default transport (the gateway "
            f"reaches the local replica over {reached['local']}, the container over "
            f"{reached['podman']}). Run took {took:.0f} s.",
            harness.table(HEADER, rows),
            f"container / local req/s: **{ratio:.2f}x** best, {median_ratio:.2f}x median "
            f"(target ≥ 0.9x: {'met' if min(ratio, median_ratio) >= 0.9 else 'NOT met'})",
        ]
    )
    print("\n" + body)
    if not args.no_results:
        with mock.patch.object(harness, "RESULTS", RESULTS):
            harness.write_section(
                "containers-fullpath", "Full path at c64 through the gateway", body
            )


if __name__ == "__main__":
    main()
