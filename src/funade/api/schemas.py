"""The JSON shapes of the REST API, shared by the server and the Python client (pydantic only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, field_validator

# pydantic-only modules: the server's and the client's view of deployment options
from funade.deploy.backends.base import RuntimeConfig
from funade.deploy.policy import Policy
from funade.deploy.rollout import Analysis, Strategy, check_steps

# Pipeline runs, their cache and schedules: shapes the pipelines own, re-exported for the routes
# and the client; the request fields with the store's limits (funade.shapes) are shared too.
from funade.pipelines.schemas import (
    CacheEntryOut,
    CacheLookupIn,
    CacheLookupOut,
    LaunchIn,
    RunAttemptIn,
    RunEventsIn,
    RunEventsOut,
    RunIn,
    RunOut,
    RunUpdate,
    ScheduleIn,
    ScheduleOut,
    SchedulePatch,
    StepRecord,
)
from funade.shapes import (
    Count,
    Description,
    Digest,
    Instant,
    Int32,
    Metrics,
    Name,
    Number,
    Params,
    ProjectName,
    Short,
    Source,
    Strict,
    Tags,
    Word,
)

__all__ = [
    "AliasIn",
    "AliasOut",
    "ArtifactRef",
    "AuditOut",
    "CacheEntryOut",
    "CacheLookupIn",
    "CacheLookupOut",
    "Count",
    "DeploymentIn",
    "DeploymentOut",
    "DeploymentPatch",
    "DeploymentStatsOut",
    "Description",
    "Digest",
    "ErrorDetail",
    "ErrorOut",
    "Health",
    "Instant",
    "Int32",
    "KeyIn",
    "KeyOut",
    "LaunchIn",
    "Metrics",
    "ModelIn",
    "ModelOut",
    "ModelPatch",
    "Name",
    "NewKeyOut",
    "Number",
    "Page",
    "Params",
    "ProjectIn",
    "ProjectName",
    "ProjectOut",
    "ProjectPatch",
    "ReplicaOut",
    "RevisionOut",
    "RevisionStatsOut",
    "RolloutIn",
    "RolloutOut",
    "RunAttemptIn",
    "RunEventsIn",
    "RunEventsOut",
    "RunIn",
    "RunOut",
    "RunUpdate",
    "ScheduleIn",
    "ScheduleOut",
    "SchedulePatch",
    "Short",
    "SmokeRequest",
    "Source",
    "StepRecord",
    "Strict",
    "Tags",
    "TrafficIn",
    "VersionIn",
    "VersionOut",
    "VersionPatch",
    "WhoAmI",
    "Word",
]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; null on the last page."
    )


# Projects -------------------------------------------------------------------------------------


class ProjectIn(Strict):
    name: ProjectName
    description: Description = ""


class ProjectPatch(Strict):
    description: str | None = None
    trust_code: bool | None = Field(
        default=None,
        description="Let write keys deploy models whose loading runs code (pickles, Python "
        "classes) and schedule pipelines, without the deploy-code scope. Admins only.",
    )


class ProjectOut(BaseModel):
    name: str
    description: str
    created_at: datetime
    trust_code: bool = Field(
        default=False,
        description="Whether write keys may deploy code without the deploy-code scope.",
    )


# Models and versions --------------------------------------------------------------------------


class ModelIn(Strict):
    name: Name
    description: Description = ""
    tags: Tags = Field(default_factory=dict)


class ModelPatch(Strict):
    description: Description | None = None
    tags: Tags | None = None
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
    artifact: Digest = Field(description="Digest of the uploaded model package, `sha256:<hex>`.")
    golden_examples: list[dict[str, Any]] = Field(default_factory=list)
    lineage: dict[str, Any] = Field(default_factory=dict)
    params: Params = Field(default_factory=dict)
    metrics: Metrics = Field(default_factory=dict)
    tags: Tags = Field(default_factory=dict)
    description: Description = ""


class VersionPatch(Strict):
    description: Description | None = None
    tags: Tags | None = None
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
    version: Number


class AliasOut(BaseModel):
    model: str
    alias: str
    version: int
    updated_at: datetime


# Keys -----------------------------------------------------------------------------------------


class KeyIn(Strict):
    name: Name
    scopes: list[Word] = Field(max_length=8)
    project: ProjectName | None = Field(
        default=None, description="Project the key works in; omit for a global admin key."
    )
    expires_at: Instant | None = None
    deployment: Short | None = Field(
        default=None, description="Limit a predict key to this deployment."
    )
    kind: Literal["key", "group"] = Field(
        default="key",
        description="group: a try-it token for one deployment, with an expiry, handed to a "
        "group of people as a QR code.",
    )
    allow_cidrs: list[Short] | None = Field(
        default=None,
        max_length=256,
        description="Networks the key may be used from (omit: anywhere).",
    )


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
    deployment: str | None = None
    kind: str = "key"
    allow_cidrs: list[str] | None = None
    predictions: int = Field(default=0, description="Predictions made with it at the gateway.")


class NewKeyOut(KeyOut):
    key: str = Field(description="The full key. It is shown once and cannot be read again.")
    try_url: str | None = Field(
        default=None,
        description="For a deployment key: the gateway's try-it page, signed in with this key "
        "(shown once, like the key).",
    )
    qr_svg: str | None = Field(default=None, description="``try_url`` as a QR code (SVG).")
    gateway_url: str | None = Field(
        default=None,
        description="For a deployment key: the gateway it predicts at, as the caller reaches "
        "it (the `gateway_url` setting, else this API's host at the gateway's port).",
    )
    gateway_warning: str | None = Field(
        default=None,
        description="Why other machines (phones scanning the QR code) cannot reach "
        "``gateway_url``, and the fix; absent when they may.",
    )


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


# Deployments ----------------------------------------------------------------------------------


class SmokeRequest(Strict):
    """An Open Inference Protocol request and the outputs it must give, within tolerances."""

    inputs: list[dict[str, Any]] = Field(min_length=1)
    outputs: list[dict[str, Any]] = Field(min_length=1)
    rtol: float = Field(default=1e-5, ge=0)
    atol: float = Field(default=1e-8, ge=0)


class RolloutIn(Strict):
    """How a new revision is rolled out (the defaults of funade.deploy.rollout apply)."""

    strategy: Strategy = "direct"
    steps: list[Int32] | None = Field(
        default=None, max_length=100, description="Canary weights, e.g. [10, 50, 100]."
    )
    pause_seconds: float | None = Field(default=None, ge=0)
    warm_seconds: float | None = Field(default=None, ge=0)
    ready_timeout_seconds: float | None = Field(default=None, gt=0)
    analysis: Analysis | None = None

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[int] | None) -> list[int] | None:
        return None if steps is None else check_steps(steps)


class DeploymentIn(Strict):
    name: Short | None = Field(default=None, description="Default: the model's name.")
    project: ProjectName | None = Field(default=None, description="Default: the key's project.")
    model: Name
    version: Short | None = Field(
        default=None, description="A number or an alias, pinned now (default: the latest)."
    )
    replicas: Int32 = 1
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    policy: Policy = Field(default_factory=Policy)
    smoke: list[SmokeRequest] = Field(default_factory=list)
    description: Description = ""


class DeploymentPatch(Strict):
    version: Short | None = None
    replicas: Int32 | None = None
    runtime: RuntimeConfig | None = None
    smoke: list[SmokeRequest] | None = None
    policy: dict[str, Any] | None = Field(
        default=None,
        description="Changes to the gateway policy, merged into the stored one (a JSON merge "
        "patch, RFC 7396): fields left out keep their values, a field set to null goes back to "
        "its default, a rate limit merges field by field, `allow_cidrs` is replaced whole. "
        "The fields are those of `policy` on a new deployment.",
    )
    description: Description | None = None
    rollout: RolloutIn = Field(default_factory=RolloutIn)


class TrafficIn(Strict):
    weights: dict[Int32, Int32] | None = Field(
        default=None, description="Percent by revision number, adding up to 100."
    )
    shadow: Int32 | None = Field(default=None, description="Revision to mirror requests to.")
    clear_shadow: bool = False


class ReplicaOut(BaseModel):
    id: str
    revision: int
    url: str
    state: str
    detail: str = Field(
        default="",
        description="Why the replica is in its state, when there is more to say: "
        '"building image TAG" while a container backend builds its image, a failure\'s reason.',
    )


class RevisionOut(BaseModel):
    number: int
    model: str
    version: int
    replicas: int
    runtime: dict[str, Any]
    status: str = Field(
        description="What happened to it: pending, verifying, verified, failed (verification "
        "or its replicas), rolled_back (its canary failed analysis), aborted (stopped before "
        "it was verified)."
    )
    detail: dict[str, Any] = Field(description="Why it failed, was rolled back or aborted.")
    warm_until: datetime | None
    created_at: datetime


class RolloutOut(BaseModel):
    id: int
    number: int = Field(description="1, 2, … within its deployment (``id`` is global).")
    deployment: str
    revision: int
    stable_revision: int | None
    strategy: str
    state: str
    step: int
    options: dict[str, Any]
    next_at: datetime | None
    reason: str
    history: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime


class GatewayRoutingOut(BaseModel):
    gateway: str = Field(description="The gateway's id (the one in its traffic figures).")
    generation: int | None = Field(
        description="The deployment's routing generation it has loaded (null: none yet)."
    )
    ready: list[int] = Field(description="Revisions it has ready replicas for.")
    serving: bool = Field(
        description="It serves the current routing: this generation or newer, with replicas "
        "for every revision in `wanted`."
    )
    waiting_for: str = Field(description="What it does not serve yet, in words (empty if none).")
    seen_at: datetime


class RoutingOut(BaseModel):
    """Whether the running gateways serve the deployment's current routing."""

    generation: int = Field(description="Grows with every change the gateways must load.")
    wanted: list[int] = Field(
        description="Revisions the routing sends requests to (traffic, shadow)."
    )
    gateways: list[GatewayRoutingOut] = Field(
        description="The gateways heard of in the last 30 s (a stopped one leaves at once)."
    )
    served: bool = Field(description="At least one gateway runs, and every one serves it.")
    reload_seconds: float = Field(
        description="How often gateways reload their routing table: a gateway that starts or "
        "comes back serves the change within this time."
    )


