"""The tables of the metadata store. Changes here need an Alembic migration (see docs/store.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set by an admin: write keys may deploy models whose loading runs code (pickles, Python
    # classes) and schedule pipelines without the deploy-code scope.
    trust_code: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ApiKey(Base):
    """A credential. The secret is never stored: only its SHA-256 (keys are 256-bit random)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    # None: the key works in every project (only admin keys may be global).
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), index=True)
    scopes: Mapped[list[Any]] = mapped_column(JSON)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(32))
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    # A predict key limited to one deployment (by name); None: every deployment of its project.
    deployment: Mapped[str | None] = mapped_column(String(64))
    # "key" (made by a person), "session" (a dashboard sign-in, child of ``parent_id``) or
    # "group" (a try-it token for one deployment). "link" rows are one-time sign-in links made
    # before 0007: revoked by that migration and refused by check_key (links: SigninLink).
    kind: Mapped[str] = mapped_column(String(16), default="key", server_default="key")
    # The key a session was signed in with: revoking it ends the session too.
    parent_id: Mapped[str | None] = mapped_column(String(32), index=True)
    # Networks the key may be used from (CIDRs); None: anywhere.
    allow_cidrs: Mapped[list[Any] | None] = mapped_column(JSON)
    # Predictions made with the key through the gateway (added up by each gateway).
    predictions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A run token (kind "run"): the run it reports, and the model permissions its pipeline
    # declared (e.g. "register:churn"), capped by what the key that started the run may do.
    run_id: Mapped[int | None] = mapped_column(Integer, index=True)
    grants: Mapped[list[Any] | None] = mapped_column(JSON)

    project: Mapped[Project | None] = relationship(lazy="joined")


class SigninLink(Base):
    """A one-time dashboard sign-in link (``funade up`` prints one): ``fndlink_<id>_<secret>``,
    not an API key (no route takes it as one). It signs in as its key; signing in sets
    ``used_at`` with one conditional UPDATE, so of two sign-ins with one link exactly one wins."""

    __tablename__ = "signin_links"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # The key a sign-in with the link acts as (the admin key `funade up` made).
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class Model(Base):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    # The number the next version gets; numbers are never reused, even after a delete.
    next_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ModelVersion(Base):
    """An immutable version: only description, tags and the archived flag change later."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    artifact_digest: Mapped[str] = mapped_column(String(71))
    artifact_size: Mapped[int] = mapped_column(BigInteger)
    flavor: Mapped[str] = mapped_column(String(32))
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    golden_examples: Mapped[list[Any]] = mapped_column(JSON, default=list)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(32))
    runs_code: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    """Whether loading the package runs code of its own (``flavors.loads_code``), decided when
    it was registered; None for versions registered before it was recorded (decided again)."""

    model: Mapped[Model] = relationship(lazy="joined")
    tags: Mapped[list[VersionTag]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="VersionTag.key"
    )
    metrics: Mapped[list[VersionMetric]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="VersionMetric.key"
    )


class VersionTag(Base):
    __tablename__ = "version_tags"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(512))

    __table_args__ = (Index("ix_version_tags_key_value", "key", "value"),)


class VersionMetric(Base):
    __tablename__ = "version_metrics"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class Alias(Base):
    __tablename__ = "aliases"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    version: Mapped[ModelVersion] = relationship(lazy="joined")


class Artifact(Base):
    """Which project uploaded which blob. Blobs are shared by digest; access is per project."""

    __tablename__ = "artifacts"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(71), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """One mutation: who (key), what (action and target), when, from where."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), index=True)
    actor_key_id: Mapped[str | None] = mapped_column(String(32))
    actor_name: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(512))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    client_ip: Mapped[str | None] = mapped_column(String(64))


