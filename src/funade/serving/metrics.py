"""Prometheus metrics of a model server, in a registry of its own (one per app, none global).

One process counts into plain Python numbers (an int per bucket and per status, a float per sum),
which a collector of its own turns into Prometheus' families when ``/metrics`` is scraped: the same
names, labels, types and values as ``prometheus_client``'s objects would give, without their
locks and value objects on every request (a dozen ``inc`` and three ``observe`` calls a request,
a tenth of a single-row request's CPU in the serving benchmark's profile). With several worker
processes (``PROMETHEUS_MULTIPROC_DIR`` set) the counts must reach the shared files every
worker's scrape reads, so each call goes to ``prometheus_client``'s objects as before.
"""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

HELP = {
    "funade_requests": "Inference requests by protocol and HTTP status.",
    "funade_request_duration_seconds": "Time from request received to response ready.",
    "funade_queue_duration_seconds": "Time a request waited for its batch to start.",
    "funade_batch_size": "Rows per model call.",
    "funade_inflight_requests": "Requests being handled now.",
    "funade_model_call_seconds": "Time spent in the model's calls (one per batch).",
    "funade_inference_seconds": "Inference requests answered and the time they took, by outcome "
    "(success: an HTTP status below 400).",
    "funade_last_inference_timestamp_seconds": "When the last inference request was answered "
    "(Unix time).",
    "funade_model_load_seconds": "How long the model took to load.",
}


class _Histogram:
    """A histogram's counts: one per bucket (not cumulative; the last is +Inf), the sum, and
    when it began."""

    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        # bisect_left: the first bound >= value, as Prometheus' "le" (less than or equal)
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        out = []
        total = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append((floatToGoString(bound), float(total)))  # type: ignore[no-untyped-call]
        return out


