"""The rollout state machine with plain values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from funade.deploy.rollout import (
    Analysis,
    Facts,
    Figures,
    RolloutOptions,
    RolloutView,
    abort,
    analyse,
    decide,
    promote,
)

READY = Facts(ready=2, wanted=2)


def view(strategy: str = "canary", state: str = "verifying", **fields: object) -> RolloutView:
    options = fields.pop("options", RolloutOptions(steps=[10, 50, 100], pause_seconds=30))
    values: dict[str, object] = {
        "strategy": strategy,
        "revision": 2,
        "stable": 1,
        "state": state,
        "step": 0,
        "started_at": 0.0,
        "next_at": None,
        "options": options,
        **fields,
    }
    return RolloutView(**values)  # type: ignore[arg-type]


def test_verifying_waits_for_every_replica_then_asks_for_verification() -> None:
    assert decide(view(), Facts(ready=1, wanted=2), 10.0).state == "verifying"
    decision = decide(view(), READY, 10.0)
    assert decision.verify
    assert decision.weights is None


def test_a_verified_canary_takes_its_first_step() -> None:
    decision = decide(view(), Facts(2, 2, verification=[]), 10.0)
    assert (decision.state, decision.step, decision.next_at) == ("progressing", 0, 40.0)
    assert decision.weights == {2: 10, 1: 90}
    assert decision.event == "verified; canary at 10%"


def test_blue_green_moves_everything_and_keeps_the_old_revision_warm() -> None:
    decision = decide(view("bluegreen"), Facts(2, 2, verification=[]), 10.0)
    assert (decision.state, decision.weights, decision.keep_warm) == ("succeeded", {2: 100}, True)


def test_a_canary_without_a_stable_revision_goes_straight_to_full() -> None:
    decision = decide(view(stable=None), Facts(1, 1, verification=[]), 1.0)
    assert (decision.state, decision.weights) == ("succeeded", {2: 100})


def test_verification_differences_fail_it_and_keep_traffic_on_stable() -> None:
    decision = decide(view(), Facts(2, 2, verification=["output 'y' differs"]), 10.0)
    assert (decision.state, decision.weights) == ("failed", {1: 100})
    assert decision.reason == "verification failed: output 'y' differs"


def test_crashing_replicas_and_a_ready_timeout_fail_it() -> None:
    crashed = decide(view(), Facts(0, 2, crashes=3, crash_detail="exited with status 2"), 1.0)
    assert crashed.state == "failed"
    assert crashed.reason.endswith("crashed 3 times in a row; last: exited with status 2")
    options = RolloutOptions(ready_timeout_seconds=60)
    late = decide(view(options=options), Facts(1, 2), 61.0)
    assert late.reason == "revision 2 had 1 of 2 replicas ready after 60 s"
    assert decide(view(options=options), Facts(1, 2), 59.0).state == "verifying"


def test_a_skipped_verification_goes_on_without_asking() -> None:
    options = RolloutOptions(verified=True)
    decision = decide(view("direct", options=options), READY, 1.0)
    assert (decision.state, decision.weights, decision.verify) == ("succeeded", {2: 100}, False)


def progressing(step: int, next_at: float = 40.0) -> RolloutView:
    return view(state="progressing", step=step, next_at=next_at)


def test_a_canary_waits_out_its_pause_then_steps_on_when_analysis_passes() -> None:
    assert decide(progressing(0), READY, 39.0).weights is None
    healthy = Facts(2, 2, canary=Figures(100, 0, 20.0), stable=Figures(900, 1, 18.0))
    decision = decide(progressing(0), healthy, 40.0)
    assert (decision.state, decision.step, decision.weights) == ("progressing", 1, {2: 50, 1: 50})
    final = decide(progressing(1, next_at=70.0), healthy, 70.0)
    assert (final.state, final.weights, final.event) == ("succeeded", {2: 100}, "promoted to 100%")


def test_a_failing_analysis_rolls_the_canary_back() -> None:
    sick = Facts(2, 2, canary=Figures(100, 5, 20.0), stable=Figures(900, 0, 18.0))
    decision = decide(progressing(1), sick, 40.0)
    assert (decision.state, decision.weights) == ("rolled_back", {1: 100})
    assert decision.reason == "analysis at 50% failed: error rate 5.00% (5 of 100) is above 1.00%"


def test_analysis_compares_latency_absolutely_and_with_the_stable_revision() -> None:
    analysis = Analysis(max_p99_ms=100, max_p99_ratio=2.0, min_requests=10, min_latency_requests=50)
    assert analyse(analysis, Figures(50, 0, 30.0), Figures(500, 0, 20.0)) == []
    assert analyse(analysis, Figures(5, 0, 30.0), None) == [
        "only 5 canary requests, 10 needed for analysis"
    ]
    assert analyse(analysis, Figures(50, 0, 150.0), Figures(500, 0, 20.0)) == [
        "p99 150.0 ms is above 100 ms",
        "p99 150.0 ms is over 2x the stable revision's 20.0 ms and 10 ms above it",
    ]


def test_small_p99s_and_few_requests_are_not_compared_with_the_stable_revision() -> None:
    """A fast model's p99 doubles with a few ms of jitter (bucket 3 ms against 1 ms), and the
    p99 of a handful of requests is one slow request: neither rolls a canary back. The absolute
    limit and the error rate still apply."""
    default = Analysis()
    assert (default.max_p99_ratio, default.p99_slack_ms, default.min_latency_requests) == (
        2.0,
        10.0,
        100,
    )
    assert analyse(default, Figures(500, 0, 10.0), Figures(5000, 0, 1.0)) == []
    assert analyse(default, Figures(500, 0, 11.5), Figures(5000, 0, 1.0)) == [
        "p99 11.5 ms is over 2x the stable revision's 1.0 ms and 10 ms above it"
    ]
    few = Figures(99, 0, 500.0)
    assert analyse(default, few, Figures(5000, 0, 20.0)) == []
    assert analyse(default, Figures(500, 0, 50.0), Figures(99, 0, 15.0)) == []
    strict = Analysis(max_p99_ms=100, min_latency_requests=100)
    assert analyse(strict, few, Figures(5000, 0, 20.0)) == ["p99 500.0 ms is above 100 ms"]
    assert analyse(strict, Figures(99, 5, 20.0), None) == [
        "error rate 5.05% (5 of 99) is above 1.00%"
    ]
    no_slack = Analysis(p99_slack_ms=0, min_latency_requests=0)
    assert analyse(no_slack, Figures(3, 0, 3.0), Figures(3, 0, 1.0)) == [
        "p99 3.0 ms is over 2x the stable revision's 1.0 ms"
    ]


def test_promote_and_abort() -> None:
    assert promote(progressing(0)).weights == {2: 100}
    aborted = abort(progressing(1), "alice")
    assert (aborted.state, aborted.weights, aborted.reason, aborted.event) == (
        "aborted",
        {1: 100},
        "aborted by alice",
        "aborted",  # the history shows the event with its reason: "aborted: aborted by alice"
    )
    assert abort(view(stable=None), "bob").weights == {}


@pytest.mark.parametrize(
    ("steps", "message"),
    [([], "end at 100"), ([10, 50], "end at 100"), ([50, 20, 100], "rise strictly")],
)
def test_canary_steps_must_rise_to_100(steps: list[int], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RolloutOptions(steps=steps)


def test_errors_roll_a_canary_back_during_its_pause_once_it_has_min_requests() -> None:
    """A canary that fails its requests is not left failing them until the pause ends: the error
    rate is judged on every pass, once the canary has ``min_requests`` requests (at least one)."""
    options = RolloutOptions(
        steps=[10, 50, 100], pause_seconds=30, analysis=Analysis(min_requests=5)
    )
    during = view(state="progressing", step=0, next_at=40.0, options=options)
    failing = Facts(2, 2, canary=Figures(5, 5, 20.0), stable=Figures(45, 0, 18.0))
    decision = decide(during, failing, 12.0)
    assert (decision.state, decision.weights) == ("rolled_back", {1: 100})
    assert decision.reason == (
        "analysis at 10% failed during the pause: error rate 100.00% (5 of 5) is above 1.00%"
    )
    too_few = Facts(2, 2, canary=Figures(4, 4, 20.0))
    assert decide(during, too_few, 12.0).state == "progressing"
    healthy = Facts(2, 2, canary=Figures(200, 2, 20.0))
    assert decide(during, healthy, 12.0) == decide(during, READY, 12.0)
    default = view(state="progressing", step=0, next_at=40.0)
    assert decide(default, Facts(2, 2, canary=Figures(0, 0, None)), 12.0).state == "progressing"
    assert decide(default, Facts(2, 2, canary=Figures(1, 1, 5.0)), 12.0).state == "rolled_back"


def test_latency_is_judged_only_when_the_pause_ends() -> None:
    """A cold replica's first requests are slow: a p99 past every limit does not roll the canary
    back during the pause, only the figures at its end do."""
    options = RolloutOptions(analysis=Analysis(max_p99_ms=100, min_latency_requests=0))
    during = view(state="progressing", step=0, next_at=40.0, options=options)
    slow = Facts(2, 2, canary=Figures(50, 0, 2000.0), stable=Figures(450, 0, 10.0))
    assert decide(during, slow, 39.0).state == "progressing"
    assert decide(during, slow, 40.0).state == "rolled_back"
