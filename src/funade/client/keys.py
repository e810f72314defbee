"""API keys (and try-it tokens) and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from funade.api.schemas import (
    AuditOut,
    KeyOut,
    NewKeyOut,
    Page,
)
from funade.client.base import ClientBase

__all__ = ["KeysAPI"]


class KeysAPI(ClientBase):
    """The client's calls of keys (mixed into ``funade.client.Client``)."""

    def create_key(
        self,
        name: str,
        scopes: list[str],
        *,
        project: str | None = None,
        expires_at: datetime | None = None,
        deployment: str | None = None,
        kind: str = "key",
        allow_cidrs: list[str] | None = None,
    ) -> NewKeyOut:
        """A new key (its text is in ``.key``, shown once). ``kind="group"``: a try-it token
        for ``deployment`` with an expiry (``.try_url``, ``.qr_svg``); ``allow_cidrs``: the
        networks it may be used from."""
        body: dict[str, Any] = {
            "name": name,
            "scopes": scopes,
            "project": project,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "deployment": deployment,
        }
        if kind != "key":
            body["kind"] = kind
        if allow_cidrs:
            body["allow_cidrs"] = allow_cidrs
        return NewKeyOut.model_validate(self._request("POST", "/api/v1/keys", json=body).json())

    def list_keys(
        self, *, project: str | None = None, include_revoked: bool = False, kind: str | None = None
    ) -> list[KeyOut]:
        params: dict[str, Any] = {"include_revoked": include_revoked}
        if project:
            params["project"] = project
        if kind:
            params["kind"] = kind
        rows = self._request("GET", "/api/v1/keys", params=params).json()
        return [KeyOut.model_validate(r) for r in rows]

    def revoke_key(self, key_id: str) -> KeyOut:
        return KeyOut.model_validate(self._request("DELETE", f"/api/v1/keys/{key_id}").json())

    def audit(
        self,
        *,
        project: str | None = None,
        action: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[AuditOut]:
        params = {"project": project, "action": action, "cursor": cursor, "limit": limit}
        return self._get("/api/v1/audit", Page[AuditOut], **params)
