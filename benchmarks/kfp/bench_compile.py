"""How long `funade pipeline compile --target kfp` takes: the example pipeline (with `--env prd`)
and generated 100-step pipelines, against two references measured in the same run:

- **spec**: funade's own `Pipeline.compile()` + the environment's config, which every
  `funade pipeline run` does too (the DAG and every step's code digest);
- **kfp SDK**: `kfp.compiler.Compiler().compile()` of the same 100-step chain written with the
  KFP SDK's container components (it does no code hashing).

Issue 23's targets: the example ≤ 1 s, a 100-step pipeline ≤ 3 s. Each case runs once to warm up
(imports), then `--rounds` times; medians and minimums in seconds. Results: RESULTS.md.
(No `from __future__ import annotations` here: KFP reads its components' annotations.)

    .venv/bin/python -m benchmarks.kfp.bench_compile --rounds 7
"""

import argparse
import statistics
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = f"{ROOT}/examples/churn_pipeline/train.py:training"
CHAIN = f"{ROOT}/benchmarks/pipelines/noop_pipelines.py:chain"

DISTINCT_HEAD = """

import funade
"""


def distinct_source(steps: int) -> str:
    """100 different step functions in a chain, so each step's code is hashed on its own."""
    parts = [DISTINCT_HEAD]
    for i in range(steps):
        parts.append(f"\n@funade.step\ndef step_{i}(x: int) -> int:\n    return x + {i}\n")
    body = "\n".join(f"    x = step_{i}(x)" for i in range(steps))
    parts.append(f"\n@funade.pipeline\ndef distinct(x: int = 0) -> None:\n{body}\n")
    return "".join(parts)


def kfp_chain(steps: int) -> Callable[[], None]:
    from kfp import dsl

    @dsl.container_component
    def noop(x: int, output: dsl.OutputPath(int)):  # type: ignore[no-untyped-def,valid-type]
        return dsl.ContainerSpec(image="img", command=["funade"], args=["step"])

    @dsl.pipeline(name="chain")
    def chain() -> None:
        x = noop(x=0)
        for _ in range(steps - 1):
            x = noop(x=x.outputs["output"])

    return chain  # type: ignore[no-any-return]


def timed(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    fn()  # warm up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()

    from kfp import compiler

    from funade.pipelines.config import apply_env, load_env
    from funade.pipelines.kfpir import compile_kfp
    from funade.pipelines.loader import load_pipeline

    work = Path(tempfile.mkdtemp(prefix="bench-kfp-"))
    distinct_file = work / "distinct_steps.py"
    distinct_file.write_text(textwrap.dedent(distinct_source(args.steps)))
    cases = [("example (--env prd)", EXAMPLE, "prd"), (f"chain of {args.steps}", CHAIN, None)]
    cases.append((f"{args.steps} distinct steps", f"{distinct_file}:distinct", None))

    rows = []
    for label, target, env in cases:
        pipeline = load_pipeline(target)

        def ours(p=pipeline, t=target, e=env) -> object:  # type: ignore[no-untyped-def]
            return compile_kfp(p, target=t, env=e)

        def spec(p=pipeline, t=target, e=env) -> object:  # type: ignore[no-untyped-def]
            return apply_env(p.compile(source=t), load_env(p, e), env=e)

        rows.append((label, timed(ours, args.rounds), timed(spec, args.rounds)))

    chain = kfp_chain(args.steps)
    out = str(work / "kfp.yaml")
    sdk = timed(lambda: compiler.Compiler().compile(chain, out), args.rounds)

    print(f"rounds: {args.rounds}; seconds, median (min)\n")
    print("| pipeline | funade compile --target kfp | spec only | ratio | kfp SDK (same chain) |")
    print("|---|---|---|---|---|")
    for label, (om, omin), (sm, smin) in rows:
        kfp_cell = f"{sdk[0]:.3f} ({sdk[1]:.3f})" if label.startswith("chain") else "—"
        print(
            f"| {label} | {om:.3f} ({omin:.3f}) | {sm:.3f} ({smin:.3f}) | {om / sm:.2f} "
            f"| {kfp_cell} |"
        )


if __name__ == "__main__":
    main()