class Deployment(Base):
    """A named live endpoint of one model; what serves it is its revisions, weighted by
    ``traffic``. ``generation`` grows with every change the gateway must see."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    # Unique across projects: the gateway routes /v2/models/<name> by it alone.
    name: Mapped[str] = mapped_column(String(64), unique=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # {"weights": {"<revision>": percent}, "shadow": <revision> | None, "sticky": {...}}
    traffic: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Gateway rules: allowlist, rate limits, body size (see funade.deploy.policy).
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="active")
    next_revision: Mapped[int] = mapped_column(Integer, default=1)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    project: Mapped[Project] = relationship(lazy="joined")
    model: Mapped[Model] = relationship(lazy="joined")
    revisions: Mapped[list[Revision]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="Revision.number"
    )


class Revision(Base):
    """An immutable pairing of a model version with a runtime config and a replica count."""

    __tablename__ = "deployment_revisions"
    __table_args__ = (UniqueConstraint("deployment_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    runtime: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    replicas: Mapped[int] = mapped_column(Integer, default=1)
    smoke: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # pending → verifying → verified | failed | aborted (stopped before it was verified);
    # verified → rolled_back when its canary analysis failed; retired once nothing needs it.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Kept running (warm) until then, although no traffic goes to it.
    warm_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(32))

    version: Mapped[ModelVersion] = relationship(lazy="joined")


class Rollout(Base):
    """Moving traffic to a revision by a strategy; its state machine is funade.deploy.rollout."""

    __tablename__ = "rollouts"
    __table_args__ = (
        Index("ix_rollouts_deployment_id_number", "deployment_id", "number", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    # 1, 2, … within its deployment ("rollout 1 of churn"); ``id`` is global.
    number: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer)
    stable_revision: Mapped[int | None] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(16))
    # Strategy options: steps, pause_seconds, warm_seconds, analysis thresholds.
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    step: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime | None]
    # Why it stopped (a verification diff, an analysis that failed, who aborted it).
    reason: Mapped[str] = mapped_column(Text, default="")
    history: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(32))


class ReplicaRecord(Base):
    """A replica as the controller last saw it; the gateway routes to the ready ones."""

    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(96), primary_key=True)
    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    revision: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(String(256), default="")
    # What the gateway presents to the replica (``Authorization: Bearer``): a replica answers
    # nobody else on its port.
    token: Mapped[str] = mapped_column(String(128), default="", server_default="")
    state: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GatewayRecord(Base):
    """What one running gateway serves: per deployment, the ``generation`` of the routing it
    loaded and the revisions it has ready replicas for. A gateway writes it when that changes
    and every few seconds (``seen_at``), so commands that change routing can wait for it
    (``funade.deploy.routing``)."""

    __tablename__ = "gateways"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # {"<deployment id>": {"generation": n, "ready": [revision, …]}}
    routes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrafficStat(Base):
    """What one gateway measured for one revision in one window of ``WINDOW`` seconds: counts
    and a latency histogram (``funade.deploy.stats``), for canary analysis and the API."""

    __tablename__ = "traffic_stats"

    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    revision: Mapped[int] = mapped_column(Integer, primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    """Start of the window, in seconds since the epoch."""
    gateway: Mapped[str] = mapped_column(String(32), primary_key=True)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    buckets: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """Requests per latency bucket (bounds in funade.deploy.stats.BOUNDS_MS)."""


class PipelineRun(Base):
    """One run of a pipeline: its compiled spec, parameters and state (``funade.pipelines``)."""

    __tablename__ = "pipeline_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    pipeline: Mapped[str] = mapped_column(String(128), index=True)
    source: Mapped[str] = mapped_column(String(1024), default="")
    """Where the code is: ``path/to/file.py:function`` or ``module:function``."""
    env: Mapped[str | None] = mapped_column(String(64))
    # Deferred: a large pipeline's spec is read when asked for, not on every runner report.
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, deferred=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # running → succeeded | failed | cancelled; a resume sets it running again.
    state: Mapped[str] = mapped_column(String(16), default="running", index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    trigger: Mapped[str] = mapped_column(String(16), default="manual")
    schedule_id: Mapped[int | None] = mapped_column(Integer, index=True)
    scheduled_for: Mapped[datetime | None]
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    """1, then one more for every resume."""
    use_cache: Mapped[bool] = mapped_column(Boolean, default=True)
    """False: the run neither reads nor writes the step cache (``--no-cache``)."""
    refresh_cache: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """The run reads no cache entry but writes its steps' outputs (``--refresh``)."""
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    slo_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Git state, Python and package versions where the run was started."""
    runner: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Host and pid of the process running it."""
    last_seen_at: Mapped[datetime | None]
    """When its runner last reported: a running run not heard of for ``LOST_AFTER`` is lost."""
    prior_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    """Seconds its earlier attempts ran (its duration leaves out the time nothing ran)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(32))

    project: Mapped[Project] = relationship(lazy="joined")
    # Loaded when used: a runner's report touches only the steps it names.
    steps: Mapped[list[PipelineStep]] = relationship(
        lazy="select",
        cascade="all, delete-orphan",
        order_by="PipelineStep.position",
    )


class PipelineStep(Base):
    """One instance of one step in a run (``train``, or ``train[3]`` of a fan-out)."""

    __tablename__ = "pipeline_steps"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("pipeline_runs.id", ondelete="CASCADE"), primary_key=True
    )
    instance: Mapped[str] = mapped_column(String(160), primary_key=True)
    node: Mapped[str] = mapped_column(String(128))
    index: Mapped[int | None] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, default=0)
    """The node's place in the spec's topological order, then the fan-out index."""
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    cache_key: Mapped[str] = mapped_column(String(71), default="")
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    log_digest: Mapped[str | None] = mapped_column(String(71))
    log_tail: Mapped[str] = mapped_column(Text, default="", server_default="")
    """While the step runs: the end of its output so far (``pipelines.logtail``); emptied
    once its whole log is stored (``log_digest``)."""
    run_attempt: Mapped[int] = mapped_column(Integer, default=1)
    """The run attempt (1, or more after resumes) this step's record is from."""
    history: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default="[]")
    """The step's records from earlier run attempts (state, error, log), oldest first: a
    resume that runs it again keeps what the failed attempt said."""
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class PipelineCacheEntry(Base):
    """Outputs of a step that succeeded, by cache key: a later run with the same key reuses
    them instead of running the step."""

    __tablename__ = "pipeline_cache"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(71), primary_key=True)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    run_id: Mapped[int] = mapped_column(Integer)
    instance: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # What the producing run's token could do beyond reading (its scopes and grants): a run
    # reuses an entry only from a run that could do at least as much.
    trust: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default="[]")


