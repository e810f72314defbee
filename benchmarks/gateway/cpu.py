"""Where a request's CPU goes: microseconds of CPU per request in the floor, in `funade serve`
called alone, and on the full path split into the gateway, the replica and the rest of
`funade up` (control plane, controller), for each request form and each of the gateway's HTTP
servers (``gateway_server``: the lean front and uvicorn, each a `funade gateway` of its own over
the same `funade up`), in one run.

    .venv/bin/python -m benchmarks.gateway.cpu --duration 5
    .venv/bin/python -m benchmarks.gateway.cpu --duration 2 --forms v2-binary --columns 8x64
    .venv/bin/python -m benchmarks.gateway.cpu --servers lean  # one server only

CPU time (user + system, from /proc) divided by the requests answered is far steadier on a
shared machine than requests per second: a neighbour's load lowers the rate a server reaches,
but hardly what each request costs it. Everything that serves is pinned to core 0 and wrk to
core 1, as in ``bench_gateway --pin``; the bodies and checks are ``bench_gateway``'s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

import funade
from benchmarks.gateway import platform as up
from benchmarks.gateway.bench_gateway import Bodies, check, write_forms
from benchmarks.gateway.forms import FORMS, Form
from benchmarks.registry.harness import cpu_seconds, isolate, machine, server_stack
from benchmarks.serving.load import CYCLE_LUA, run_wrk
from benchmarks.serving.models import infer_body, prepare
from benchmarks.serving.servers import start

SERVERS, CLIENT = "0", "1"
PARTS = ("gateway", "replica", "rest")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1, help="discarded seconds before each")
    parser.add_argument("--forms", default=",".join(FORMS), help="comma-separated subset")
    parser.add_argument(
        "--columns", default="8x1,64x1,8x64", help="concurrency x rows per body, comma-separated"
    )
    parser.add_argument(
        "--servers", default="lean,uvicorn", help="the gateway's HTTP servers, comma-separated"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="also record py-spy profiles (collapsed stacks) of the gateway and the replica "
        "during each full-path run into this directory",
    )
    parser.add_argument(
        "--native", action="store_true", help="profiles include C frames (py-spy --native)"
    )
    args = parser.parse_args()
    args.forms = [FORMS[name] for name in args.forms.split(",")]
    args.servers = args.servers.split(",")
    if not set(args.servers) <= {"lean", "uvicorn"}:
        parser.error("--servers takes lean and uvicorn")
    args.columns = [tuple(int(n) for n in c.split("x")) for c in args.columns.split(",")]
    rows = {r for _, r in args.columns if r > 1}
    if len(rows) > 1:
        parser.error("one batch size at most (e.g. 8x64)")
    args.batch_rows = rows.pop() if rows else 0
    return args


def system_seconds(pid: int) -> float:
    """System (kernel) CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def main() -> None:
    args = parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="funade-bench-cpu-") as tmp:
        work = Path(tmp)
        home = work / "home"
        home.mkdir()
        isolate(home)
        with funade.Client() as client:
            prepared = prepare("lr", work, client)
        bodies = write_forms(work, prepared.input_name, args)
        expected = {rows: prepared.estimator.predict(x).tolist() for rows, x in bodies.rows.items()}
        check_body = infer_body(prepared.input_name, prepared.rows[:1])
        check_expected = [int(v) for v in prepared.estimator.predict(prepared.rows[:1])]

        def first_request(gateway: str, key: str) -> str | None:
            headers = {"X-API-Key": key, "Content-Type": "application/json"}
            got = httpx.post(f"{gateway}/v2/models/lr/infer", content=check_body, headers=headers)
            return None if got.status_code == 200 else f"HTTP {got.status_code}"

        os.sched_setaffinity(0, {int(CLIENT)})
        with contextlib.ExitStack() as stack:
            floor = start("floor", prepared, check_body, check_expected, core=SERVERS,
                          log_dir=work)  # fmt: skip
            stack.callback(floor.stop)
            # The replica on TCP: the `serve` column is wrk straight at it, and wrk speaks no
            # Unix sockets (the default hop; RESULTS.md has the two compared).
            platform = up.launch(home, work / "up.log", SERVERS, first_request, transport="tcp")
            stack.callback(platform.stop)
            replica_pid = _replica_pid(home)
            gateways = {
                server: stack.enter_context(
                    up.extra_gateway(home, work, SERVERS, server, {"FUNADE_GATEWAY_SERVER": server})
                )
                for server in args.servers
            }
            everything = up.descendants(platform.process.pid)
            replica = up.descendants(replica_pid)
            theirs = {pid for _, pid in gateways.values()}

            def replica_count(prefix: str) -> Callable[[], float]:
                def count() -> float:
                    got = httpx.get(
                        f"{platform.replica}/metrics",
                        headers={"Authorization": f"Bearer {platform.token}"},
                    )
                    return sum(
                        float(line.rsplit(" ", 1)[1])
                        for line in got.text.splitlines()
                        if line.startswith(prefix)
                    )

                return count

            # the replica's model calls and the HTTP requests it answered, so far
            model_calls = replica_count("funade_batch_size_count")
            replica_requests = replica_count("funade_requests_total")

            def parts_of(gateway_pid: int) -> dict[str, Callable[[], float]]:
                return {
                    "calls": model_calls,
                    "hops": replica_requests,
                    "gateway": lambda: tree_cpu([gateway_pid]),
                    "gateway-sys": lambda: system_seconds(gateway_pid),
                    "replica": lambda: tree_cpu(replica),
                    "rest": lambda: tree_cpu(
                        [p for p in everything if p not in replica and p not in theirs]
                    ),
                }

            targets = {
                "floor": (
                    f"http://127.0.0.1:{floor.port}",
                    {},
                    {"floor": lambda: tree_cpu(up.descendants(floor.process.pid))},
                ),
                "serve": (
                    platform.replica,
                    {"Authorization": f"Bearer {platform.token}"},
                    {"replica": parts_of(0)["replica"], "calls": model_calls},
                ),
            }
            for server, (url, pid) in gateways.items():
                targets[server] = (url, {"X-API-Key": platform.key}, parts_of(pid))
            profiled = {server: {"gateway": pid, "replica": replica_pid}
                        for server, (_, pid) in gateways.items()}  # fmt: skip
            for form in args.forms:
                for base, headers, _ in targets.values():
                    check(form, f"{base}{form.path('lr')}", headers, bodies, expected)
            header = (
                "| form | column | gateway server | floor µs | serve µs | full: gateway µs "
                "| full: replica µs | full: rest µs | full total ÷ floor | gateway in kernel "
                "| requests per model call: serve / full | requests per hop to the replica |"
            )
            lines += [header, "|" + " --- |" * 12]
            print(header, flush=True)
            for form in args.forms:
                for concurrency, rows in args.columns:
                    per: dict[str, dict[str, float]] = {}
                    for name, (base, headers, meters) in targets.items():
                        spies = profiled.get(name, {})
                        tag = f"{form.name}-c{concurrency}x{rows}-{name}"
                        per[name] = _measure(
                            args, form, bodies, f"{base}{form.path('lr')}", headers, meters,
                            concurrency, rows, {f"{tag}-{k}": v for k, v in spies.items()},
                        )  # fmt: skip
                    for server in args.servers:
                        full = per[server]
                        total = full["gateway"] + full["replica"] + full["rest"]
                        line = (
                            f"| {form.label} | c{concurrency}, {rows} row{'s' if rows > 1 else ''} "
                            f"| {server} | {per['floor']['floor']:.0f} "
                            f"| {per['serve']['replica']:.0f} "
                            f"| {full['gateway']:.0f} | {full['replica']:.0f} | {full['rest']:.0f} "
                            f"| {total / per['floor']['floor']:.2f}x "
                            f"| {full['gateway-sys'] / full['gateway']:.0%} "
                            f"| {_per_call(per['serve'])} / {_per_call(full)} "
                            f"| {_per_call(full, 'hops')} |"
                        )
                        lines.append(line)
                        print(line, flush=True)
    print(
        f"\n{machine()} · {server_stack()}\n\n`.venv/bin/python -m benchmarks.gateway.cpu "
        f"{' '.join(sys.argv[1:])}` — CPU µs per request (user + system), servers on core 0, "
        f"wrk on core 1; {args.duration:g} s per run. Run took {time.perf_counter() - began:.0f} s."
    )
    print("\n".join(lines))


