"""The routing table: what the gateway knows of every deployment, read from the store.

The gateway looks at it every second and keeps the last good one when the store cannot be read,
so inference goes on while the store or the control plane is away. A look is one cheap query
(``fingerprint``: how many deployments and replica records there are, the newest change to
either, the sum of the routing generations); only when that differs, or every
``FULL_RELOAD_SECONDS`` regardless, is the whole table read and rebuilt (a few queries and a
policy validation per deployment, which held the gateway's GIL for milliseconds every second).
``TableLoader`` also tells the store what the gateway serves (``funade.deploy.routing``), for
commands that wait for it.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from funade.auth.ipallow import Network, parse_networks
from funade.deploy import routing
from funade.deploy.policy import Policy
from funade.serving.config import DEFAULT_MAX_BATCH_SIZE
from funade.store import Database
from funade.store.schema import Deployment, ReplicaRecord

log = logging.getLogger("funade.gateway")

FULL_RELOAD_SECONDS = 10.0
"""The table is read whole at least this often, even when its fingerprint has not changed (a
backstop for a change no fingerprint column shows, such as a project renamed in the store)."""


@dataclass(frozen=True)
class Route:
    """One deployment as the gateway routes it."""

    id: int
    name: str
    project: str
    policy: Policy
    networks: tuple[Network, ...]
    weights: tuple[tuple[int, int], ...]
    """(revision, percent), in revision order; percents add up to 100."""
    shadow: int | None
    replicas: dict[int, tuple[str, ...]]
    """Ready replica URLs by revision."""
    versions: dict[int, str]
    """``model:version`` by revision (the funade-model-version header)."""
    tokens: dict[str, str] = field(default_factory=dict)
    """What each replica (by URL) wants presented: ``Authorization: Bearer <token>``."""
    generation: int = 0
    """The deployment's routing generation this route was loaded at."""
    max_batch: dict[int, int] = field(default_factory=dict)
    """Each revision's ``max_batch_size``: the most rows the gateway merges into one call."""

    def credential(self, url: str) -> list[tuple[str, str]]:
        """The header that lets the gateway in at replica ``url`` (none if it wants none)."""
        token = self.tokens.get(url)
        return [("authorization", f"Bearer {token}")] if token else []

    def pick(self, sticky: str | None) -> list[int]:
        """Revisions to try, best first: one drawn by weight (stably for a ``sticky`` key), then
        the others that take traffic, then any with ready replicas."""
        order: list[int] = []
        if self.weights:
            if sticky is not None:
                digest = hashlib.sha256(f"{self.name}\0{sticky}".encode()).digest()
                point = int.from_bytes(digest[:8], "big") % 100
            else:
                point = random.randrange(100)  # noqa: S311 - load spreading, not security
            total = 0
            for revision, percent in self.weights:
                total += percent
                if point < total:
                    order.append(revision)
                    break
            order += [r for r, _ in self.weights if r not in order]
        return order


@dataclass(frozen=True)
class RoutingTable:
    routes: dict[str, Route] = field(default_factory=dict)
    loaded_at: float = 0.0


def load_table(db: Database, now: float) -> RoutingTable:
    """The routes of every active deployment, from one read transaction."""
    routes: dict[str, Route] = {}
    with db.read() as session:
        ready: dict[int, dict[int, list[str]]] = {}
        tokens: dict[int, dict[str, str]] = {}
        for row in session.scalars(select(ReplicaRecord).where(ReplicaRecord.state == "ready")):
            ready.setdefault(row.deployment_id, {}).setdefault(row.revision, []).append(row.url)
            if row.token:
                tokens.setdefault(row.deployment_id, {})[row.url] = row.token
        for deployment in session.scalars(select(Deployment).where(Deployment.state == "active")):
            policy = Policy.model_validate(deployment.policy or {})
            traffic = deployment.traffic or {}
            weights = tuple(
                sorted((int(k), int(v)) for k, v in traffic.get("weights", {}).items() if v)
            )
            shadow = traffic.get("shadow")
            routes[deployment.name] = Route(
                id=deployment.id,
                name=deployment.name,
                project=deployment.project.name,
                policy=policy,
                networks=parse_networks(policy.allow_cidrs),
                weights=weights,
                shadow=int(shadow) if shadow is not None else None,
                replicas={
                    revision: tuple(sorted(urls))
                    for revision, urls in ready.get(deployment.id, {}).items()
                },
                versions={
                    r.number: f"{r.version.model.name}:{r.version.number}"
                    for r in deployment.revisions
                },
                tokens=tokens.get(deployment.id, {}),
                generation=deployment.generation,
                max_batch={r.number: _max_batch(r.runtime) for r in deployment.revisions},
            )
    return RoutingTable(routes, now)


