"""A control plane in memory, with the members of ``RunReporter`` (``pipelines/reporting.py``):
what the runner's parts are tested against, as httpx's ``MockTransport`` stands in for a server.
It records what it was asked and answers from plain dicts; ``away`` makes every call fail as an
unreachable control plane does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from funade.errors import FunadeError
from funade.pipelines.schemas import CacheEntryOut, RunEventsIn, RunEventsOut, RunOut
from funade.settings import Settings


def run_out(run_id: int = 7, **fields: Any) -> RunOut:
    """A run as the API shows it, with every field it needs."""
    base: dict[str, Any] = {
        "id": run_id,
        "project": "default",
        "pipeline": "flow",
        "source": "",
        "env": None,
        "params": {},
        "state": "running",
        "reason": "",
        "trigger": "manual",
        "schedule_id": None,
        "scheduled_for": None,
        "attempt": 1,
        "use_cache": True,
        "cancel_requested": False,
        "slo_breached": False,
        "lineage": {},
        "runner": {},
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "started_at": None,
        "finished_at": None,
        "duration_seconds": None,
        "created_by": None,
    }
    return RunOut.model_validate(base | fields)


def entry(key: str, value: int) -> CacheEntryOut:
    output = {"digest": f"sha256:{value:064x}", "kind": "json", "value": value, "inline": True}
    return CacheEntryOut(
        key=key,
        outputs={"output": output},
        run_id=1,
        instance="a",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


class FakeControlPlane:
    def __init__(self, home: Path, *, cache: dict[str, CacheEntryOut] | None = None) -> None:
        self.settings = Settings(home=home)
        self.url = "https://funade.example"
        self.address = self.url
        self.is_local = False
        self.away = False
        self.cache = dict(cache or {})
        self.listing = True
        """Whether it answers the pipeline's cache listing (a control plane from before it)."""
        self.reports: list[RunEventsIn] = []
        self.answer = RunEventsOut(cancel_requested=False)
        self.uploads: dict[str, bytes] = {}
        self.calls: list[tuple[str, Any]] = []

    def _call(self, name: str, arg: Any) -> None:
        self.calls.append((name, arg))
        if self.away:
            raise FunadeError("The control plane cannot be reached.")

    def report_run(self, run_id: int, events: RunEventsIn) -> RunEventsOut:
        self._call("report_run", run_id)
        self.reports.append(events)
        return self.answer

    def get_run(self, run_id: int) -> RunOut:
        self._call("get_run", run_id)
        return run_out(run_id)

    def upload_artifact(
        self, path: Path, *, digest: str | None = None, project: str | None = None
    ) -> object:
        self._call("upload_artifact", digest)
        self.uploads[str(digest)] = path.read_bytes()
        return None

    def open_artifact(self, digest: str, *, project: str | None = None) -> Iterator[bytes]:
        self._call("open_artifact", digest)
        yield self.uploads[digest]

    def cache_of_pipeline(
        self, pipeline: str, *, project: str | None = None
    ) -> dict[str, CacheEntryOut]:
        self._call("cache_of_pipeline", pipeline)
        if not self.listing:
            raise FunadeError("No such route.")
        return dict(self.cache)

    def cache_lookup(self, key: str, *, project: str | None = None) -> CacheEntryOut | None:
        self._call("cache_lookup", key)
        return self.cache.get(key)

    def cache_lookup_many(
        self, keys: list[str], *, project: str | None = None
    ) -> dict[str, CacheEntryOut]:
        self._call("cache_lookup_many", list(keys))
        return {k: self.cache[k] for k in keys if k in self.cache}
