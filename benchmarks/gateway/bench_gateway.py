"""Gateway: the full path (gateway → one replica, as users run it) against `funade serve`
alone and against the bare-ASGI floor, for each request form, in one run.

    .venv/bin/python -m benchmarks.gateway.bench_gateway --duration 10
    .venv/bin/python -m benchmarks.gateway.bench_gateway --duration 0.5 --forms v2-outputs \
        --concurrency 1 --batch-rows 0 --pin --idle 0 --no-results   # a quick look

What it does, in fresh temporary FUNADE_HOMEs (Linux, 2+ cores, ``wrk``, ``taskset``):

1. fits the serving benchmark's LogisticRegression (20 features; ``benchmarks.serving.models``)
   and writes, per request form (``forms.py``: v1 ``instances``, v1 ``inputs``, v2 JSON with
   and without ``outputs``, v2 binary tensors), 2,048 single-row bodies and 256 bodies of 64
   rows, all rows distinct, which ``wrk`` (``serving/cycle.lua``) sends in turn;
2. per placement (``--pin``: everything that serves on core 0, wrk on core 1; ``--free``:
   servers and wrk all free on both cores; both by default), starts the floor
   (``serving/floor_server.py``, which does each form's work) and ``funade up``, deploys
   ``lr:1`` with an allowlist, a deployment and a per-key rate limit, and makes a predict key
   (``platform.py``), timing each phase to the first prediction through the gateway; then reads
   the idle CPU of ``funade up`` and its children for ``--idle`` seconds; then checks that
   every path answers every form with the estimator's predictions and the same outputs;
3. per form and column (``--concurrency`` single-row, and ``--batch-rows`` rows per body at
   concurrency 8), runs the three targets in turn (order rotated): ``--warmup`` seconds
   discarded, then ``--duration`` measured; the gateway gets the key in ``X-API-Key``, the
   replica its token;
4. prints the tables and the targets, and replaces the section in ``gateway/RESULTS.md``
   (``--no-results`` to only print).

The machine is shared and noisy: read the ratios within a run, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import httpx
import numpy as np

import funade
from benchmarks.gateway import platform as up
from benchmarks.gateway.forms import FORMS, Form, distinct_rows
from benchmarks.gateway.report import (
    PLACEMENTS,
    TARGETS,
    UNMERGED_COLUMNS,
    Column,
    Key,
    Placement,
    column_name,
    phase_table,
    table,
    targets_table,
)
from benchmarks.registry import harness
from benchmarks.registry.harness import isolate, machine, server_stack
from benchmarks.serving.load import CYCLE_LUA, LoadResult, run_wrk, write_bodies
from benchmarks.serving.models import FEATURES, infer_body, prepare
from benchmarks.serving.servers import start

RESULTS = Path(__file__).with_name("RESULTS.md")
SINGLE_BODIES, BATCH_BODIES = 2048, 256
CHECKED = 3  # bodies of each file checked on every path before the load


IDLE_AFTER_SECONDS = 35.0
"""Idle CPU is measured from this long after the first prediction (the platform at rest)."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2, help="discarded seconds before each")
    parser.add_argument("--rounds", type=int, default=1, help="repeat; keep the best req/s")
    parser.add_argument("--forms", default=",".join(FORMS), help="comma-separated subset")
    parser.add_argument("--concurrency", default="1,8,64", help="single-row concurrencies")
    parser.add_argument("--batch-rows", type=int, default=64, help="rows per body at c8 (0: no)")
    parser.add_argument("--idle", type=float, default=20, help="idle CPU seconds (0: skip)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--pin", action="store_const", const=["pinned"], dest="placements")
    where.add_argument("--free", action="store_const", const=["free"], dest="placements")
    parser.add_argument("--no-results", action="store_true", help="do not update RESULTS.md")
    parser.add_argument(
        "--gateway-server",
        choices=["lean", "uvicorn"],
        help="the gateway's HTTP server (the gateway_server setting; default: its default)",
    )
    args = parser.parse_args()
    args.placements = args.placements or list(PLACEMENTS)
    args.forms = [FORMS[name] for name in args.forms.split(",")]
    args.columns = [(int(c), 1) for c in args.concurrency.split(",")]
    if args.batch_rows:
        args.columns.append((8, args.batch_rows))
    return args


