"""The rollout state machine: plain values in (what the controller saw), a decision out.

A rollout moves a deployment's traffic to a target revision::

    verifying ──(replicas ready, verification passed)──► direct / blue-green: succeeded
        │                                              └► canary: progressing (step 0)
        ├─(verification differs, replicas crash, or not ready in time)──► failed
    progressing ──(pause over, analysis passes)──► next step … last step (100%) ──► succeeded
        └─(errors past the threshold during the pause, or analysis fails)──► rolled_back
    verifying / progressing ──(abort)──► aborted;   progressing ──(promote)──► succeeded

A failed, aborted or rolled-back rollout leaves (or puts) all traffic on the stable revision.
Nothing here does I/O or reads a clock: the controller passes ``now`` and performs the decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Strategy = Literal["direct", "bluegreen", "canary"]
STRATEGIES: tuple[Strategy, ...] = ("direct", "bluegreen", "canary")
ACTIVE = ("verifying", "progressing")
FINAL = ("succeeded", "failed", "aborted", "rolled_back")

# Crashes in a row of the target's replicas after which the rollout fails.
CRASHES_TO_FAIL = 3


class Analysis(BaseModel):
    """Canary analysis thresholds, checked at the end of every pause; the error rate is also
    checked on every pass during it (``failing_early``)."""

    model_config = ConfigDict(extra="forbid")

    max_error_rate: float = Field(
        default=0.01, ge=0, le=1, description="Largest share of failed canary requests."
    )
    max_p99_ms: float | None = Field(
        default=None, gt=0, description="Largest canary p99 latency (none: no absolute limit)."
    )
    max_p99_ratio: float | None = Field(
        default=2.0,
        gt=0,
        description="Largest canary p99 as a multiple of the stable revision's (none: no limit).",
    )
    min_requests: int = Field(
        default=0,
        ge=0,
        description="Canary requests needed before a step may pass; also how many it must have "
        "before its error rate may roll it back during the pause (at least 1).",
    )
    p99_slack_ms: float = Field(
        default=10.0,
        ge=0,
        description="The ratio check fails only if the canary's p99 is also this much above the "
        "stable revision's: p99s are read from histogram buckets (…10, 15, 20, 30 ms), so a "
        "few milliseconds of jitter can double a small one.",
    )
    min_latency_requests: int = Field(
        default=100,
        ge=0,
        description="Requests each revision needs in the step before their p99s are compared "
        "(the p99 of fewer is one slow request); the error rate and max_p99_ms apply anyway.",
    )


class RolloutOptions(BaseModel):
    """How a rollout moves traffic (stored on the rollout)."""

    model_config = ConfigDict(extra="forbid")

    steps: list[int] = Field(
        default_factory=lambda: [10, 50, 100],
        description="Canary weights in percent, rising, ending at 100.",
    )
    pause_seconds: float = Field(default=30.0, ge=0, description="Time at each canary step.")
    warm_seconds: float = Field(
        default=300.0,
        ge=0,
        description="Blue/green: how long the old revision stays running after the switch.",
    )
    ready_timeout_seconds: float = Field(
        default=600.0, gt=0, description="Time the new replicas may take to become ready."
    )
    analysis: Analysis = Field(default_factory=Analysis)
    verified: bool = Field(
        default=False, description="Skip verification (a rollback to a revision verified before)."
    )

    @field_validator("steps")
    @classmethod
    def _rising_to_100(cls, steps: list[int]) -> list[int]:
        return check_steps(steps)


def check_steps(steps: list[int]) -> list[int]:
    """Canary weights: rising strictly, each 1-100, ending at 100 (a pydantic validator)."""
    if not steps or steps[-1] != 100:
        raise ValueError("canary steps must end at 100, e.g. [10, 50, 100]")
    if any(not 0 < s <= 100 for s in steps) or any(a >= b for a, b in pairwise(steps)):
        raise ValueError("canary steps must rise strictly, each between 1 and 100")
    return steps


@dataclass(frozen=True)
class Figures:
    """What the gateway measured for one revision over an analysis window."""

    requests: int
    errors: int
    p99_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Facts:
    """What the controller saw of a rollout's target revision this pass."""

    ready: int
    """Ready replicas of the target revision."""
    wanted: int
    """Replicas the target revision asks for."""
    crashes: int = 0
    crash_detail: str = ""
    verification: list[str] | None = None
    """None: not run yet; []: it passed; otherwise the differences found."""
    canary: Figures | None = None
    stable: Figures | None = None


