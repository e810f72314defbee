"""The control-plane app factory. No module globals: a fresh app per call (and per test)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from funade import __version__
from funade.api import errors, openapi
from funade.api.middleware.authfirst import AuthenticateFirstMiddleware
from funade.api.middleware.bodylimit import BodyLimitMiddleware
from funade.api.middleware.forwarded import ForwardedMiddleware
from funade.api.middleware.ipallow import IPAllowlistMiddleware
from funade.api.middleware.urltext import NoNulInURLMiddleware
from funade.api.routes import artifacts as artifact_routes
from funade.api.routes import (
    audit,
    deployments,
    health,
    keys,
    metrics,
    models,
    projects,
    remoteschedules,
    runs,
    schedules,
    versions,
)
from funade.api.state import AppState
from funade.artifacts import ArtifactStore
from funade.deploy import service as deploy_service
from funade.registry import service as registry
from funade.settings import Settings
from funade.store import Database

log = logging.getLogger("funade.api")

DESCRIPTION = """\
The control plane of funade: projects, models, immutable versions, aliases, artifacts, API keys
and the audit log. Every route except health needs `Authorization: Bearer <key>`.
Errors are `{"error": {"code", "message", "field", "value", "fix"}}`; every operation lists the
error statuses it may answer with.
"""


def create_app(
    settings: Settings,
    db: Database,
    artifacts: ArtifactStore,
    *,
    controller: bool = False,
    dashboard: bool = True,
) -> FastAPI:
    """The API over ``db`` and ``artifacts``; the caller owns both (and their migrations).
    ``controller``: whether the caller runs a deployment controller beside it. ``dashboard``:
    serve the web dashboard and GraphQL too; the in-process API of the SDK and the CLI
    (``funade.client.local``, on a private socket no browser reaches) leaves both out, and so
    never imports strawberry or Jinja2."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:  # uploads a crash cut off (writers sweep again now and then)
            await asyncio.to_thread(artifacts.clean_uploads)
        except Exception as exc:  # the store is away: the API still starts
            log.warning("abandoned uploads not cleaned from %s: %s", artifacts.url, exc)
        yield

    app = FastAPI(
        title="funade",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.funade = AppState(
        settings=settings, db=db, artifacts=artifacts, controller=controller
    )
    # A version that a deployment's revision runs cannot be deleted.
    registry.register_version_holder(deploy_service.holder)
    errors.install(app)
    for module in (
        health,
        projects,
        models,
        versions,
        artifact_routes,
        keys,
        audit,
        deployments,
        runs,
        schedules,
        remoteschedules,
        metrics,
    ):
        app.include_router(module.router)
    openapi.install(app)
    if dashboard:
        from funade import ui
        from funade.api import graph

        app.include_router(graph.router)
        graph.mount_explorer(app)
        ui.install(app)
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_json_bytes, exempt=("/artifacts/",)
    )
    app.add_middleware(NoNulInURLMiddleware)
    # Outside the body limit: a request without a valid key learns nothing from its body.
    app.add_middleware(AuthenticateFirstMiddleware, state=app.state.funade)
    if settings.allow_cidrs:
        app.add_middleware(IPAllowlistMiddleware, cidrs=settings.allow_cidrs)
    if settings.trusted_proxies:  # outermost: every layer inside sees the client's address
        app.add_middleware(ForwardedMiddleware, trusted_proxies=settings.trusted_proxies)
    return app
