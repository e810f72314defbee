"""Projects and the caller's identity."""

from __future__ import annotations

from funade.api.schemas import (
    ProjectOut,
    WhoAmI,
)
from funade.client.base import ClientBase

__all__ = ["ProjectsAPI"]


class ProjectsAPI(ClientBase):
    """The client's calls of projects (mixed into ``funade.client.Client``)."""

    def whoami(self) -> WhoAmI:
        return self._get("/api/v1/whoami", WhoAmI)

    def list_projects(self) -> list[ProjectOut]:
        rows = self._request("GET", "/api/v1/projects").json()
        return [ProjectOut.model_validate(r) for r in rows]

    def create_project(self, name: str, description: str = "") -> ProjectOut:
        body = {"name": name, "description": description}
        return ProjectOut.model_validate(
            self._request("POST", "/api/v1/projects", json=body).json()
        )

    def update_project(
        self, name: str, *, description: str | None = None, trust_code: bool | None = None
    ) -> ProjectOut:
        body = {
            k: v
            for k, v in {"description": description, "trust_code": trust_code}.items()
            if v is not None
        }
        return ProjectOut.model_validate(
            self._request("PATCH", f"/api/v1/projects/{name}", json=body).json()
        )
