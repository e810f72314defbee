"""Model serving: `funade serve` against a floor (bare ASGI + uvicorn calling ``model.predict``)
and KServe's Python model server, on the same models and the same requests, in one run.

    .venv/bin/python -m benchmarks.serving.bench_serving --duration 10

What it does, in a fresh temporary FUNADE_HOME (needs Linux, 2+ cores, ``wrk``, ``taskset``):

1. fits a LogisticRegression and a RandomForestClassifier on
   ``make_classification(random_state=0)`` (20 features), registers each with
   ``funade.log_model`` (the default package: outputs ``predict`` and ``predict_proba``) and
   pickles it with joblib for the floor and KServe (``models``);
2. per model, starts every server as a subprocess pinned to core 0 (``taskset -c 0``) and times
   its cold start (spawn to the first correct prediction, polled every 2 ms, every 25 ms while
   it answers 503; ``--cold-runs`` times, the last one stays up), checks that 1-row and
   64-row requests get the estimator's own predictions, and that funade's
   ``GET /v2/models/{name}`` names the input the requests use (``servers``);
3. per case (1 row at concurrency 1, 8 and 64; 64 rows at concurrency 8), runs every server in
   turn (order rotated per case and round): ``wrk`` pinned to core 1 with ``infer.lua``
   (``load``), ``--warmup`` seconds discarded, then ``--duration`` seconds measured; the same
   Open Inference Protocol v2 JSON body for all. The server's CPU time and, for funade, the rows
   per model call (from ``/metrics``) are read around the measured run; then, for the c1 p50
   target, ``--pairs`` short c1 runs of the floor and each funade variant back to back (order
   alternating), whose median difference the target reads (``paired_c1``);
4. reads each server's RSS (``VmRSS``) and peak (``VmHWM``) after the load, stops it with
   SIGINT, prints the tables (``report``) and replaces each model's section of
   ``serving/RESULTS.md`` (``--no-results`` to only print).

The machine is shared and noisy: read the ratios within a run, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from unittest import mock

import funade
from benchmarks.registry import harness
from benchmarks.registry.harness import cpu_seconds, isolate, machine, server_stack
from benchmarks.serving.load import run_wrk
from benchmarks.serving.models import MODEL_KINDS, Prepared, infer_body, prepare
from benchmarks.serving.report import (
    CASES,
    Measured,
    ModelRun,
    results_table,
    startup_table,
    targets_table,
)
from benchmarks.serving.servers import SYSTEMS, Running, input_name_served, start, verify

RESULTS = Path(__file__).with_name("RESULTS.md")
SERVER_CORE, CLIENT_CORE = 0, 1


def _csv(choices: Mapping[str, object]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {list(choices)}")
        return names

    return parse


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2, help="discarded seconds before each")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the cases; keep the best")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold starts per server")
    parser.add_argument(
        "--pairs",
        type=int,
        default=8,
        help="paired c1 runs (floor and funade back to back) for the p50 target",
    )
    parser.add_argument("--pair-seconds", type=float, default=3, help="seconds per paired run")
    parser.add_argument("--models", type=_csv(MODEL_KINDS), default=list(MODEL_KINDS))
    parser.add_argument("--only", type=_csv(CASES), default=list(CASES), help="cases to run")
    parser.add_argument("--systems", type=_csv(SYSTEMS), default=list(SYSTEMS))
    parser.add_argument("--kserve-logs", action="store_true", help="KServe's per-request logs on")
    parser.add_argument("--no-results", action="store_true", help="do not update RESULTS.md")
    return parser.parse_args()


def rotated(items: list[str], by: int) -> list[str]:
    by %= len(items)
    return items[by:] + items[:by]


def measure(
    running: Running, body: Path, rows: int, concurrency: int, args: argparse.Namespace
) -> Measured:
    if args.warmup > 0:
        run_wrk(running.url, body, connections=concurrency, seconds=args.warmup, rows=rows,
                core=CLIENT_CORE)  # fmt: skip
    cpu0, batch0 = cpu_seconds(running.process.pid), running.batch_totals()
    load = run_wrk(running.url, body, connections=concurrency, seconds=args.duration, rows=rows,
                   core=CLIENT_CORE)  # fmt: skip
    cpu, batch1 = cpu_seconds(running.process.pid) - cpu0, running.batch_totals()
    per_call = None
    if batch0 is not None and batch1 is not None and batch1[1] > batch0[1]:
        per_call = (batch1[0] - batch0[0]) / (batch1[1] - batch0[1])
    return Measured(load, cpu, per_call)


def run_model(prepared: Prepared, args: argparse.Namespace, work: Path) -> ModelRun:
    x = prepared.rows
    bodies = {n: infer_body(prepared.input_name, x[:n]) for n in (1, 64)}
    expected = {n: [int(v) for v in prepared.estimator.predict(x[:n])] for n in bodies}
    files = {}
    for n, body in bodies.items():
        files[n] = work / f"{prepared.kind}-{n}.json"
        files[n].write_bytes(body)
    run = ModelRun(prepared.kind, prepared.title, args.systems, [CASES[k] for k in args.only])
    running: dict[str, Running] = {}
    try:
        for system in args.systems:
            starts = []
            for attempt in range(max(1, args.cold_runs)):
                server = start(system, prepared, bodies[1], expected[1], core=SERVER_CORE,
                               log_dir=work, kserve_logs=args.kserve_logs)  # fmt: skip
                starts.append(server.cold_start)
                if attempt < args.cold_runs - 1:
                    server.stop()
            running[system] = server
            run.cold_starts[system] = starts
            verify(server, bodies, expected)
            if system.startswith("funade") and input_name_served(server) != prepared.input_name:
                raise RuntimeError(f"{system} names its input differently from the signature")
            print(f"{prepared.kind} {system}: cold starts {', '.join(f'{s:.2f}' for s in starts)}"
                  " s; predictions checked", flush=True)  # fmt: skip
        for round_ in range(args.rounds):
            for index, case in enumerate(run.cases):
                for system in rotated(args.systems, round_ + index):
                    got = measure(running[system], files[case.rows], case.rows,
                                  case.concurrency, args)  # fmt: skip
                    print(f"{prepared.kind} {case.label:<12} {system:<15} {got.load.rps:>8,.0f}"
                          f" req/s  p50 {got.load.p50_ms:6.2f}  p99 {got.load.p99_ms:7.2f} ms"
                          f"{'  ERRORS ' + str(got.load.errors) if got.load.errors else ''}",
                          flush=True)  # fmt: skip
                    keep(run, system, case.key, got)
        if "r1c1" in args.only and "floor" in running:
            for system in (s for s in args.systems if s.startswith("funade")):
                run.c1_pairs[system] = paired_c1(running["floor"], running[system], files[1], args)
        run.memory = {system: server.memory_mib() for system, server in running.items()}
    finally:
        for system, server in running.items():
            run.exit_codes[system] = server.stop()
    return run


def paired_c1(floor: Running, ours: Running, body: Path, args: argparse.Namespace) -> list[float]:
    """``--pairs`` differences of p50 at concurrency 1 (ours minus the floor's), each from two
    ``--pair-seconds`` runs back to back, the order alternating: a shared machine's speed
    drifts by more than the target's 0.3 ms between rounds minutes apart, much less within
    seconds, so the median of paired differences is the reading the target can trust."""
    differences = []
    for index in range(args.pairs):
        order = [floor, ours] if index % 2 == 0 else [ours, floor]
        p50 = {}
        for server in order:
            load = run_wrk(server.url, body, connections=1, seconds=args.pair_seconds, rows=1,
                           core=CLIENT_CORE)  # fmt: skip
            p50[server.system] = load.p50_ms
        differences.append(p50[ours.system] - p50[floor.system])
        print(f"  c1 pair {index + 1}/{args.pairs}: {ours.system} {p50[ours.system]:.2f} ms, "
              f"floor {p50[floor.system]:.2f} ms ({differences[-1]:+.2f})", flush=True)  # fmt: skip
    return differences


def keep(run: ModelRun, system: str, case: str, got: Measured) -> None:
    """Keep the round with the most req/s (noise on a shared machine only slows things down)."""
    before = run.results.get((system, case))
    rounds = (*before.rounds_rps, got.load.rps) if before else (got.load.rps,)
    best = got if before is None or got.load.rps > before.load.rps else before
    run.results[(system, case)] = Measured(best.load, best.server_cpu, best.rows_per_call, rounds)


def section(run: ModelRun, args: argparse.Namespace, elapsed: float) -> str:
    command = " ".join(["python -m benchmarks.serving.bench_serving", *sys.argv[1:]])
    kserve = "its per-request logs on" if args.kserve_logs else "its per-request logs off"
    parts = [
        machine(),
        f"`.venv/bin/{command}`",
        f"{run.title} on `make_classification(random_state=0)` (20 features). Server on core "
        f"{SERVER_CORE}, wrk (1 thread) on core {CLIENT_CORE}; {args.warmup:g} s warm-up + "
        f"{args.duration:g} s measured per run, {args.rounds} round(s) (best kept), and "
        f"{args.pairs} paired c1 runs of "
        f"{args.pair_seconds:g} s (floor and funade back to back) for the p50 target; KServe with "
        f"{kserve}. Run took {elapsed:.0f} s.",
        results_table(run),
        startup_table(run),
    ]
    targets = targets_table(run)
    if targets:
        parts.append("Targets (ratios within this run):\n\n" + targets)
    return "\n\n".join(parts) + "\n"


def write_section(key: str, title: str, body: str) -> None:
    """The registry harness's section writer, pointed at this benchmark's RESULTS.md."""
    with mock.patch.object(harness, "RESULTS", RESULTS):
        harness.write_section(key, title, body)


def main() -> None:
    args = parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs two cores: one for the server, one for wrk")
    os.sched_setaffinity(0, {CLIENT_CORE})  # this process polls and reads from core 1 too
    started = time.perf_counter()
    runs: list[tuple[ModelRun, float]] = []
    with tempfile.TemporaryDirectory(prefix="funade-bench-serving-") as tmp:
        work = Path(tmp)
        home = work / "home"
        home.mkdir()
        isolate(home)
        client = funade.Client()
        try:
            prepared = [prepare(kind, work, client) for kind in args.models]
        finally:
            client.close()
        for model in prepared:
            model_started = time.perf_counter()
            runs.append((run_model(model, args, work), time.perf_counter() - model_started))
    for run, elapsed in runs:
        body = section(run, args, elapsed)
        print(f"\n## {run.title}\n\n{body}")
        if not args.no_results:
            write_section(f"serving-{run.kind}", f"Serving: {run.title}, {server_stack()}", body)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
