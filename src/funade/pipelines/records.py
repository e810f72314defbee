"""Runs, their steps and the step cache in the metadata store (the API's side of pipelines).

A runner reports what happens as batches of step records (:func:`apply_events`), upserted by
instance, so a report sent twice changes nothing; a success whose step may be cached writes its
cache entry in the same transaction, so a cache entry never exists without its step's record. A
run started with ``use_cache`` false (``--no-cache``) writes none; one with ``refresh_cache``
(``--refresh``) reads none but writes them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from funade.auth.principal import Principal
from funade.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError
from funade.pagination import check_limit, decode_cursor, page_of
from funade.pipelines.logtail import tail
from funade.pipelines.schemas import RunEventsIn, RunIn, RunOut, StepRecord
from funade.pipelines.states import FINISHED, RUN_STATES, STEP_STATES, RunState
from funade.store.schema import PipelineCacheEntry, PipelineRun, PipelineStep, Project

LOST_AFTER = timedelta(seconds=60)
"""A running run whose runner has not reported for this long is lost (it reports every second
at least, and keeps its reports while the control plane is away)."""


def _check_state(value: str, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        raise InvalidInputError(
            f"{field} {value!r} is not a known state.",
            field=field,
            value=value,
            fix=f"Use one of: {', '.join(allowed)}.",
        )
    return value


def check_cache_mode(*, use_cache: bool, refresh_cache: bool) -> None:
    """``refresh_cache`` writes the cache, which ``use_cache`` false never does."""
    if refresh_cache and not use_cache:
        raise InvalidInputError(
            "refresh_cache runs every step and writes its outputs to the cache, but use_cache "
            "false neither reads nor writes the cache: they contradict each other.",
            field="refresh_cache",
            value=True,
            fix="Drop one: --refresh (refresh_cache true) or --no-cache (use_cache false).",
        )


def create_run(
    session: Session, project: Project, body: RunIn, created_by: str | None
) -> PipelineRun:
    _check_state(body.state, RUN_STATES, "state")
    check_cache_mode(use_cache=body.use_cache, refresh_cache=body.refresh_cache)
    now = datetime.now(UTC)
    row = PipelineRun(
        project_id=project.id,
        pipeline=body.pipeline,
        source=body.source,
        env=body.env,
        spec=body.spec,
        params=body.params,
        state=body.state,
        trigger=body.trigger,
        schedule_id=body.schedule_id,
        scheduled_for=body.scheduled_for,
        use_cache=body.use_cache,
        refresh_cache=body.refresh_cache,
        lineage=body.lineage,
        runner=body.runner,
        started_at=now if body.state == "running" else None,
        last_seen_at=now if body.state == "running" else None,
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return row


def find_run(session: Session, run_id: int, *, seen_by: Principal | None = None) -> PipelineRun:
    """Run ``run_id``; NotFoundError if it does not exist, or ``seen_by`` cannot see its
    project (the same answer: a key learns nothing of other projects' runs)."""
    row = session.get(PipelineRun, run_id)
    if row is None or (seen_by is not None and not seen_by.can_see(row.project.name)):
        raise NotFoundError(
            f"Run {run_id} does not exist.",
            field="run",
            value=run_id,
            fix="List runs with `funade runs list`.",
        )
    return row


def list_runs(
    session: Session,
    project: Project,
    *,
    pipeline: str | None = None,
    state: str | None = None,
    schedule_id: int | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[PipelineRun], str | None]:
    """Newest first."""
    check_limit(limit)
    query = (
        select(PipelineRun)
        .where(PipelineRun.project_id == project.id)
        .order_by(PipelineRun.id.desc())
        .limit(limit + 1)
    )
    if pipeline:
        query = query.where(PipelineRun.pipeline == pipeline)
    if state:
        query = query.where(PipelineRun.state == _check_state(state, RUN_STATES, "state"))
    if schedule_id is not None:
        query = query.where(PipelineRun.schedule_id == schedule_id)
    position = decode_cursor(cursor, {"id": int})
    if position is not None:
        query = query.where(PipelineRun.id < position["id"])
    return page_of(list(session.scalars(query)), limit, lambda row: {"id": row.id})


def apply_events(
    session: Session,
    run: PipelineRun,
    events: RunEventsIn,
    *,
    trust: list[str],
    step_names: StepNames | None = None,
) -> bool:
    """Upsert the reported step records and apply the run's changes; True if they ended the
    run. Cache entries written record ``trust``, what the reporting run's token can do; they
    are checked against the run's ``step_names`` (read from its spec when not given)."""
    nodes: frozenset[str] | None = None
    if events.run is not None and events.run.spec is not None:
        run.spec = events.run.spec  # the steps below are checked against the spec they run
        nodes = _node_ids(events.run.spec)  # (remembered once committed, when next read)
        if step_names is not None:
            step_names.forget(run)
    names = [r.instance for r in events.steps]
    existing = (
        {
            s.instance: s
            for s in session.scalars(
                select(PipelineStep).where(
                    PipelineStep.run_id == run.id, PipelineStep.instance.in_(names)
                )
            )
        }
        if names
        else {}
    )
    run.last_seen_at = datetime.now(UTC)
    for record in events.steps:
        _check_state(record.state, STEP_STATES, "steps[].state")
        row = existing.get(record.instance)
        if row is None:
            row = PipelineStep(run_id=run.id, instance=record.instance)
            session.add(row)
            existing[record.instance] = row
        elif row.run_attempt < record.run_attempt and row.started_at is not None:
            # A resume runs the step again: what the earlier attempt said stays readable.
            row.history = [*(row.history or []), _earlier(row)]
        for name in (
            "node",
            "index",
            "position",
            "state",
            "attempt",
            "cache_key",
            "cached",
            "outputs",
            "error",
            "log_digest",
            "started_at",
            "finished_at",
            "run_attempt",
        ):
            setattr(row, name, getattr(record, name))
        if record.log_digest:
            row.log_tail = ""  # the whole log is stored
        elif record.log:
            row.log_tail = tail((row.log_tail or "") + record.log)
        if record.cache_write and record.state == "succeeded" and record.cache_key:
            if nodes is None:
                nodes = step_names.of(run) if step_names is not None else _node_ids(run.spec)
            _check_step_of(run, record, nodes)
            if run.use_cache:  # a --no-cache run writes no entry, whatever its runner asks
                _remember(session, run, record, trust)
    ended = False
    if events.run is not None:
        changes = events.run.model_dump(exclude_none=True)
        claimed = changes.pop("from_state", None)
        if "state" in changes:
            _check_state(changes["state"], RUN_STATES, "run.state")
        if claimed is not None:
            _claim(session, run, claimed, changes.get("state", claimed))
            compiled = (events.run.spec or {}).get("name")
            if claimed == "queued" and isinstance(compiled, str) and compiled:
                run.pipeline = compiled  # queued under a guess; now the compiled one's name
        if changes.get("state") == "running":  # a new attempt (a resume)
            run.cancel_requested = False
            run.finished_at = None
            run.reason = ""
        for name, value in changes.items():
            setattr(run, name, value)
        ended = changes.get("state") in FINISHED
    return ended


def _earlier(row: PipelineStep) -> dict[str, Any]:
    """A step's record of an earlier run attempt, as kept in its history."""
    return {
        "run_attempt": row.run_attempt,
        "attempt": row.attempt,
        "state": row.state,
        "error": row.error,
        "log_digest": row.log_digest,
        "log_tail": row.log_tail if not row.log_digest else "",
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
    }


class StepNames:
    """The step (node) names of recent runs' specs, by run and attempt, as committed; one per
    API app (``AppState.step_names``). A chain's runner reports a success to cache per step,
    and reading the run's whole spec for each (deferred: a large pipeline's is tens of KB of
    JSON) took a third of the report's time on the server. A spec changes with a new attempt,
    or when a report brings one (a queued run's claim), which forgets it here (that report is
    checked against the spec it brings)."""

    def __init__(self, kept: int = 256) -> None:
        self._kept = kept
        self._names: OrderedDict[tuple[int, int], frozenset[str]] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, run: PipelineRun) -> frozenset[str]:
        key = (run.id, run.attempt)
        with self._lock:
            names = self._names.get(key)
        if names is None:
            names = _node_ids(run.spec)
            with self._lock:
                self._names[key] = names
                while len(self._names) > self._kept:
                    self._names.popitem(last=False)
        return names

    def forget(self, run: PipelineRun) -> None:
        with self._lock:
            self._names.pop((run.id, run.attempt), None)


