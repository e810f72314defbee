"""Liveness and readiness: the only routes that need no key."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from funade import __version__
from funade.api.deps import State
from funade.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
@router.get("/api/v1/health", response_model=Health)
def health(state: State) -> Health:
    with state.db.read() as session:
        session.execute(text("SELECT 1"))
    return Health(status="ok", version=__version__, database=state.db.engine.dialect.name)
