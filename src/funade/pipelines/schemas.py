"""The JSON shapes of pipeline runs, their step records, the step cache and schedules: what a
runner reports, the store records and the API shows (``funade.api.schemas`` re-exports them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from funade.shapes import Digest, Instant, Int32, Name, Params, Short, Source, Strict, Word

__all__ = [
    "CacheEntryOut",
    "CacheLookupIn",
    "CacheLookupOut",
    "LaunchIn",
    "RunAttemptIn",
    "RunEventsIn",
    "RunEventsOut",
    "RunIn",
    "RunOut",
    "RunUpdate",
    "ScheduleIn",
    "ScheduleOut",
    "SchedulePatch",
    "StepRecord",
]


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


class RemoteScheduleIn(Strict):
    """What ``submit --schedule`` records of a schedule it made on an engine, and what
    ``follow`` updates (an upsert by target and engine id: fields left out stay as they are)."""

    target: Literal["vertex", "kubeflow"]
    engine_id: Annotated[
        str, Field(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9][A-Za-z0-9/_.-]*$")
    ]
    """The engine's name for it: Vertex's ``projects/P/locations/R/schedules/ID``, KFP's
    recurring run id."""
    console: Annotated[str, Field(max_length=1024, pattern=r"^(https?://\S*)?$")] | None = None
    cron: Annotated[str, Field(max_length=128)] | None = None
    pipeline: Name
    source: Source | None = None
    last_job: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    """A job of the schedule that ``follow`` recorded as a run (the newest)."""
    ended: bool = False
    """``follow`` saw the schedule gone (deleted, or ended on the engine)."""
    reason: Annotated[str, Field(max_length=500)] = ""


class RemoteScheduleOut(BaseModel):
    id: int
    project: str
    target: str
    engine_id: str
    console: str
    cron: str
    pipeline: str
    source: str
    created_by: str | None
    created_at: datetime
    last_job: str | None
    last_seen_at: datetime | None
    ended_at: datetime | None
    ended_reason: str
