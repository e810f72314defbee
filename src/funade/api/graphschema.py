"""The GraphQL schema behind ``/graphql`` (``api/graph.py``), built when the first query
comes: strawberry and the generated types take about a second to import, which the control
plane's start need not pay.

Every resolver calls the REST route function for the same thing (after the scope check the
route's dependency would make), so GraphQL cannot drift from REST: the same validation, the
same errors (a ``FunadeError``'s code, field and fix in ``extensions``), the same audit rows.
Types are generated from the REST response models (``api/schemas.py``); free-form objects
(params, lineage, history, outputs) are the ``JSON`` scalar.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import strawberry
from fastapi import Request
from graphql import GraphQLError
from pydantic import BaseModel
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.scalars import JSON
from strawberry.types import Info

from funade.api import schemas as rest
from funade.api.graph import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS
from funade.api.routes import deployments as deployment_routes
from funade.api.routes import models as model_routes
from funade.api.routes import projects as project_routes
from funade.api.routes import runs as run_routes
from funade.api.routes import schedules as schedule_routes
from funade.api.routes import versions as version_routes
from funade.api.state import AppState
from funade.auth.principal import Principal, Scope
from funade.errors import FunadeError
from funade.limits import INT32_MAX
from funade.projects import DEFAULT_PROJECT

__all__ = ["Context", "schema"]


class Context:
    """What every resolver gets: the app's state and the request's key."""

    def __init__(self, request: Request, state: AppState, principal: Principal) -> None:
        self.request = request
        self.state = state
        self.principal = principal

    def project(self, name: str | None, scope: Scope) -> str:
        project = name or self.principal.project or DEFAULT_PROJECT
        self.principal.require(scope, project)
        return project


def _ctx(info: Info) -> Context:
    context: Context = info.context
    return context


# Types: the REST response models' fields (api/schemas.py), converted by name ---------------

T = TypeVar("T")


def _from(cls: type[T], out: BaseModel, **extra: Any) -> T:
    """``cls`` (a strawberry type) from a REST response model, field by field."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {k: getattr(out, k) for k in names if k not in extra and hasattr(out, k)}
    return cls(**values, **extra)


@strawberry.type
class AliasEntry:
    alias: str
    version: int


@strawberry.type
class Weight:
    revision: int
    percent: int


@strawberry.type
class Artifact:
    digest: str
    size: int


@strawberry.type
class Step:
    instance: str
    node: str
    index: int | None
    state: str
    attempt: int
    cache_key: str
    cached: bool
    error: str
    log_digest: str | None
    started_at: datetime | None
    finished_at: datetime | None
    run_attempt: int
    outputs: JSON


@strawberry.type
class Run:
    id: int
    project: str
    pipeline: str
    source: str
    env: str | None
    state: str
    reason: str
    trigger: str
    schedule_id: int | None
    scheduled_for: datetime | None
    attempt: int
    use_cache: bool
    refresh_cache: bool
    cancel_requested: bool
    slo_breached: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    created_by: str | None
    params: JSON
    lineage: JSON
    spec: JSON | None
    steps: list[Step]


def _run_of(out: rest.RunOut) -> Run:
    return _from(Run, out, steps=[_from(Step, s) for s in out.steps])


@strawberry.type
class Schedule:
    project: str
    name: str
    source: str
    cron: str
    timezone: str
    env: str | None
    misfire: str
    max_concurrent: int
    paused: bool
    last_tick: datetime | None
    next_runs: list[datetime]
    created_at: datetime
    updated_at: datetime
    params: JSON


@strawberry.type
class Revision:
    number: int
    model: str
    version: int
    replicas: int
    status: str
    warm_until: datetime | None
    created_at: datetime
    runtime: JSON
    detail: JSON


@strawberry.type
class Replica:
    id: str
    revision: int
    url: str
    state: str
    detail: str


@strawberry.type
class Rollout:
    id: int
    deployment: str
    revision: int
    stable_revision: int | None
    strategy: str
    state: str
    step: int
    next_at: datetime | None
    reason: str
    created_at: datetime
    updated_at: datetime
    options: JSON
    history: JSON


@strawberry.type
class Deployment:
    project: str
    name: str
    model: str
    description: str
    state: str
    shadow: int | None
    controller: bool
    created_at: datetime
    updated_at: datetime
    policy: JSON
    revisions: list[Revision]
    replicas: list[Replica]
    rollout: Rollout | None
    traffic: list[Weight]

    @strawberry.field
    def rollouts(self, info: Info, limit: int = 20) -> list[Rollout]:
        ctx = _ctx(info)
        rows = deployment_routes.list_rollouts(self.name, ctx.state, ctx.principal, limit=limit)
        return [_from(Rollout, r) for r in rows]