def _node_ids(spec: dict[str, Any] | None) -> frozenset[str]:
    nodes = (spec or {}).get("nodes", [])
    return frozenset(n["id"] for n in nodes if isinstance(n, dict) and isinstance(n.get("id"), str))


def _check_step_of(run: PipelineRun, record: StepRecord, nodes: frozenset[str]) -> None:
    """A cache entry is written only for a step of the run's own pipeline (``nodes``, its
    spec's), under its name."""
    instance_ok = record.instance == record.node or (
        record.index is not None and record.instance == f"{record.node}[{record.index}]"
    )
    if record.node not in nodes or not instance_ok:
        raise PermissionDeniedError(
            f"Step {record.instance!r} is not a step of run {run.id}'s pipeline "
            f"{run.pipeline!r}, so its outputs cannot be cached.",
            field="steps[].instance",
            value=record.instance,
            fix="Report only the steps of the run's own spec.",
        )


def _close_attempt(run: PipelineRun) -> None:
    """Count the time the run's current attempt ran (until it finished, or its runner was
    last heard of) into ``prior_seconds``: a run's duration leaves out the time nothing ran."""
    if run.started_at is not None:
        end = run.finished_at or run.last_seen_at or run.started_at
        run.prior_seconds = (run.prior_seconds or 0.0) + max(
            0.0, (end - run.started_at).total_seconds()
        )
    run.started_at = None


