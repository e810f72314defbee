"""Schedules funade made on Vertex AI and Kubeflow: recorded by ``funade pipeline submit
--schedule`` and ``follow`` (the write scope; no code runs on the control plane, so no
``deploy-code``), listed with the read scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from funade import audit
from funade.api.deps import State, granted
from funade.auth.principal import Principal
from funade.pipelines import remoteschedules as service
from funade.pipelines.schemas import RemoteScheduleIn, RemoteScheduleOut
from funade.projects import get_project

router = APIRouter(prefix="/api/v1", tags=["pipelines"])

Reader = Annotated[Principal, Depends(granted("read"))]
Writer = Annotated[Principal, Depends(granted("write"))]


@router.post("/projects/{project}/remote-schedules", response_model=RemoteScheduleOut)
def record_remote_schedule(
    project: str, body: RemoteScheduleIn, state: State, principal: Writer
) -> RemoteScheduleOut:
    """Record a schedule made on an engine, or update its record (an upsert by target and
    engine id)."""
    principal.require("write", project)
    with state.db.session() as session:
        proj = get_project(session, project)
        row = service.record_remote_schedule(session, proj, body, key_id=principal.key_id)
        if body.cron is not None or body.ended:
            audit.record(
                session,
                principal,
                "remote_schedule.end" if body.ended else "remote_schedule.record",
                row.engine_id,
                project=proj,
                engine=row.target,
            )
        return service.remote_schedule_out(row)


@router.get("/projects/{project}/remote-schedules", response_model=list[RemoteScheduleOut])
def list_remote_schedules(project: str, state: State, principal: Reader) -> list[RemoteScheduleOut]:
    principal.require("read", project)
    with state.db.read() as session:
        proj = get_project(session, project)
        return [
            service.remote_schedule_out(r) for r in service.list_remote_schedules(session, proj)
        ]