def main() -> None:
    args = parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs two cores: one for the servers, one for wrk")
    began = time.perf_counter()
    results: dict[Key, LoadResult] = {}
    phases: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="funade-bench-gateway-") as tmp:
        work = Path(tmp)
        homes = {name: work / f"home-{name}" for name in args.placements}
        for home in homes.values():  # each placement its own platform, started cold
            home.mkdir()
            isolate(home)
            with funade.Client() as client:
                prepared = prepare("lr", work, client)
        bodies = write_forms(work, prepared.input_name, args)
        expected = {rows: prepared.estimator.predict(x).tolist() for rows, x in bodies.rows.items()}
        check_body = infer_body(prepared.input_name, prepared.rows[:1])
        check_expected = [int(v) for v in prepared.estimator.predict(prepared.rows[:1])]

        def first_request(gateway: str, key: str) -> str | None:
            url = f"{gateway}/v2/models/lr/infer"
            headers = {"X-API-Key": key, "Content-Type": "application/json"}
            answer = httpx.post(url, content=check_body, headers=headers)
            if answer.status_code == 200:
                got, _ = FORMS["v2-outputs"].read(answer.content, answer.headers)
                if got == check_expected:
                    return None
            return f"HTTP {answer.status_code} {answer.content[:300]!r}"

        for placement in (PLACEMENTS[name] for name in args.placements):
            os.sched_setaffinity(0, {int(c) for c in placement.client.split(",")})
            isolate(homes[placement.name])
            if args.gateway_server:
                os.environ["FUNADE_GATEWAY_SERVER"] = args.gateway_server
            with contextlib.ExitStack() as stack:
                floor = start("floor", prepared, check_body, check_expected,
                              core=placement.servers, log_dir=work)  # fmt: skip
                stack.callback(floor.stop)
                # The replica on TCP: wrk drives `funade serve` alone at its URL, and wrk speaks
                # no Unix sockets (the socket hop is measured in RESULTS.md, cpu.py's runs).
                platform = up.launch(homes[placement.name], work / f"up-{placement.name}.log",
                                     placement.servers, first_request, transport="tcp")  # fmt: skip
                stack.callback(platform.stop)
                phases[placement.name] = dict(platform.phases)
                if args.idle > 0:
                    # At rest, as the platform benchmark measures it: past the gateway's 30 s of
                    # quick table reloads after a change (and the rollout's own aftermath).
                    time.sleep(IDLE_AFTER_SECONDS)
                    idle = up.idle_cpu(platform.process.pid, args.idle)
                    phases[placement.name]["idle CPU, % of a core"] = idle
                    print(f"{placement.name}: idle CPU {idle:.2f}% of a core", flush=True)
                print(f"{placement.name}: cold start {platform.phases}", flush=True)
                unmerged, _ = stack.enter_context(
                    up.extra_gateway(
                        homes[placement.name], work, placement.servers,
                        f"unmerged-{placement.name}", {"FUNADE_GATEWAY_MERGE": "0"},
                    )
                )  # fmt: skip
                targets = {
                    "floor": (f"http://127.0.0.1:{floor.port}", {}),
                    "replica": (platform.replica, {"Authorization": f"Bearer {platform.token}"}),
                    "gateway": (platform.gateway, {"X-API-Key": platform.key}),
                    "unmerged": (unmerged, {"X-API-Key": platform.key}),
                }
                for form in args.forms:
                    for base, headers in targets.values():
                        check(form, f"{base}{form.path('lr')}", headers, bodies, expected)
                print("every form checked on every path", flush=True)
                for round_ in range(args.rounds):
                    for index, (form, column) in enumerate(
                        (f, c) for f in args.forms for c in args.columns
                    ):
                        turn = (round_ + index) % len(TARGETS)
                        for target in TARGETS[turn:] + TARGETS[:turn]:
                            if target == "unmerged" and column not in UNMERGED_COLUMNS:
                                continue
                            got = measure(
                                args, placement, form, column, (target, *targets[target]), bodies
                            )
                            key = (placement.name, form.name, column, target)
                            if key not in results or got.rps > results[key].rps:
                                results[key] = got
    command = " ".join(["python -m benchmarks.gateway.bench_gateway", *sys.argv[1:]])
    parts = [
        machine(),
        f"`.venv/bin/{command}`",
        f"LogisticRegression (20 features); each run cycles through {SINGLE_BODIES:,} "
        f"single-row bodies (or {BATCH_BODIES} of {args.batch_rows} rows), no two rows alike. "
        f"wrk 1 thread; {args.warmup:g} s warm-up + {args.duration:g} s measured per run, "
        f"{args.rounds} round(s) (best kept). The gateway checks the deployment's allowlist "
        "(127.0.0.0/8), a predict key (cached), a deployment-wide and a per-key rate limit "
        "(never refusing), and counts metrics and traffic figures on every request; the "
        f"replica checks its token. Run took {time.perf_counter() - began:.0f} s.",
    ]
    for name in args.placements:
        parts += [
            f"**{name.capitalize()}**: {PLACEMENTS[name].text}.",
            table(results, name, args),
            f"Targets, {name} (ratios within this run):\n\n" + targets_table(results, name, args),
        ]
    parts.append("Cold start and idle (`funade up`, one deployment):\n\n" + phase_table(phases))
    section = "\n\n".join(parts)
    print(f"\n{section}")
    if not args.no_results:
        with mock.patch.object(harness, "RESULTS", RESULTS):
            harness.write_section(
                "gateway-lr", f"Gateway: LogisticRegression, {server_stack()}", section
            )


