"""Deployments: live endpoints, their revisions, traffic and rollouts.

Deployment names are unique across projects (the gateway routes ``/v2/models/<name>`` by name
alone), so the routes take no project in the path; a key sees only its project's deployments.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from funade import audit
from funade.api.deps import Deployer, State, granted
from funade.api.schemas import (
    DeploymentIn,
    DeploymentOut,
    DeploymentPatch,
    DeploymentStatsOut,
    GatewayRoutingOut,
    ReplicaOut,
    RevisionOut,
    RevisionStatsOut,
    RolloutIn,
    RolloutOut,
    RoutingOut,
    TrafficIn,
)
from funade.auth import service as keys
from funade.auth.principal import Principal, Scope
from funade.deploy import rollout as machine
from funade.deploy import routing, service
from funade.deploy.controller import apply_decision, view_of
from funade.deploy.service import now
from funade.deploy.stats import read_figures
from funade.errors import ConflictError, NotFoundError
from funade.projects import DEFAULT_PROJECT, get_project
from funade.store.schema import Deployment, ModelVersion, Project, ReplicaRecord, Rollout

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])


Reader = Annotated[Principal, Depends(granted("read"))]
Writer = Annotated[Principal, Depends(granted("write"))]


def _options(spec: RolloutIn) -> machine.RolloutOptions:
    """The rollout's options (``RolloutIn`` checked them as the body was read): the ones not
    given take the rollout's defaults; inside ``analysis`` a null is kept, as "no limit"
    (dropping it brought back the default limit: ``max_p99_ratio: null`` still compared p99s)."""
    options = spec.model_dump(exclude_none=True, exclude={"strategy", "analysis"})
    if spec.analysis is not None:
        options["analysis"] = spec.analysis.model_dump()
    return machine.RolloutOptions.model_validate(options)


def rollout_out(row: Rollout, name: str) -> RolloutOut:
    return RolloutOut(
        id=row.id,
        number=row.number,
        deployment=name,
        revision=row.revision,
        stable_revision=row.stable_revision,
        strategy=row.strategy,
        state=row.state,
        step=row.step,
        options=row.options,
        next_at=row.next_at,
        reason=row.reason,
        history=row.history,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def routing_out(session: Session, row: Deployment) -> RoutingOut:
    wanted = routing.wanted(row)
    views = routing.gateways(session, row.id, now())
    return RoutingOut(
        generation=row.generation,
        wanted=list(wanted),
        gateways=[
            GatewayRoutingOut(
                gateway=v.gateway,
                generation=v.generation,
                ready=list(v.ready),
                serving=v.serves(row.generation, wanted),
                waiting_for=v.lacks(row.generation, wanted),
                seen_at=v.seen_at,
            )
            for v in views
        ],
        served=bool(views) and all(v.serves(row.generation, wanted) for v in views),
        reload_seconds=routing.RELOAD_SECONDS,
    )


def deployment_out(session: Session, row: Deployment, *, controller: bool) -> DeploymentOut:
    replicas = session.scalars(
        select(ReplicaRecord)
        .where(ReplicaRecord.deployment_id == row.id)
        .order_by(ReplicaRecord.revision, ReplicaRecord.id)
    )
    newest = service.rollouts(session, row, limit=1)
    return DeploymentOut(
        project=row.project.name,
        name=row.name,
        model=row.model.name,
        description=row.description,
        state=row.state,
        traffic=service.weights(row),
        shadow=(row.traffic or {}).get("shadow"),
        policy=row.policy,
        revisions=[
            RevisionOut(
                number=r.number,
                model=r.version.model.name,
                version=r.version.number,
                replicas=r.replicas,
                runtime=r.runtime,
                status=r.status,
                detail=r.detail,
                warm_until=r.warm_until,
                created_at=r.created_at,
            )
            for r in row.revisions
        ],
        replicas=[
            ReplicaOut(id=r.id, revision=r.revision, url=r.url, state=r.state, detail=r.detail)
            for r in replicas
        ],
        rollout=rollout_out(newest[0], row.name) if newest else None,
        routing=routing_out(session, row),
        controller=controller,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _find(session: Session, principal: Principal, name: str, scope: Scope) -> Deployment:
    row = session.scalar(select(Deployment).where(Deployment.name == name))
    if row is None or not principal.can_see(row.project.name):
        raise NotFoundError(
            f"Deployment {name!r} does not exist.",
            field="deployment",
            value=name,
            fix="List deployments with `funade deployments list`.",
        )
    principal.require(scope, row.project.name)
    return row


def _deployable(session: Session, principal: Principal, name: str) -> Deployment:
    """The deployment, if ``principal`` may deploy its model (write, or a run's grant)."""
    row = _find(session, principal, name, "read")
    principal.require_model("deploy", row.project.name, row.model.name)
    return row


def check_code(principal: Principal, project: Project, version: ModelVersion) -> None:
    """Refuse a deployment of ``version`` whose loading runs code, unless ``principal`` may
    deploy code (the deploy-code scope) or the project trusts code."""
    runs_code = version.runs_code
    if runs_code is None:  # registered before it was recorded
        from funade.registry.flavors import loads_code  # numpy, every flavor: not at start

        runs_code = loads_code(version.manifest)
    if runs_code:
        principal.require_code(
            project.name,
            trusted=project.trust_code,
            what=f"Model {version.model.name!r} version {version.number} ({version.flavor})",
        )


def _project(session: Session, principal: Principal, name: str | None, scope: Scope) -> Project:
    project = name or principal.project or DEFAULT_PROJECT
    principal.require(scope, project)
    return get_project(session, project)


@router.post("", response_model=DeploymentOut, status_code=201)
def create_deployment(body: DeploymentIn, state: State, principal: Deployer) -> DeploymentOut:
    """Create revision 1 and start its rollout; it takes traffic once verified."""
    with state.db.session() as session:
        name = body.project or principal.project or DEFAULT_PROJECT
        principal.require_model("deploy", name, body.model)
        project = get_project(session, name)
        row, _ = service.create_deployment(
            session,
            project,
            body.name or body.model,
            model=body.model,
            version=body.version,
            replicas=body.replicas,
            runtime=body.runtime,
            policy=body.policy,
            smoke=[s.model_dump() for s in body.smoke],
            description=body.description,
            created_by=principal.key_id,
        )
        check_code(principal, project, row.revisions[0].version)
        audit.record(
            session,
            principal,
            "deployment.create",
            row.name,
            project=project,
            model=f"{row.revisions[0].version.model.name}:{row.revisions[0].version.number}",
            replicas=body.replicas,
            runtime=body.runtime.model_dump(),
            policy=row.policy,
        )
        session.flush()
        return deployment_out(session, row, controller=state.controller)


@router.get("", response_model=list[DeploymentOut])
def list_deployments(
    state: State,
    principal: Reader,
    project: Annotated[str | None, Query(description="Default: the key's project.")] = None,
) -> list[DeploymentOut]:
    with state.db.read() as session:
        proj = _project(session, principal, project, "read")
        rows = service.list_deployments(session, proj)
        return [deployment_out(session, r, controller=state.controller) for r in rows]


@router.get("/{name}", response_model=DeploymentOut)
def get_deployment(name: str, state: State, principal: Reader) -> DeploymentOut:
    with state.db.read() as session:
        row = _find(session, principal, name, "read")
        return deployment_out(session, row, controller=state.controller)


@router.patch("/{name}", response_model=DeploymentOut)
def update_deployment(
    name: str, body: DeploymentPatch, state: State, principal: Deployer
) -> DeploymentOut:
    """A new version, replica count, runtime or smoke requests make a new revision, rolled out
    by ``rollout.strategy``; ``policy`` and ``description`` change in place (``policy`` is
    merged into the stored one: fields left out keep their values)."""
    with state.db.session() as session:
        row = _deployable(session, principal, name)
        rollout = service.update_deployment(
            session,
            row,
            version=body.version,
            replicas=body.replicas,
            runtime=body.runtime,
            smoke=[s.model_dump() for s in body.smoke] if body.smoke is not None else None,
            strategy=body.rollout.strategy,
            options=_options(body.rollout),
            policy=body.policy,
            description=body.description,
            created_by=principal.key_id,
        )
        changes = body.model_dump(exclude_none=True, exclude={"rollout"}, mode="json")
        if body.policy is not None:
            changes["policy"] = row.policy  # what it is now, after the merge
        if rollout is not None:
            check_code(principal, row.project, service.get_revision(row, rollout.revision).version)
            changes["rollout"] = {"revision": rollout.revision, "strategy": rollout.strategy}
        audit.record(
            session, principal, "deployment.update", row.name, project=row.project, **changes
        )
        session.flush()
        return deployment_out(session, row, controller=state.controller)


@router.delete("/{name}", response_model=DeploymentOut, status_code=202)
def delete_deployment(name: str, state: State, principal: Writer) -> DeploymentOut:
    """Stop routing to it; the controller drains its replicas, then removes it."""
    with state.db.session() as session:
        row = _find(session, principal, name, "write")
        running = service.active_rollout(session, row)
        if running is not None:
            apply_decision(row, running, machine.abort(view_of(running), principal.name), now())
        service.delete_deployment(row)
        ended = keys.revoke_deployment_keys(session, row.project_id, row.name)
        audit.record(
            session,
            principal,
            "deployment.delete",
            row.name,
            project=row.project,
            **({"revoked_keys": [k.id for k in ended]} if ended else {}),
        )
        return deployment_out(session, row, controller=state.controller)


@router.put("/{name}/traffic", response_model=DeploymentOut)
def set_traffic(name: str, body: TrafficIn, state: State, principal: Deployer) -> DeploymentOut:
    with state.db.session() as session:
        row = _deployable(session, principal, name)
        if body.weights is not None:
            service.set_traffic(session, row, body.weights)
        if body.shadow is not None or body.clear_shadow:
            service.set_shadow(session, row, None if body.clear_shadow else body.shadow)
        audit.record(
            session,
            principal,
            "deployment.traffic",
            row.name,
            project=row.project,
            weights=service.weights(row),
            shadow=(row.traffic or {}).get("shadow"),
        )
        return deployment_out(session, row, controller=state.controller)


@router.get("/{name}/rollouts", response_model=list[RolloutOut])
def list_rollouts(
    name: str, state: State, principal: Reader, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> list[RolloutOut]:
    """Newest first."""
    with state.db.read() as session:
        row = _find(session, principal, name, "read")
        return [rollout_out(r, row.name) for r in service.rollouts(session, row, limit)]


@router.post("/{name}/rollout/{action}", response_model=RolloutOut)
def rollout_action(name: str, action: str, state: State, principal: Deployer) -> RolloutOut:
    """``promote`` (all traffic to the new revision now) or ``abort`` (all back to stable)."""
    with state.db.session() as session:
        row = _deployable(session, principal, name)
        running = service.active_rollout(session, row)
        if action not in ("promote", "abort"):
            raise NotFoundError(
                f"There is no rollout action {action!r}.",
                field="action",
                value=action,
                fix="Use 'promote' or 'abort'.",
            )
        if running is None:
            raise ConflictError(
                f"Deployment {name!r} has no rollout in progress to {action}.",
                field="deployment",
                value=name,
                fix=f"See its rollouts with `funade rollout status {name}`.",
            )
        if action == "promote" and running.state != "progressing":
            raise ConflictError(
                f"The rollout to revision {running.revision} is {running.state}: it can be "
                "promoted once its revision is verified and taking canary traffic.",
                field="action",
                value=action,
                fix="Wait for verification, or abort it.",
            )
        view = view_of(running)
        decision = (
            machine.promote(view) if action == "promote" else machine.abort(view, principal.name)
        )
        apply_decision(row, running, decision, now())
        audit.record(
            session,
            principal,
            f"rollout.{action}",
            row.name,
            project=row.project,
            revision=running.revision,
        )
        session.flush()
        return rollout_out(running, row.name)


@router.post("/{name}/rollback", response_model=RolloutOut, status_code=201)
def rollback(name: str, state: State, principal: Deployer) -> RolloutOut:
    """Back to the revision that served before the last rollout (instant while it is warm)."""
    with state.db.session() as session:
        row = _deployable(session, principal, name)
        rollout = service.rollback(session, row, principal.key_id)
        audit.record(
            session,
            principal,
            "deployment.rollback",
            row.name,
            project=row.project,
            revision=rollout.revision,
        )
        return rollout_out(rollout, row.name)


@router.get("/{name}/stats", response_model=DeploymentStatsOut)
def deployment_stats(
    name: str,
    state: State,
    principal: Reader,
    seconds: Annotated[float, Query(gt=0, le=86400, description="Span, ending now.")] = 300,
) -> DeploymentStatsOut:
    """Requests, errors and latency per revision (the variants of a split), as the gateways
    measured them."""
    with state.db.read() as session:
        row = _find(session, principal, name, "read")
        figures = read_figures(session, row.id, now().timestamp() - seconds)
    return DeploymentStatsOut(
        deployment=name,
        seconds=seconds,
        revisions=[
            RevisionStatsOut(
                revision=f.revision,
                requests=f.requests,
                errors=f.errors,
                error_rate=f.errors / f.requests if f.requests else 0.0,
                requests_per_second=f.requests / seconds,
                p50_ms=f.p50_ms,
                p99_ms=f.p99_ms,
            )
            for f in figures.values()
        ],
    )
