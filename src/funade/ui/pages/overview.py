"""The overview: what is there, what is serving, what ran lately and who changed what."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from funade.api.routes import audit as audit_routes
from funade.api.routes import deployments as deployment_routes
from funade.api.routes import runs as run_routes
from funade.projects import get_project
from funade.store.schema import Model, ModelVersion, PipelineRun, utcnow
from funade.ui.web import Signed, render

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def overview(viewer: Signed) -> HTMLResponse:
    state, principal, project = viewer.state, viewer.principal, viewer.project
    principal.require("read", project)
    with state.db.read() as session:
        proj = get_project(session, project)
        since = utcnow() - timedelta(days=1)
        counts = {
            "models": session.scalar(
                select(func.count()).select_from(Model).where(Model.project_id == proj.id)
            ),
            "versions": session.scalar(
                select(func.count())
                .select_from(ModelVersion)
                .join(Model, ModelVersion.model_id == Model.id)
                .where(Model.project_id == proj.id)
            ),
            "runs_today": session.scalar(
                select(func.count())
                .select_from(PipelineRun)
                .where(PipelineRun.project_id == proj.id, PipelineRun.created_at >= since)
            ),
            "failed_today": session.scalar(
                select(func.count())
                .select_from(PipelineRun)
                .where(
                    PipelineRun.project_id == proj.id,
                    PipelineRun.created_at >= since,
                    PipelineRun.state == "failed",
                )
            ),
        }
    deployments = deployment_routes.list_deployments(state, principal, project=project)
    runs = run_routes.list_runs(project, state, principal, limit=8).items
    activity = (
        audit_routes.list_audit(state, principal, project=project, limit=10).items
        if viewer.can("admin")
        else []
    )
    return render(
        viewer,
        "overview.html",
        request=viewer.request,
        section="overview",
        title="Overview",
        counts=counts,
        deployments=deployments,
        runs=runs,
        activity=activity,
    )
