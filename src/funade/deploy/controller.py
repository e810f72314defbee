"""The deployment controller: the store says what should serve; this makes it so.

Each pass (``step``) reads the deployments, revisions and active rollouts, works out which
revisions need replicas (those with traffic, the shadow, a rollout's target and stable, and
revisions kept warm or draining), lets the reconciler converge the backend to that, publishes
the replicas it sees (the gateway routes to the ready ones), and advances every active rollout
through ``rollout.decide``, verifying targets when it asks. A control plane runs one controller
per store; ``ControllerLock`` makes sure of it on one machine.

Passes come often while something moves (a replica starting: every ``starting_interval``; a
rollout, a crash backoff, a deletion: every ``interval``) and seldom at rest: then the
controller sleeps until a commit in this process touches a deployment, a revision or a rollout
(``Database.on_commit``), asks the store whether anything changed every ``check_interval``
(one query, ``changes``: what another API process, the CLI or another node wrote), and makes a
full pass, which also probes every replica's health, at least every ``idle_interval`` (the
safety net for what the cheap check cannot see, e.g. another node's clock behind this one's).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from funade.deploy import service
from funade.deploy.backends.base import Backend, Replica, ReplicaSpec, ReplicaState, RuntimeConfig
from funade.deploy.reconcile import Desired, Reconciler
from funade.deploy.replicaurl import ReplicaHTTP
from funade.deploy.rollout import (
    ACTIVE,
    Decision,
    Facts,
    Figures,
    RolloutOptions,
    RolloutView,
    decide,
)
from funade.deploy.stats import read_figures
from funade.deploy.verify import verify
from funade.fileutil import lock_holder
from funade.store import Database
from funade.store.schema import Deployment, ReplicaRecord, Revision, Rollout

log = logging.getLogger("funade.controller")

WATCHED = (Deployment.__tablename__, Revision.__tablename__, Rollout.__tablename__)
"""The tables whose changes the controller acts on."""

_CHANGES = select(
    select(func.count()).select_from(Deployment).scalar_subquery(),
    select(func.max(Deployment.updated_at)).scalar_subquery(),
    select(func.count()).select_from(Rollout).scalar_subquery(),
    select(func.max(Rollout.updated_at)).scalar_subquery(),
    select(func.count()).select_from(Revision).scalar_subquery(),
    select(func.max(Revision.warm_until)).scalar_subquery(),
)


DETAIL_CHARS = 500
"""The most of a replica's detail (why it is STARTING or FAILED) stored for `deployments show`."""
_Published = tuple[str, int, str, str, str, str]
"""A replica as written for the gateway and the API: id, revision, URL, state, token, detail."""


@dataclass(frozen=True)
class _RevisionView:
    deployment_id: int
    number: int
    spec: ReplicaSpec
    replicas: int
    golden: list[Any]
    smoke: list[Any]
    wanted: bool
    warm_until: datetime | None = None


