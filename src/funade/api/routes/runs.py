"""Pipeline runs: create and list them per project; read, report on and cancel one by id;
its step logs; the step cache a runner consults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse, StreamingResponse
from sqlalchemy.orm import Session

from funade import audit
from funade.api.deps import State, granted
from funade.api.params import CacheKey, Cursor, RunId, ScheduleId, StepName
from funade.api.schemas import (
    CacheEntryOut,
    CacheLookupIn,
    CacheLookupOut,
    Page,
    RunEventsIn,
    RunEventsOut,
    RunIn,
    RunOut,
)
from funade.auth.principal import Principal, Scope
from funade.errors import NotFoundError
from funade.pipelines import records
from funade.projects import get_project
from funade.store.schema import Artifact, PipelineCacheEntry, PipelineRun

router = APIRouter(prefix="/api/v1", tags=["pipelines"])

Reader = Annotated[Principal, Depends(granted("read"))]
Writer = Annotated[Principal, Depends(granted("write"))]


def _run(session: Session, principal: Principal, run_id: int, scope: Scope) -> PipelineRun:
    row = records.find_run(session, run_id)
    if not principal.can_see(row.project.name):
        raise NotFoundError(
            f"Run {run_id} does not exist.",
            field="run",
            value=run_id,
            fix="List runs with `funade runs list`.",
        )
    principal.require(scope, row.project.name)
    return row


@router.post("/projects/{project}/runs", response_model=RunOut, status_code=201)
def create_run(project: str, body: RunIn, state: State, principal: Writer) -> RunOut:
    """Record a new run (the runner that will run it calls this first)."""
    principal.require("write", project)
    with state.db.session() as session:
        proj = get_project(session, project)
        row = records.create_run(session, proj, body, principal.key_id)
        audit.record(
            session,
            principal,
            "run.create",
            f"{body.pipeline}#{row.id}",
            project=proj,
            params=body.params,
            env=body.env,
            trigger=body.trigger,
        )
        return records.run_out(row)


@router.get("/projects/{project}/runs", response_model=Page[RunOut])
def list_runs(
    project: str,
    state: State,
    principal: Reader,
    pipeline: str | None = None,
    run_state: Annotated[str | None, Query(alias="state")] = None,
    schedule_id: ScheduleId = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[RunOut]:
    principal.require("read", project)
    with state.db.read() as session:
        proj = get_project(session, project)
        rows, next_cursor = records.list_runs(
            session,
            proj,
            pipeline=pipeline,
            state=run_state,
            schedule_id=schedule_id,
            cursor=cursor,
            limit=limit,
        )
        return Page(items=[records.run_out(r, steps=False) for r in rows], next_cursor=next_cursor)


@router.get("/runs/{run_id}", response_model=RunOut)
def get_run(run_id: RunId, state: State, principal: Reader, spec: bool = False) -> RunOut:
    with state.db.read() as session:
        return records.run_out(_run(session, principal, run_id, "read"), spec=spec)


@router.post("/runs/{run_id}/events", response_model=RunEventsOut)
def report(run_id: RunId, body: RunEventsIn, state: State, principal: Writer) -> RunEventsOut:
    """What the runner saw: step records (upserted by instance) and changes to the run. The
    answer says whether someone asked to cancel the run."""
    with state.db.session() as session:
        row = _run(session, principal, run_id, "write")
        records.apply_events(session, row, body)
        return RunEventsOut(cancel_requested=row.cancel_requested)


@router.post("/runs/{run_id}/cancel", response_model=RunOut)
def cancel_run(run_id: RunId, state: State, principal: Writer) -> RunOut:
    """Ask the run's runner to stop its steps; it cancels within about a second."""
    with state.db.session() as session:
        row = _run(session, principal, run_id, "write")
        records.request_cancel(row)
        audit.record(
            session, principal, "run.cancel", f"{row.pipeline}#{row.id}", project=row.project
        )
        return records.run_out(row)


@router.get("/runs/{run_id}/logs", response_class=PlainTextResponse)
def run_logs(
    run_id: RunId, state: State, principal: Reader, step: StepName = None
) -> StreamingResponse:
    """The logs of the run's steps (or of one, ``?step=train``), as plain text: a finished
    step's whole log, a running step's output so far (its last 64 KiB)."""
    with state.db.read() as session:
        row = _run(session, principal, run_id, "read")
        chosen = [s for s in row.steps if step is None or s.instance == step or s.node == step]
        if step is not None and not chosen:
            raise NotFoundError(
                f"Run {run_id} has no step {step!r}.",
                field="step",
                value=step,
                fix=f"See its steps with `funade runs show {run_id}`.",
            )
        # A stored log only from a blob the run's project uploaded itself (proof of possession,
        # as for artifacts); else a running step's output so far, if any.
        logs: list[tuple[str, str | None, str]] = []
        for s in chosen:
            if s.log_digest and session.get(Artifact, (row.project_id, s.log_digest)) is not None:
                logs.append((s.instance, s.log_digest, ""))
            elif s.log_tail:
                logs.append((s.instance, None, s.log_tail))
    artifacts = state.artifacts

    headers = step is None or len(logs) > 1

    def body() -> Iterator[bytes]:
        last = b"\n"
        for instance, digest, tail in logs:
            if headers:
                yield (b"" if last.endswith(b"\n") else b"\n") + f"==> {instance} <==\n".encode()
            chunks = artifacts.open(digest) if digest is not None else [tail.encode()]
            for chunk in chunks:
                if chunk:
                    last = chunk
                yield chunk

    return StreamingResponse(body(), media_type="text/plain; charset=utf-8")


def _entry(entry: PipelineCacheEntry) -> CacheEntryOut:
    return CacheEntryOut(
        key=entry.key,
        outputs=entry.outputs,
        run_id=entry.run_id,
        instance=entry.instance,
        created_at=entry.created_at,
    )


@router.get("/projects/{project}/pipeline-cache/{key}", response_model=CacheEntryOut)
def cache_lookup(project: str, key: CacheKey, state: State, principal: Reader) -> CacheEntryOut:
    principal.require("read", project)
    with state.db.read() as session:
        found = records.cache_get(session, get_project(session, project), [key])
        if not found:
            raise NotFoundError(f"No cached step has key {key}.", field="key", value=key)
        return _entry(found[0])


@router.post("/projects/{project}/pipeline-cache/lookup", response_model=CacheLookupOut)
def cache_lookup_many(
    project: str, body: CacheLookupIn, state: State, principal: Reader
) -> CacheLookupOut:
    """The entries of those of ``keys`` that are cached (a runner asks for a whole fan-out)."""
    principal.require("read", project)
    with state.db.read() as session:
        found = records.cache_get(session, get_project(session, project), body.keys)
        return CacheLookupOut(entries={e.key: _entry(e) for e in found})
