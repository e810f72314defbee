"""Prometheus metrics of a model server, in a registry of its own (one per app, none global)."""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
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
        self.call_seconds = Counter(
            "funade_model_call_seconds",
            "Time spent in the model's calls (one per batch).",
            labels,
            registry=self.registry,
        )
        self.inference = Summary(
            "funade_inference_seconds",
            "Inference requests answered and the time they took, by outcome (success: an HTTP "
            "status below 400).",
            [*labels, "outcome"],
            registry=self.registry,
        )
        self.last_inference = Gauge(
            "funade_last_inference_timestamp_seconds",
            "When the last inference request was answered (Unix time).",
            labels,
            registry=self.registry,
            multiprocess_mode="max",
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
        self.call_seconds_of = self.call_seconds.labels(model)
        self._outcome = {
            True: self.inference.labels(model, "success"),
            False: self.inference.labels(model, "fail"),
        }
        self._last_inference = self.last_inference.labels(model)
        self._requests: dict[tuple[str, int], Any] = {}

    def count(self, protocol: str, status: int, seconds: float, inference: bool = True) -> None:
        """One answered request: its protocol, HTTP status and duration (``inference``: a
        prediction, not a metadata call)."""
        child = self._requests.get((protocol, status))
        if child is None:
            child = self.requests.labels(self.model, protocol, str(status))
            self._requests[(protocol, status)] = child
        child.inc()
        self.latency_of.observe(seconds)
        if inference:
            self._outcome[status < 400].observe(seconds)
            self._last_inference.set(time.time())

    def _readable(self) -> CollectorRegistry:
        """This process's registry, or every worker's together when there are several."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return registry
        return self.registry

    def render(self) -> bytes:
        return generate_latest(self._readable())

    def sums(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample's value by sample name and labels (all workers' together)."""
        out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in self._readable().collect():
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                out[key] = out.get(key, 0.0) + sample.value
        return out


def _registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)
