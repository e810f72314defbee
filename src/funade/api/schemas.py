"""The JSON shapes of the REST API, shared by the server and the Python client (pydantic only)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

# pydantic-only modules: the server's and the client's view of deployment options
from funade.deploy.backends.base import RuntimeConfig
from funade.deploy.policy import Policy
from funade.deploy.rollout import Analysis, Strategy, check_steps
from funade.limits import (
    INT32_MAX,
    MAX_DESCRIPTION,
    MAX_DIGEST,
    MAX_METRIC_KEY,
    MAX_METRICS,
    MAX_NAME,
    MAX_PARAM_KEY,
    MAX_PARAMS,
    MAX_PROJECT_NAME,
    MAX_SHORT,
    MAX_SOURCE,
    MAX_TAG_KEY,
    MAX_TAG_VALUE,
    MAX_TAGS,
    MAX_WORD,
)

T = TypeVar("T")


class Strict(BaseModel):
    """A request body: unknown fields are refused (and, by ``api/strictjson.py`` before the
    body is parsed, non-finite numbers, lone surrogates and integers past 64 bits)."""

    model_config = ConfigDict(extra="forbid")


# Request fields with the limits of what the store keeps (funade.limits): past them, a 422 that
# names the field, never a database error. Integers the store keeps in 32-bit columns:
Int32 = Annotated[int, Field(ge=-INT32_MAX - 1, le=INT32_MAX)]
Count = Annotated[int, Field(ge=0, le=INT32_MAX)]
Number = Annotated[int, Field(ge=1, le=INT32_MAX, description="A version or revision number.")]
Description = Annotated[str, Field(max_length=MAX_DESCRIPTION)]
Name = Annotated[str, Field(max_length=MAX_NAME)]
ProjectName = Annotated[str, Field(max_length=MAX_PROJECT_NAME)]
Short = Annotated[str, Field(max_length=MAX_SHORT)]
Word = Annotated[str, Field(max_length=MAX_WORD)]
Source = Annotated[str, Field(max_length=MAX_SOURCE)]
Digest = Annotated[str, Field(max_length=MAX_DIGEST)]
Tags = Annotated[
    dict[
        Annotated[str, Field(max_length=MAX_TAG_KEY)],
        Annotated[str, Field(max_length=MAX_TAG_VALUE)],
    ],
    Field(
        max_length=MAX_TAGS,
        description="Up to 256 tags: keys up to 128, values up to 512 characters.",
    ),
]
Metrics = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=MAX_METRIC_KEY)], float],
    Field(
        max_length=MAX_METRICS, description="Up to 1000 finite numbers, keys up to 128 characters."
    ),
]


def _storable(value: datetime) -> datetime:
    try:
        value.astimezone(UTC)  # what the store keeps
    except OverflowError:
        raise ValueError("it is outside the years 1 to 9999 once in UTC") from None
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_storable)]
"""A time with its zone, that the store can keep in UTC (9999-12-31T23:59-05:00 it cannot)."""
Params = Annotated[
    dict[Annotated[str, Field(max_length=MAX_PARAM_KEY)], Any],
    Field(max_length=MAX_PARAMS, description="Up to 1000 entries, keys up to 256 characters."),
]


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


class RevisionOut(BaseModel):
    number: int
    model: str
    version: int
    replicas: int
    runtime: dict[str, Any]
    status: str
    detail: dict[str, Any]
    warm_until: datetime | None
    created_at: datetime


class RolloutOut(BaseModel):
    id: int
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


# Pipelines --------------------------------------------------------------------------------


class StepRecord(Strict):
    """One step instance of a run, as the runner reports it and the API shows it."""

    instance: Annotated[str, Field(max_length=160)]
    node: Name
    index: Int32 | None = None
    position: Int32 = 0
    state: Word
    attempt: Int32 = 0
    cache_key: Digest = ""
    cached: bool = False
    cache_write: bool = Field(
        default=False, description="Store the outputs under cache_key (a cacheable success)."
    )
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: str = ""
    log_digest: Digest | None = None
    log: str = Field(
        default="",
        description="Output of a running step since the runner's last report, appended to what "
        "the step's log shows until its whole log is stored (log_digest).",
    )
    started_at: Instant | None = None
    finished_at: Instant | None = None
    run_attempt: Int32 = 1
    history: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=1000,
        description="The step's records from earlier run attempts (state, error, log digest), "
        "oldest first; shown by the API, ignored in a runner's report.",
    )


class RunIn(Strict):
    pipeline: Name
    source: Source = ""
    env: Short | None = None
    spec: dict[str, Any]
    params: Params = Field(default_factory=dict)
    trigger: Word = "manual"
    schedule_id: Int32 | None = None
    scheduled_for: Instant | None = None
    use_cache: bool = True
    refresh_cache: bool = False
    """use_cache false: the run neither reads nor writes the step cache (--no-cache);
    refresh_cache: it reads no entry but writes its steps' outputs (--refresh)."""
    lineage: dict[str, Any] = Field(default_factory=dict)
    runner: dict[str, Any] = Field(default_factory=dict)
    state: Word = "running"


