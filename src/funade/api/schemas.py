"""The JSON shapes of the REST API, shared by the server and the Python client (pydantic only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; null on the last page."
    )


# Projects -------------------------------------------------------------------------------------


class ProjectIn(Strict):
    name: str
    description: str = ""


class ProjectOut(BaseModel):
    name: str
    description: str
    created_at: datetime


# Models and versions --------------------------------------------------------------------------


class ModelIn(Strict):
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


class ModelPatch(Strict):
    description: str | None = None
    tags: dict[str, str] | None = None
    archived: bool | None = None


class ModelOut(BaseModel):
    project: str
    name: str
    description: str
    tags: dict[str, str]
    archived: bool
    latest_version: int | None
    aliases: dict[str, int]
    created_at: datetime
    updated_at: datetime


class ArtifactRef(BaseModel):
    digest: str
    size: int


class VersionIn(Strict):
    artifact: str = Field(description="Digest of the uploaded model package, `sha256:<hex>`.")
    golden_examples: list[dict[str, Any]] = Field(default_factory=list)
    lineage: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""


class VersionPatch(Strict):
    description: str | None = None
    tags: dict[str, str] | None = None
    archived: bool | None = None


class VersionOut(BaseModel):
    project: str
    model: str
    version: int
    artifact: ArtifactRef
    flavor: str
    signature: dict[str, Any]
    manifest: dict[str, Any]
    lineage: dict[str, Any]
    params: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str]
    aliases: list[str]
    description: str
    archived: bool
    created_at: datetime
    created_by: str | None
    golden_examples: list[dict[str, Any]] | None = Field(
        default=None, description="Included when one version is fetched, not in lists."
    )

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"


class AliasIn(Strict):
    version: int


class AliasOut(BaseModel):
    model: str
    alias: str
    version: int
    updated_at: datetime


# Keys -----------------------------------------------------------------------------------------


class KeyIn(Strict):
    name: str
    scopes: list[str]
    project: str | None = Field(
        default=None, description="Project the key works in; omit for a global admin key."
    )
    expires_at: datetime | None = None


class KeyOut(BaseModel):
    id: str
    name: str
    project: str | None
    scopes: list[str]
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class NewKeyOut(KeyOut):
    key: str = Field(description="The full key. It is shown once and cannot be read again.")


class WhoAmI(BaseModel):
    key_id: str | None
    name: str
    project: str | None
    scopes: list[str]
    client_ip: str | None


# Audit ----------------------------------------------------------------------------------------


class AuditOut(BaseModel):
    id: int
    at: datetime
    project: str | None
    actor_key_id: str | None
    actor_name: str
    action: str
    target: str
    details: dict[str, Any]
    client_ip: str | None


class Health(BaseModel):
    status: str
    version: str
    database: str