class PipelineSchedule(Base):
    """A cron schedule that starts runs of a pipeline (run by the control plane)."""

    __tablename__ = "pipeline_schedules"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(1024))
    cron: Mapped[str] = mapped_column(String(128))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    env: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    misfire: Mapped[str] = mapped_column(String(16), default="skip")
    max_concurrent: Mapped[int] = mapped_column(Integer, default=1)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    last_tick: Mapped[datetime | None]
    """The latest fire time a run was started (or skipped) for: each tick starts one run."""
    next_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(32))

    project: Mapped[Project] = relationship(lazy="joined")


class RemoteSchedule(Base):
    """A schedule on Vertex AI or Kubeflow made with ``funade pipeline submit --schedule`` (the
    engine keeps and runs it; this is funade's record of it), updated by ``funade pipeline
    follow``: the last job it recorded, and when it saw the schedule end."""

    __tablename__ = "remote_schedules"
    __table_args__ = (UniqueConstraint("project_id", "target", "engine_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    target: Mapped[str] = mapped_column(String(16))
    engine_id: Mapped[str] = mapped_column(String(512))
    console: Mapped[str] = mapped_column(String(1024), default="")
    cron: Mapped[str] = mapped_column(String(128), default="")
    pipeline: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(1024), default="")
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_job: Mapped[str | None] = mapped_column(String(512))
    last_seen_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    ended_reason: Mapped[str] = mapped_column(String(500), default="")

    project: Mapped[Project] = relationship(lazy="joined")
