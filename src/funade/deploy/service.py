"""Deployments over the store: create, change (a new revision and a rollout), traffic, delete.

Every function takes the caller's session; the caller owns the transaction and writes the audit
row in it. The controller (``controller.py``) makes the store's wishes real; nothing here starts
a process or calls a replica.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from funade.deploy.backends.base import RuntimeConfig
from funade.deploy.policy import Policy, merge_policy
from funade.deploy.rollout import ACTIVE, RolloutOptions, Strategy
from funade.errors import ConflictError, InvalidInputError, InvalidNameError, NotFoundError
from funade.registry import service as registry
from funade.store.schema import Deployment, ModelVersion, Project, Revision, Rollout

_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # fullmatch: not "churn\n"
MAX_REPLICAS = 32
# How long replicas that lose their traffic keep running: longer than gateways take to see it.
DRAIN_SECONDS = 5.0


def check_deployment_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidNameError(
            f"Deployment name {name!r} is not allowed.",
            field="name",
            value=name,
            fix="Use 1-63 lowercase letters, digits and '-', starting and ending with a letter "
            "or digit, e.g. 'churn' (it becomes part of the endpoint's URL).",
        )
    return name


def check_replicas(replicas: int) -> int:
    if not 1 <= replicas <= MAX_REPLICAS:
        raise InvalidInputError(
            f"replicas must be between 1 and {MAX_REPLICAS}; got {replicas}.",
            field="replicas",
            value=replicas,
            fix="Ask for e.g. 2 replicas (use a revision's workers for more processes each).",
        )
    return replicas


def keep_warm(revision: Revision, until: datetime) -> None:
    if revision.warm_until is None or revision.warm_until < until:
        revision.warm_until = until


def now() -> datetime:
    return datetime.now(UTC)


def event(rollout: Rollout, text: str) -> None:
    """Append to a rollout's history (a new list, so SQLAlchemy sees the change)."""
    rollout.history = [*rollout.history, {"at": now().isoformat(), "event": text}]


# Reading ---------------------------------------------------------------------------------------


def get_deployment(session: Session, project: Project, name: str) -> Deployment:
    deployment = session.scalar(
        select(Deployment).where(Deployment.project_id == project.id, Deployment.name == name)
    )
    if deployment is None:
        raise NotFoundError(
            f"Deployment {name!r} does not exist in project {project.name!r}.",
            field="deployment",
            value=name,
            fix="List deployments with `funade deployments list`, or create one with "
            "`funade deploy <model>`.",
        )
    return deployment


def list_deployments(session: Session, project: Project) -> list[Deployment]:
    query = select(Deployment).where(Deployment.project_id == project.id)
    return list(session.scalars(query.order_by(Deployment.name)))


def get_revision(deployment: Deployment, number: int, *, field: str = "revision") -> Revision:
    for revision in deployment.revisions:
        if revision.number == number:
            return revision
    known = [r.number for r in deployment.revisions]
    raise NotFoundError(
        f"Deployment {deployment.name!r} has no revision {number} (it has {known}).",
        field=field,
        value=number,
        fix=f"See its revisions with `funade deployments show {deployment.name}`.",
    )


def rollouts(session: Session, deployment: Deployment, limit: int = 20) -> list[Rollout]:
    """Newest first."""
    query = select(Rollout).where(Rollout.deployment_id == deployment.id)
    return list(session.scalars(query.order_by(Rollout.id.desc()).limit(limit)))


def active_rollout(session: Session, deployment: Deployment) -> Rollout | None:
    query = select(Rollout).where(Rollout.deployment_id == deployment.id, Rollout.state.in_(ACTIVE))
    return session.scalar(query.order_by(Rollout.id.desc()).limit(1))


def weights(deployment: Deployment) -> dict[int, int]:
    """Traffic in percent by revision number."""
    raw = (deployment.traffic or {}).get("weights", {})
    return {int(k): int(v) for k, v in raw.items() if int(v) > 0}


def stable_revision(deployment: Deployment) -> int | None:
    """The revision with the most traffic (the newest on a tie), or None without traffic."""
    current = weights(deployment)
    if not current:
        return None
    return max(current, key=lambda number: (current[number], number))


def set_weights(
    deployment: Deployment, new: dict[int, int], *, drain_seconds: float = DRAIN_SECONDS
) -> None:
    """Move traffic; a revision that loses all of it keeps running ``drain_seconds`` more, so
    gateways still on the old table finish against it."""
    until = now() + timedelta(seconds=drain_seconds)
    for number in weights(deployment):
        if new.get(number, 0) <= 0:
            keep_warm(get_revision(deployment, number), until)
    traffic = dict(deployment.traffic or {})
    traffic["weights"] = {str(k): v for k, v in sorted(new.items()) if v > 0}
    deployment.traffic = traffic
    deployment.generation += 1