class DeploymentOut(BaseModel):
    project: str
    name: str
    model: str
    description: str
    state: str
    traffic: dict[int, int]
    shadow: int | None
    policy: dict[str, Any]
    revisions: list[RevisionOut]
    replicas: list[ReplicaOut]
    rollout: RolloutOut | None = Field(description="The newest rollout.")
    routing: RoutingOut | None = Field(
        default=None, description="Whether the running gateways serve its current routing."
    )
    controller: bool = Field(
        default=True,
        description="False when no controller runs with this API (start one with `funade up`).",
    )
    created_at: datetime
    updated_at: datetime


class RevisionStatsOut(BaseModel):
    revision: int
    requests: int
    errors: int
    error_rate: float
    requests_per_second: float
    p50_ms: float | None = Field(description="Upper bound of the latency bucket of the median.")
    p99_ms: float | None


class DeploymentStatsOut(BaseModel):
    deployment: str
    seconds: float = Field(description="The span the figures cover, ending now.")
    revisions: list[RevisionStatsOut]


# Errors ---------------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable, e.g. `not_found`, `invalid_input`.")
    message: str = Field(description="A sentence a person can act on (it includes the fix).")
    field: str | None = Field(default=None, description="The field, parameter or header at fault.")
    value: Any = Field(default=None, description="The value that was wrong (when `field` is set).")
    fix: str | None = Field(default=None, description="What to do about it.")


class ErrorOut(BaseModel):
    """Every error answer of the API: ``{"error": {code, message, field, value, fix}}``."""

    error: ErrorDetail
