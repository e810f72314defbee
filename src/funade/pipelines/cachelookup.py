"""The step cache as a runner reads it: the outputs earlier runs stored under a step's key.

The :class:`~funade.pipelines.engine.Engine` asks for the keys of the steps it is about to
start; :class:`CacheLookup` answers from the pipeline's entries, fetched at the first lookup of
the run, and asks the control plane only for keys it did not know then.
"""

from __future__ import annotations

from funade.errors import FunadeError
from funade.pipelines.engine import Stored
from funade.pipelines.reporting import RunReporter
from funade.pipelines.schemas import CacheEntryOut

__all__ = ["CacheLookup"]


class CacheLookup:
    """Looks up cache keys of one pipeline's steps in one project (the engine's ``lookup``)."""

    def __init__(self, reporter: RunReporter, pipeline: str, *, project: str) -> None:
        self.reporter = reporter
        self.pipeline = pipeline
        self.project = project
        self.known: dict[str, CacheEntryOut] | None = None
        """The pipeline's cache entries, asked for at the run's first lookup."""

    def __call__(self, keys: list[str]) -> dict[str, dict[str, Stored]]:
        """The stored outputs of each of ``keys`` that has an entry (the others are left out)."""
        if self.known is None:
            # What earlier runs of this pipeline cached, asked for once: a chain's keys can only
            # be looked up one at a time (each depends on the step before), a round trip each.
            try:
                self.known = self.reporter.cache_of_pipeline(self.pipeline, project=self.project)
            except FunadeError:  # (a control plane from before the call: look up by key)
                self.known = {}
        found = {key: self.known[key] for key in keys if key in self.known}
        missing = [key for key in keys if key not in found]
        if len(missing) == 1:
            entry = self.reporter.cache_lookup(missing[0], project=self.project)
            if entry is not None:
                found[missing[0]] = entry
        elif missing:
            found |= self.reporter.cache_lookup_many(missing, project=self.project)
        return {
            key: {name: Stored.model_validate(o) for name, o in entry.outputs.items()}
            for key, entry in found.items()
        }
