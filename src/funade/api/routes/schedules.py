"""Pipeline schedules, and starting or resuming runs on the control plane's machine.

Both make the control plane run code from a file on its own machine, so, like deploying a model
whose loading runs code, they need the write scope and the ``deploy-code`` scope (or a project an
admin marked as trusting code). The runs they start run with their own token, as their
project's user (docs/security.md).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from funade import audit
from funade.api.deps import State, granted
from funade.api.params import RunId
from funade.api.schemas import LaunchIn, RunOut, ScheduleIn, ScheduleOut, SchedulePatch
from funade.api.state import AppState
from funade.auth.principal import Principal
from funade.errors import ConflictError
from funade.pipelines import records
from funade.pipelines import schedules as service
from funade.pipelines.schedules import Launcher
from funade.pipelines.states import RESUMABLE, RunState
from funade.projects import get_project
from funade.store.schema import PipelineRun, PipelineSchedule, Project

router = APIRouter(prefix="/api/v1", tags=["pipelines"])

Reader = Annotated[Principal, Depends(granted("read"))]
Writer = Annotated[Principal, Depends(granted("write"))]


def _may_run_code(session: Session, principal: Principal, project: str) -> Project:
    """The project, if ``principal`` may make the control plane run pipeline code in it."""
    principal.require("write", project)
    proj = get_project(session, project)
    principal.require_code(
        project, trusted=proj.trust_code, what="A pipeline started on the control plane"
    )
    return proj


def schedule_out(row: PipelineSchedule) -> ScheduleOut:
    return ScheduleOut(
        project=row.project.name,
        name=row.name,
        source=row.source,
        cron=row.cron,
        timezone=row.timezone,
        env=row.env,
        params=row.params,
        misfire=row.misfire,
        max_concurrent=row.max_concurrent,
        paused=row.paused,
        last_tick=row.last_tick,
        next_runs=[] if row.paused else service.next_runs(row),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _launcher(state: AppState) -> Launcher:
    if state.launcher is None:
        raise ConflictError(
            "This control plane starts no runners (it was not started by `funade up`).",
            fix="Run the pipeline where its code is with `funade pipeline run`, or start the "
            "control plane with `funade up`.",
        )
    return state.launcher


@router.post("/projects/{project}/schedules", response_model=ScheduleOut, status_code=201)
def create_schedule(project: str, body: ScheduleIn, state: State, principal: Writer) -> ScheduleOut:
    """A cron schedule; its runs start from the control plane's scheduler (``funade up``), as
    this key (revoking it stops them)."""
    with state.db.session() as session:
        proj = _may_run_code(session, principal, project)
        row = service.create_schedule(
            session,
            proj,
            name=body.name,
            source=body.source,
            cron_expr=body.cron,
            timezone=body.timezone,
            env=body.env,
            params=body.params,
            misfire=body.misfire,
            max_concurrent=body.max_concurrent,
            paused=body.paused,
            created_by=principal.key_id,
        )
        audit.record(
            session,
            principal,
            "schedule.create",
            row.name,
            project=proj,
            cron=row.cron,
            timezone=row.timezone,
            source=row.source,
        )
        session.flush()
        return schedule_out(row)


@router.get("/projects/{project}/schedules", response_model=list[ScheduleOut])
def list_schedules(project: str, state: State, principal: Reader) -> list[ScheduleOut]:
    principal.require("read", project)
    from sqlalchemy import select

    with state.db.read() as session:
        proj = get_project(session, project)
        rows = session.scalars(
            select(PipelineSchedule)
            .where(PipelineSchedule.project_id == proj.id)
            .order_by(PipelineSchedule.name)
        )
        return [schedule_out(r) for r in rows]


@router.get("/projects/{project}/schedules/{name}", response_model=ScheduleOut)
def get_schedule(project: str, name: str, state: State, principal: Reader) -> ScheduleOut:
    principal.require("read", project)
    with state.db.read() as session:
        return schedule_out(service.find_schedule(session, get_project(session, project), name))


@router.patch("/projects/{project}/schedules/{name}", response_model=ScheduleOut)
def update_schedule(
    project: str, name: str, body: SchedulePatch, state: State, principal: Writer
) -> ScheduleOut:
    """Change a schedule, or pause it (``{"paused": true}``) and resume it; ticks missed while
    it was paused are not run later. Its runs start as the key that changed it last."""
    principal.require("write", project)
    # null leaves a field as it is, as in every PATCH; only env may be cleared with it
    changes = {
        name: value
        for name, value in body.model_dump(exclude_unset=True).items()
        if value is not None or name == "env"
    }
    with state.db.session() as session:
        proj = _may_run_code(session, principal, project)
        row = service.find_schedule(session, proj, name)
        service.update_schedule(row, changes)
        row.created_by = principal.key_id
        audit.record(session, principal, "schedule.update", row.name, project=proj, **changes)
        session.flush()
        return schedule_out(row)


@router.delete("/projects/{project}/schedules/{name}", status_code=204)
def delete_schedule(project: str, name: str, state: State, principal: Writer) -> None:
    """Delete the schedule; its runs stay."""
    principal.require("write", project)
    with state.db.session() as session:
        proj = get_project(session, project)
        row = service.find_schedule(session, proj, name)
        session.delete(row)
        audit.record(session, principal, "schedule.delete", name, project=proj)


@router.post("/projects/{project}/runs/launch", response_model=RunOut, status_code=202)
def launch_run(project: str, body: LaunchIn, state: State, principal: Writer) -> RunOut:
    """Queue a run of a pipeline whose code is on the control plane's machine and start a
    runner for it; follow it with ``GET /runs/{id}``."""
    principal.require("write", project)
    launcher = _launcher(state)
    with state.db.session() as session:
        proj = _may_run_code(session, principal, project)
        records.check_cache_mode(use_cache=body.use_cache, refresh_cache=body.refresh_cache)
        row = PipelineRun(
            project_id=proj.id,
            pipeline=service.queued_name(body.source),
            source=body.source,
            env=body.env,
            spec={},
            params=body.params,
            state="queued",
            trigger="api",
            use_cache=body.use_cache,
            refresh_cache=body.refresh_cache,
            created_by=principal.key_id,
        )
        session.add(row)
        session.flush()
        audit.record(session, principal, "run.launch", f"{row.pipeline}#{row.id}", project=proj)
        out = records.run_out(row)
    launcher.start(out.id)
    return out


@router.post("/runs/{run_id}/resume", response_model=RunOut, status_code=202)
def resume_run(run_id: RunId, state: State, principal: Writer) -> RunOut:
    """Start a runner on the control plane's machine that resumes the run (its next attempt,
    queued, started as this key)."""
    launcher = _launcher(state)
    with state.db.session() as session:
        row = records.find_run(session, run_id, seen_by=principal)
        _may_run_code(session, principal, row.project.name)
        if row.state not in (*RESUMABLE, RunState.RUNNING):  # running: its runner is gone
            raise ConflictError(
                f"Run {run_id} is {row.state}; only failed, cancelled or abandoned runs resume.",
                field="run",
                value=run_id,
            )
        records.queue_attempt(row)
        row.created_by = principal.key_id
        audit.record(
            session,
            principal,
            "run.resume",
            f"{row.pipeline}#{row.id}",
            project=row.project,
            attempt=row.attempt,
        )
        session.flush()
        out = records.run_out(row)
    launcher.start(run_id)
    return out
