"""The gateway's ``/metrics`` as a key may see them: a global key every deployment's series, a
project's key only its own deployments' (the rest are left out, names and all)."""

from __future__ import annotations

import copy
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector


def exposition(registry: CollectorRegistry, deployments: frozenset[str] | None) -> bytes:
    """``registry`` in the Prometheus text format; with ``deployments``, only the samples
    labelled with one of them."""
    if deployments is None:
        return generate_latest(registry)
    only = CollectorRegistry(auto_describe=False)
    only.register(_Only(registry, deployments))
    return generate_latest(only)


class _Only(Collector):
    def __init__(self, registry: CollectorRegistry, deployments: frozenset[str]) -> None:
        self.registry = registry
        self.deployments = deployments

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            kept = copy.copy(family)  # the same family, fewer samples
            kept.samples = [
                s for s in family.samples if s.labels.get("deployment") in self.deployments
            ]
            yield kept
