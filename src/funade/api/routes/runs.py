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
    RunAttemptIn,
    RunEventsIn,
    RunEventsOut,
    RunIn,
    RunOut,
)
from funade.auth import runtokens
from funade.auth.principal import RUN_SCOPE, Principal, Scope
from funade.auth.service import principal_for
from funade.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError
from funade.pipelines import records
from funade.projects import get_project
from funade.settings import Settings
from funade.store.schema import ApiKey, Artifact, PipelineCacheEntry, PipelineRun, Project

router = APIRouter(prefix="/api/v1", tags=["pipelines"])

Reader = Annotated[Principal, Depends(granted("read"))]
Writer = Annotated[Principal, Depends(granted("write"))]
Reporter = Annotated[Principal, Depends(granted(RUN_SCOPE))]


def _run(session: Session, principal: Principal, run_id: int, scope: Scope) -> PipelineRun:
    row = records.find_run(session, run_id, seen_by=principal)
    principal.require(scope, row.project.name)
    return row


def permissions_of(spec: dict[str, object]) -> list[str]:
    """What a compiled pipeline declares it needs (``PipelineSpec.permissions``)."""
    declared = spec.get("permissions", [])
    if not isinstance(declared, list) or not all(isinstance(p, str) for p in declared):
        raise InvalidInputError(
            "spec.permissions must be a list of strings.",
            field="spec.permissions",
            value=declared,
            fix="Compile the spec with funade (Pipeline.compile).",
        )
    return [str(p) for p in declared]


def issue_token(
    session: Session,
    settings: Settings,
    run: PipelineRun,
    project: Project,
    starter: Principal,
    spec: dict[str, object],
) -> str:
    """A new token for ``run``, with its pipeline's permissions as ``starter`` may give them."""
    return runtokens.issue(
        session,
        run_id=run.id,
        project=project,
        starter=starter,
        permissions=permissions_of(spec),
        hours=settings.run_token_hours,
    )


@router.post("/projects/{project}/runs", response_model=RunOut, status_code=201)
def create_run(project: str, body: RunIn, state: State, principal: Writer) -> RunOut:
    """Record a new run (the runner that will run it calls this first). The answer holds the
    run's token (``token``), shown once: the runner reports with it."""
    principal.require("write", project)
    with state.db.session() as session:
        proj = get_project(session, project)
        row = records.create_run(session, proj, body, principal.key_id)
        token = issue_token(session, state.settings, row, proj, principal, body.spec)
        audit.record(
            session,
            principal,
            "run.create",
            f"{body.pipeline}#{row.id}",
            project=proj,
            params=body.params,
            env=body.env,
            trigger=body.trigger,
            permissions=permissions_of(body.spec),
        )
        return records.run_out(row).model_copy(update={"token": token})


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
def report(run_id: RunId, body: RunEventsIn, state: State, principal: Reporter) -> RunEventsOut:
    """What the runner saw: step records (upserted by instance) and changes to the run, sent
    with the run's own token (no other key may write a run's records or cache entries). The
    answer says whether someone asked to cancel the run, and holds the run once it ended (its
    token is revoked then)."""
    with state.db.session() as session:
        row = _run(session, principal, run_id, "read")
        if principal.run_id != row.id:
            raise PermissionDeniedError(
                f"Run {principal.run_id}'s token may report only run {principal.run_id}, not "
                f"run {row.id}.",
                field="authorization",
                value=principal.run_id,
                fix="Report each run with the token its creation (or attempt) gave.",
            )
        update = body.run
        if update is not None and update.from_state == "queued" and update.spec is not None:
            # A queued run's runner compiled its pipeline: its token gets what it declares, as
            # far as the key that queued the run may give it.
            runtokens.grant_declared(
                session,
                principal.key_id or "",
                project=row.project,
                starter_id=row.created_by,
                spec_permissions=permissions_of(update.spec),
            )
            session.flush()
            token = session.get(ApiKey, principal.key_id)
            assert token is not None
            principal = principal_for(token, client_ip=principal.client_ip)
        ended = records.apply_events(
            session,
            row,
            body,
            trust=runtokens.trust_of(principal),
            step_names=state.step_names,
        )
        if ended:
            runtokens.revoke_for_run(session, row.id)
            session.flush()
            return RunEventsOut(cancel_requested=row.cancel_requested, run=records.run_out(row))
        return RunEventsOut(cancel_requested=row.cancel_requested)


