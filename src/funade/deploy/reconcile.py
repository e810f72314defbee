"""Converging what runs to what should: a pure planner, and a driver that acts on a backend.

``plan`` takes plain values (what should run, what runs, the crash backoff, the time) and returns
intents; it does no I/O, so every rule here is unit-tested with values. ``Reconciler`` observes a
backend, plans, and carries the intents out, one pass per ``step``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from funade.deploy.backends.base import Backend, Replica, ReplicaSpec, ReplicaState

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 60.0


@dataclass(frozen=True)
class Desired:
    """``count`` replicas of ``spec`` should run (0: none; its replicas are stopped)."""

    spec: ReplicaSpec
    count: int


@dataclass
class Backoff:
    """Crashes of one revision's replicas in a row, and when the next start is allowed."""

    failures: int = 0
    until: float = 0.0
    last_detail: str = ""


@dataclass(frozen=True)
class Start:
    spec: ReplicaSpec


@dataclass(frozen=True)
class Stop:
    replica_id: str
    reason: str


@dataclass(frozen=True)
class Forget:
    """A replica that has exited: nothing to stop, only to forget (and count as a crash)."""

    replica_id: str
    detail: str


Intent = Start | Stop | Forget


def backoff_delay(failures: int) -> float:
    """Seconds to wait before the next start after ``failures`` crashes in a row."""
    return 0.0 if failures <= 0 else min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (failures - 1))


def note_health(
    backoff: dict[str, Backoff], observed: Sequence[Replica], now: float
) -> dict[str, Backoff]:
    """The backoff after this observation: a crash (exited or failed) pushes the revision's next
    start back exponentially; a ready replica clears its revision's count."""
    out = {key: Backoff(b.failures, b.until, b.last_detail) for key, b in backoff.items()}
    for replica in observed:
        key = replica.spec.key
        if replica.state in (ReplicaState.EXITED, ReplicaState.FAILED):
            entry = out.setdefault(key, Backoff())
            entry.failures += 1
            entry.until = now + backoff_delay(entry.failures)
            entry.last_detail = replica.detail
    for replica in observed:
        if replica.state is ReplicaState.READY and replica.spec.key in out:
            out[replica.spec.key] = Backoff()
    return out


def same_spec(wanted: ReplicaSpec, running: ReplicaSpec) -> bool:
    """Whether a running replica is of the spec wanted. One started before specs carried a
    ready timeout (adopted after an upgrade) has none: it is not restarted for that alone."""
    if running.ready_timeout_seconds is None:
        running = running.model_copy(update={"ready_timeout_seconds": wanted.ready_timeout_seconds})
    return wanted == running


def plan(
    desired: Mapping[str, Desired],
    observed: Sequence[Replica],
    backoff: Mapping[str, Backoff],
    now: float,
) -> list[Intent]:
    """What to do so that ``observed`` becomes ``desired`` (keys are ``ReplicaSpec.key``)."""
    intents: list[Intent] = []
    live: dict[str, list[Replica]] = {}
    for replica in observed:
        want = desired.get(replica.spec.key)
        if replica.state is ReplicaState.EXITED:
            intents.append(Forget(replica.id, replica.detail))
        elif replica.state is ReplicaState.FAILED:
            intents.append(Stop(replica.id, f"unhealthy: {replica.detail}"))
        elif want is None or want.count == 0:
            intents.append(Stop(replica.id, "no longer wanted"))
        elif not same_spec(want.spec, replica.spec):
            intents.append(Stop(replica.id, "its spec changed"))
        else:
            live.setdefault(replica.spec.key, []).append(replica)
    for key, want in desired.items():
        running = live.get(key, [])
        if len(running) > want.count:
            # Keep ready replicas over starting ones, and older over newer.
            order = sorted(running, key=lambda r: (r.state is not ReplicaState.READY, r.started_at))
            for extra in order[want.count :][::-1]:
                intents.append(Stop(extra.id, f"more than the {want.count} wanted"))
        elif len(running) < want.count:
            entry = backoff.get(key)
            if entry is None or entry.until <= now:
                intents.extend(Start(want.spec) for _ in range(want.count - len(running)))
    return intents


@dataclass
class Reconciler:
    """Drives ``backend`` towards what ``desired`` says, one ``step`` at a time."""

    backend: Backend
    grace_seconds: float = 30.0
    clock: Callable[[], float] = time.time
    backoff: dict[str, Backoff] = field(default_factory=dict)
    events: deque[str] = field(default_factory=lambda: deque(maxlen=200))

    def step(self, desired: Mapping[str, Desired]) -> list[Replica]:
        """Observe, plan and act once; returns the replicas that run (and should) after it."""
        now = self.clock()
        observed = self.backend.replicas()
        wanted = [r for r in observed if r.spec.key in desired]
        self.backoff = note_health(self.backoff, wanted, now)
        after = {r.id: r for r in observed}
        for intent in plan(desired, observed, self.backoff, now):
            if isinstance(intent, Start):
                replica = self.backend.start(intent.spec)
                after[replica.id] = replica
                self._event(f"started {replica.id} for {intent.spec.key}")
            elif isinstance(intent, Stop):
                self.backend.stop(intent.replica_id, grace_seconds=self.grace_seconds)
                after.pop(intent.replica_id, None)
                self._event(f"stopping {intent.replica_id}: {intent.reason}")
            else:
                self.backend.stop(intent.replica_id, grace_seconds=0)
                after.pop(intent.replica_id, None)
                self._event(f"{intent.replica_id} {intent.detail}")
        return [r for r in after.values() if r.spec.key in desired]

    def _event(self, text: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {text}")
