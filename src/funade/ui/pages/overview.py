"""The overview: what is there, what is serving, what ran lately and who changed what."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from funade.api.routes import audit as audit_routes
from funade.api.routes import deployments as deployment_routes
from funade.api.routes import runs as run_routes
from funade.ui import reads
from funade.ui.web import Signed, render

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def overview(viewer: Signed) -> HTMLResponse:
    state, principal, project = viewer.state, viewer.principal, viewer.project
    counts = reads.counts(viewer, project)
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