def _max_batch(runtime: dict[str, Any] | None) -> int:
    value = (runtime or {}).get("max_batch_size", DEFAULT_MAX_BATCH_SIZE)
    return value if isinstance(value, int) and value >= 1 else DEFAULT_MAX_BATCH_SIZE


def fingerprint(db: Database) -> tuple[Any, ...]:
    """What changes whenever the routing table would: every write to a deployment or a replica
    record sets its ``updated_at`` (a revision added updates its deployment too), a row added
    or deleted changes a count, and a routing change bumps a generation."""
    with db.read() as session:
        deployments = session.execute(
            select(
                func.count(Deployment.id),
                func.max(Deployment.updated_at),
                func.sum(Deployment.generation),
            )
        ).one()
        replicas = session.execute(
            select(func.count(ReplicaRecord.id), func.max(ReplicaRecord.updated_at))
        ).one()
    return (*deployments, *replicas)


def served(table: RoutingTable) -> routing.Served:
    """What a gateway with ``table`` serves: per deployment, the generation it loaded and the
    revisions it has ready replicas for."""
    return {
        str(route.id): {"generation": route.generation, "ready": sorted(route.replicas)}
        for route in table.routes.values()
    }


class TableLoader:
    """Loads the routing table (``load_table``) and records in the store what this gateway
    then serves, when that changed and every ``routing.HEARTBEAT_SECONDS``. A failed record
    is logged (once, until one succeeds) and tried again on the next load; the table is served
    all the same."""

    def __init__(self, db: Database, gateway: str) -> None:
        self.db = db
        self.gateway = gateway
        self._reported: routing.Served | None = None
        self._reported_at = 0.0
        self._table: RoutingTable | None = None
        self._mark: tuple[Any, ...] | None = None
        self._read_at = 0.0
        self.full_loads = 0
        """How many times the whole table was read (the rest were fingerprint looks)."""
        self.report_error = ""
        """Why the last record failed (empty: it did not)."""

    def load(self, now: float) -> RoutingTable:
        """The table as of ``now``: the last one read, if the store's fingerprint is unchanged
        and it was read less than ``FULL_RELOAD_SECONDS`` ago, else read anew."""
        mark = fingerprint(self.db)  # before the read: a change after it shows next time
        fresh = now - self._read_at < FULL_RELOAD_SECONDS
        if self._table is not None and mark == self._mark and fresh:
            table = replace(self._table, loaded_at=now)
        else:
            table = load_table(self.db, now)
            self._mark, self._read_at = mark, now
            self.full_loads += 1
        self._table = table
        serving = served(table)
        if serving != self._reported or now - self._reported_at >= routing.HEARTBEAT_SECONDS:
            try:
                routing.report(self.db, self.gateway, serving, datetime.fromtimestamp(now, UTC))
            except Exception as exc:  # the table is good: serve it; report on the next load
                if not self.report_error:
                    log.warning("could not record the routing this gateway serves: %s", exc)
                self.report_error = f"{type(exc).__name__}: {exc}"
            else:
                self._reported, self._reported_at = serving, now
                self.report_error = ""
        return table

    def forget(self) -> None:
        """Remove this gateway's record (it stops): commands no longer wait for it."""
        try:
            routing.forget(self.db, self.gateway)
        except Exception as exc:
            log.warning("could not remove this gateway's routing record: %s", exc)