def start_attempt(
    run: PipelineRun,
    *,
    spec: dict[str, Any],
    runner: dict[str, Any],
    lineage: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> None:
    """The run's next attempt begins: running again, with ``spec`` as compiled now (and the
    attempt's ``lineage``, and ``params`` if the resume changes some)."""
    _close_attempt(run)
    now = datetime.now(UTC)
    run.started_at = run.last_seen_at = now
    run.attempt += 1
    run.state = "running"
    run.spec = spec
    run.runner = runner
    if lineage is not None:
        run.lineage = lineage
    if params is not None:
        run.params = params
    run.cancel_requested = False
    run.finished_at = None
    run.reason = ""


def queue_attempt(run: PipelineRun) -> None:
    """The run's next attempt waits for a runner the control plane starts (an API resume)."""
    _close_attempt(run)
    run.attempt += 1
    run.state = "queued"
    run.cancel_requested = False
    run.finished_at = None
    run.reason = ""


def _claim(session: Session, run: PipelineRun, expected: str, new_state: str) -> None:
    """Move ``run`` from ``expected`` to ``new_state`` in one conditional UPDATE, so of two
    runners claiming the same queued run only one gets it (SQLite's writers are serialized,
    PostgreSQL re-checks the condition on the locked row); ``ConflictError`` for the other.
    ``run`` itself is left as loaded: the caller sets the new state on it."""
    _check_state(expected, RUN_STATES, "run.from_state")
    moved = session.execute(
        update(PipelineRun)
        .where(PipelineRun.id == run.id, PipelineRun.state == expected)
        .values(state=new_state)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(run)
        raise ConflictError(
            f"Run {run.id} is {run.state}, not {expected}: another runner took it first.",
            field="run.from_state",
            value=expected,
            fix=f"Nothing to do: `funade runs show {run.id}` shows the runner that has it.",
        )


def _remember(session: Session, run: PipelineRun, record: StepRecord, trust: list[str]) -> None:
    """The step's outputs under its cache key, bound to the run and step that produced them."""
    key = (run.project_id, record.cache_key)
    entry = session.get(PipelineCacheEntry, key)
    if entry is None:
        session.add(
            PipelineCacheEntry(
                project_id=run.project_id,
                key=record.cache_key,
                outputs=record.outputs,
                run_id=run.id,
                instance=record.instance,
                trust=trust,
            )
        )
    elif set(trust) >= set(entry.trust or ()):  # never downgrade an entry's provenance
        entry.outputs, entry.run_id, entry.instance = record.outputs, run.id, record.instance
        entry.trust = trust


def request_cancel(run: PipelineRun) -> None:
    if run.state in FINISHED:
        ended = (
            "is lost (its runner stopped reporting)"
            if run.state == RunState.LOST
            else (f"has already {run.state}")
        )
        raise ConflictError(
            f"Run {run.id} {ended}; there is nothing to cancel.",
            field="run",
            value=run.id,
            fix=f"Resume it with `funade runs resume {run.id}` to run what did not succeed.",
        )
    run.cancel_requested = True
    if run.state == "queued":
        run.state, run.reason = "cancelled", "cancelled before it started"
        run.finished_at = datetime.now(UTC)


def cache_get(
    session: Session, project: Project, keys: list[str], *, trust: list[str]
) -> list[PipelineCacheEntry]:
    """The entries of ``keys`` a run that can do ``trust`` may reuse: those written by a run
    that could do at least as much (a less trusted run's output never feeds a more trusted
    one, whose steps would load it)."""
    wanted = set(trust)
    return [
        entry
        for entry in session.scalars(
            select(PipelineCacheEntry).where(
                PipelineCacheEntry.project_id == project.id, PipelineCacheEntry.key.in_(keys)
            )
        )
        if wanted <= set(entry.trust or ())
    ]


CACHE_OF_PIPELINE = 1000
"""How many of a pipeline's cache entries a runner gets at once, by default (at most 10,000)."""


def cache_of_pipeline(
    session: Session,
    project: Project,
    pipeline: str,
    *,
    trust: list[str],
    limit: int = CACHE_OF_PIPELINE,
) -> list[PipelineCacheEntry]:
    """The newest ``limit`` entries written by runs of ``pipeline`` that a run that can do
    ``trust`` may reuse (the rule of :func:`cache_get`): what a runner asks for once, instead of
    a lookup per step of a chain (each step's key depends on the step before)."""
    if not 1 <= limit <= 10_000:
        raise InvalidInputError(
            f"limit {limit} is out of range.",
            field="limit",
            value=limit,
            fix="Ask for 1 to 10000 entries; look the others up by key.",
        )
    wanted = set(trust)
    query = (
        select(PipelineCacheEntry)
        .join(PipelineRun, PipelineRun.id == PipelineCacheEntry.run_id)
        .where(
            PipelineCacheEntry.project_id == project.id,
            PipelineRun.project_id == project.id,
            PipelineRun.pipeline == pipeline,
        )
        .order_by(PipelineCacheEntry.created_at.desc())
        .limit(limit)
    )
    return [entry for entry in session.scalars(query) if wanted <= set(entry.trust or ())]


def is_lost(row: PipelineRun, now: datetime) -> bool:
    """A running run whose runner has not been heard of for ``LOST_AFTER``."""
    return (
        row.state == RunState.RUNNING
        and row.last_seen_at is not None
        and now - row.last_seen_at > LOST_AFTER
    )


def mark_lost(session: Session, now: datetime | None = None) -> list[int]:
    """Record the running runs whose runners stopped reporting as lost (the control plane's
    scheduler does it every pass); their ids."""
    now = now or datetime.now(UTC)
    found = session.scalars(
        select(PipelineRun).where(
            PipelineRun.state == RunState.RUNNING,
            PipelineRun.last_seen_at < now - LOST_AFTER,
        )
    )
    lost = []
    for row in found:
        _lose(row)
        lost.append(row.id)
    return lost


def _lose(row: PipelineRun) -> None:
    seen = row.last_seen_at
    where = " on ".join(
        str(part)
        for part in (
            f"pid {row.runner['pid']}" if row.runner.get("pid") else "",
            row.runner.get("host", ""),
        )
        if part
    )
    row.state = RunState.LOST
    row.finished_at = seen
    row.reason = (
        f"its runner{' (' + where + ')' if where else ''} stopped reporting; last seen "
        f"{seen.isoformat(timespec='seconds') if seen else 'never'}"
    )


def duration_of(row: PipelineRun, now: datetime) -> float | None:
    """Seconds the run ran: its earlier attempts', and its current one's until it finished,
    its runner was last heard of (lost), or now."""
    if row.started_at is None:
        return row.prior_seconds or None
    if row.finished_at is not None:
        end = row.finished_at
    elif is_lost(row, now) and row.last_seen_at is not None:
        end = row.last_seen_at
    else:
        end = now
    return (row.prior_seconds or 0.0) + max(0.0, (end - row.started_at).total_seconds())


def run_out(row: PipelineRun, *, steps: bool = True, spec: bool = False) -> RunOut:
    now = datetime.now(UTC)
    state, reason, finished_at = row.state, row.reason, row.finished_at
    if is_lost(row, now):  # not yet recorded as lost (no control plane swept it)
        state = RunState.LOST
        seen = row.last_seen_at.isoformat(timespec="seconds") if row.last_seen_at else "never"
        reason, finished_at = f"its runner stopped reporting; last seen {seen}", row.last_seen_at
    return RunOut(
        id=row.id,
        project=row.project.name,
        pipeline=row.pipeline,
        source=row.source,
        env=row.env,
        params=row.params,
        state=state,
        reason=reason,
        trigger=row.trigger,
        schedule_id=row.schedule_id,
        scheduled_for=row.scheduled_for,
        attempt=row.attempt,
        use_cache=row.use_cache,
        refresh_cache=row.refresh_cache,
        cancel_requested=row.cancel_requested,
        slo_breached=row.slo_breached,
        lineage=row.lineage,
        runner=row.runner,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=finished_at,
        last_seen_at=row.last_seen_at,
        duration_seconds=duration_of(row, now),
        created_by=row.created_by,
        steps=[step_record(s) for s in row.steps] if steps else [],
        spec=row.spec if spec else None,
    )


def step_record(row: PipelineStep) -> StepRecord:
    return StepRecord(
        instance=row.instance,
        node=row.node,
        index=row.index,
        position=row.position,
        state=row.state,
        attempt=row.attempt,
        cache_key=row.cache_key,
        cached=row.cached,
        outputs=row.outputs,
        error=row.error,
        log_digest=row.log_digest,
        started_at=row.started_at,
        finished_at=row.finished_at,
        run_attempt=row.run_attempt,
        history=list(row.history or []),
    )


def outputs_of(row: PipelineRun) -> dict[str, dict[str, Any]]:
    """Instance → outputs, for the steps that succeeded (what a resume reuses)."""
    return {s.instance: s.outputs for s in row.steps if s.state in ("succeeded", "cached")}
