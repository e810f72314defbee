"""What the gateways serve: each records, per deployment, the routing ``generation`` it has
loaded and the revisions it has ready replicas for (``GatewayRecord``), so a command that
changes routing can wait until every running gateway serves the change, or say why not.

A gateway writes its record when what it serves changes and at least every
``HEARTBEAT_SECONDS``; one not heard of for ``LIVE_SECONDS`` is taken to be gone (a gateway
stopped cleanly removes its record at once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from funade.store import Database
from funade.store.schema import Deployment, GatewayRecord

log = logging.getLogger("funade.gateway")

HEARTBEAT_SECONDS = 10.0
LIVE_SECONDS = 30.0
FORGET_SECONDS = 3600.0
"""A record not written for this long (its gateway was killed) is removed when another starts."""
RELOAD_SECONDS = 1.0
"""How often a gateway reloads its routing table (every 0.2 s for 30 s after it changed)."""

Served = dict[str, dict[str, Any]]
"""{"<deployment id>": {"generation": n, "ready": [revision, …]}}: what a gateway serves."""


def report(db: Database, gateway: str, served: Served, now: datetime) -> None:
    """Record what ``gateway`` serves as of ``now``."""
    with db.session() as session:
        row = session.get(GatewayRecord, gateway)
        if row is None:  # this gateway starts: records of killed ones go
            gone = now - timedelta(seconds=FORGET_SECONDS)
            session.execute(delete(GatewayRecord).where(GatewayRecord.seen_at < gone))
            session.add(GatewayRecord(id=gateway, routes=served, started_at=now, seen_at=now))
        else:
            row.routes = served
            row.seen_at = now


def forget(db: Database, gateway: str) -> None:
    """A gateway that stops removes its record (commands then wait for it no longer)."""
    with db.session() as session:
        session.execute(delete(GatewayRecord).where(GatewayRecord.id == gateway))


@dataclass(frozen=True)
class GatewayView:
    """One running gateway as a deployment sees it."""

    gateway: str
    generation: int | None
    """The deployment's routing generation it has loaded (None: it has not loaded it)."""
    ready: tuple[int, ...]
    """Revisions it has ready replicas for."""
    seen_at: datetime

    def serves(self, generation: int, wanted: tuple[int, ...]) -> bool:
        """Whether it serves routing at least as new as ``generation``, with replicas for every
        revision in ``wanted``."""
        return (
            self.generation is not None
            and self.generation >= generation
            and set(wanted) <= set(self.ready)
        )

    def lacks(self, generation: int, wanted: tuple[int, ...]) -> str:
        """What it does not serve yet, in words (empty: it serves it)."""
        if self.generation is None:
            return "has not loaded the deployment yet"
        if self.generation < generation:
            return f"has routing generation {self.generation} of {generation} loaded"
        missing = [n for n in wanted if n not in self.ready]
        if missing:
            revisions = ", ".join(f"rev-{n}" for n in missing)
            return f"has no ready replica of {revisions} yet"
        return ""


def wanted(deployment: Deployment) -> tuple[int, ...]:
    """The revisions the deployment's routing sends requests to: traffic and the shadow."""
    traffic = deployment.traffic or {}
    out = {int(k) for k, v in (traffic.get("weights") or {}).items() if int(v) > 0}
    if traffic.get("shadow") is not None:
        out.add(int(traffic["shadow"]))
    return tuple(sorted(out))


def gateways(session: Session, deployment_id: int, now: datetime) -> list[GatewayView]:
    """The running gateways (heard of in the last ``LIVE_SECONDS``) and what each serves of
    the deployment."""
    since = now - timedelta(seconds=LIVE_SECONDS)
    rows = session.scalars(
        select(GatewayRecord).where(GatewayRecord.seen_at >= since).order_by(GatewayRecord.id)
    )
    out = []
    for row in rows:
        entry = (row.routes or {}).get(str(deployment_id))
        out.append(
            GatewayView(
                gateway=row.id,
                generation=int(entry["generation"]) if entry else None,
                ready=tuple(int(n) for n in entry["ready"]) if entry else (),
                seen_at=row.seen_at,
            )
        )
    return out


def now() -> datetime:
    return datetime.now(UTC)
