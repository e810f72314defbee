"""The deployments section: the project's deployments, and one deployment (revisions, traffic,
its rollout with controls, replicas, policy, past rollouts, and live traffic figures that
``static/deployment.js`` keeps current)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from funade.api.routes import deployments as deployment_routes
from funade.api.routes import versions as version_routes
from funade.api.schemas import DeploymentOut, RolloutOut, VersionOut
from funade.deploy.rollout import ACTIVE
from funade.errors import FunadeError
from funade.ui.web import Signed, Viewer, render

router = APIRouter(include_in_schema=False)

ROLLOUTS = 20
"""Past rollouts listed on a deployment's page."""
VERSIONS = 50
"""Versions offered for a new rollout (the newest)."""
STATS_SECONDS = 30
"""The span of the live figures, ending now."""


def replica_counts(deployment: DeploymentOut) -> tuple[int, int]:
    """Ready replicas, and the replicas wanted: those of the revisions with traffic, the
    shadow and an active rollout's target (or the published ones, if more)."""
    wanted_revisions = set(deployment.traffic)
    if deployment.shadow is not None:
        wanted_revisions.add(deployment.shadow)
    rollout = deployment.rollout
    if rollout is not None and rollout.state in ACTIVE:
        wanted_revisions.add(rollout.revision)
    wanted = sum(r.replicas for r in deployment.revisions if r.number in wanted_revisions)
    ready = sum(1 for r in deployment.replicas if r.state == "ready")
    return ready, max(wanted, len(deployment.replicas))


def rollout_progress(deployment: DeploymentOut) -> dict[str, Any]:
    """What the progress meter shows for the newest rollout: its step (1-based; 0 while it
    verifies) of how many, the share its plan gives the new revision at that step, and the
    share of traffic the new revision has now (the meter)."""
    rollout = deployment.rollout
    if rollout is None:
        return {"step": 0, "steps": 0, "planned": 0, "percent": 0}
    steps = list(rollout.options.get("steps") or [100]) if rollout.strategy == "canary" else [100]
    index = min(rollout.step, len(steps) - 1)
    verifying = rollout.state not in ("progressing", "succeeded") and not any(
        str(entry.get("event", "")).startswith("verified") for entry in rollout.history
    )
    return {
        "step": 0 if verifying else index + 1,
        "steps": len(steps),
        "planned": 0 if verifying else int(steps[index]),
        "percent": int(deployment.traffic.get(rollout.revision, 0)),
    }


def history(rollout: RolloutOut | None) -> list[tuple[datetime | None, str]]:
    """A rollout's history as (time, event) pairs."""
    out: list[tuple[datetime | None, str]] = []
    for entry in rollout.history if rollout is not None else []:
        try:
            at: datetime | None = datetime.fromisoformat(str(entry.get("at")))
        except ValueError:
            at = None
        out.append((at, str(entry.get("event", ""))))
    return out


def _versions(viewer: Viewer, deployment: DeploymentOut) -> list[VersionOut]:
    if not viewer.can("write"):
        return []
    try:
        page = version_routes.list_versions(
            deployment.project,
            deployment.model,
            viewer.state,
            viewer.principal,
            archived=False,
            limit=VERSIONS,
        )
    except FunadeError:
        return []  # the model is gone: no new rollout can be offered
    return page.items


@router.get("/deployments", response_class=HTMLResponse)
def deployments_page(viewer: Signed) -> HTMLResponse:
    rows = deployment_routes.list_deployments(
        viewer.state, viewer.principal, project=viewer.project
    )
    return render(
        viewer,
        "deployments.html",
        request=viewer.request,
        section="deployments",
        title="Deployments",
        deployments=rows,
        counts={d.name: replica_counts(d) for d in rows},
        active=ACTIVE,
    )


@router.get("/deployments/{name}", response_class=HTMLResponse)
def deployment_page(viewer: Signed, name: str) -> HTMLResponse:
    state, principal = viewer.state, viewer.principal
    deployment = deployment_routes.get_deployment(name, state, principal)
    rollouts = deployment_routes.list_rollouts(name, state, principal, limit=ROLLOUTS)
    versions = _versions(viewer, deployment)
    serving = {r.version for r in deployment.revisions if r.number in deployment.traffic}
    suggested = next((v.version for v in versions if v.version not in serving), None)
    return render(
        viewer,
        "deployment.html",
        request=viewer.request,
        section="deployments",
        title=deployment.name,
        d=deployment,
        rollouts=rollouts,
        versions=versions,
        suggested=suggested,
        progress=rollout_progress(deployment),
        history=history(deployment.rollout),
        counts=replica_counts(deployment),
        active=ACTIVE,
        stats_seconds=STATS_SECONDS,
        page_data={
            "name": deployment.name,
            "project": deployment.project,
            "revisions": [r.number for r in deployment.revisions],
            "stats_seconds": STATS_SECONDS,
            "rollout_id": deployment.rollout.id if deployment.rollout else None,
            "rollout_state": deployment.rollout.state if deployment.rollout else None,
        },
    )
