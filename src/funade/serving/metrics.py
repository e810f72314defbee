"""Prometheus metrics of a model server, in a registry of its own (one per app, none global)."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServingMetrics:
    """Requests by status, latency, queue time, batch size, in-flight, model load time."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.registry = _registry()
        labels = ["model"]
        self.requests = Counter(
            "funade_requests",
            "Inference requests by protocol and HTTP status.",
            [*labels, "protocol", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "funade_request_duration_seconds",
            "Time from request received to response ready.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue = Histogram(
            "funade_queue_duration_seconds",
            "Time a request waited for its batch to start.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "funade_batch_size",
            "Rows per model call.",
            labels,
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.inflight = Gauge(
            "funade_inflight_requests",
            "Requests being handled now.",
            labels,
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.load_seconds = Gauge(
            "funade_model_load_seconds",
            "How long the model took to load.",
            labels,
            registry=self.registry,
            multiprocess_mode="max",
        )

        # The children for this model, looked up once (labels() costs a lock and a dict lookup).
        self.inflight_now = self.inflight.labels(model)
        self.latency_of = self.latency.labels(model)
        self.queue_of = self.queue.labels(model)
        self.batch_size_of = self.batch_size.labels(model)
        self._requests: dict[tuple[str, int], Any] = {}

    def count(self, protocol: str, status: int, seconds: float) -> None:
        """One answered request: its protocol, HTTP status and duration."""
        child = self._requests.get((protocol, status))
        if child is None:
            child = self.requests.labels(self.model, protocol, str(status))
            self._requests[(protocol, status)] = child
        child.inc()
        self.latency_of.observe(seconds)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


def _registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)
