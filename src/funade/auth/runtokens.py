"""Run tokens: the one credential a pipeline run's runner and steps hold.

The control plane makes one when a run is created (or a queued run is launched, or a run is
resumed): a key of kind ``run`` bound to that run, in its project, with the internal scope
``run`` (read the project, upload artifacts, report this run and no other) and the model
permissions its pipeline declares (``@funade.pipeline(permissions=["register:churn",
"deploy:churn"])``, or ``deploy-code``), each checked against what the key that started the run
may do: a run never gets more than its starter, never admin, and never another project. The token
expires after ``run_token_hours`` and is revoked when its run ends or a new attempt starts;
revoking the starting key revokes it too (it is that key's child).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from funade.auth.permissions import check_permissions
from funade.auth.principal import CODE_SCOPE, RUN_SCOPE, Principal
from funade.auth.service import create_key, principal_for
from funade.errors import PermissionDeniedError
from funade.store.schema import ApiKey, Project, utcnow

__all__ = ["grant_declared", "issue", "revoke_for_run", "trust_of"]

KIND = "run"


def _check_cap(permissions: list[str], starter: Principal, project: Project) -> None:
    """Raise unless ``starter`` may do everything ``permissions`` ask, in ``project``."""
    for permission in permissions:
        if permission == CODE_SCOPE:
            if project.trust_code or CODE_SCOPE in starter.granted:
                continue
            what = f"the {CODE_SCOPE!r} scope"
        else:
            action, _, model = permission.partition(":")
            if starter.may(action, project.name, model):  # type: ignore[arg-type]
                continue
            what = f"the write scope in project {project.name!r}"
        raise PermissionDeniedError(
            f"The pipeline asks for permission {permission!r}, which key {starter.name!r} "
            f"cannot give its run: that needs {what}.",
            field="permissions",
            value=permission,
            fix="Start the run with a key that may do it, or drop the permission from "
            "@funade.pipeline(permissions=[...]).",
        )


def issue(
    session: Session,
    *,
    run_id: int,
    project: Project,
    starter: Principal,
    permissions: list[str],
    hours: float,
) -> str:
    """A new token for run ``run_id`` (its text, to hand to the runner once); revokes the run's
    earlier tokens. PermissionDeniedError if ``starter`` cannot give ``permissions``."""
    if starter.kind == KIND:
        raise PermissionDeniedError(
            f"Run {starter.run_id}'s token cannot start other runs.",
            field="scope",
            value=sorted(starter.scopes),
            fix="Start runs with a key that has the write scope.",
        )
    permissions = check_permissions(permissions)
    _check_cap(permissions, starter, project)
    revoke_for_run(session, run_id)
    scopes: list[str] = [RUN_SCOPE, *([CODE_SCOPE] if CODE_SCOPE in permissions else [])]
    text, _row = create_key(
        session,
        name=f"run {run_id}",
        scopes=scopes,
        project=project,
        created_by=starter.key_id,
        expires_at=utcnow() + timedelta(hours=hours),
        kind=KIND,
        parent_id=_owner(session, starter),
        run_id=run_id,
        grants=[p for p in permissions if p != CODE_SCOPE],
    )
    return text


def grant_declared(
    session: Session,
    token_id: str,
    *,
    project: Project,
    starter_id: str | None,
    spec_permissions: list[str],
) -> None:
    """Give a queued run's token the permissions its pipeline declares, now that its runner
    compiled it, as far as the key that queued the run (``starter_id``) may give them."""
    permissions = check_permissions(spec_permissions, field="spec.permissions")
    if not permissions:
        return
    starter_row = session.get(ApiKey, starter_id) if starter_id else None
    if starter_row is None or starter_row.revoked_at is not None:
        raise PermissionDeniedError(
            "The key that queued this run is gone, so its run may not get "
            f"{', '.join(permissions)}.",
            field="permissions",
            value=permissions,
            fix="Queue the run (or make its schedule) again with a valid key.",
        )
    _check_cap(permissions, principal_for(starter_row), project)
    token = session.get(ApiKey, token_id)
    assert token is not None
    token.grants = [p for p in permissions if p != CODE_SCOPE]
    token.scopes = [RUN_SCOPE, *([CODE_SCOPE] if CODE_SCOPE in permissions else [])]


def _owner(session: Session, starter: Principal) -> str | None:
    """The key a run token hangs off, so revoking it revokes the token: the starter itself, or
    for a dashboard session the key it was signed in with."""
    if starter.kind == "session" and starter.key_id is not None:
        row = session.get(ApiKey, starter.key_id)
        return row.parent_id if row is not None else starter.key_id
    return starter.key_id


def revoke_for_run(session: Session, run_id: int) -> None:
    """Revoke every token of run ``run_id`` (its run ended, or a new attempt starts)."""
    session.execute(
        update(ApiKey)
        .where(ApiKey.run_id == run_id, ApiKey.kind == KIND, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def trust_of(principal: Principal) -> list[str]:
    """What a run's token can do beyond reading, as stored with the cache entries it writes."""
    extra = {s for s in principal.scopes if s not in (RUN_SCOPE, "read")}
    return sorted(extra | set(principal.grants))