def _deployment_of(out: rest.DeploymentOut) -> Deployment:
    return _from(
        Deployment,
        out,
        revisions=[_from(Revision, r) for r in out.revisions],
        replicas=[_from(Replica, r) for r in out.replicas],
        rollout=_from(Rollout, out.rollout) if out.rollout else None,
        traffic=[Weight(revision=r, percent=p) for r, p in sorted(out.traffic.items())],
    )


@strawberry.type
class Version:
    project: str
    model: str
    version: int
    flavor: str
    aliases: list[str]
    description: str
    archived: bool
    created_at: datetime
    created_by: str | None
    artifact: Artifact
    signature: JSON
    lineage: JSON
    params: JSON
    metrics: JSON
    tags: JSON

    @strawberry.field
    def run(self, info: Info) -> Run | None:
        """The pipeline run that registered this version, if one did."""
        lineage: dict[str, Any] = self.lineage if isinstance(self.lineage, dict) else {}
        run = lineage.get("run")  # what the client logged: any JSON
        run_id = run.get("id") if isinstance(run, dict) else None
        if type(run_id) is not int or not 1 <= run_id <= INT32_MAX:
            return None
        try:
            return _run(info, run_id)
        except FunadeError:
            return None

    @strawberry.field
    def deployments(self, info: Info) -> list[Deployment]:
        """Deployments with a revision of this version."""
        return [
            d
            for d in _deployments(info, self.project)
            if any(r.model == self.model and r.version == self.version for r in d.revisions)
        ]


def _version_of(out: rest.VersionOut) -> Version:
    return _from(Version, out, artifact=_from(Artifact, out.artifact))


@strawberry.type
class Model:
    project: str
    name: str
    description: str
    archived: bool
    latest_version: int | None
    created_at: datetime
    updated_at: datetime
    tags: JSON
    aliases: list[AliasEntry]

    @strawberry.field
    def versions(self, info: Info, limit: int = 20) -> list[Version]:
        ctx = _ctx(info)
        page = version_routes.list_versions(
            ctx.project(self.project, "read"), self.name, ctx.state, ctx.principal, limit=limit
        )
        return [_version_of(v) for v in page.items]

    @strawberry.field
    def version(self, info: Info, ref: str = "latest") -> Version:
        return _get_version(info, self.project, self.name, ref)


def _model_of(out: rest.ModelOut) -> Model:
    aliases = [AliasEntry(alias=k, version=v) for k, v in sorted(out.aliases.items())]
    return _from(Model, out, aliases=aliases)


@strawberry.type
class Project:
    name: str
    description: str
    created_at: datetime

    @strawberry.field
    def models(self, info: Info, limit: int = 50) -> list[Model]:
        return _models(info, self.name, limit)

    @strawberry.field
    def deployments(self, info: Info) -> list[Deployment]:
        return _deployments(info, self.name)

    @strawberry.field
    def runs(
        self, info: Info, pipeline: str | None = None, state: str | None = None, limit: int = 20
    ) -> list[Run]:
        return _runs(info, self.name, pipeline, state, limit)

    @strawberry.field
    def schedules(self, info: Info) -> list[Schedule]:
        return _schedules(info, self.name)


# Lookups, all through the REST routes -----------------------------------------------------


def _models(info: Info, project: str | None, limit: int) -> list[Model]:
    ctx = _ctx(info)
    page = model_routes.list_models(
        ctx.project(project, "read"), ctx.state, ctx.principal, limit=limit
    )
    return [_model_of(m) for m in page.items]


def _get_version(info: Info, project: str | None, model: str, ref: str) -> Version:
    ctx = _ctx(info)
    return _version_of(
        version_routes.get_version(
            ctx.project(project, "read"), model, ref, ctx.state, ctx.principal
        )
    )


def _deployments(info: Info, project: str | None) -> list[Deployment]:
    ctx = _ctx(info)
    rows = deployment_routes.list_deployments(
        ctx.state, ctx.principal, project=ctx.project(project, "read")
    )
    return [_deployment_of(d) for d in rows]


def _runs(
    info: Info, project: str | None, pipeline: str | None, state: str | None, limit: int
) -> list[Run]:
    ctx = _ctx(info)
    page = run_routes.list_runs(
        ctx.project(project, "read"),
        ctx.state,
        ctx.principal,
        pipeline=pipeline,
        run_state=state,
        limit=limit,
    )
    return [_run_of(r) for r in page.items]


