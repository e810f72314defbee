"""The reconciler's planner with plain values: starts, stops, crash backoff."""

from __future__ import annotations

from funade.deploy.backends import Replica, ReplicaSpec, ReplicaState, RuntimeConfig
from funade.deploy.reconcile import (
    BACKOFF_MAX,
    Backoff,
    Desired,
    Forget,
    Start,
    Stop,
    backoff_delay,
    note_health,
    plan,
)

SPEC = ReplicaSpec(deployment="churn", revision=1, source="churn:3")
SPEC2 = ReplicaSpec(deployment="churn", revision=2, source="churn:4")


def replica(
    rid: str, state: ReplicaState, spec: ReplicaSpec = SPEC, started: float = 0.0
) -> Replica:
    return Replica(rid, spec, f"http://127.0.0.1/{rid}", state, started, detail=f"{rid} detail")


def test_starts_the_missing_replicas() -> None:
    intents = plan({SPEC.key: Desired(SPEC, 3)}, [replica("a", ReplicaState.READY)], {}, 0.0)
    assert intents == [Start(SPEC), Start(SPEC)]


def test_a_converged_state_plans_nothing() -> None:
    observed = [replica("a", ReplicaState.READY), replica("b", ReplicaState.STARTING)]
    assert plan({SPEC.key: Desired(SPEC, 2)}, observed, {}, 0.0) == []


def test_stops_replicas_nobody_wants_and_extras_keeping_ready_and_old_ones() -> None:
    observed = [
        replica("old-ready", ReplicaState.READY, started=1.0),
        replica("new-ready", ReplicaState.READY, started=5.0),
        replica("starting", ReplicaState.STARTING, started=9.0),
        replica("other", ReplicaState.READY, spec=SPEC2),
    ]
    intents = plan({SPEC.key: Desired(SPEC, 1)}, observed, {}, 0.0)
    assert intents == [
        Stop("other", "no longer wanted"),
        Stop("starting", "more than the 1 wanted"),
        Stop("new-ready", "more than the 1 wanted"),
    ]


def test_a_count_of_zero_stops_every_replica() -> None:
    intents = plan({SPEC.key: Desired(SPEC, 0)}, [replica("a", ReplicaState.READY)], {}, 0.0)
    assert intents == [Stop("a", "no longer wanted")]


def test_a_replica_whose_spec_changed_is_replaced() -> None:
    changed = SPEC.model_copy(update={"runtime": RuntimeConfig(workers=2)})
    intents = plan({SPEC.key: Desired(changed, 1)}, [replica("a", ReplicaState.READY)], {}, 0.0)
    assert intents == [Stop("a", "its spec changed"), Start(changed)]


def test_a_replica_from_before_specs_had_a_ready_timeout_is_kept() -> None:
    """Adopted after an upgrade: its spec has no ready timeout, the wanted one has its
    rollout's; that alone restarts nothing. Another timeout than the wanted one does."""
    wanted = SPEC.model_copy(update={"ready_timeout_seconds": 600.0})
    observed = [replica("a", ReplicaState.READY)]  # SPEC: ready_timeout_seconds None
    assert plan({SPEC.key: Desired(wanted, 1)}, observed, {}, 0.0) == []
    other = SPEC.model_copy(update={"ready_timeout_seconds": 1200.0})
    observed = [replica("b", ReplicaState.READY, spec=other)]
    intents = plan({SPEC.key: Desired(wanted, 1)}, observed, {}, 0.0)
    assert intents == [Stop("b", "its spec changed"), Start(wanted)]


def test_exited_replicas_are_forgotten_and_failed_ones_stopped_then_replaced() -> None:
    observed = [replica("gone", ReplicaState.EXITED), replica("hung", ReplicaState.FAILED)]
    intents = plan({SPEC.key: Desired(SPEC, 2)}, observed, {}, 0.0)
    assert intents == [
        Forget("gone", "gone detail"),
        Stop("hung", "unhealthy: hung detail"),
        Start(SPEC),
        Start(SPEC),
    ]


def test_backoff_holds_starts_back_until_it_expires() -> None:
    desired = {SPEC.key: Desired(SPEC, 1)}
    backoff = {SPEC.key: Backoff(failures=3, until=10.0)}
    assert plan(desired, [], backoff, 9.9) == []
    assert plan(desired, [], backoff, 10.0) == [Start(SPEC)]


def test_backoff_doubles_per_crash_up_to_a_cap() -> None:
    assert [backoff_delay(n) for n in range(5)] == [0.0, 0.5, 1.0, 2.0, 4.0]
    assert backoff_delay(50) == BACKOFF_MAX


def test_crashes_push_the_next_start_back_and_a_ready_replica_clears_it() -> None:
    backoff = note_health({}, [replica("a", ReplicaState.EXITED)], now=100.0)
    assert backoff[SPEC.key] == Backoff(1, 100.5, "a detail")
    backoff = note_health(backoff, [replica("b", ReplicaState.FAILED)], now=200.0)
    assert backoff[SPEC.key] == Backoff(2, 201.0, "b detail")
    cleared = note_health(backoff, [replica("c", ReplicaState.READY)], now=300.0)
    assert cleared[SPEC.key] == Backoff()
    assert backoff[SPEC.key].failures == 2, "the input is not changed"