@dataclass
class Controller:
    """Runs deployments on ``backend``: ``step`` in a loop (``run``), paced as the module's
    docstring says."""

    db: Database
    backend: Backend
    interval: float = 0.5
    """Between passes while a rollout, a crash backoff or a deletion is under way."""
    starting_interval: float = 0.1
    """Between passes while a replica starts (each probes its readiness)."""
    check_interval: float = 1.0
    """At rest: between two looks at whether the store changed (``changes``)."""
    idle_interval: float = 5.0
    """At rest: the longest time between two full passes (and health probes)."""
    grace_seconds: float = 30.0
    verify_timeout: float = 30.0
    reconciler: Reconciler = field(init=False)
    _published: dict[int, set[_Published]] = field(default_factory=dict)
    _http: ReplicaHTTP = field(init=False)
    _wake: threading.Event = field(default_factory=threading.Event)
    _thread: int | None = None
    _pace: float = 0.0
    """The wait after the last pass: 0 at rest, else the interval that pass asked for."""
    _warm_until: float | None = None
    """When the earliest revision kept warm stops being wanted (a pass is due then)."""

    def __post_init__(self) -> None:
        self.reconciler = Reconciler(self.backend, grace_seconds=self.grace_seconds)
        self._http = ReplicaHTTP(self.verify_timeout)

    def wake(self) -> None:
        """Make the next pass now: what should run changed (called after a commit)."""
        if threading.get_ident() != self._thread:  # its own writes need no second look
            self._wake.set()

    def run(self, stop: threading.Event) -> None:
        self._thread = threading.get_ident()
        last_full = 0.0
        seen: tuple[Any, ...] | None = None
        while not stop.is_set():
            self._wake.clear()
            try:
                seen = self.changes()  # before the pass: a write during it is seen after
                self.step()
            except Exception:  # a bad pass must not end the loop; the next one retries
                log.exception("controller pass failed")
                self._pace = self.interval
            last_full = time.monotonic()
            if self._pace:
                self._wait(stop, self._pace)
                continue
            while not stop.is_set() and not self._wake.is_set():  # at rest
                due = last_full + self.idle_interval
                if self._warm_until is not None:  # wall clock → monotonic, from now
                    due = min(due, time.monotonic() + max(0.0, self._warm_until - time.time()))
                left = due - time.monotonic()
                if left <= 0:
                    break
                self._wait(stop, min(self.check_interval, left))
                if self._wake.is_set() or stop.is_set():
                    break
                try:
                    if self.changes() != seen:
                        break
                except Exception:
                    log.exception("controller change check failed")
                    break

    def _wait(self, stop: threading.Event, seconds: float) -> None:
        """Sleep ``seconds``, or less if woken or stopped."""
        deadline = time.monotonic() + seconds
        while not stop.is_set() and not self._wake.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wake.wait(min(left, 0.5))  # and look at ``stop`` twice a second

    def changes(self) -> tuple[Any, ...]:
        """A fingerprint of what should run, in one query: how many deployments, rollouts and
        revisions there are and their latest updates. Any write through the API moves it."""
        with self.db.read() as session:
            row = session.execute(_CHANGES).one()
        return tuple(row)

    def close(self) -> None:
        self._http.close()

    # One pass --------------------------------------------------------------------------------

    def step(self) -> None:
        at = datetime.now(UTC)
        revisions, deleting = self._snapshot(at)
        desired = {
            r.spec.key: Desired(r.spec, r.replicas if r.wanted else 0) for r in revisions.values()
        }
        running = self.reconciler.step({k: d for k, d in desired.items() if d.count > 0})
        self._publish(running, {r.spec.deployment: r.deployment_id for r in revisions.values()})
        by_key: dict[str, list[Replica]] = {}
        for replica in running:
            by_key.setdefault(replica.spec.key, []).append(replica)
        moving = self._advance_rollouts(revisions, by_key, at)
        self._remove_deleted(deleting, by_key)
        self._pace = self._next_pace(running, desired, moving or bool(deleting))
        warm = [
            r.warm_until
            for r in revisions.values()
            if r.warm_until is not None and r.warm_until > at
        ]
        self._warm_until = min(warm).timestamp() if warm else None

    def _next_pace(
        self, running: list[Replica], desired: dict[str, Desired], moving: bool
    ) -> float:
        """How soon the next pass should come (0: at rest)."""
        if any(r.state is ReplicaState.STARTING for r in running):
            return self.starting_interval
        counts: dict[str, int] = {}
        for replica in running:
            if replica.state is ReplicaState.READY:
                counts[replica.spec.key] = counts.get(replica.spec.key, 0) + 1
        short = any(counts.get(key, 0) != want.count for key, want in desired.items())
        if moving or short or self.reconciler.backoff:
            return self.interval
        return 0.0

    def _snapshot(
        self, at: datetime
    ) -> tuple[dict[tuple[int, int], _RevisionView], list[tuple[int, str]]]:
        out: dict[tuple[int, int], _RevisionView] = {}
        deleting: list[tuple[int, str]] = []
        with self.db.read() as session:
            active = {
                (r.deployment_id, n)
                for r in session.scalars(select(Rollout).where(Rollout.state.in_(ACTIVE)))
                for n in (r.revision, r.stable_revision)
                if n is not None
            }
            ready_timeouts = _ready_timeouts(session)
            for deployment in session.scalars(select(Deployment)):
                if deployment.state == "deleting":
                    deleting.append((deployment.id, deployment.name))
                keep = set(service.weights(deployment)) if deployment.state == "active" else set()
                shadow = (deployment.traffic or {}).get("shadow")
                if shadow is not None and deployment.state == "active":
                    keep.add(int(shadow))
                for revision in deployment.revisions:
                    wanted = (
                        revision.number in keep
                        or (deployment.id, revision.number) in active
                        or (revision.warm_until is not None and revision.warm_until > at)
                    )
                    version = revision.version
                    spec = ReplicaSpec(
                        project=deployment.project.name,
                        deployment=deployment.name,
                        revision=revision.number,
                        source=f"{version.model.name}:{version.number}",
                        runtime=RuntimeConfig.stored(revision.runtime),
                        project_id=deployment.project_id,
                        digest=version.artifact_digest,
                        ready_timeout_seconds=ready_timeouts.get((deployment.id, revision.number)),
                    )
                    out[(deployment.id, revision.number)] = _RevisionView(
                        deployment.id,
                        revision.number,
                        spec,
                        revision.replicas,
                        list(version.golden_examples or []),
                        list(revision.smoke or []),
                        wanted,
                        revision.warm_until,
                    )
        return out, deleting

    def _publish(self, running: list[Replica], ids: dict[str, int]) -> None:
        """Write the replicas the gateway may route to, when they changed (``ids``: deployment
        ids by name, from this pass's snapshot)."""
        seen: dict[int, set[_Published]] = {i: set() for i in ids.values()}
        for replica in running:
            deployment_id = ids.get(replica.spec.deployment)
            if deployment_id is not None:
                seen[deployment_id].add(
                    (
                        replica.id,
                        replica.spec.revision,
                        replica.url,
                        replica.state.value,
                        replica.token,
                        replica.detail[:DETAIL_CHARS],  # "building image TAG", a failure's why
                    )
                )
        changed = {i: rows for i, rows in seen.items() if self._published.get(i) != rows}
        if not changed:
            return
        with self.db.session() as session:
            for deployment_id, rows in changed.items():
                session.execute(
                    delete(ReplicaRecord).where(ReplicaRecord.deployment_id == deployment_id)
                )
                for rid, revision, url, state, token, detail in sorted(rows):
                    session.add(
                        ReplicaRecord(
                            id=rid,
                            deployment_id=deployment_id,
                            revision=revision,
                            url=url,
                            state=state,
                            token=token,
                            detail=detail,
                        )
                    )
        self._published.update(changed)

    def _advance_rollouts(
        self,
        revisions: dict[tuple[int, int], _RevisionView],
        by_key: dict[str, list[Replica]],
        at: datetime,
    ) -> bool:
        """Advance the active rollouts; whether there are any."""
        with self.db.read() as session:
            active = list(session.scalars(select(Rollout).where(Rollout.state.in_(ACTIVE))))
        for rollout in active:
            target = revisions.get((rollout.deployment_id, rollout.revision))
            if target is None:
                continue
            view = view_of(rollout)
            ready = [r for r in by_key.get(target.spec.key, []) if r.state is ReplicaState.READY]
            backoff = self.reconciler.backoff.get(target.spec.key)
            canary, stable = self._figures(rollout)
            facts = Facts(
                ready=len(ready),
                wanted=target.replicas,
                crashes=backoff.failures if backoff else 0,
                crash_detail=backoff.last_detail if backoff else "",
                canary=canary,
                stable=stable,
            )
            decision = decide(view, facts, at.timestamp())
            if decision.verify:
                problems = []
                for replica in ready:
                    problems += verify(
                        self._http,
                        replica.url,
                        target.spec.deployment,
                        target.golden,
                        target.smoke,
                        token=replica.token,
                    )
                facts = replace(facts, verification=problems)
                decision = decide(view, facts, at.timestamp())
            if decision.state != rollout.state or decision.weights is not None or decision.event:
                self._apply(rollout.id, decision, at)
        return bool(active)

    def _remove_deleted(
        self, deleting: list[tuple[int, str]], by_key: dict[str, list[Replica]]
    ) -> None:
        """A deployment being deleted goes once its last replica has drained and stopped."""
        for deployment_id, name in deleting:
            if any(key.startswith(f"{name}/") for key in by_key):
                continue
            with self.db.session() as session:
                session.execute(delete(Deployment).where(Deployment.id == deployment_id))
            self._published.pop(deployment_id, None)
            log.info("deployment %s removed", name)

    def _figures(self, rollout: Rollout) -> tuple[Figures | None, Figures | None]:
        """The canary's and the stable revision's figures since the current step began (what
        the gateways wrote); only a progressing canary is analysed."""
        if rollout.state != "progressing":
            return None, None
        since = (rollout.updated_at or rollout.created_at).timestamp()
        with self.db.read() as session:
            figures = read_figures(session, rollout.deployment_id, since)
        canary = figures.get(rollout.revision)
        stable = figures.get(rollout.stable_revision) if rollout.stable_revision else None
        return (
            canary.figures() if canary else None,
            stable.figures() if stable else None,
        )

    def _apply(self, rollout_id: int, decision: Decision, at: datetime) -> None:
        with self.db.session() as session:
            rollout = session.get(Rollout, rollout_id)
            if rollout is None or rollout.state not in ACTIVE:
                return  # aborted or promoted through the API meanwhile
            deployment = session.get(Deployment, rollout.deployment_id)
            assert deployment is not None
            apply_decision(deployment, rollout, decision, at)