@dataclass(frozen=True)
class RolloutView:
    """The rollout's stored state."""

    strategy: Strategy
    revision: int
    stable: int | None
    state: str
    step: int
    started_at: float
    next_at: float | None
    options: RolloutOptions = field(default_factory=RolloutOptions)


@dataclass(frozen=True)
class Decision:
    state: str
    step: int
    next_at: float | None
    weights: dict[int, int] | None = None
    """The traffic to set now (revision → percent), or None to leave it."""
    verify: bool = False
    """Run verification against the target now, and decide again with its result."""
    keep_warm: bool = False
    """Keep the stable revision running for ``warm_seconds`` though it gets no traffic."""
    event: str = ""
    """What happened, for the rollout's history (empty: nothing did)."""
    reason: str = ""


def all_to(revision: int) -> dict[int, int]:
    return {revision: 100}


def split(target: int, stable: int | None, percent: int) -> dict[int, int]:
    if stable is None or percent >= 100:
        return all_to(target)
    return {target: percent, stable: 100 - percent}


def decide(view: RolloutView, facts: Facts, now: float) -> Decision:
    """The next state of a rollout in ``verifying`` or ``progressing``."""
    if view.state == "verifying":
        return _verifying(view, facts, now)
    if view.state == "progressing":
        return _progressing(view, facts, now)
    return Decision(view.state, view.step, view.next_at)


def _back_to_stable(view: RolloutView) -> dict[int, int] | None:
    return all_to(view.stable) if view.stable is not None else {}


def _stop(view: RolloutView, state: str, reason: str, event: str) -> Decision:
    """End the rollout in ``state`` (failed, rolled_back, aborted): all traffic to stable."""
    return Decision(state, view.step, None, _back_to_stable(view), event=event, reason=reason)


def _verifying(view: RolloutView, facts: Facts, now: float) -> Decision:
    stay = Decision("verifying", 0, view.next_at)
    if facts.crashes >= CRASHES_TO_FAIL:
        reason = (
            f"revision {view.revision}'s replicas crashed {facts.crashes} times in a row; "
            f"last: {facts.crash_detail or 'no detail'}"
        )
        return _stop(view, "failed", reason, "failed")
    if facts.ready < facts.wanted:
        if now - view.started_at > view.options.ready_timeout_seconds:
            reason = (
                f"revision {view.revision} had {facts.ready} of {facts.wanted} replicas ready "
                f"after {view.options.ready_timeout_seconds:g} s"
            )
            return _stop(view, "failed", reason, "failed")
        return stay
    if facts.verification is None and not view.options.verified:
        return Decision("verifying", 0, view.next_at, verify=True)
    if facts.verification:
        reason = "verification failed: " + "; ".join(facts.verification)
        return _stop(view, "failed", reason, "failed")
    if view.strategy == "canary" and view.stable is not None:
        first = view.options.steps[0]
        if first < 100:
            return Decision(
                "progressing",
                0,
                now + view.options.pause_seconds,
                split(view.revision, view.stable, first),
                event=f"verified; canary at {first}%",
            )
    return Decision(
        "succeeded",
        len(view.options.steps) - 1 if view.strategy == "canary" else 0,
        None,
        all_to(view.revision),
        keep_warm=view.strategy == "bluegreen",
        event="verified; all traffic moved",
    )


