"""Gateway: the full path (gateway with key auth, a rate limit and metrics on → one replica)
against calling that replica directly and against the bare-ASGI floor, in one run.

    .venv/bin/python -m benchmarks.gateway.bench_gateway --duration 10

What it does, in a fresh temporary FUNADE_HOME (Linux, 2+ cores, ``wrk``, ``taskset``):

1. fits the serving benchmark's LogisticRegression (``make_classification(random_state=0)``, 20
   features) and registers it (``benchmarks.serving.models``);
2. starts the floor (``benchmarks.serving.floor_server``) and ``funade up`` pinned to core 0, so
   the control plane, the gateway and the replica it deploys all share that core; deploys
   ``lr:1`` with a per-key rate limit (far above the load, so it is checked but never refuses)
   and makes a predict key; checks that each path gives the estimator's predictions;
3. per concurrency (1, 8, 64; single-row v2 JSON requests asking for ``predict``), runs the three
   targets in turn (order rotated): ``wrk`` on core 1, ``--warmup`` seconds discarded, then
   ``--duration`` measured; the gateway is sent the key in ``X-API-Key``;
4. prints the table and the targets, and replaces the section in ``gateway/RESULTS.md``
   (``--no-results`` to only print).

The machine is shared and noisy: read the ratios within a run, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import httpx

import funade
from benchmarks.registry import harness
from benchmarks.registry.harness import isolate, machine, server_stack
from benchmarks.serving.load import LoadResult, run_wrk
from benchmarks.serving.models import infer_body, predictions, prepare
from benchmarks.serving.servers import start

RESULTS = Path(__file__).with_name("RESULTS.md")
SERVER_CORE, CLIENT_CORE = 0, 1
CONCURRENCY = (1, 8, 64)
TARGETS = ("floor", "replica", "gateway")
LABELS = {
    "floor": "floor (bare ASGI + uvicorn)",
    "replica": "replica directly (funade serve)",
    "gateway": "full path (gateway → replica)",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2, help="discarded seconds before each")
    parser.add_argument("--rounds", type=int, default=1, help="repeat; keep the best req/s")
    parser.add_argument("--no-results", action="store_true", help="do not update RESULTS.md")
    return parser.parse_args()


def start_platform(home: Path, log: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """`funade up` on SERVER_CORE; its process, API URL and gateway URL."""
    command = ["taskset", "-c", str(SERVER_CORE), str(Path(sys.executable).with_name("funade")),
               "up", "--port", "0", "--gateway-port", "0"]  # fmt: skip
    # As root, the replica runs as its project's user: its sandbox must be reachable by it.
    sandbox = home.parent / "sandbox"
    home.parent.chmod(0o711)
    env = {
        **os.environ,
        "FUNADE_HOME": str(home),
        "FUNADE_SANDBOX_DIR": str(sandbox),
        "COLUMNS": "400",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while "Press Ctrl-C" not in (text := log.read_text(errors="replace")):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"funade up did not start:\n{text}")
        time.sleep(0.05)
    api = re.search(r"funade is up at (http://\S+)", text)
    gateway = re.search(r"gateway at (http://\S+) ", text)
    if api is None or gateway is None:
        raise RuntimeError(f"funade up printed no URLs:\n{text}")
    return process, api[1], gateway[1]


def deploy(api: str, home: Path) -> tuple[str, str, str]:
    """Deploy lr:1; the replica's URL, the token the gateway presents to it, a predict key."""
    key = json.loads((home / "credentials").read_text())["api_key"]
    with funade.Client(url=api, api_key=key) as client:
        limit = {"per_second": 1_000_000, "burst": 1_000_000}
        client.create_deployment("lr", version="1", policy={"key_rate_limit": limit})
        deadline = time.monotonic() + 120
        while (rollout := client.get_deployment("lr").rollout) and rollout.state == "verifying":
            if time.monotonic() > deadline:
                raise RuntimeError("the deployment did not go live")
            time.sleep(0.2)
        if rollout is None or rollout.state != "succeeded":
            raise RuntimeError(f"the rollout failed: {rollout}")
        replica = client.get_deployment("lr").replicas[0].url
        predict_key = client.create_key("bench", ["predict"], project="default").key
    with sqlite3.connect(home / "funade.db") as db:  # a replica answers only with its token
        (token,) = db.execute("SELECT token FROM replicas WHERE url = ?", (replica,)).fetchone()
    return replica, str(token), predict_key


def check(url: str, body: bytes, expected: list[int], headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        answer = httpx.post(
            url, content=body, headers={**headers, "content-type": "application/json"}
        )
        if answer.status_code == 200 and predictions(answer.content) == expected:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}: HTTP {answer.status_code} {answer.text[:300]}")
        time.sleep(0.1)


