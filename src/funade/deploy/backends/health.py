"""How a backend tells STARTING, READY and FAILED apart for a replica that runs: its
``/v2/health/ready``, asked with its token, and what it answered before. One rule for every
backend that health-checks replicas itself (local processes, containers)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from funade.deploy.backends.base import ReplicaState
from funade.deploy.replicaurl import ReplicaHTTP

__all__ = ["UNHEALTHY_AFTER", "Health", "probe"]

UNHEALTHY_AFTER = 3
"""Failed health checks in a row after which a replica that was ready counts as FAILED."""


@dataclass
class Health:
    """What the checks of one replica have seen so far."""

    ever_ready: bool = False
    failures: int = 0


def probe(http: ReplicaHTTP, url: str, token: str, health: Health) -> tuple[ReplicaState, str]:
    """The state of the running replica at ``url`` after one readiness check (and why, when it
    failed): READY once it answered 200, STARTING until then, FAILED after ``UNHEALTHY_AFTER``
    failed checks in a row of a replica that was ready (one failed check is not enough)."""
    try:
        response = http.get(url, "/v2/health/ready", headers={"authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        why = f"health check failed: {exc!r}"
    else:
        if response.status_code == 200:
            health.ever_ready, health.failures = True, 0
            return ReplicaState.READY, ""
        why = f"not ready: {response.text[:200]}"
    health.failures += 1
    if health.ever_ready and health.failures >= UNHEALTHY_AFTER:
        return ReplicaState.FAILED, why
    return (ReplicaState.READY if health.ever_ready else ReplicaState.STARTING), ""