def _per_call(figures: dict[str, float], meter: str = "calls") -> str:
    """Requests per model call (or per hop), from a per-request meter (x 1e6, as every meter)."""
    calls = figures.get(meter, 0.0)
    return f"{1e6 / calls:.1f}" if calls else "—"


def _replica_pid(home: Path) -> int:
    """The one replica's pid, from the local backend's record of it."""
    found = [json.loads(r.read_text()) for r in (home / "replicas").glob("*.json")]
    if len(found) != 1:
        raise RuntimeError(f"{len(found)} replica records in {home / 'replicas'}, not 1")
    return int(found[0]["pid"])


def _measure(
    args: argparse.Namespace,
    form: Form,
    bodies: Bodies,
    url: str,
    headers: dict[str, str],
    meters: dict[str, Callable[[], float]],
    concurrency: int,
    rows: int,
    spies: dict[str, int],
) -> dict[str, float]:
    body_file = bodies.files[(form.name, rows)]
    options = {"connections": concurrency, "rows": rows, "core": CLIENT, "headers": headers,
               "script": CYCLE_LUA}  # fmt: skip
    run_wrk(url, body_file, seconds=args.warmup, **options)
    recorders = [
        subprocess.Popen(
            [
                "py-spy",
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, round(args.duration))),
                "--rate",
                "200",
                "--format",
                "raw",
                "--output",
                str(args.profile / f"{tag}.txt"),
                # --native pauses the process for each sample (py-spy cannot read C frames of a
                # running one); it costs the server time, so read its profile, not its figures
                *(["--native"] if args.native else ["--nonblocking"]),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for tag, pid in (spies.items() if args.profile else ())
    ]
    before = {name: meter() for name, meter in meters.items()}
    got = run_wrk(url, body_file, seconds=args.duration, **options)
    for recorder in recorders:
        recorder.wait(timeout=60)
    if got.errors:
        raise RuntimeError(f"{url}: {got.errors}")
    return {name: 1e6 * (meter() - before[name]) / got.requests for name, meter in meters.items()}


if __name__ == "__main__":
    main()
