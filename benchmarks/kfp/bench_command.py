"""How long `funade pipeline compile --target kfp` takes as a command, each run a new process
(what a user or CI waits for), against what the same process must pay anyway, all in one run
and interleaved (the machine is shared, so the ratios mean more than the seconds):

- **python**: `python -c pass`, the interpreter starting;
- **the libraries compiling needs**: `python -c "import typer, rich.console, pydantic, yaml,
  google.protobuf.json_format"` (the CLI, funade's spec, the YAML, the protobuf), a floor;
- **imports of the example's file**: `python -c "import numpy, pandas"`, what loading
  examples/churn_pipeline/train.py costs before funade compiles anything;
- **with the SDK's init**: the same command after `import kfp`, as it was before funade loaded
  kfp-pipeline-spec's protobuf module on its own (funade.pipelines.kfpproto): the KFP SDK's
  `kfp/__init__.py` imports its client, kubernetes and google-cloud-storage;
- **as before**: after `import kfp` and `importlib.metadata.packages_distributions()`, which
  funade's code digests called (for `sklearn`, no distribution's name) before
  funade.pipelines.codeorigin read `RECORD` files as text, and with the command's holding of
  cyclic collections made a no-op (`gc.disable` replaced): what the command cost before.

Issue 23's targets: the example ≤ 1 s, a 100-step pipeline ≤ 3 s. Results: RESULTS.md.

    .venv/bin/python -m benchmarks.kfp.bench_command --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = f"{ROOT}/examples/churn_pipeline/train.py:training"
CHAIN = f"{ROOT}/benchmarks/pipelines/noop_pipelines.py:chain"
COMMAND = "from funade.entry import run; run()"
BEFORE = (
    "import gc, kfp, importlib.metadata as m; m.packages_distributions(); gc.disable = lambda: None"
)
FLOOR = "import typer, rich.console, pydantic, yaml, google.protobuf.json_format"


def cases(out: str) -> dict[str, list[str]]:
    py = sys.executable
    example = ["pipeline", "compile", EXAMPLE, "--target", "kfp", "--env", "prd", "-o", out]
    chain = ["pipeline", "compile", CHAIN, "--target", "kfp", "-o", out]
    return {
        "python": [py, "-c", "pass"],
        "the libraries compiling needs": [py, "-c", FLOOR],
        "imports of the example's file": [py, "-c", "import numpy, pandas"],
        "example, --env prd": [py, "-c", COMMAND, *example],
        "example, with the SDK's init": [py, "-c", f"import kfp; {COMMAND}", *example],
        "example, as before": [py, "-c", f"{BEFORE}; {COMMAND}", *example],
        "100-step chain": [py, "-c", COMMAND, *chain],
        "100-step chain, with the SDK's init": [py, "-c", f"import kfp; {COMMAND}", *chain],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    out = str(Path(tempfile.mkdtemp(prefix="bench-kfp-cmd-")) / "x.yaml")
    commands = cases(out)
    times: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(args.rounds + 1):  # the first round warms the file caches, not counted
        for label, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
            times[label].append(time.perf_counter() - start)
    base = statistics.median(times["example, --env prd"][1:])
    print(f"rounds: {args.rounds}; wall seconds, median (min); ratio to the example's command\n")
    print("| command (a new process) | wall | ratio |")
    print("|---|---|---|")
    for label, seen in times.items():
        median, least = statistics.median(seen[1:]), min(seen[1:])
        print(f"| {label} | {median:.2f} ({least:.2f}) | {median / base:.2f} |")


if __name__ == "__main__":
    main()