@router.post("/runs/{run_id}/attempts", response_model=RunOut, status_code=201)
def start_attempt(run_id: RunId, body: RunAttemptIn, state: State, principal: Writer) -> RunOut:
    """Start the next attempt of a run that did not succeed (``funade runs resume``): it is
    running again, with the spec as compiled now, and a new token (in the answer, shown once;
    the earlier attempt's token stops working)."""
    with state.db.session() as session:
        row = _run(session, principal, run_id, "write")
        if row.state in ("succeeded", "queued", "skipped"):
            raise ConflictError(
                f"Run {run_id} is {row.state}; only failed, cancelled or abandoned runs resume.",
                field="run",
                value=run_id,
                fix="Start a new run with `funade pipeline run`.",
            )
        token = issue_token(session, state.settings, row, row.project, principal, body.spec)
        records.start_attempt(
            row, spec=body.spec, runner=body.runner, lineage=body.lineage, params=body.params
        )
        audit.record(
            session,
            principal,
            "run.resume",
            f"{row.pipeline}#{row.id}",
            project=row.project,
            attempt=row.attempt,
            **({"params": body.params} if body.params is not None else {}),
        )
        session.flush()
        return records.run_out(row).model_copy(update={"token": token})


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
    step's whole log, a running step's output so far (its last 64 KiB), each after the logs of
    the step's earlier run attempts (``==> train (run attempt 1) <==``), kept by a resume."""
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

        def add(title: str, digest: str | None, tail: str) -> None:
            if digest and session.get(Artifact, (row.project_id, digest)) is not None:
                logs.append((title, digest, ""))
            elif tail:
                logs.append((title, None, tail))

        for s in chosen:
            earlier = [h for h in s.history or [] if isinstance(h, dict)]
            for past in earlier:
                title = f"{s.instance} (run attempt {past.get('run_attempt')})"
                add(title, past.get("log_digest"), str(past.get("log_tail") or ""))
            title = f"{s.instance} (run attempt {s.run_attempt})" if earlier else s.instance
            add(title, s.log_digest, s.log_tail)
    artifacts = state.artifacts

    headers = step is None or len(logs) > 1 or any(" (run attempt " in t for t, _, _ in logs)

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


@router.get("/projects/{project}/pipeline-cache", response_model=CacheLookupOut)
def cache_of_pipeline(
    project: str,
    state: State,
    principal: Reader,
    pipeline: str | None = None,
    limit: int = records.CACHE_OF_PIPELINE,
) -> CacheLookupOut:
    """The entries written by runs of ``pipeline`` (required; the newest ``limit``, at most
    10,000) that a run with this token may reuse: a runner asks for them once, then looks up by
    key only the steps not among them."""
    principal.require("read", project)
    with state.db.read() as session:
        where = get_project(session, project)  # before the query: another project is a 404
        if not pipeline:
            raise InvalidInputError(
                "Which pipeline's cache entries? `pipeline` is required.",
                field="pipeline",
                value=pipeline,
                fix="Add ?pipeline=<the pipeline's name>.",
            )
        found = records.cache_of_pipeline(
            session, where, pipeline, trust=_trust(principal), limit=limit
        )
        return CacheLookupOut(entries={e.key: _entry(e) for e in found})


@router.get("/projects/{project}/pipeline-cache/{key}", response_model=CacheEntryOut)
def cache_lookup(project: str, key: CacheKey, state: State, principal: Reader) -> CacheEntryOut:
    """The entry a run with this token may reuse: one written by a run that could do at least
    what this one can (see docs/security.md)."""
    principal.require("read", project)
    with state.db.read() as session:
        found = records.cache_get(
            session, get_project(session, project), [key], trust=_trust(principal)
        )
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
        found = records.cache_get(
            session, get_project(session, project), body.keys, trust=_trust(principal)
        )
        return CacheLookupOut(entries={e.key: _entry(e) for e in found})


def _trust(principal: Principal) -> list[str]:
    return runtokens.trust_of(principal) if principal.kind == "run" else []
