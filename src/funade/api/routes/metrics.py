"""``GET /metrics``: the control plane's Prometheus metrics (pipelines), for a read key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from funade.api.deps import State, current_principal
from funade.auth.principal import Principal
from funade.projects import get_project

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def metrics(state: State, principal: Annotated[Principal, Depends(current_principal)]) -> Response:
    """Runs by state, SLO breaches, the last success per pipeline, steps by state and the time
    spent in them, schedules. Scrape with a read key (`authorization: Bearer fnd_...`)."""
    # prometheus_client when scraped: the in-process API of the SDK and CLI never is
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    from funade.pipelines.metrics import PipelineCollector

    project_id = None
    if principal.project is not None:  # a project's key sees its project's pipelines
        principal.require("read", principal.project)
        with state.db.read() as session:
            project_id = get_project(session, principal.project).id
    else:
        principal.require("read")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(state.db, project_id))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
