"""The states of runs and steps: one set of names, used by the records, the runner, metrics,
the CLI and the dashboard (whose scripts get them from the page)."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ACTIVE",
    "CANCELLABLE",
    "FINISHED",
    "RESUMABLE",
    "RUN_STATES",
    "STEP_STATES",
    "RunState",
    "StepState",
]


class RunState(StrEnum):
    QUEUED = "queued"
    """Recorded, waiting for a runner the control plane starts (a schedule's tick)."""
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    """A schedule's tick while as many of its runs as allowed still went."""
    LOST = "lost"
    """Its runner stopped reporting (killed, its machine gone): resume it."""


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    CACHED = "cached"
    FAILED = "failed"
    SKIPPED = "skipped"
    UPSTREAM_FAILED = "upstream_failed"
    CANCELLED = "cancelled"


RUN_STATES: tuple[str, ...] = tuple(RunState)
STEP_STATES: tuple[str, ...] = tuple(StepState)
ACTIVE: tuple[str, ...] = (RunState.QUEUED, RunState.RUNNING)
FINISHED: tuple[str, ...] = (
    RunState.SUCCEEDED,
    RunState.FAILED,
    RunState.CANCELLED,
    RunState.SKIPPED,
    RunState.LOST,
)
RESUMABLE: tuple[str, ...] = (RunState.FAILED, RunState.CANCELLED, RunState.LOST)
CANCELLABLE: tuple[str, ...] = ACTIVE