def view_of(row: Rollout) -> RolloutView:
    """A stored rollout as the state machine's input."""
    return RolloutView(
        strategy=row.strategy,  # type: ignore[arg-type]
        revision=row.revision,
        stable=row.stable_revision,
        state=row.state,
        step=row.step,
        started_at=row.created_at.timestamp(),
        next_at=row.next_at.timestamp() if row.next_at else None,
        options=RolloutOptions.model_validate(row.options),
    )


def apply_decision(
    deployment: Deployment, rollout: Rollout, decision: Decision, at: datetime
) -> None:
    """Carry a decision out in the caller's transaction: traffic, warm revisions, the record."""
    target = service.get_revision(deployment, rollout.revision)
    if decision.weights is not None:
        service.set_weights(deployment, decision.weights)
    if decision.keep_warm and rollout.stable_revision is not None:
        options = RolloutOptions.model_validate(rollout.options)
        stable = service.get_revision(deployment, rollout.stable_revision)
        service.keep_warm(stable, at + timedelta(seconds=options.warm_seconds))
    finish(rollout, target, decision)


def finish(rollout: Rollout, target: Revision, decision: Decision) -> None:
    """Record a decision on the rollout and its target revision (the caller moved traffic)."""
    if decision.state in ("failed", "rolled_back"):
        target.status = decision.state
        target.detail = {"reason": decision.reason}
    elif decision.state == "aborted" and target.status in ("pending", "verifying"):
        target.status = "aborted"  # a verified one stays so: an abort is no verdict on it
        target.detail = {"reason": decision.reason}
    elif decision.state in ("progressing", "succeeded") and target.status != "verified":
        target.status = "verified"
    elif decision.state == "verifying" and target.status == "pending":
        target.status = "verifying"
    rollout.state = decision.state
    rollout.step = decision.step
    rollout.next_at = (
        datetime.fromtimestamp(decision.next_at, UTC) if decision.next_at is not None else None
    )
    if decision.reason:
        rollout.reason = decision.reason
    if decision.event:
        service.event(rollout, decision.event + (f": {decision.reason}" if decision.reason else ""))


