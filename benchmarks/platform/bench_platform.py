"""The platform at rest and from cold: idle CPU of `funade up` with one deployment and no
traffic, and the wall time from launching `funade up` to a first prediction through the gateway.

    .venv/bin/python -m benchmarks.platform.bench_platform --idle-seconds 20 --rounds 3

What it does, in a fresh temporary FUNADE_HOME per round (Linux, ``/proc``):

1. fits the serving benchmark's LogisticRegression and registers it as ``lr`` with the
   in-process client of the install under test (a subprocess of its Python) *before* `funade
   up` starts (so the home already has its schema, its
   default project and its admin key: the cold start is a restart of the platform over a home
   with a registered model and no deployment, the case of `funade up` on a laptop; the first
   start of an empty home is measured apart, as "empty home → API answers");
2. launches ``funade up --port 0 --gateway-port 0`` and times, from the launch:
   - **API answers**: the log says "funade is up" and ``GET /api/v1/health`` answers 200;
   - **deploy call**: ``POST /api/v1/deployments`` for ``lr:1`` returned;
   - **replica spawned / bound**: read afterwards from the files the platform writes (the
     replica's record, ``started_at``; the mtime of its URL file, written once `funade serve`
     has imported what it needs and bound its socket, before it loads the model); likewise
     **gateway bound** (the mtime of ``gateway.url``), which happens while the API starts;
   - **replica ready / rollout succeeded**: polled every 10 ms from
     ``GET /api/v1/deployments/lr`` (verification with the golden examples is part of it);
   - **gateway routes it**: the gateway's first answer that is not 404 to a v2 infer request
     (polled every 10 ms with the admin key);
   - **first prediction**: the first 200 with the estimator's predictions;
3. then, with no traffic, waits ``--settle`` seconds (35: the gateway reloads its routing table
   five times as often for 30 s after it changed, which is not rest) and reads user + system
   CPU time of `funade up` and every process under it (the gateway, the replica and its
   workers) from ``/proc/<pid>/stat`` over ``--idle-seconds``: CPU % of one core per process;
4. prints the tables and replaces its section of ``platform/RESULTS.md`` (``--no-results``).

``idle_cpu(pid, seconds)`` is the measurement other benchmarks call (the gateway benchmark shows
it as the CPU that is not the request path). The machine is shared and noisy: compare numbers
within one run; the cold start keeps the median of ``--rounds``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import httpx

import funade
from benchmarks.registry import harness
from benchmarks.registry.harness import isolate, machine

RESULTS = Path(__file__).with_name("RESULTS.md")
POLL = 0.01
PHASES = (
    ("gateway", "*in parallel:* gateway bound (its process started, imports done)"),
    ("api", "process start → API answers"),
    ("deployed", "deploy call returned"),
    ("spawned", "→ replica process spawned"),
    ("bound", "→ replica bound (Python, `funade serve`'s imports)"),
    ("ready", "→ replica ready (model loaded; seen by the controller)"),
    ("succeeded", "→ rollout succeeded (verified)"),
    ("routed", "→ gateway routes it"),
    ("predicted", "→ first prediction (200)"),
)


# Idle CPU ---------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, str, float] | None:
    """(parent pid, name, user + system CPU seconds) of ``pid``, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return int(fields[1]), name, cpu


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def process_tree(root: int) -> dict[int, str]:
    """``root`` and every process under it (the gateway and replicas run in sessions of their
    own but stay children of `funade up`), each with a short label."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (got := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = got[0]
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return {pid: _label(pid, root) for pid in sorted(tree)}


def _label(pid: int, root: int) -> str:
    if pid == root:
        return "funade up (API, controller, scheduler)"
    got = _stat(pid)
    command = _cmdline(pid)
    # The gateway: forked from `funade up` (its name says so; its command line is up's), or
    # `python -m funade.gateway`, or `funade gateway` (an older install).
    if (got is not None and got[1] == "funade-gateway") or " gateway" in command:
        return "gateway"
    if " funade.gateway" in command:
        return "gateway"
    if " serve " in command:
        return "replica (funade serve)"
    return "replica worker" if "multiprocessing" in command or not command else command[:60]


def cpu_seconds(root: int) -> dict[str, float]:
    """User + system CPU seconds ``root`` and the processes under it have used since they
    started, by label, plus ``"total"``: on one core, the wall time they cannot overlap."""
    out: dict[str, float] = {}
    for pid, label in process_tree(root).items():
        if (got := _stat(pid)) is not None:
            out[label] = out.get(label, 0.0) + got[2]
    out["total"] = sum(out.values())
    return out


def idle_cpu(root: int, seconds: float) -> dict[str, float]:
    """CPU used by ``root`` and the processes under it over ``seconds`` of wall time, in % of
    one core, by label (summed over processes with the same label), plus ``"total"``."""
    pids = process_tree(root)
    before = {pid: got[2] for pid in pids if (got := _stat(pid)) is not None}
    began = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - began
    out: dict[str, float] = {}
    for pid, label in pids.items():
        got = _stat(pid)
        if got is None or pid not in before:
            continue
        out[label] = out.get(label, 0.0) + 100 * (got[2] - before[pid]) / wall
    out["total"] = sum(out.values())
    return out


# Cold start ------------------------------------------------------------------------------------


@dataclass
class Round:
    marks: dict[str, float] = field(default_factory=dict)
    idle: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds by process at the first prediction (``cpu_seconds``)."""