def table(results: dict[tuple[str, int], LoadResult]) -> str:
    lines = [
        "| target | concurrency | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
    ]
    for concurrency in CONCURRENCY:
        for target in TARGETS:
            got = results[(target, concurrency)]
            lines.append(
                f"| {LABELS[target]} | {concurrency} | {got.rps:,.0f} | {got.p50_ms:.2f} | "
                f"{got.p99_ms:.2f} | {sum(got.errors.values()) or ''} |"
            )
    return "\n".join(lines)


def targets(results: dict[tuple[str, int], LoadResult]) -> str:
    added = results[("gateway", 1)].p50_ms - results[("replica", 1)].p50_ms
    ratio = results[("gateway", 64)].rps / results[("floor", 64)].rps
    return "\n".join([
        "| target | measured | met |", "|---|---|---|",
        f"| gateway adds ≤ 1 ms to p50 at concurrency 1 | +{added:.2f} ms | "
        f"{'yes' if added <= 1.0 else 'no'} |",
        f"| full path at concurrency 64 ≥ the floor's req/s | {ratio:.2f}x | "
        f"{'yes' if ratio >= 1.0 else 'no'} |",
    ])  # fmt: skip


def main() -> None:
    args = parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs two cores: one for the servers, one for wrk")
    os.sched_setaffinity(0, {CLIENT_CORE})
    began = time.perf_counter()
    results: dict[tuple[str, int], LoadResult] = {}
    with tempfile.TemporaryDirectory(prefix="funade-bench-gateway-") as tmp:
        work = Path(tmp)
        home = work / "home"
        home.mkdir()
        isolate(home)
        with funade.Client() as client:
            prepared = prepare("lr", work, client)
        body = infer_body(prepared.input_name, prepared.rows[:1])
        expected = [int(v) for v in prepared.estimator.predict(prepared.rows[:1])]
        body_file = work / "body.json"
        body_file.write_bytes(body)
        floor = start("floor", prepared, body, expected, core=SERVER_CORE, log_dir=work)
        platform, api, gateway = start_platform(home, work / "up.log")
        try:
            replica, token, key = deploy(api, home)
            urls = {
                "floor": floor.url,
                "replica": f"{replica}/v2/models/lr/infer",
                "gateway": f"{gateway}/v2/models/lr/infer",
            }
            headers = {
                "gateway": {"X-API-Key": key},
                "replica": {"Authorization": f"Bearer {token}"},
            }
            for target, url in urls.items():
                check(url, body, expected, headers.get(target, {}))
            print("predictions checked on every path", flush=True)
            for round_ in range(args.rounds):
                for index, concurrency in enumerate(CONCURRENCY):
                    order = TARGETS[(round_ + index) % 3 :] + TARGETS[: (round_ + index) % 3]
                    for target in order:
                        options = {"connections": concurrency, "rows": 1, "core": CLIENT_CORE,
                                   "headers": headers.get(target)}  # fmt: skip
                        if args.warmup > 0:
                            run_wrk(urls[target], body_file, seconds=args.warmup, **options)
                        got = run_wrk(urls[target], body_file, seconds=args.duration, **options)
                        errors = f"  ERRORS {got.errors}" if got.errors else ""
                        print(f"c{concurrency:<3} {target:<8} {got.rps:>8,.0f} req/s  p50 "
                              f"{got.p50_ms:6.2f}  p99 {got.p99_ms:7.2f} ms{errors}",
                              flush=True)  # fmt: skip
                        best = results.get((target, concurrency))
                        if best is None or got.rps > best.rps:
                            results[(target, concurrency)] = got
        finally:
            platform.send_signal(signal.SIGINT)
            platform.wait(timeout=60)
            floor.stop()
    command = " ".join(["python -m benchmarks.gateway.bench_gateway", *sys.argv[1:]])
    section = "\n\n".join([
        machine(),
        f"`.venv/bin/{command}`",
        f"Single-row LogisticRegression (20 features) requests asking for `predict`. The floor "
        f"and `funade up` with its gateway and the replica, on core {SERVER_CORE}; wrk "
        f"(1 thread) on core {CLIENT_CORE}; {args.warmup:g} s warm-up + {args.duration:g} s "
        f"measured per run, "
        f"{args.rounds} round(s) (best kept). The gateway checks a predict key (cached), a "
        f"per-key rate limit and counts metrics and traffic figures on every request. Run took "
        f"{time.perf_counter() - began:.0f} s.",
        table(results),
        "Targets (ratios within this run):\n\n" + targets(results),
    ])  # fmt: skip
    print(f"\n{section}")
    if not args.no_results:
        with mock.patch.object(harness, "RESULTS", RESULTS):
            harness.write_section(
                "gateway-lr", f"Gateway: LogisticRegression, {server_stack()}", section
            )


if __name__ == "__main__":
    main()
