"""Liveness and readiness: the only routes that need no key."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from funade import __version__
from funade.api.deps import State
from funade.api.schemas import Health

router = APIRouter(tags=["health"])
log = logging.getLogger("funade.api")

UNREACHABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "The metadata store cannot be reached: "
        '`{"status": "unavailable", "version", "database", "error": {"code", "message", "fix"}}`'
    }
}


@router.get("/healthz", response_model=Health, responses=UNREACHABLE)
@router.get("/api/v1/health", response_model=Health, responses=UNREACHABLE)
def health(state: State) -> Health | JSONResponse:
    dialect = state.db.engine.dialect.name
    try:
        with state.db.read() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        # The store's own words go to the log (an operator's), never to an unauthenticated
        # caller: they can name the host, the database and the user.
        log.warning("health check: the metadata store (%s) is unreachable: %s", dialect, exc)
        body = {
            "status": "unavailable",
            "version": __version__,
            "database": dialect,
            "error": {
                "code": "store_unreachable",
                "message": f"The metadata store ({dialect}) cannot be reached.",
                "fix": "Check that the database is up and reachable from this server, and "
                "the server's log for the store's own error.",
            },
        }
        return JSONResponse(body, status_code=503)
    return Health(status="ok", version=__version__, database=dialect)