class RunUpdate(Strict):
    state: Word | None = None
    from_state: Word | None = Field(
        default=None,
        description="Apply the update only if the run is in this state now, atomically (409 if "
        "not): how a runner claims a queued run, so two runners never both start it.",
    )
    reason: str | None = None
    slo_breached: bool | None = None
    started_at: Instant | None = None
    finished_at: Instant | None = None
    attempt: Int32 | None = None
    spec: dict[str, Any] | None = Field(
        default=None,
        description="The pipeline as the runner compiled it; with a claim (from_state "
        "'queued'), the run takes its name.",
    )
    runner: dict[str, Any] | None = None
    lineage: dict[str, Any] | None = Field(
        default=None,
        description="The run's lineage with the starting attempt's code state (git, packages).",
    )


class RunEventsIn(Strict):
    steps: list[StepRecord] = Field(default_factory=list)
    run: RunUpdate | None = None


class RunAttemptIn(Strict):
    """A new attempt of a run that did not succeed (``funade runs resume``)."""

    spec: dict[str, Any] = Field(description="The pipeline as compiled now.")
    runner: dict[str, Any] = Field(default_factory=dict)
    lineage: dict[str, Any] | None = Field(
        default=None,
        description="The run's lineage with this attempt's code state (git, packages): the "
        "steps it re-runs ran that code.",
    )
    params: dict[str, Any] | None = Field(
        default=None,
        description="The run's parameters, when the resume changes some that no reused step "
        "consumed (`funade runs resume --param`).",
    )


class RunOut(BaseModel):
    id: int
    project: str
    pipeline: str
    source: str
    env: str | None
    params: dict[str, Any]
    state: str
    reason: str
    trigger: str
    schedule_id: int | None
    scheduled_for: datetime | None
    attempt: int
    use_cache: bool
    refresh_cache: bool = False
    cancel_requested: bool
    slo_breached: bool
    lineage: dict[str, Any]
    runner: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_seen_at: datetime | None = Field(
        default=None, description="When its runner last reported (a run lost after 60 s)."
    )
    duration_seconds: float | None = Field(
        description="Seconds it ran, over all attempts; time between attempts, and after a "
        "lost runner was last heard of, is left out."
    )
    created_by: str | None
    steps: list[StepRecord] = Field(default_factory=list)
    spec: dict[str, Any] | None = None
    token: str | None = Field(
        default=None,
        description="The run's token, given once to whoever creates the run (or starts an "
        "attempt): its runner and steps report and store outputs with it, and nothing else can.",
    )


class RunEventsOut(BaseModel):
    cancel_requested: bool
    run: RunOut | None = Field(
        default=None, description="The run as stored, once the report has ended it."
    )


class CacheEntryOut(BaseModel):
    key: str
    outputs: dict[str, Any]
    run_id: int
    instance: str
    created_at: datetime


class CacheLookupIn(Strict):
    keys: list[Digest] = Field(max_length=10_000)


class CacheLookupOut(BaseModel):
    entries: dict[str, CacheEntryOut]


class ScheduleIn(Strict):
    name: Name
    source: Source = Field(description="The pipeline: /abs/path/train.py:training or pkg.mod:fn.")
    cron: Name
    timezone: Short = "UTC"
    env: Short | None = None
    params: Params = Field(default_factory=dict)
    misfire: Word = "skip"
    max_concurrent: Int32 = 1
    paused: bool = False


class SchedulePatch(Strict):
    source: Source | None = None
    cron: Name | None = None
    timezone: Short | None = None
    env: Short | None = None
    params: Params | None = None
    misfire: Word | None = None
    max_concurrent: Int32 | None = None
    paused: bool | None = None


class ScheduleOut(BaseModel):
    project: str
    name: str
    source: str
    cron: str
    timezone: str
    env: str | None
    params: dict[str, Any]
    misfire: str
    max_concurrent: int
    paused: bool
    last_tick: datetime | None
    next_runs: list[datetime]
    created_at: datetime
    updated_at: datetime


class LaunchIn(Strict):
    source: Source
    params: Params = Field(default_factory=dict)
    env: Short | None = None
    use_cache: bool = True
    refresh_cache: bool = False


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
