"""What one model server is told: which model, where to listen, how to batch and time out."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MAX_BATCH_SIZE = 256
"""Most rows per model call by default. The batcher never waits for rows (``max_latency_ms``
0), so the limit only says how much of what queued during one call the next call takes: high
enough that several many-row requests merge (eight 64-row requests at once go out as two calls
of 256, not eight of 64: the serving benchmark's 64-row case), low enough that one call stays
short."""

MAX_BATCH_SIZE_LIMIT = 1_048_576
"""The largest ``max_batch_size`` taken: a million rows per model call is past any model's use."""
MAX_LATENCY_LIMIT_MS = 60_000.0
"""The longest a batch may wait for rows: a minute is past any online use."""
TIMEOUT_LIMIT_MS = 3_600_000.0
"""The longest per-request timeout: an hour (a longer job is a pipeline, not a request)."""
MAX_BODY_LIMIT = 2**31
"""The largest request body limit: 2 GiB (bigger tensors belong in the artifact store)."""


class ServeConfig(BaseModel):
    """Settings of `funade serve` (and of every replica a deployment starts)."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        description="What to serve: 'churn:3', 'churn@production', 'churn' (latest), or a local "
        "model package directory or tar."
    )
    name: str | None = Field(
        default=None, description="Name the model is served under (default: the model's name)."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64, description="Worker processes behind the port.")
    max_batch_size: int = Field(
        default=DEFAULT_MAX_BATCH_SIZE,
        ge=1,
        le=MAX_BATCH_SIZE_LIMIT,
        description="Most rows merged into one model call (1 turns batching off).",
    )
    max_latency_ms: float = Field(
        default=0.0,
        ge=0,
        le=MAX_LATENCY_LIMIT_MS,
        description="How long a batch may wait for more rows when it is not full. 0: never wait "
        "(batches still form while the model is busy).",
    )
    timeout_ms: float = Field(
        default=30_000,
        gt=0,
        le=TIMEOUT_LIMIT_MS,
        description="Per-request limit; past it the client gets a 504.",
    )
    max_body_bytes: int = Field(
        default=64 * 1024**2,
        gt=0,
        le=MAX_BODY_LIMIT,
        description="Largest request body accepted (413 above).",
    )
    model_version: str | None = Field(
        default=None,
        description="The version a package directory or tar is served as (a deployment's "
        "replica serves the version's package unpacked for it).",
    )
    digest: str | None = Field(
        default=None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="Serve a registry reference only if its version's package has this digest "
        "(an image that pulls its model at start, `funade build --fetch`).",
    )
    token: str | None = Field(
        default=None,
        repr=False,
        description="When set, every request but the health probes must carry "
        "`Authorization: Bearer <token>` (a deployment's replica answers only its gateway).",
    )
    widen_datatypes: bool = Field(
        default=False,
        description="Take a v2 input declared with a datatype that converts to the signature's "
        "without loss (FP32 for FP64, INT32 for INT64) and convert it; off: any datatype but "
        "the signature's is a 400, as Triton answers.",
    )
    hang_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A model call running longer than this makes liveness fail, so a "
        "supervisor restarts the replica.",
    )


def make_config(**values: object) -> ServeConfig:
    """A ServeConfig, with a validation failure turned into an error naming field and fix."""
    from pydantic import ValidationError

    from funade.errors import InvalidInputError

    try:
        return ServeConfig.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "config"
        raise InvalidInputError(
            f"Serving option {field!r} is invalid: {first['msg']} (got {first.get('input')!r}).",
            field=field,
            value=first.get("input"),
            fix=f"See `funade serve --help` for what {field!r} accepts.",
        ) from None