OWN = str(Path(sys.executable).with_name("funade"))


def launch(
    home: Path, log: Path, funade_command: str = OWN, cores: str = ""
) -> subprocess.Popen[bytes]:
    """`funade up` over ``home``; on ``cores`` (a ``taskset`` list, inherited by the gateway and
    the replicas) if given."""
    command = [funade_command, "up", "--port", "0", "--gateway-port", "0"]
    if cores:
        command = ["taskset", "-c", cores, *command]
    # As root, the replica runs as its project's user: its sandbox must be reachable by it.
    home.parent.chmod(0o711)
    env = {**os.environ, "FUNADE_HOME": str(home), "COLUMNS": "400",
           "FUNADE_SANDBOX_DIR": str(home.parent / "sandbox")}  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)


def wait_for(
    predicate: object,
    what: str,
    timeout: float = 120,
    detail: list[str] | None = None,
    poll: float = POLL,
) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            said = f" (last: {detail[-1]})" if detail else ""
            raise RuntimeError(f"timed out waiting for {what}{said}")
        time.sleep(poll)


def api_up(process: subprocess.Popen[bytes], log: Path) -> tuple[str, str]:
    """Wait for the API to answer; its URL and the gateway's."""
    found: dict[str, str] = {}

    def printed() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"funade up exited:\n{log.read_text(errors='replace')}")
        text = log.read_text(errors="replace")
        api = re.search(r"funade is up at (http://\S+)", text)
        gateway = re.search(r"gateway at (http://\S+) ", text)
        if api and gateway:
            found.update(api=api[1], gateway=gateway[1])
        return bool(found)

    wait_for(printed, "funade up to print its URLs")
    wait_for(lambda: _status("GET", f"{found['api']}/api/v1/health") == 200, "the API")
    return found["api"], found["gateway"]


def _status(method: str, url: str, **options: object) -> int:
    try:
        return httpx.request(method, url, **options).status_code  # type: ignore[arg-type]
    except httpx.TransportError:
        return 0


def cold_start(
    work: Path,
    idle_seconds: float,
    settle: float,
    funade_command: str = OWN,
    cores: str = "",
    api_poll: float = POLL,
) -> Round:
    from benchmarks.serving.models import MODEL_KINDS, dataset, infer_body, predictions

    home = work / "home"
    home.mkdir()
    isolate(home)
    input_name = register(home, work, funade_command)
    x, y = dataset()
    rows = x[:1]
    body = infer_body(input_name, rows)
    expected = [int(v) for v in MODEL_KINDS["lr"][1]().fit(x, y).predict(rows)]
    key = _admin_key(home)
    result = Round()
    log = work / "up.log"
    began_wall = time.time()
    began = time.monotonic()
    process = launch(home, log, funade_command, cores)
    try:
        api, gateway = api_up(process, log)
        result.marks["api"] = time.monotonic() - began
        with funade.Client(url=api, api_key=key) as client:
            client.create_deployment("lr", version="1")
            result.marks["deployed"] = time.monotonic() - began

            def seen() -> bool:
                deployment = client.get_deployment("lr")
                now = time.monotonic() - began
                if deployment.replicas:
                    result.marks.setdefault("published", now)
                if any(r.state == "ready" for r in deployment.replicas):
                    result.marks.setdefault("ready", now)
                rollout = deployment.rollout
                if rollout is not None and rollout.state not in ("verifying", "progressing"):
                    if rollout.state != "succeeded":
                        raise RuntimeError(f"the rollout failed: {rollout}")
                    result.marks["succeeded"] = now
                    result.marks.setdefault("ready", now)
                    result.marks.setdefault("published", now)
                    return True
                return False

            wait_for(seen, "the rollout", poll=api_poll)
        headers = {"X-API-Key": key, "content-type": "application/json"}
        infer = f"{gateway}/v2/models/lr/infer"

        def predicted() -> bool:
            try:
                answer = httpx.post(infer, content=body, headers=headers)
            except httpx.TransportError:
                return False
            now = time.monotonic() - began
            last[:] = [f"HTTP {answer.status_code} {answer.text[:300]}"]
            if answer.status_code != 404:
                result.marks.setdefault("routed", now)
            if answer.status_code == 200 and predictions(answer.content) == expected:
                result.marks["predicted"] = now
                result.cpu = cpu_seconds(process.pid)
                return True
            return False

        last: list[str] = []
        wait_for(predicted, "a first prediction through the gateway", detail=last)
        result.marks.update(_file_marks(home, began_wall))
        if idle_seconds > 0:
            time.sleep(settle)
            result.idle = idle_cpu(process.pid, idle_seconds)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=90)
    return result