@dataclass(frozen=True)
class Bodies:
    rows: dict[int, np.ndarray]  # rows per body -> every row sent, in order
    files: dict[tuple[str, int], Path]  # (form, rows per body) -> the file cycle.lua reads
    checks: dict[tuple[str, int], list[tuple[bytes, dict[str, str]]]]  # the first few bodies


def write_forms(work: Path, input_name: str, args: argparse.Namespace) -> Bodies:
    sizes = {1: SINGLE_BODIES, **({args.batch_rows: BATCH_BODIES} if args.batch_rows else {})}
    rows, files, checks = {}, {}, {}
    for seed, (per_body, count) in enumerate(sizes.items(), start=1):
        rows[per_body] = distinct_rows(per_body * count, FEATURES, seed=seed)
        for form in args.forms:
            built = [form.body(input_name, rows[per_body][i * per_body : (i + 1) * per_body])
                     for i in range(count)]  # fmt: skip
            files[(form.name, per_body)] = work / f"{form.name}-{per_body}.bodies"
            write_bodies(files[(form.name, per_body)], built)
            checks[(form.name, per_body)] = built[:CHECKED]
    return Bodies(rows, files, checks)


def check(
    form: Form, url: str, headers: dict[str, str], bodies: Bodies, expected: dict[int, list[int]]
) -> None:
    """The first bodies of each file get the estimator's predictions and the form's outputs."""
    for per_body in bodies.rows:
        for index, (body, own) in enumerate(bodies.checks[(form.name, per_body)]):
            sent = {"Content-Type": "application/json", **own, **headers}
            answer = httpx.post(url, content=body, headers=sent, timeout=30)
            want = expected[per_body][index * per_body : (index + 1) * per_body]
            try:
                got, outputs = form.read(answer.content, answer.headers)
            except (ValueError, KeyError, TypeError) as exc:
                got, outputs = [], {f"unreadable: {exc}"}
            if answer.status_code != 200 or got != want or outputs != set(form.outputs):
                raise RuntimeError(
                    f"{url} ({form.name}, {per_body} rows): HTTP {answer.status_code}, outputs "
                    f"{outputs}, {answer.content[:300]!r}"
                )


def measure(
    args: argparse.Namespace,
    placement: Placement,
    form: Form,
    column: Column,
    target: tuple[str, str, dict[str, str]],  # name, base URL, headers
    bodies: Bodies,
) -> LoadResult:
    concurrency, rows = column
    name, base, headers = target
    url, body_file = f"{base}{form.path('lr')}", bodies.files[(form.name, rows)]
    options = {"connections": concurrency, "rows": rows, "core": placement.client,
               "headers": headers, "script": CYCLE_LUA}  # fmt: skip
    if args.warmup > 0:
        run_wrk(url, body_file, seconds=args.warmup, **options)
    got = run_wrk(url, body_file, seconds=args.duration, **options)
    errors = f"  ERRORS {got.errors}" if got.errors else ""
    print(f"{placement.name:<6} {form.name:<12} {column_name(column):<11} {name:<8} "
          f"{got.rps:>8,.0f} req/s {got.rows_per_second:>9,.0f} rows/s  p50 {got.p50_ms:6.2f}"
          f"  p99 {got.p99_ms:7.2f} ms{errors}", flush=True)  # fmt: skip
    return got


if __name__ == "__main__":
    main()