def _run(info: Info, run_id: int, spec: bool = False) -> Run:
    ctx = _ctx(info)
    return _run_of(run_routes.get_run(run_id, ctx.state, ctx.principal, spec=spec))


def _schedules(info: Info, project: str | None) -> list[Schedule]:
    ctx = _ctx(info)
    rows = schedule_routes.list_schedules(ctx.project(project, "read"), ctx.state, ctx.principal)
    return [_from(Schedule, s) for s in rows]


# Query and Mutation --------------------------------------------------------------------------


@strawberry.type
class Query:
    @strawberry.field
    def projects(self, info: Info) -> list[Project]:
        """The projects this key can see."""
        ctx = _ctx(info)
        return [_from(Project, p) for p in project_routes.projects(ctx.state, ctx.principal)]

    @strawberry.field
    def models(self, info: Info, project: str | None = None, limit: int = 50) -> list[Model]:
        return _models(info, project, limit)

    @strawberry.field
    def model(self, info: Info, name: str, project: str | None = None) -> Model:
        ctx = _ctx(info)
        return _model_of(
            model_routes.get_model(ctx.project(project, "read"), name, ctx.state, ctx.principal)
        )

    @strawberry.field
    def version(
        self, info: Info, model: str, ref: str = "latest", project: str | None = None
    ) -> Version:
        """A version by number, alias or `latest`."""
        return _get_version(info, project, model, ref)

    @strawberry.field
    def deployments(self, info: Info, project: str | None = None) -> list[Deployment]:
        return _deployments(info, project)

    @strawberry.field
    def deployment(self, info: Info, name: str) -> Deployment:
        ctx = _ctx(info)
        return _deployment_of(deployment_routes.get_deployment(name, ctx.state, ctx.principal))

    @strawberry.field
    def runs(
        self,
        info: Info,
        project: str | None = None,
        pipeline: str | None = None,
        state: str | None = None,
        limit: int = 20,
    ) -> list[Run]:
        return _runs(info, project, pipeline, state, limit)

    @strawberry.field
    def run(self, info: Info, id: int, spec: bool = False) -> Run:
        return _run(info, id, spec)

    @strawberry.field
    def schedules(self, info: Info, project: str | None = None) -> list[Schedule]:
        return _schedules(info, project)


@strawberry.enum
class RolloutAction(Enum):
    PROMOTE = "promote"
    ABORT = "abort"


@strawberry.input
class WeightInput:
    revision: int
    percent: int


@strawberry.type
class Mutation:
    @strawberry.mutation  # Point an alias at a version.
    def set_alias(
        self, info: Info, model: str, alias: str, version: int, project: str | None = None
    ) -> AliasEntry:
        ctx = _ctx(info)
        out = model_routes.set_alias(
            ctx.project(project, "write"),
            model,
            alias,
            rest.AliasIn(version=version),
            ctx.state,
            ctx.principal,
        )
        return AliasEntry(alias=out.alias, version=out.version)

    @strawberry.mutation  # Split a deployment's traffic between verified revisions.
    def set_traffic(self, info: Info, deployment: str, weights: list[WeightInput]) -> Deployment:
        ctx = _ctx(info)
        body = rest.TrafficIn(weights={w.revision: w.percent for w in weights})
        return _deployment_of(
            deployment_routes.set_traffic(deployment, body, ctx.state, ctx.principal)
        )

    @strawberry.mutation  # Promote or abort the deployment's rollout in progress.
    def rollout(self, info: Info, deployment: str, action: RolloutAction) -> Rollout:
        ctx = _ctx(info)
        return _from(
            Rollout,
            deployment_routes.rollout_action(deployment, action.value, ctx.state, ctx.principal),
        )

    @strawberry.mutation  # Back to the revision that served before the last rollout.
    def rollback(self, info: Info, deployment: str) -> Rollout:
        ctx = _ctx(info)
        return _from(Rollout, deployment_routes.rollback(deployment, ctx.state, ctx.principal))


class _Errors(MaskErrors):
    """FunadeErrors keep their message and get code, field, value and fix as extensions;
    anything else is masked (no internals in answers)."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=self._mask, error_message="Internal error.")

    @staticmethod
    def _mask(error: GraphQLError) -> bool:
        original = error.original_error
        if isinstance(original, FunadeError):
            error.extensions = {**(error.extensions or {}), **original.to_dict()}
            return False
        return original is not None


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    extensions=[
        _Errors,
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
    ],
)