def analyse(analysis: Analysis, canary: Figures | None, stable: Figures | None) -> list[str]:
    """Why the canary fails its analysis (empty: it passes)."""
    problems = []
    canary = canary or Figures(0, 0, None)
    if canary.requests < analysis.min_requests:
        problems.append(
            f"only {canary.requests} canary requests, {analysis.min_requests} needed for analysis"
        )
    if canary.requests and canary.error_rate > analysis.max_error_rate:
        problems.append(
            f"error rate {canary.error_rate:.2%} ({canary.errors} of {canary.requests}) is above "
            f"{analysis.max_error_rate:.2%}"
        )
    if canary.p99_ms is not None:
        if analysis.max_p99_ms is not None and canary.p99_ms > analysis.max_p99_ms:
            problems.append(f"p99 {canary.p99_ms:.1f} ms is above {analysis.max_p99_ms:g} ms")
        slower = _slower_than_stable(analysis, canary.p99_ms, canary.requests, stable)
        if slower is not None:
            problems.append(slower)
    return problems


def _slower_than_stable(
    analysis: Analysis, p99_ms: float, requests: int, stable: Figures | None
) -> str | None:
    """What is wrong with the canary's p99 against the stable revision's, if anything. Compared
    only when a ratio is set and both revisions served enough requests in the step for a p99 to
    mean something; it fails past the ratio and the slack both."""
    ratio = analysis.max_p99_ratio
    if ratio is None or stable is None or not stable.p99_ms:
        return None
    if min(requests, stable.requests) < analysis.min_latency_requests:
        return None
    if p99_ms <= max(stable.p99_ms * ratio, stable.p99_ms + analysis.p99_slack_ms):
        return None
    slack = f" and {analysis.p99_slack_ms:g} ms above it" if analysis.p99_slack_ms else ""
    stable_p99 = f"the stable revision's {stable.p99_ms:.1f} ms"
    return f"p99 {p99_ms:.1f} ms is over {ratio:g}x {stable_p99}{slack}"


def failing_early(analysis: Analysis, canary: Figures | None) -> str | None:
    """Why the canary fails before its pause ends, if it does: once it has ``min_requests``
    requests (at least one), an error rate past ``max_error_rate`` will not come right by the
    end of the step, and every further request it gets fails too. Latency waits for the end
    of the pause: a cold replica's first requests are slow and do not decide it."""
    if canary is None or canary.requests < max(analysis.min_requests, 1):
        return None
    if canary.error_rate <= analysis.max_error_rate:
        return None
    return (
        f"error rate {canary.error_rate:.2%} ({canary.errors} of {canary.requests}) is above "
        f"{analysis.max_error_rate:.2%}"
    )


def _progressing(view: RolloutView, facts: Facts, now: float) -> Decision:
    if facts.crashes >= CRASHES_TO_FAIL:
        reason = f"canary replicas crashed {facts.crashes} times: {facts.crash_detail}"
        return _stop(view, "rolled_back", reason, "rolled back")
    steps = view.options.steps
    if view.next_at is not None and now < view.next_at:
        early = failing_early(view.options.analysis, facts.canary)
        if early is not None:
            reason = f"analysis at {steps[view.step]}% failed during the pause: {early}"
            return _stop(view, "rolled_back", reason, "rolled back")
        return Decision("progressing", view.step, view.next_at)
    problems = analyse(view.options.analysis, facts.canary, facts.stable)
    if problems:
        reason = f"analysis at {steps[view.step]}% failed: " + "; ".join(problems)
        return _stop(view, "rolled_back", reason, "rolled back")
    step = view.step + 1
    if step >= len(steps) - 1:
        return Decision(
            "succeeded", len(steps) - 1, None, all_to(view.revision), event="promoted to 100%"
        )
    return Decision(
        "progressing",
        step,
        now + view.options.pause_seconds,
        split(view.revision, view.stable, steps[step]),
        event=f"canary at {steps[step]}%",
    )


def promote(view: RolloutView) -> Decision:
    """Skip the remaining steps: all traffic to the target (it must be past verification)."""
    return Decision(
        "succeeded",
        len(view.options.steps) - 1,
        None,
        all_to(view.revision),
        keep_warm=True,
        event="promoted by hand",
    )


def abort(view: RolloutView, who: str) -> Decision:
    return _stop(view, "aborted", f"aborted by {who}", "aborted")