# Changing --------------------------------------------------------------------------------------


def _resolve(session: Session, project: Project, model: str, version: str | None) -> ModelVersion:
    found = registry.get_model(session, project, model)
    return registry.resolve_version(session, found, version or "latest")


def create_deployment(
    session: Session,
    project: Project,
    name: str,
    *,
    model: str,
    version: str | None,
    replicas: int = 1,
    runtime: RuntimeConfig | None = None,
    policy: Policy | None = None,
    smoke: list[dict[str, Any]] | None = None,
    description: str = "",
    created_by: str | None = None,
) -> tuple[Deployment, Rollout]:
    """A deployment with revision 1 and the rollout that verifies it and sends it traffic."""
    check_deployment_name(name)
    check_replicas(replicas)
    existing = session.scalar(select(Deployment).where(Deployment.name == name))
    if existing is not None:
        taken_here = existing.project_id == project.id
        raise ConflictError(
            f"Deployment name {name!r} is taken"
            + (
                " (it is being deleted)."
                if taken_here and existing.state == "deleting"
                else (" in this project." if taken_here else " (names are unique across projects).")
            ),
            field="name",
            value=name,
            fix=f"Send another `name` (`funade deploy --name`), or roll out a new revision of "
            f"{name!r}: PATCH /api/v1/deployments/{name} (`funade deploy {model} --name {name}`).",
        )
    target = _resolve(session, project, model, version)
    deployment = Deployment(
        project_id=project.id,
        name=name,
        model_id=target.model_id,
        description=description,
        traffic={"weights": {}},
        policy=(policy or Policy()).model_dump(mode="json"),
    )
    session.add(deployment)
    session.flush()
    revision = _new_revision(deployment, target, replicas, runtime, smoke, created_by)
    rollout = _new_rollout(session, deployment, revision.number, "direct", None, created_by)
    return deployment, rollout


def _new_revision(
    deployment: Deployment,
    version: ModelVersion,
    replicas: int,
    runtime: RuntimeConfig | None,
    smoke: list[dict[str, Any]] | None,
    created_by: str | None,
) -> Revision:
    number = deployment.next_revision
    deployment.next_revision = number + 1
    revision = Revision(
        number=number,
        version_id=version.id,
        version=version,
        runtime=(runtime or RuntimeConfig()).model_dump(mode="json"),
        replicas=replicas,
        smoke=list(smoke or []),
        created_by=created_by,
    )
    deployment.revisions.append(revision)
    return revision


def _new_rollout(
    session: Session,
    deployment: Deployment,
    revision: int,
    strategy: Strategy,
    options: RolloutOptions | None,
    created_by: str | None,
) -> Rollout:
    last = session.scalar(
        select(func.max(Rollout.number)).where(Rollout.deployment_id == deployment.id)
    )
    rollout = Rollout(
        deployment_id=deployment.id,
        number=(last or 0) + 1,
        revision=revision,
        stable_revision=stable_revision(deployment),
        strategy=strategy,
        options=(options or RolloutOptions()).model_dump(mode="json"),
        state="verifying",
        created_by=created_by,
        history=[],
    )
    event(rollout, f"started: {strategy} to revision {revision}")
    session.add(rollout)
    deployment.generation += 1
    session.flush()
    return rollout


def _refuse_during_rollout(session: Session, deployment: Deployment, what: str) -> None:
    running = active_rollout(session, deployment)
    if running is not None:
        raise ConflictError(
            f"Deployment {deployment.name!r} has a rollout to revision {running.revision} in "
            f"progress ({running.state}); {what} would race it.",
            field="deployment",
            value=deployment.name,
            fix=f"Wait for it, or stop it with `funade rollout abort {deployment.name}` "
            f"(or finish it with `funade rollout promote {deployment.name}`).",
        )


def _refuse_if_deleting(deployment: Deployment) -> None:
    if deployment.state == "deleting":
        raise ConflictError(
            f"Deployment {deployment.name!r} is being deleted.",
            field="deployment",
            value=deployment.name,
            fix="Wait until it is gone, then create it again.",
        )


