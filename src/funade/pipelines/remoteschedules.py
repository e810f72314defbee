"""funade's record of the schedules it made on Vertex AI and Kubeflow (``remote_schedules``).

The engine keeps and runs such a schedule; funade records that it exists (target, the engine's
id, its console page, cron, pipeline, who made it) so the dashboard, ``funade pipeline
schedules`` and the API can list it. ``funade pipeline submit --schedule`` records it;
``funade pipeline follow`` updates it (the last job it recorded; the schedule's end). A write
is an upsert by (project, target, engine id): a follower of a schedule made before funade
recorded schedules makes its record.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from funade.pipelines.schemas import RemoteScheduleIn, RemoteScheduleOut
from funade.store.schema import Project, RemoteSchedule

__all__ = ["list_remote_schedules", "record_remote_schedule", "remote_schedule_out"]


def record_remote_schedule(
    session: Session, project: Project, body: RemoteScheduleIn, *, key_id: str | None
) -> RemoteSchedule:
    """Make or update the record; fields not given stay as they are."""
    row = session.scalars(
        select(RemoteSchedule).where(
            RemoteSchedule.project_id == project.id,
            RemoteSchedule.target == body.target,
            RemoteSchedule.engine_id == body.engine_id,
        )
    ).one_or_none()
    now = datetime.now(UTC)
    if row is None:
        row = RemoteSchedule(
            project=project,
            target=body.target,
            engine_id=body.engine_id,
            pipeline=body.pipeline,
            console="",
            cron="",
            source="",
            created_by=key_id,
            created_at=now,
            ended_reason="",
        )
        session.add(row)
    for name in ("console", "cron", "source"):
        value = getattr(body, name)
        if value is not None:
            setattr(row, name, value)
    if body.last_job is not None:
        row.last_job, row.last_seen_at = body.last_job, now
    if body.ended and row.ended_at is None:
        row.ended_at, row.ended_reason = now, body.reason
    session.flush()
    return row


def list_remote_schedules(session: Session, project: Project) -> list[RemoteSchedule]:
    """The project's remote schedules, newest first."""
    return list(
        session.scalars(
            select(RemoteSchedule)
            .where(RemoteSchedule.project_id == project.id)
            .order_by(RemoteSchedule.created_at.desc(), RemoteSchedule.id.desc())
        )
    )


def remote_schedule_out(row: RemoteSchedule) -> RemoteScheduleOut:
    return RemoteScheduleOut(
        id=row.id,
        project=row.project.name,
        target=row.target,
        engine_id=row.engine_id,
        console=row.console,
        cron=row.cron,
        pipeline=row.pipeline,
        source=row.source,
        created_by=row.created_by,
        created_at=row.created_at,
        last_job=row.last_job,
        last_seen_at=row.last_seen_at,
        ended_at=row.ended_at,
        ended_reason=row.ended_reason,
    )
