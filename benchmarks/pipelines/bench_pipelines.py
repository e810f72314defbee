"""Pipelines: 100 no-op steps as a chain and as a fan-out, uncached and fully cached, in-process
and from the `funade` command, against a plain Python loop and a fork per step, in one run.

    .venv/bin/python -m benchmarks.pipelines.bench_pipelines --rounds 5

What it does, in a fresh temporary FUNADE_HOME (set, with every other FUNADE_* variable removed,
before funade is imported; the client serves the API in-process over it):

1. loads ``noop_pipelines.py`` by path, as ``funade pipeline run`` does: ``noop(x) -> x + 1`` and
   the pipelines ``chain`` (``--steps`` steps, each taking the previous output) and ``fan``
   (``noop.map(x=list(range(steps)))``), both with the default ``max_parallel`` (4);
2. warms up (discarded): one cached-mode run of each pipeline, which also fills the cache, and
   each floor once;
3. per round, in an order rotated by one each round, times:
   - in this process (``time.perf_counter`` around the call, command to result):
     ``run_pipeline("…/noop_pipelines.py:chain", use_cache=False)`` and with ``use_cache=True``
     (every step then comes from the cache), and the same for ``fan``; each run is checked
     (succeeded, every step ``succeeded`` or ``cached``, the right outputs);
   - the `funade` command in a new process each time (``cli_cases.py``): ``--help``,
     ``models list`` and ``pipeline run …:chain`` (cached, and uncached), locally (the API
     in-process over the home) and against this process's control plane (``FUNADE_URL``);
   - the floors (``floors.py``): (a) a plain loop calling ``noop``, (b) ``os.fork`` +
     ``waitpid`` per call from a helper process that imported what funade's zygote imports: the
     cost of isolation itself, one at a time for the chain, at most ``os.cpu_count() * 2`` at
     once for the fan; and ``python -c pass`` for the command;
4. prints the tables (median and min over the rounds; funade over floor (b) as a ratio) and
   where each in-process run's time goes: before the first step starts, per step, after the
   last, the calls to the control plane (counted and timed on the client class) and the waits
   for the zygote (timed around ``ZygoteProcess.wait_ready`` and ``close``; only timers are
   added, nothing of funade is changed).

``--steps 5 --rounds 1`` is the smoke test the test suite runs (tests/benchmarks/). The machine
is shared and noisy: read the ratios within a run, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.pipelines.cli_cases import CliCase, cli_cases, python_start, run_cli
from benchmarks.pipelines.floors import (
    ForkFloor,
    loop_chain,
    loop_fan,
    rss_mib,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PIPELINES = HERE / "noop_pipelines.py"
STEPS_VARIABLE = "BENCH_PIPELINE_STEPS"  # read by noop_pipelines.py
CASES = ("chain uncached", "chain cached", "fan uncached", "fan cached")
TARGETS = {"chain uncached": 3.0, "chain cached": 1.0, "fan uncached": 2.0, "fan cached": 1.0}
"""Seconds, for 100 steps: the uncached ones from issue 18, the cached ones from earlier."""
FLOORS = ("floor-a chain", "floor-a fan", "floor-b chain", "floor-b fan", "python start")
CLIENT_CALLS = (
    "create_run",
    "report_run",
    "get_run",
    "cache_of_pipeline",
    "cache_lookup",
    "cache_lookup_many",
    "upload_artifact",
    "open_artifact",
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (median and min)")
    parser.add_argument("--steps", type=int, default=100, help="steps per pipeline")
    return parser.parse_args()


def isolate(home: Path, steps: int) -> None:
    """Only ``FUNADE_HOME=home`` of the FUNADE_* settings, for this process and its children."""
    for name in [n for n in os.environ if n.startswith("FUNADE_")]:
        del os.environ[name]
    os.environ["FUNADE_HOME"] = str(home)
    os.environ[STEPS_VARIABLE] = str(steps)


# Timing funade -------------------------------------------------------------------------------


@dataclass
class Calls:
    """Calls made during one run, by name: how many, and the seconds spent in them."""

    count: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def wrap(self, owner: Any, names: tuple[str, ...], prefix: str = "") -> None:
        """Replace ``owner.<name>`` (an instance's method, or a class's function) by a timer
        that calls it."""
        for name in names:
            original = getattr(owner, name, None)
            if original is None:  # (measuring an earlier funade, without it)
                continue

            def timed(
                *args: Any, _key: str = prefix + name, _call: Any = original, **kw: Any
            ) -> Any:
                began = time.perf_counter()
                try:
                    return _call(*args, **kw)
                finally:
                    self.count[_key] = self.count.get(_key, 0) + 1
                    self.seconds[_key] = self.seconds.get(_key, 0.0) + time.perf_counter() - began

            setattr(owner, name, timed)

    def reset(self) -> None:
        self.count.clear()
        self.seconds.clear()


@dataclass(frozen=True)
class Timeline:
    """One funade run, from its step records (the runner's clock) and the call around it."""

    wall: float
    before_first: float
    """From the call to the first step starting (load, compile, record the run, zygote)."""
    span_ms: float
    """Mean per step from its launch to its end being recorded (fork, run, exit, result)."""
    between_ms: float | None
    """Chain only: mean from one step's end being recorded to the next one's launch."""
    after_last: float
    """From the last step's end to the call returning (final report, reading the run back)."""
    zygote_ready: float
    """Waiting for the zygote to have imported the code (0 when no step is launched)."""
    zygote_close: float
    """Waiting for the zygote to exit at the end."""
    calls: int
    call_seconds: float
    by_call: dict[str, tuple[int, float]]


def timeline(run: Any, began: datetime, ended: datetime, wall: float, calls: Calls) -> Timeline:
    steps = sorted(run.steps, key=lambda s: s.started_at)
    starts = [s.started_at for s in steps]
    ends = [s.finished_at for s in steps]
    between = None
    if run.pipeline == "chain":
        between = statistics.mean(
            (b.started_at - a.finished_at).total_seconds() for a, b in itertools.pairwise(steps)
        )
    client = {k: v for k, v in calls.count.items() if not k.startswith("zygote.")}
    return Timeline(
        wall=wall,
        before_first=(min(starts) - began).total_seconds(),
        span_ms=1000
        * statistics.mean((e - s).total_seconds() for s, e in zip(starts, ends, strict=True)),
        between_ms=None if between is None else 1000 * between,
        after_last=(ended - max(ends)).total_seconds(),
        zygote_ready=calls.seconds.get("zygote.wait_ready", 0.0),
        zygote_close=calls.seconds.get("zygote.close", 0.0),
        calls=sum(client.values()),
        call_seconds=sum(calls.seconds[k] for k in client),
        by_call={k: (calls.count[k], calls.seconds[k]) for k in sorted(client)},
    )


def check_run(case: str, run: Any, steps: int) -> None:
    want = "succeeded" if "uncached" in case else "cached"
    states = {s.state for s in run.steps}
    if run.state != "succeeded" or states != {want} or len(run.steps) != steps:
        raise RuntimeError(f"{case}: run {run.id} {run.state} ({run.reason}), steps {states}")
    values = sorted(s.outputs["output"]["value"] for s in run.steps)
    if values != list(range(1, steps + 1)):
        raise RuntimeError(f"{case}: run {run.id} gave the wrong outputs")


# Reporting -----------------------------------------------------------------------------------


def commit() -> str:
    """``git rev-parse --short HEAD``, and what is uncommitted under src/."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
        ).stdout

    head = git("rev-parse", "--short", "HEAD").strip()
    changed = git("diff", "HEAD", "--name-only", "--", "src").split()
    if not changed:
        return head
    digest = hashlib.sha256(git("diff", "HEAD", "--", "src").encode()).hexdigest()[:8]
    return f"{head} + uncommitted changes in {len(changed)} files under src/ (diff {digest})"


def machine(source: str, source_after: str) -> str:
    measured = (
        source if source == source_after else f"{source} at the start, {source_after} at the end"
    )
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}) · Linux {platform.release()} · "
        f"Python {platform.python_version()} · funade @ {measured}"
    )


def _target(seconds: float, steps: int) -> float:
    """A target for 100 steps, scaled to ``steps`` (the smoke test runs fewer)."""
    return seconds * steps / 100


def main_table(times: dict[str, list[float]], steps: int) -> str:
    lines = [
        "| case | funade median s | funade min s | target s | met? | floor (a) loop s | "
        "floor (b) fork s | funade / floor (b) | target / floor (b) | funade ms/step | "
        "over floor (b) ms/step |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in CASES:
        shape = case.split()[0]
        median, low = statistics.median(times[case]), min(times[case])
        floor_a = statistics.median(times[f"floor-a {shape}"])
        floor_b = statistics.median(times[f"floor-b {shape}"])
        target = _target(TARGETS[case], steps)
        met = "yes" if median <= target else "**no**"
        lines.append(
            f"| {case} | {median:.3f} | {low:.3f} | ≤ {target:g} | {met} | "
            f"{floor_a:.6f} | {floor_b:.3f} | {median / floor_b:.1f}x | "
            f"{target / floor_b:.1f}x | {1000 * median / steps:.2f} | "
            f"{1000 * (median - floor_b) / steps:+.2f} |"
        )
    return "\n".join(lines)


def cli_table(
    cases: list[CliCase], times: dict[str, list[float]], runs: dict[str, list[float]], steps: int
) -> str:
    floor = statistics.median(times["python start"])
    lines = [
        "| command (a new process each) | median s | min s | target s | met? | "
        "the run's own duration s | over `python -c pass` s |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        median, low = statistics.median(times[case.name]), min(times[case.name])
        if case.target is None:
            target, met = "—", "—"
        else:
            scaled = case.target if case.steps is None else _target(case.target, steps)
            target, met = f"≤ {scaled:g}", "yes" if median <= scaled else "**no**"
        own = f"{statistics.median(runs[case.name]):.3f}" if runs.get(case.name) else "—"
        lines.append(
            f"| {case.name} | {median:.3f} | {low:.3f} | {target} | {met} | {own} | "
            f"{median - floor:+.3f} |"
        )
    lines.append(
        f"| `python -c pass` (floor) | {floor:.3f} | {min(times['python start']):.3f} | | | | |"
    )
    return "\n".join(lines)


def breakdown_table(lines_of: dict[str, list[Timeline]]) -> str:
    lines = [
        "| case | wall s | before 1st step s | of it: zygote import wait s | "
        "per step: launch→recorded ms | chain: between steps ms | after last step s | "
        "of it: zygote exit wait s | control-plane calls | in them s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in CASES:
        runs = lines_of[case]

        def med(get: Callable[[Timeline], float], runs: list[Timeline] = runs) -> float:
            return statistics.median(get(t) for t in runs)

        between = "—"
        if runs[0].between_ms is not None:
            between = f"{med(lambda t: t.between_ms or 0.0):.2f}"
        lines.append(
            f"| {case} | {med(lambda t: t.wall):.3f} | {med(lambda t: t.before_first):.3f} | "
            f"{med(lambda t: t.zygote_ready):.3f} | {med(lambda t: t.span_ms):.2f} | {between} | "
            f"{med(lambda t: t.after_last):.3f} | {med(lambda t: t.zygote_close):.3f} | "
            f"{med(lambda t: t.calls):.0f} | {med(lambda t: t.call_seconds):.3f} |"
        )
    return "\n".join(lines)


def calls_table(lines_of: dict[str, list[Timeline]]) -> str:
    lines = ["| case | control-plane calls: count / seconds (the median round) |", "|---|---|"]
    for case in CASES:
        runs = sorted(lines_of[case], key=lambda t: t.wall)
        middle = runs[len(runs) // 2]
        text = ", ".join(f"{k} {n} / {s:.3f}" for k, (n, s) in middle.by_call.items())
        lines.append(f"| {case} | {text} |")
    return "\n".join(lines)


# The run -------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    steps = args.steps
    began_all = time.perf_counter()
    source = commit()
    tmp = Path(tempfile.mkdtemp(prefix="funade-bench-pipelines-"))
    helper: ForkFloor | None = None
    try:
        home = tmp / "home"
        home.mkdir()
        isolate(home, steps)  # before funade is imported and the client made
        import funade
        from funade.client import Client
        from funade.pipelines import runs
        from funade.pipelines.loader import load_pipeline
        from funade.pipelines.zygote import ZygoteProcess

        targets = {shape: f"{PIPELINES}:{shape}" for shape in ("chain", "fan")}
        module = sys.modules[load_pipeline(targets["chain"]).fn.__module__]
        noop: Callable[[int], int] = module.noop.fn
        max_parallel = load_pipeline(targets["fan"]).max_parallel
        limit = (os.cpu_count() or 1) * 2
        expected = {"chain": steps, "fan": list(range(1, steps + 1))}
        helper = ForkFloor(targets["chain"], steps)
        fork_helper = helper
        floors: dict[str, Callable[[], Any]] = {
            "floor-a chain": lambda: loop_chain(noop, steps),
            "floor-a fan": lambda: loop_fan(noop, steps),
        }
        clis = cli_cases(PIPELINES, steps)
        by_name = {c.name: c for c in clis}
        names = [*CASES, *by_name, *FLOORS]
        times: dict[str, list[float]] = {c: [] for c in names}
        cli_runs: dict[str, list[float]] = {c.name: [] for c in clis}
        lines_of: dict[str, list[Timeline]] = {c: [] for c in CASES}
        calls = Calls()
        calls.wrap(ZygoteProcess, ("wait_ready", "close"), prefix="zygote.")
        calls.wrap(Client, CLIENT_CALLS)  # the runs report with their token: another client
        load = os.getloadavg()
        with funade.Client() as client:
            address, api_key = client.address, client.api_key or ""

            def measure(case: str) -> float:
                if case.startswith("floor-b "):
                    return fork_helper.time("chain" if "chain" in case else f"fan {limit}")
                if case == "python start":
                    return python_start()
                if case in by_name:
                    timing = run_cli(by_name[case], address=address, api_key=api_key)
                    if timing.run_seconds is not None:
                        cli_runs[case].append(timing.run_seconds)
                    return timing.wall
                if case in floors:
                    start = time.perf_counter()
                    result = floors[case]()
                    wall = time.perf_counter() - start
                    if result != expected[case.split()[1]]:
                        raise RuntimeError(f"{case} gave the wrong result")
                    return wall
                shape = case.split()[0]
                use_cache = "uncached" not in case
                calls.reset()
                began, start = datetime.now(UTC), time.perf_counter()
                got = runs.run_pipeline(targets[shape], client=client, use_cache=use_cache)
                wall = time.perf_counter() - start
                ended = datetime.now(UTC)
                check_run(case, got, steps)
                lines_of[case].append(timeline(got, began, ended, wall, calls))
                return wall

            for shape in ("chain", "fan"):  # warm-up: fills the cache, imports, the database
                got = runs.run_pipeline(targets[shape], client=client, use_cache=True)
                if got.state != "succeeded":
                    raise RuntimeError(f"warm-up {shape}: {got.state} ({got.reason})")
            for case in FLOORS:
                measure(case)
            rss = rss_mib()
            for round_ in range(args.rounds):
                shift = round_ % len(names)
                for case in names[shift:] + names[:shift]:
                    times[case].append(wall := measure(case))
                    print(f"round {round_ + 1}  {case:<28} {wall:8.4f} s", flush=True)
        load_after = os.getloadavg()
    finally:
        if helper is not None:
            helper.close()
        shutil.rmtree(tmp, ignore_errors=True)
    command = " ".join(["python -m benchmarks.pipelines.bench_pipelines", *sys.argv[1:]])
    print()
    print(machine(source, commit()))
    where = Path(funade.__file__).resolve().parent.parent
    if where != REPO / "src":
        print(f"\nfunade measured: the one in {where} (PYTHONPATH), not this worktree's src/.")
    print(f"\n`.venv/bin/{command}`\n")
    print(
        f"{steps} no-op steps (`noop(x) -> x + 1`); pipelines with the default max_parallel "
        f"({max_parallel}); floor (b) fan at most os.cpu_count() * 2 = {limit} at once; "
        f"{args.rounds} round(s) after a discarded warm-up, median and min; load average "
        f"{load[0]:.2f} before, {load_after[0]:.2f} after. RSS when forking: the floor (b) "
        f"helper {helper.rss_mib if helper else 0:.0f} MiB; this process {rss:.0f} MiB. "
        f"Run took {time.perf_counter() - began_all:.0f} s.\n"
    )
    print(main_table(times, steps))
    print("\nThe `funade` command:\n")
    print(cli_table(clis, times, cli_runs, steps))
    print("\nWhere each in-process run's time goes (medians over the rounds):\n")
    print(breakdown_table(lines_of))
    print()
    print(calls_table(lines_of))


if __name__ == "__main__":
    main()