def update_deployment(
    session: Session,
    deployment: Deployment,
    *,
    version: str | None = None,
    replicas: int | None = None,
    runtime: RuntimeConfig | None = None,
    smoke: list[dict[str, Any]] | None = None,
    strategy: Strategy = "direct",
    options: RolloutOptions | None = None,
    policy: Mapping[str, Any] | None = None,
    description: str | None = None,
    created_by: str | None = None,
) -> Rollout | None:
    """Apply a change. A new version, replica count, runtime or smoke requests make a new
    revision, rolled out by ``strategy``; description changes in place, and so does the policy:
    ``policy`` is a merge patch onto the stored one (``merge_policy``: fields left out keep
    their values)."""
    _refuse_if_deleting(deployment)
    if description is not None:
        deployment.description = description
    if policy is not None:
        deployment.policy = merge_policy(deployment.policy, policy).model_dump(mode="json")
        deployment.generation += 1
    if version is None and replicas is None and runtime is None and smoke is None:
        return None
    _refuse_during_rollout(session, deployment, "a new revision")
    base = _base_revision(deployment)
    target = (
        _resolve(session, deployment.project, deployment.model.name, version)
        if version is not None
        else base.version
    )
    count = check_replicas(replicas) if replicas is not None else base.replicas
    config = runtime if runtime is not None else RuntimeConfig.stored(base.runtime)
    checks = smoke if smoke is not None else base.smoke
    if (
        target.id == base.version_id
        and count == base.replicas
        and config.model_dump(mode="json") == base.runtime
        and checks == base.smoke
        and base.status == "verified"
    ):
        return None  # the same as what serves: nothing to roll out
    revision = _new_revision(deployment, target, count, config, checks, created_by)
    session.flush()
    if stable_revision(deployment) is None:
        strategy = "direct"  # nothing to be careful about: no traffic yet
    return _new_rollout(session, deployment, revision.number, strategy, options, created_by)


def _base_revision(deployment: Deployment) -> Revision:
    stable = stable_revision(deployment)
    if stable is not None:
        return get_revision(deployment, stable)
    return deployment.revisions[-1]


def set_traffic(session: Session, deployment: Deployment, new: dict[int, int]) -> None:
    """Weights in percent, summing to 100, over verified revisions."""
    _refuse_if_deleting(deployment)
    _refuse_during_rollout(session, deployment, "setting traffic by hand")
    if not new or sum(new.values()) != 100 or any(w < 0 for w in new.values()):
        raise InvalidInputError(
            f"Traffic weights must be whole percentages adding up to 100; got {new}.",
            field="traffic",
            value=new,
            fix=f"e.g. `funade traffic {deployment.name} rev-1=90 rev-2=10`.",
        )
    for revision in [get_revision(deployment, n, field="traffic") for n in new]:
        if revision.status not in ("verified", "retired"):
            why = revision.detail.get("reason")
            raise ConflictError(
                f"Revision {revision.number} of {deployment.name!r} is "
                f"{revision.status.replace('_', ' ')}"
                + (f" ({why})" if why else "")
                + "; only verified revisions may take traffic.",
                field="traffic",
                value=revision.number,
                fix=(
                    "Its rollout failed: deploy a fixed version with `funade deploy`."
                    if revision.status in ("failed", "rolled_back")
                    else "Roll it out (`funade deploy`) so that it is verified first."
                ),
            )
    set_weights(deployment, new)


def set_shadow(session: Session, deployment: Deployment, revision: int | None) -> None:
    """Mirror every request to ``revision`` (responses discarded), or stop mirroring."""
    _refuse_if_deleting(deployment)
    if revision is not None:
        get_revision(deployment, revision, field="shadow")
    traffic = dict(deployment.traffic or {})
    traffic["shadow"] = revision
    deployment.traffic = traffic
    deployment.generation += 1


def rollback(session: Session, deployment: Deployment, created_by: str | None) -> Rollout:
    """Send all traffic back to the revision that had it before the last finished rollout."""
    _refuse_if_deleting(deployment)
    _refuse_during_rollout(session, deployment, "a rollback")
    current = stable_revision(deployment)
    for past in rollouts(session, deployment, limit=100):
        if (
            past.state == "succeeded"
            and past.stable_revision is not None
            and past.stable_revision != current
        ):
            options = RolloutOptions(verified=True)
            rollout = _new_rollout(
                session, deployment, past.stable_revision, "direct", options, created_by
            )
            event(rollout, f"rollback from revision {current}")
            return rollout
    raise ConflictError(
        f"Deployment {deployment.name!r} has no earlier revision to roll back to.",
        field="deployment",
        value=deployment.name,
        fix="Deploy the version you want with `funade deploy`.",
    )


def delete_deployment(deployment: Deployment) -> None:
    """Stop routing to it and let the controller drain and remove its replicas, then the row."""
    until = now() + timedelta(seconds=DRAIN_SECONDS)
    for revision in deployment.revisions:
        if revision.number in weights(deployment):
            keep_warm(revision, until)
    deployment.state = "deleting"
    deployment.generation += 1


def holder(session: Session, version: ModelVersion) -> str | None:
    """A version is held while a revision of a deployment that still exists points at it."""
    name = session.scalar(
        select(Deployment.name)
        .join(Revision, Revision.deployment_id == Deployment.id)
        .where(Revision.version_id == version.id)
        .limit(1)
    )
    return f"deployment {name!r}" if name is not None else None
