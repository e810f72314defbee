"""The backend interface: start a replica of a spec, say what runs and how it is, stop one.

A backend owns no desired state: the reconciler tells it what to start and stop, and asks it
what runs (``replicas``), also after a restart of the control plane, so replicas that still run
are adopted rather than started twice. Every replica is one ``funade serve`` process (or
container, or pod) answering the Open Inference Protocol at its ``url``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from funade.sandbox.env import forbidden_names
from funade.serving.config import (
    DEFAULT_MAX_BATCH_SIZE,
    MAX_BATCH_SIZE_LIMIT,
    MAX_BODY_LIMIT,
    MAX_LATENCY_LIMIT_MS,
    TIMEOUT_LIMIT_MS,
)


class Autoscale(BaseModel):
    """A revision that asks to scale with its load (the Kubernetes backend: an HPA on CPU from
    the deployment's ``replicas`` up to ``max_replicas``; the other backends run ``replicas``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_replicas: int = Field(ge=1, le=1000, description="Most replicas the autoscaler runs.")
    target_cpu: int = Field(
        default=80, ge=1, le=100, description="Average CPU use to aim at, in percent."
    )
    cpu: str | None = Field(
        default=None,
        pattern=r"^(?:[0-9]+(?:\.[0-9]{1,3})?|[0-9]+m)$",
        description="CPU request per replica, which the target is measured against (cores or "
        "millicores: 2, 0.5, 500m); default: the backend's (kubernetes_pods.cpu).",
    )


class RuntimeConfig(BaseModel):
    """How a revision's replicas serve its model version (fixed for the revision's life)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workers: int = Field(default=1, ge=1, le=64, description="Worker processes per replica.")
    max_batch_size: int = Field(
        default=DEFAULT_MAX_BATCH_SIZE,
        ge=1,
        le=MAX_BATCH_SIZE_LIMIT,
        description="Most rows per model call.",
    )
    max_latency_ms: float = Field(
        default=0.0, ge=0, le=MAX_LATENCY_LIMIT_MS, description="Wait to fill a batch."
    )
    timeout_ms: float = Field(
        default=30_000, gt=0, le=TIMEOUT_LIMIT_MS, description="Per-request timeout."
    )
    max_body_bytes: int = Field(
        default=64 * 1024**2, gt=0, le=MAX_BODY_LIMIT, description="Largest request body."
    )
    widen_datatypes: bool = Field(
        default=False,
        description="Convert v2 inputs sent with a narrower datatype than the signature's "
        "(FP32 for FP64); off: a 400 naming both datatypes.",
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables of the model server (not ones that make it load "
        "other code, such as PYTHONPATH or LD_PRELOAD: see docs/security.md).",
    )
    autoscale: Autoscale | None = Field(
        default=None,
        description="Scale with load between replicas and autoscale.max_replicas (the "
        "kubernetes backend; the others run replicas).",
    )

    @field_validator("env")
    @classmethod
    def _safe_env(cls, env: dict[str, str]) -> dict[str, str]:
        bad = forbidden_names(env)
        if bad:
            raise ValueError(
                f"it may not set {bad[0]}, which would make the model server load code or "
                "files of its own choosing; ship code inside the model package instead"
            )
        return env

    def serve_arguments(self) -> list[str]:
        """These options as `funade serve` takes them (``env`` aside: it is the environment)."""
        return [
            "--workers",
            str(self.workers),
            "--max-batch-size",
            str(self.max_batch_size),
            "--max-latency-ms",
            str(self.max_latency_ms),
            "--timeout-ms",
            str(self.timeout_ms),
            "--max-body-bytes",
            str(self.max_body_bytes),
            *(["--widen-datatypes"] if self.widen_datatypes else []),
        ]

    @classmethod
    def stored(cls, data: dict[str, object]) -> RuntimeConfig:
        """A revision's stored runtime, without environment variables this version refuses
        (a revision made by an earlier version may hold some; its replicas never get them)."""
        env = data.get("env")
        if isinstance(env, dict) and forbidden_names(env):
            data = {**data, "env": {k: v for k, v in env.items() if k not in forbidden_names(env)}}
        # Limits added later: a stored value above one serves at the limit, never stops the
        # controller reading the revision.
        for name, limit in _LIMITS.items():
            value = data.get(name)
            if isinstance(value, int | float) and value > limit:
                data = {**data, name: limit}
        return cls.model_validate(data)


_LIMITS: dict[str, float] = {
    "max_batch_size": MAX_BATCH_SIZE_LIMIT,
    "max_latency_ms": MAX_LATENCY_LIMIT_MS,
    "timeout_ms": TIMEOUT_LIMIT_MS,
    "max_body_bytes": MAX_BODY_LIMIT,
}


class ReplicaSpec(BaseModel):
    """What one replica runs: a deployment's revision of a pinned model version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str = Field(default="default", min_length=1)
    deployment: str = Field(min_length=1)
    revision: int = Field(ge=1)
    source: str = Field(min_length=1, description="The pinned model version, e.g. 'churn:3'.")
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    project_id: int = Field(default=0, ge=0, description="Whose user and files it gets.")
    digest: str = Field(default="", description="The version's package, sha256:<hex>.")
    ready_timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        description="How long a replica may take to become ready: the ready timeout of the "
        "rollout that made the revision (a Kubernetes pod's startupProbe allowance); None: the "
        "backend's own.",
    )

    @property
    def version(self) -> str:
        """The model version's number, from ``source``."""
        return self.source.rpartition(":")[2]

    @property
    def key(self) -> str:
        """The revision the replica belongs to, ``deployment/revision``."""
        return f"{self.deployment}/{self.revision}"


class ReplicaState(StrEnum):
    STARTING = "starting"
    """Running, not ready yet (loading the model)."""
    READY = "ready"
    """Answers inference."""
    FAILED = "failed"
    """Running but broken (its model failed to load, or it stopped answering)."""
    EXITED = "exited"
    """No longer running (crashed, killed, or its model failed to load)."""


@dataclass(frozen=True)
class Replica:
    """A replica as the backend sees it now."""

    id: str
    spec: ReplicaSpec
    url: str
    state: ReplicaState
    started_at: float
    """Wall-clock time (``time.time()``) the replica was started."""
    detail: str = ""
    """Why it failed or exited, when known."""
    token: str = ""
    """What a caller presents to the replica (``Authorization: Bearer``); empty: nothing."""


class Backend(Protocol):
    """Runs replicas."""

    def start(self, spec: ReplicaSpec) -> Replica:
        """Start one replica of ``spec``; it is STARTING until it reports ready."""
        ...

    def replicas(self) -> list[Replica]:
        """Every replica this backend has started and not yet forgotten, with its state now
        (health-checked), including ones started before a restart of the control plane."""
        ...

    def stop(self, replica_id: str, *, grace_seconds: float = 30.0) -> None:
        """Drain and stop a replica: in-flight requests finish (up to ``grace_seconds``), then
        it is gone and forgotten. Stopping an unknown or exited replica just forgets it."""
        ...

    def stop_all(self, *, grace_seconds: float = 30.0) -> None:
        """Stop every replica as ``stop`` does and wait until they are gone (a graceful stop of
        the platform: the next start brings them back from the store). A backend whose replicas
        serve apart from the control plane (Kubernetes) stops none: the next start adopts them."""
        ...

    def close(self) -> None:
        """Let go of what the backend holds (clients, connections). Replicas keep running: a
        control plane that restarts adopts them."""
        ...
