"""The pipelines ``bench_pipelines`` runs: 100 no-op steps in a chain, and fanned out.

``noop`` adds one to its input so that every step of the chain sees a different input (and so
has a cache key of its own, as real steps do); it does no other work. The pipelines keep the
default ``max_parallel`` (4). ``BENCH_PIPELINE_STEPS`` sets another number of steps (the smoke
test's few).
"""

from __future__ import annotations

import os

import funade

STEPS = int(os.environ.get("BENCH_PIPELINE_STEPS", "100"))


@funade.step
def noop(x: int) -> int:
    return x + 1


@funade.pipeline
def chain() -> None:
    x = noop(0)
    for _ in range(STEPS - 1):
        x = noop(x)


@funade.pipeline
def fan() -> None:
    noop.map(x=list(range(STEPS)))