class ControllerLock:
    """At most one controller per funade home on this machine (an advisory file lock, released
    when its process ends, also by ``kill -9``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held open for the lock's life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def holder(self) -> int | None:
        """The pid of the process holding the lock, without taking it; None when it is free
        (0 when it is held but names no pid)."""
        return lock_holder(self.path)


def _ready_timeouts(session: Session) -> dict[tuple[int, int], float]:
    """Each revision's ready timeout: that of the first rollout to it, the one that made it (a
    later rollback to it does not change its replicas' spec, which would restart them)."""
    first = select(func.min(Rollout.id)).group_by(Rollout.deployment_id, Rollout.revision)
    rows = session.execute(
        select(Rollout.deployment_id, Rollout.revision, Rollout.options).where(
            Rollout.id.in_(first)
        )
    )
    out: dict[tuple[int, int], float] = {}
    for deployment_id, revision, options in rows:
        timeout = (options or {}).get("ready_timeout_seconds")
        if isinstance(timeout, int | float) and timeout > 0:
            out[(deployment_id, revision)] = float(timeout)
    return out


def start_controller(db: Database, backend: Backend, **options: Any) -> tuple[Controller, Any]:
    """A controller running in a daemon thread; returns it and a function that stops it."""
    controller = Controller(db, backend, **options)
    unwatch = db.on_commit(WATCHED, controller.wake)
    stop = threading.Event()
    thread = threading.Thread(target=controller.run, args=(stop,), name="funade-controller")
    thread.daemon = True
    thread.start()

    def shutdown() -> None:
        unwatch()
        stop.set()
        controller.wake()  # out of its wait now (called from this thread, not its own)
        thread.join(timeout=30)
        controller.close()

    return controller, shutdown
