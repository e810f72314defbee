"""The model registry: models, their versions and their aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from funade.api.schemas import (
    AliasOut,
    ModelOut,
    Page,
    VersionIn,
    VersionOut,
)
from funade.client.base import ClientBase

__all__ = ["ModelsAPI"]


class ModelsAPI(ClientBase):
    """The client's calls of models (mixed into ``funade.client.Client``)."""

    def list_models(
        self,
        *,
        query: str | None = None,
        archived: bool | None = False,
        cursor: str | None = None,
        limit: int = 50,
        project: str | None = None,
    ) -> Page[ModelOut]:
        params = {"q": query, "archived": archived, "cursor": cursor, "limit": limit}
        return self._get(f"{self._p(project)}/models", Page[ModelOut], **params)

    def get_model(self, name: str, *, project: str | None = None) -> ModelOut:
        return self._get(f"{self._p(project)}/models/{name}", ModelOut)

    def update_model(self, name: str, *, project: str | None = None, **changes: Any) -> ModelOut:
        body = {k: v for k, v in changes.items() if v is not None}
        response = self._request("PATCH", f"{self._p(project)}/models/{name}", json=body)
        return ModelOut.model_validate(response.json())

    def delete_model(self, name: str, *, project: str | None = None) -> None:
        self._request("DELETE", f"{self._p(project)}/models/{name}")

    def list_versions(
        self,
        model: str,
        *,
        tags: list[str] | None = None,
        metrics: list[str] | None = None,
        archived: bool | None = None,
        cursor: str | None = None,
        limit: int = 50,
        project: str | None = None,
    ) -> Page[VersionOut]:
        params = {
            "tag": tags,
            "metric": metrics,
            "archived": archived,
            "cursor": cursor,
            "limit": limit,
        }
        return self._get(f"{self._p(project)}/models/{model}/versions", Page[VersionOut], **params)

    def iter_versions(self, model: str, **filters: Any) -> Iterator[VersionOut]:
        cursor: str | None = None
        while True:
            page = self.list_versions(model, cursor=cursor, **filters)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get_version(
        self, model: str, ref: str | int = "latest", *, project: str | None = None
    ) -> VersionOut:
        """``ref``: a number, an alias, or ``latest``."""
        return self._get(f"{self._p(project)}/models/{model}/versions/{ref}", VersionOut)

    def create_version(
        self, model: str, body: VersionIn, *, project: str | None = None
    ) -> VersionOut:
        path = f"{self._p(project)}/models/{model}/versions"
        response = self._request("POST", path, json=body.model_dump(mode="json"))
        return VersionOut.model_validate(response.json())

    def update_version(
        self, model: str, version: int, *, project: str | None = None, **changes: Any
    ) -> VersionOut:
        body = {k: v for k, v in changes.items() if v is not None}
        path = f"{self._p(project)}/models/{model}/versions/{version}"
        return VersionOut.model_validate(self._request("PATCH", path, json=body).json())

    def delete_version(self, model: str, version: int, *, project: str | None = None) -> None:
        self._request("DELETE", f"{self._p(project)}/models/{model}/versions/{version}")

    def set_alias(
        self, model: str, alias: str, version: int, *, project: str | None = None
    ) -> AliasOut:
        path = f"{self._p(project)}/models/{model}/aliases/{alias}"
        return AliasOut.model_validate(self._request("PUT", path, json={"version": version}).json())

    def delete_alias(self, model: str, alias: str, *, project: str | None = None) -> None:
        self._request("DELETE", f"{self._p(project)}/models/{model}/aliases/{alias}")

    def list_aliases(self, model: str, *, project: str | None = None) -> list[AliasOut]:
        rows = self._request("GET", f"{self._p(project)}/models/{model}/aliases").json()
        return [AliasOut.model_validate(r) for r in rows]
