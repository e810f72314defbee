"""Deployments: their revisions, traffic, rollouts and statistics."""

from __future__ import annotations

from typing import Any

from funade.api.schemas import (
    DeploymentOut,
    DeploymentStatsOut,
    RolloutOut,
    TrafficIn,
)
from funade.client.base import ClientBase

__all__ = ["DeploymentsAPI"]


class DeploymentsAPI(ClientBase):
    """The client's calls of deployments (mixed into ``funade.client.Client``)."""

    def create_deployment(self, model: str, **fields: Any) -> DeploymentOut:
        """``create_deployment("churn", version="3", replicas=2)``: see ``DeploymentIn``
        (the server checks the fields)."""
        body = {"model": model, **fields}
        body.setdefault("project", self.project)
        response = self._request("POST", "/api/v1/deployments", json=body)
        return DeploymentOut.model_validate(response.json())

    def list_deployments(self, *, project: str | None = None) -> list[DeploymentOut]:
        rows = self._request(
            "GET", "/api/v1/deployments", params={"project": project or self.project}
        ).json()
        return [DeploymentOut.model_validate(r) for r in rows]

    def get_deployment(self, name: str) -> DeploymentOut:
        return self._get(f"/api/v1/deployments/{name}", DeploymentOut)

    def update_deployment(self, name: str, **changes: Any) -> DeploymentOut:
        """A new ``version``/``replicas``/``runtime``/``smoke`` rolls out a new revision by
        ``rollout={"strategy": "canary", "steps": [10, 50, 100]}``; see ``DeploymentPatch``."""
        body = {k: v for k, v in changes.items() if v is not None}
        response = self._request("PATCH", f"/api/v1/deployments/{name}", json=body)
        return DeploymentOut.model_validate(response.json())

    def delete_deployment(self, name: str) -> DeploymentOut:
        response = self._request("DELETE", f"/api/v1/deployments/{name}")
        return DeploymentOut.model_validate(response.json())

    def set_traffic(
        self,
        name: str,
        weights: dict[int, int] | None = None,
        *,
        shadow: int | None = None,
        clear_shadow: bool = False,
    ) -> DeploymentOut:
        body = TrafficIn(weights=weights, shadow=shadow, clear_shadow=clear_shadow)
        response = self._request(
            "PUT", f"/api/v1/deployments/{name}/traffic", json=body.model_dump(mode="json")
        )
        return DeploymentOut.model_validate(response.json())

    def list_rollouts(self, name: str, *, limit: int = 20) -> list[RolloutOut]:
        rows = self._request(
            "GET", f"/api/v1/deployments/{name}/rollouts", params={"limit": limit}
        ).json()
        return [RolloutOut.model_validate(r) for r in rows]

    def rollout_action(self, name: str, action: str) -> RolloutOut:
        """``promote`` or ``abort`` the deployment's rollout in progress."""
        response = self._request("POST", f"/api/v1/deployments/{name}/rollout/{action}")
        return RolloutOut.model_validate(response.json())

    def deployment_stats(self, name: str, *, seconds: float = 300) -> DeploymentStatsOut:
        """Per-revision requests, errors and latency over the last ``seconds``."""
        return self._get(f"/api/v1/deployments/{name}/stats", DeploymentStatsOut, seconds=seconds)

    def rollback(self, name: str) -> RolloutOut:
        response = self._request("POST", f"/api/v1/deployments/{name}/rollback")
        return RolloutOut.model_validate(response.json())