def _file_marks(home: Path, began_wall: float) -> dict[str, float]:
    """Marks read from the files the platform writes, in seconds since the launch: the gateway's
    URL file (written once it has bound its socket), the replica's record (its ``started_at``:
    the spawn) and the replica's URL file (written once `funade serve` has imported what it
    needs and bound its socket, before it loads the model)."""
    marks = {"gateway": (home / "gateway.url").stat().st_mtime - began_wall}
    records = [json.loads(p.read_text()) for p in (home / "replicas").glob("*.json")]
    if len(records) == 1:
        marks["spawned"] = float(records[0]["started_at"]) - began_wall
        marks["bound"] = Path(records[0]["url_file"]).stat().st_mtime - began_wall
    return marks


_REGISTER = """
import json, sys
from pathlib import Path
import funade
from benchmarks.serving.models import prepare
with funade.Client() as client:
    print(json.dumps(prepare("lr", Path(sys.argv[1]), client).input_name))
"""


def register(home: Path, work: Path, funade_command: str) -> str:
    """Register ``lr`` in ``home`` with the Python of ``funade_command`` (so a baseline install
    writes its own schema); the name of the model's input."""
    python = str(Path(funade_command).with_name("python"))
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "FUNADE_HOME": str(home), "PYTHONPATH": str(root)}
    done = subprocess.run(
        [python, "-c", _REGISTER, str(work)],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"registering lr failed:\n{done.stderr}")
    return str(json.loads(done.stdout.strip().splitlines()[-1]))


def _admin_key(home: Path) -> str:
    return str(json.loads((home / "credentials").read_text())["api_key"])


def empty_home(work: Path, funade_command: str = OWN, cores: str = "") -> float:
    """`funade up` over an empty home (schema, default project, admin key) to its API answering."""
    home = work / "empty"
    home.mkdir()
    began = time.monotonic()
    process = launch(home, work / "empty.log", funade_command, cores)
    try:
        api_up(process, work / "empty.log")
        return time.monotonic() - began
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=90)


