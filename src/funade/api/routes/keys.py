"""API keys: created (shown once), listed, revoked. Admins only."""

from __future__ import annotations

from fastapi import APIRouter

from funade import audit
from funade.api.convert import key_out
from funade.api.deps import Admin, State
from funade.api.schemas import KeyIn, KeyOut, NewKeyOut
from funade.auth import service as keys
from funade.projects import get_project

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


@router.get("", response_model=list[KeyOut])
def list_keys(
    state: State, principal: Admin, project: str | None = None, include_revoked: bool = False
) -> list[KeyOut]:
    """A project admin sees its project's keys; a global admin sees all, or one project's."""
    project = project or principal.project
    with state.db.read() as session:
        if project is not None:
            principal.require("admin", project)
        proj = get_project(session, project) if project is not None else None
        rows = keys.list_keys(session, project=proj, include_revoked=include_revoked)
        return [key_out(r) for r in rows]


@router.post("", response_model=NewKeyOut, status_code=201)
def create_key(body: KeyIn, state: State, principal: Admin) -> NewKeyOut:
    principal.require("admin", body.project)
    with state.db.session() as session:
        proj = get_project(session, body.project) if body.project is not None else None
        text, row = keys.create_key(
            session,
            name=body.name,
            scopes=body.scopes,
            project=proj,
            created_by=principal.key_id,
            expires_at=body.expires_at,
            deployment=body.deployment,
        )
        audit.record(
            session,
            principal,
            "key.create",
            row.id,
            project=proj,
            name=row.name,
            scopes=row.scopes,
            **({"deployment": row.deployment} if row.deployment else {}),
        )
        return NewKeyOut(**key_out(row).model_dump(), key=text)


@router.delete("/{key_id}", response_model=KeyOut)
def revoke_key(key_id: str, state: State, principal: Admin) -> KeyOut:
    with state.db.session() as session:
        row = keys.revoke_key(keys.get_key(session, key_id, principal=principal))
        audit.record(session, principal, "key.revoke", row.id, project=row.project, name=row.name)
        return key_out(row)
