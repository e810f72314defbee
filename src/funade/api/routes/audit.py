"""The audit log: who changed what, when, from where. Admins only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from funade import audit
from funade.api.convert import audit_out
from funade.api.deps import Admin, State
from funade.api.params import Cursor
from funade.api.schemas import AuditOut, Page
from funade.projects import get_project
from funade.store.schema import Project

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("", response_model=Page[AuditOut])
def list_audit(
    state: State,
    principal: Admin,
    project: str | None = None,
    action: Annotated[str | None, Query(description="Prefix, e.g. 'key.' or 'alias.set'.")] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[AuditOut]:
    project = project or principal.project
    with state.db.read() as session:
        if project is not None:
            principal.require("admin", project)
        proj = get_project(session, project) if project is not None else None
        rows, next_cursor = audit.list_events(
            session, project=proj, action=action, cursor=cursor, limit=limit
        )
        names = dict(session.execute(select(Project.id, Project.name)).all())
        return Page(items=[audit_out(r, names) for r in rows], next_cursor=next_cursor)
