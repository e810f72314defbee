"""What every part of the client stands on: one HTTP client to the control plane, its errors
made funade errors, and the path of a project."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from funade.client.responses import raise_for_error
from funade.errors import FunadeError

__all__ = ["CHUNK", "ClientBase"]

M = TypeVar("M", bound=BaseModel)
CHUNK = 1024 * 1024


class ClientBase:
    """The plumbing the resources' calls share (``funade.client.Client`` sets it up)."""

    url: str
    project: str
    _http: httpx.Client

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise FunadeError(
                f"Could not reach the funade API at {self.url}: {exc}.",
                fix="Start it with `funade up`, or check FUNADE_URL.",
            ) from exc
        raise_for_error(response)
        return response

    def _get(self, path: str, model: type[M], **params: Any) -> M:
        clean = {k: v for k, v in params.items() if v is not None}
        return model.model_validate(self._request("GET", path, params=clean).json())

    def _p(self, project: str | None) -> str:
        return f"/api/v1/projects/{project or self.project}"
