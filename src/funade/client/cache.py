"""The pipeline cache: the step results a run may reuse."""

from __future__ import annotations

from funade.api.schemas import (
    CacheEntryOut,
    CacheLookupOut,
)
from funade.client.base import ClientBase
from funade.client.responses import is_missing, raise_for_error

__all__ = ["CacheAPI"]


class CacheAPI(ClientBase):
    """The client's calls of cache (mixed into ``funade.client.Client``)."""

    def cache_lookup(self, key: str, *, project: str | None = None) -> CacheEntryOut | None:
        response = self._http.get(f"{self._p(project)}/pipeline-cache/{key}")
        if is_missing(response, "key"):
            return None
        raise_for_error(response)
        return CacheEntryOut.model_validate(response.json())

    def cache_of_pipeline(
        self, pipeline: str, *, project: str | None = None, limit: int | None = None
    ) -> dict[str, CacheEntryOut]:
        """The cached entries written by runs of ``pipeline`` that this key's runs may reuse (the
        newest ``limit``, 1,000 by default), by key."""
        path = f"{self._p(project)}/pipeline-cache"
        return self._get(path, CacheLookupOut, pipeline=pipeline, limit=limit).entries

    def cache_lookup_many(
        self, keys: list[str], *, project: str | None = None
    ) -> dict[str, CacheEntryOut]:
        """The cached entries among ``keys`` (the missing ones are left out)."""
        response = self._request(
            "POST", f"{self._p(project)}/pipeline-cache/lookup", json={"keys": keys}
        )
        return CacheLookupOut.model_validate(response.json()).entries
