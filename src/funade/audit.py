"""The audit log: one row per mutation, written in the mutation's own transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from funade.auth.principal import Principal
from funade.pagination import check_limit, decode_cursor, page_of
from funade.store.schema import AuditEvent, Project


def record(
    session: Session,
    principal: Principal,
    action: str,
    target: str,
    *,
    project: Project | None = None,
    **details: Any,
) -> AuditEvent:
    event = AuditEvent(
        project_id=project.id if project is not None else None,
        actor_key_id=principal.key_id,
        actor_name=principal.name,
        action=action,
        target=target,
        details=details,
        client_ip=principal.client_ip,
    )
    session.add(event)
    return event


def list_events(
    session: Session,
    *,
    project: Project | None,
    action: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[AuditEvent], str | None]:
    """Newest first. ``project=None`` lists every project's events and the global ones."""
    check_limit(limit)
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
    if project is not None:
        query = query.where(AuditEvent.project_id == project.id)
    if action:
        query = query.where(AuditEvent.action.startswith(action))
    position = decode_cursor(cursor, {"id": int})
    if position is not None:
        query = query.where(AuditEvent.id < position["id"])
    return page_of(list(session.scalars(query)), limit, lambda row: {"id": row.id})
