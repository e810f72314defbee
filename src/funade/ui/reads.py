"""The dashboard's own reads: what a page shows that no REST route answers (the overview's
counts, the runs filter's pipelines, the versions a run registered, schedule names and their last
runs, the names of the keys that registered versions).

Each function checks the viewer's scope in the project it is given before it reads anything
(``principal.require``: a project the key cannot see is a 404, as in the REST API) and reads
only that project's rows. Pages read the store through these and the REST route functions only,
never with a ``select()`` of their own (``tests/security/test_dashboard_isolation.py`` holds
them to both).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from funade.auth.principal import Scope
from funade.projects import get_project
from funade.store.schema import (
    ApiKey,
    Model,
    ModelVersion,
    PipelineRun,
    PipelineSchedule,
    Project,
    utcnow,
)
from funade.ui.web import Viewer

__all__ = [
    "counts",
    "key_names",
    "last_runs",
    "pipelines",
    "registered",
    "schedule_name",
    "signed_with",
]


def _project(session: Session, viewer: Viewer, project: str, scope: Scope = "read") -> Project:
    viewer.principal.require(scope, project)
    return get_project(session, project)


def counts(viewer: Viewer, project: str) -> dict[str, int]:
    """Models, versions, the last day's runs and the failed ones among them."""
    with viewer.state.db.read() as session:
        proj = _project(session, viewer, project)
        since = utcnow() - timedelta(days=1)
        runs = (
            select(func.count())
            .select_from(PipelineRun)
            .where(PipelineRun.project_id == proj.id, PipelineRun.created_at >= since)
        )
        return {
            "models": session.scalar(
                select(func.count()).select_from(Model).where(Model.project_id == proj.id)
            )
            or 0,
            "versions": session.scalar(
                select(func.count())
                .select_from(ModelVersion)
                .join(Model, ModelVersion.model_id == Model.id)
                .where(Model.project_id == proj.id)
            )
            or 0,
            "runs_today": session.scalar(runs) or 0,
            "failed_today": session.scalar(runs.where(PipelineRun.state == "failed")) or 0,
        }


def pipelines(viewer: Viewer, project: str) -> list[str]:
    """The names of the pipelines the project has runs of (the runs filter's choices)."""
    with viewer.state.db.read() as session:
        proj = _project(session, viewer, project)
        return list(
            session.scalars(
                select(PipelineRun.pipeline)
                .distinct()
                .where(PipelineRun.project_id == proj.id)
                .order_by(PipelineRun.pipeline)
            )
        )


def schedule_name(viewer: Viewer, project: str, schedule_id: int | None) -> str | None:
    """The name of the project's schedule ``schedule_id`` (None: none, or not this project's)."""
    with viewer.state.db.read() as session:
        proj = _project(session, viewer, project)
        if schedule_id is None:
            return None
        return session.scalar(
            select(PipelineSchedule.name).where(
                PipelineSchedule.id == schedule_id, PipelineSchedule.project_id == proj.id
            )
        )


def registered(viewer: Viewer, project: str, run_id: int) -> list[dict[str, Any]]:
    """The project's model versions a step of run ``run_id`` registered (their lineage names
    the run)."""
    with viewer.state.db.read() as session:
        proj = _project(session, viewer, project)
        rows = session.execute(
            select(Model.name, ModelVersion.number, ModelVersion.lineage, ModelVersion.created_at)
            .join(Model, ModelVersion.model_id == Model.id)
            .where(
                Model.project_id == proj.id,
                ModelVersion.lineage[("run", "id")].as_integer() == run_id,
            )
            .order_by(ModelVersion.id)
        ).all()
    return [
        {
            "model": name,
            "number": number,
            "step": ((lineage or {}).get("run") or {}).get("step", ""),
            "created_at": created,
        }
        for name, number, lineage, created in rows
    ]


def last_runs(viewer: Viewer, project: str) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """The project's schedules: name → id, and name → its newest run (two queries in all)."""
    with viewer.state.db.read() as session:
        proj = _project(session, viewer, project)
        rows = session.execute(
            select(PipelineSchedule.name, PipelineSchedule.id).where(
                PipelineSchedule.project_id == proj.id
            )
        ).all()
        ids: dict[str, int] = {row.name: row.id for row in rows}
        if not ids:
            return {}, {}
        newest = (
            select(func.max(PipelineRun.id))
            .where(
                PipelineRun.project_id == proj.id,
                PipelineRun.schedule_id.in_(list(ids.values())),
            )
            .group_by(PipelineRun.schedule_id)
        )
        runs = {
            schedule_id: {"id": run_id, "state": state, "created_at": created}
            for run_id, schedule_id, state, created in session.execute(
                select(
                    PipelineRun.id,
                    PipelineRun.schedule_id,
                    PipelineRun.state,
                    PipelineRun.created_at,
                ).where(PipelineRun.id.in_(newest))
            ).all()
        }
    return ids, {name: runs[i] for name, i in ids.items() if i in runs}


def key_names(viewer: Viewer, project: str, ids: set[str | None]) -> dict[str, str]:
    """Key id → name, for an admin of ``project`` (as the audit log names who did what);
    nothing for anyone else."""
    wanted = {i for i in ids if i}
    with viewer.state.db.read() as session:
        _project(session, viewer, project)
        if not wanted or "admin" not in viewer.principal.granted:
            return {}
        rows = session.execute(select(ApiKey.id, ApiKey.name).where(ApiKey.id.in_(wanted)))
        return {str(key_id): str(name) for key_id, name in rows.all()}


def signed_with(viewer: Viewer) -> str | None:
    """The id of the key the viewer's session was signed in with (its own row's parent)."""
    key_id = viewer.principal.key_id
    if key_id is None:
        return None
    with viewer.state.db.read() as session:
        return session.scalar(select(ApiKey.parent_id).where(ApiKey.id == key_id))
