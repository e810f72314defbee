"""What running a pipeline asks of the control plane: two small interfaces.

``pipelines/`` sits below the API and its client, so it names what it needs instead of
importing them. :class:`funade.Client` has all of it (no adapter: it matches structurally, and
mypy checks that wherever one is passed); a test may pass any object with these members.

- :class:`RunReporter`: what a :class:`~funade.pipelines.runner.Runner` calls while it runs an
  attempt, authenticated with the run's own token: report step records and run changes, read
  the run back, store and read outputs, look up the step cache.
- :class:`RunControl`: what ``runs.py`` adds with the starter's key: record a run or a new
  attempt, and hand over a reporter with the run's token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from funade.pipelines.schemas import (
    CacheEntryOut,
    RunAttemptIn,
    RunEventsIn,
    RunEventsOut,
    RunIn,
    RunOut,
)
from funade.settings import Settings

__all__ = ["RunControl", "RunReporter"]


class RunReporter(Protocol):
    """The control plane as one attempt of a run reaches it (with the run's token)."""

    @property
    def settings(self) -> Settings:
        """The home (work directories), the artifact cache, where `funade up` serves pages."""
        ...

    @property
    def url(self) -> str:
        """The control plane's base URL (``http://funade.local`` for the in-process one)."""
        ...

    @property
    def address(self) -> str:
        """Where the run's steps, processes on this machine, reach the control plane."""
        ...

    @property
    def is_local(self) -> bool:
        """Whether the control plane runs in this process."""
        ...

    def report_run(self, run_id: int, events: RunEventsIn) -> RunEventsOut:
        """Report step records and run changes: whether a cancel was requested, and the run
        once the report ended it."""
        ...

    def get_run(self, run_id: int) -> RunOut: ...

    def upload_artifact(
        self, path: Path, *, digest: str | None = None, project: str | None = None
    ) -> object:
        """Store an output or a log by digest (a no-op if the project has it)."""
        ...

    def open_artifact(self, digest: str, *, project: str | None = None) -> Iterator[bytes]: ...

    def cache_of_pipeline(
        self, pipeline: str, *, project: str | None = None
    ) -> dict[str, CacheEntryOut]:
        """The step-cache entries earlier runs of ``pipeline`` wrote, by key."""
        ...

    def cache_lookup(self, key: str, *, project: str | None = None) -> CacheEntryOut | None: ...

    def cache_lookup_many(
        self, keys: list[str], *, project: str | None = None
    ) -> dict[str, CacheEntryOut]: ...


class RunControl(RunReporter, Protocol):
    """The control plane as whoever starts, resumes or claims a run reaches it."""

    @property
    def api_key(self) -> str | None:
        """The key it authenticates with (a queued run's runner is given the run's token)."""
        ...

    def create_run(self, run: RunIn) -> RunOut:
        """Record a new run; the answer holds its token."""
        ...

    def start_attempt(self, run_id: int, attempt: RunAttemptIn) -> RunOut:
        """Start the run's next attempt; the answer holds its new token."""
        ...

    def get_run(self, run_id: int, *, spec: bool = False) -> RunOut: ...

    def with_key(self, key: str) -> RunControl:
        """The same control plane, authenticated with ``key`` (the run's token)."""
        ...

    def close(self) -> None: ...