# Report ----------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="cold starts; the median is kept")
    parser.add_argument("--idle-seconds", type=float, default=20, help="idle CPU window")
    parser.add_argument(
        "--settle",
        type=float,
        default=35,
        help="seconds between the first prediction and the idle window (the gateway reloads "
        "its table faster for 30 s after it changed)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="run the whole platform (`funade up`, the gateway, the replica) on core 0 "
        "(`taskset -c 0`); the benchmark's own requests stay free",
    )
    parser.add_argument(
        "--api-poll",
        type=float,
        default=POLL,
        help="seconds between polls of the API for the rollout (each costs it a request: on "
        "one core, CPU taken from the cold start; 0.1 with --pin)",
    )
    parser.add_argument("--no-results", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--label", default="", help="a name for this run's section")
    parser.add_argument(
        "--baseline",
        metavar="FUNADE",
        help="another install's `funade` command (e.g. main's .venv/bin/funade), measured in "
        "turns with this one in the same run, so that both see the same machine",
    )
    return parser.parse_args()


def report(rounds: list[Round], empty: list[float], idle_seconds: float, where: str = "") -> str:
    def median(key: str) -> float:
        return statistics.median(r.marks[key] for r in rounds)

    if not rounds:
        return ""

    lines = ["| phase | at (s, median) | took (s) | rounds (at) |", "|---|---|---|---|"]
    previous = 0.0
    for key, title in PHASES:
        if any(key not in r.marks for r in rounds):  # an install that writes no such file
            continue
        at = median(key)
        each = " · ".join(f"{r.marks[key]:.2f}" for r in rounds)
        parallel = title.startswith("*in parallel:*")
        took = "" if parallel else f"{at - previous:.2f}"
        lines.append(f"| {title} | {at:.2f} | {took} | {each} |")
        previous = previous if parallel else at
    each = " · ".join(f"{t:.2f}" for t in empty)
    lines.append(f"| *apart:* empty home → API answers | {statistics.median(empty):.2f} | | "
                 f"{each} |")  # fmt: skip
    labels = [label for label in rounds[0].cpu if label != "total"] + ["total"]
    spent = ["| process | CPU s to the first prediction (median) | rounds |", "|---|---|---|"]
    for label in labels:
        values = [r.cpu.get(label, 0.0) for r in rounds]
        name = f"**{label}**" if label == "total" else label
        spent.append(f"| {name} | {statistics.median(values):.2f} | "
                     f"{' · '.join(f'{v:.2f}' for v in values)} |")  # fmt: skip
    idle = rounds[-1].idle
    cpu = ["| process | CPU, % of one core |", "|---|---|"]
    cpu += [f"| {label} | {value:.2f} |" for label, value in idle.items() if label != "total"]
    cpu.append(f"| **total** | **{idle.get('total', 0.0):.2f}** |")
    return "\n\n".join([
        f"Cold start, launch of `funade up` to a first prediction through the gateway{where} "
        f"({len(rounds)} round(s), a fresh home each with `lr` registered beforehand):",
        "\n".join(lines),
        "CPU time (user + system) each process had used at the first prediction: on one core, "
        "the part of the cold start they cannot overlap:",
        "\n".join(spent),
        *([f"Idle, one deployment (1 replica), no traffic, over {idle_seconds:g} s (last round):",
           "\n".join(cpu)] if idle_seconds > 0 else []),
    ])  # fmt: skip


def main() -> None:
    args = parse_args()
    began = time.perf_counter()
    targets = {"this": OWN, **({"baseline": args.baseline} if args.baseline else {})}
    cores = "0" if args.pin else ""
    rounds: dict[str, list[Round]] = {name: [] for name in targets}
    empty: dict[str, list[float]] = {name: [] for name in targets}
    for index in range(args.rounds):
        last = index == args.rounds - 1
        order = list(targets) if index % 2 == 0 else list(reversed(targets))
        for name in order:
            with tempfile.TemporaryDirectory(prefix="funade-bench-platform-") as tmp:
                idle = args.idle_seconds if last else 0
                got = cold_start(Path(tmp), idle, args.settle, targets[name], cores, args.api_poll)
                empty[name].append(empty_home(Path(tmp), targets[name], cores))
            rounds[name].append(got)
            marks = "  ".join(f"{k} {v:.2f}" for k, v in got.marks.items())
            idle_total = f"  idle {got.idle['total']:.2f} %" if got.idle else ""
            idle_total += f"  cpu {got.cpu.get('total', 0.0):.2f} s"
            print(f"round {index + 1} {name}: {marks}  empty home {empty[name][-1]:.2f}"
                  f"{idle_total}", flush=True)  # fmt: skip
    command = " ".join(["python -m benchmarks.platform.bench_platform", *sys.argv[1:]])
    parts = [machine(), f"`.venv/bin/{command}` (took {time.perf_counter() - began:.0f} s)"]
    for name in targets:
        if len(targets) > 1:
            parts.append(f"**{name}** (`{targets[name]}`):")
        where = ", the whole platform on core 0" if args.pin else ""
        parts.append(report(rounds[name], empty[name], args.idle_seconds, where))
    section = "\n\n".join(parts)
    print(f"\n{section}")
    if not args.no_results:
        key = f"platform{'-' + args.label if args.label else ''}{'-pinned' if args.pin else ''}"
        with mock.patch.object(harness, "RESULTS", RESULTS):
            harness.write_section(key, f"Platform: idle and cold start {args.label}", section)


if __name__ == "__main__":
    main()