class _Objects:
    """``prometheus_client``'s objects for the metrics (what several workers count into)."""

    def __init__(self, model: str, registry: CollectorRegistry) -> None:
        labels = ["model"]
        self.requests = Counter(
            "funade_requests",
            HELP["funade_requests"],
            [*labels, "protocol", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "funade_request_duration_seconds",
            HELP["funade_request_duration_seconds"],
            labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ).labels(model)
        self.queue = Histogram(
            "funade_queue_duration_seconds",
            HELP["funade_queue_duration_seconds"],
            labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ).labels(model)
        self.batch_size = Histogram(
            "funade_batch_size",
            HELP["funade_batch_size"],
            labels,
            buckets=BATCH_BUCKETS,
            registry=registry,
        ).labels(model)
        self.inflight = Gauge(
            "funade_inflight_requests",
            HELP["funade_inflight_requests"],
            labels,
            registry=registry,
            multiprocess_mode="livesum",
        ).labels(model)
        self.call_seconds = Counter(
            "funade_model_call_seconds",
            HELP["funade_model_call_seconds"],
            labels,
            registry=registry,
        ).labels(model)
        inference = Summary(
            "funade_inference_seconds",
            HELP["funade_inference_seconds"],
            [*labels, "outcome"],
            registry=registry,
        )
        self.outcome = {
            True: inference.labels(model, "success"),
            False: inference.labels(model, "fail"),
        }
        self.last_inference = Gauge(
            "funade_last_inference_timestamp_seconds",
            HELP["funade_last_inference_timestamp_seconds"],
            labels,
            registry=registry,
            multiprocess_mode="max",
        ).labels(model)
        self.load_seconds = Gauge(
            "funade_model_load_seconds",
            HELP["funade_model_load_seconds"],
            labels,
            registry=registry,
            multiprocess_mode="max",
        )
        self.model = model
        self.children: dict[tuple[str, int], Any] = {}


class ServingMetrics:
    """Requests by status, latency, queue time, batch size, in-flight, model load time.

    ``multiprocess`` (default: whether ``PROMETHEUS_MULTIPROC_DIR`` is set): count through
    ``prometheus_client``'s objects, whose values the worker processes share, rather than into
    this process's plain numbers. Every method is called on the server's event loop, but
    ``loaded`` (the loader's thread; one assignment)."""

    def __init__(self, model: str, *, multiprocess: bool | None = None) -> None:
        self.model = model
        self.registry = _registry()
        if multiprocess is None:
            multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.multiprocess = multiprocess
        self._objects = _Objects(model, self.registry) if multiprocess else None
        created = time.time()
        self.inflight = 0
        self.requests: dict[tuple[str, int], list[float]] = {}
        """(protocol, status) -> [count, created]."""
        self.latency = _Histogram(LATENCY_BUCKETS)
        self.queue = _Histogram(LATENCY_BUCKETS)
        self.batch_size = _Histogram(BATCH_BUCKETS)
        self.call_seconds = 0.0
        self.outcome: dict[bool, list[float]] = {True: [0, 0.0], False: [0, 0.0]}
        """success (an HTTP status below 400) or not -> [count, seconds]."""
        self.last_inference = 0.0
        self.load_seconds: float | None = None
        self.created = created
        if self._objects is None:
            self.registry.register(_Collector(self))

    def begin(self) -> None:
        """A request is being handled (in flight until ``count``)."""
        if self._objects is not None:
            self._objects.inflight.inc()
            return
        self.inflight += 1

    def abandoned(self) -> None:
        """A request ``begin`` counted ended without an answer (cancelled)."""
        if self._objects is not None:
            self._objects.inflight.dec()
            return
        self.inflight -= 1

    def count(self, protocol: str, status: int, seconds: float, inference: bool = True) -> None:
        """One answered request (no longer in flight): its protocol, HTTP status and duration
        (``inference``: a prediction, not a metadata call)."""
        objects = self._objects
        if objects is not None:
            objects.inflight.dec()
            child = objects.children.get((protocol, status))
            if child is None:
                child = objects.requests.labels(self.model, protocol, str(status))
                objects.children[(protocol, status)] = child
            child.inc()
            objects.latency.observe(seconds)
            if inference:
                objects.outcome[status < 400].observe(seconds)
                objects.last_inference.set(time.time())
            return
        self.inflight -= 1
        entry = self.requests.get((protocol, status))
        if entry is None:
            self.requests[(protocol, status)] = [1, time.time()]
        else:
            entry[0] += 1
        self.latency.observe(seconds)
        if inference:
            outcome = self.outcome[status < 400]
            outcome[0] += 1
            outcome[1] += seconds
            self.last_inference = time.time()

    def batch(self, rows: int, call_seconds: float, queue_seconds: Iterable[float]) -> None:
        """One model call: its rows, its time, and how long each request in it queued."""
        objects = self._objects
        if objects is not None:
            objects.batch_size.observe(rows)
            objects.call_seconds.inc(call_seconds)
            for seconds in queue_seconds:
                objects.queue.observe(seconds)
            return
        self.batch_size.observe(rows)
        self.call_seconds += call_seconds
        queue = self.queue
        for seconds in queue_seconds:
            queue.observe(seconds)

    def loaded(self, seconds: float) -> None:
        """The model took ``seconds`` to load."""
        if self._objects is not None:
            self._objects.load_seconds.labels(self.model).set(seconds)
        self.load_seconds = seconds

    def _readable(self) -> CollectorRegistry:
        """This process's registry, or every worker's together when there are several."""
        if self.multiprocess and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
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


class _Collector:
    """The plain counts of one ``ServingMetrics`` as Prometheus families, read at each scrape:
    what ``prometheus_client``'s objects of the same names would give (``_created`` samples
    included, unless they are disabled)."""

    def __init__(self, metrics: ServingMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        model = m.model
        created = m.created if _use_created() else None

        def when(at: float) -> float | None:
            return at if created is not None else None

        requests = CounterMetricFamily(
            "funade_requests", HELP["funade_requests"], labels=["model", "protocol", "status"]
        )
        for (protocol, status), (count, began) in list(m.requests.items()):
            requests.add_metric([model, protocol, str(status)], count, created=when(began))
        yield requests
        for name, histogram in (
            ("funade_request_duration_seconds", m.latency),
            ("funade_queue_duration_seconds", m.queue),
            ("funade_batch_size", m.batch_size),
        ):
            family = HistogramMetricFamily(name, HELP[name], labels=["model"])
            family.add_metric([model], histogram.buckets(), histogram.sum)
            if created is not None:
                family.add_sample(f"{name}_created", {"model": model}, histogram.created)
            yield family
        yield _gauge("funade_inflight_requests", model, m.inflight)
        calls = CounterMetricFamily(
            "funade_model_call_seconds", HELP["funade_model_call_seconds"], labels=["model"]
        )
        calls.add_metric([model], m.call_seconds, created=created)
        yield calls
        inference = SummaryMetricFamily(
            "funade_inference_seconds",
            HELP["funade_inference_seconds"],
            labels=["model", "outcome"],
        )
        for outcome, success in (("success", True), ("fail", False)):
            count, seconds = m.outcome[success]
            inference.add_metric([model, outcome], int(count), seconds)
            if created is not None:
                inference.add_sample(
                    "funade_inference_seconds_created",
                    {"model": model, "outcome": outcome},
                    created,
                )
        yield inference
        yield _gauge("funade_last_inference_timestamp_seconds", model, m.last_inference)
        load = GaugeMetricFamily(
            "funade_model_load_seconds", HELP["funade_model_load_seconds"], labels=["model"]
        )
        if m.load_seconds is not None:
            load.add_metric([model], m.load_seconds)
        yield load


def _gauge(name: str, model: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, HELP[name], labels=["model"])
    family.add_metric([model], value)
    return family


def _use_created() -> bool:
    return bool(getattr(prometheus_metrics, "_use_created", True))


def _registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)
