"""The model server's metrics counted into plain numbers (one process) answer exactly what
``prometheus_client``'s objects (several workers) answer for the same requests."""

from __future__ import annotations

import re

import pytest

from funade.serving.metrics import LATENCY_BUCKETS, ServingMetrics


def _drive(metrics: ServingMetrics) -> None:
    """The same requests, batches and load for both kinds, bucket bounds included."""
    metrics.loaded(1.25)
    for index, seconds in enumerate([*LATENCY_BUCKETS, 0.0, 0.00049, 31.0, 0.003]):
        metrics.begin()
        status = (200, 400, 503, 500)[index % 4]
        metrics.count("v2" if index % 3 else "v1", status, seconds, inference=index % 5 != 0)
    metrics.begin()
    metrics.count("v2", 200, 0.001, inference=False)
    metrics.begin()  # still in flight
    metrics.begin()
    metrics.abandoned()
    for rows in (1, 2, 3, 64, 65, 512, 513, 1000):
        metrics.batch(rows, rows / 1000, [0.0005 * rows, 0.0001])


def _without_created(text: str) -> str:
    """The exposition without ``_created`` samples (when each series began differs by the
    moment each object was made) and without the last inference's time (taken anew)."""
    lines = []
    for line in text.splitlines():
        if "_created{" in line:
            continue
        if line.startswith("funade_last_inference_timestamp_seconds{"):
            line = line.rsplit(" ", 1)[0]
        lines.append(line)
    return "\n".join(lines)


def test_plain_counts_expose_what_prometheus_objects_expose() -> None:
    plain = ServingMetrics("calc", multiprocess=False)
    objects = ServingMetrics("calc", multiprocess=True)
    assert plain.render() != b""  # before any request: the same empty series
    assert _without_created(plain.render().decode()) == _without_created(objects.render().decode())
    _drive(plain)
    _drive(objects)
    text = plain.render().decode()
    assert _without_created(text) == _without_created(objects.render().decode())
    assert 'funade_requests_total{model="calc",protocol="v2",status="200"}' in text
    assert 'funade_inflight_requests{model="calc"} 1.0' in text
    assert 'funade_model_load_seconds{model="calc"} 1.25' in text
    # the created series are there too, one per series as prometheus_client gives them
    created = re.findall(r"^(\w+_created)\{", text, flags=re.M)
    assert sorted(set(created)) == sorted(
        set(re.findall(r"^(\w+_created)\{", objects.render().decode(), flags=re.M))
    )


def test_counts_are_exact() -> None:
    metrics = ServingMetrics("calc", multiprocess=False)
    for _ in range(1000):
        metrics.begin()
        metrics.count("v1", 200, 0.001)
    for _ in range(7):
        metrics.begin()
        metrics.count("v2", 404, 0.25, inference=False)
    metrics.batch(3, 0.5, [0.001, 0.002, 0.0005])
    sums = metrics.sums()

    def value(name: str, **labels: str) -> float:
        return sums[(name, frozenset({("model", "calc"), *labels.items()}))]

    assert value("funade_requests_total", protocol="v1", status="200") == 1000
    assert value("funade_requests_total", protocol="v2", status="404") == 7
    assert value("funade_request_duration_seconds_count") == 1007
    assert value("funade_request_duration_seconds_bucket", le="0.001") == 1000
    assert value("funade_request_duration_seconds_bucket", le="0.0005") == 0
    assert value("funade_request_duration_seconds_bucket", le="0.5") == 1007
    assert value("funade_request_duration_seconds_sum") == pytest.approx(1 + 7 * 0.25)
    assert value("funade_inference_seconds_count", outcome="success") == 1000
    assert value("funade_inference_seconds_count", outcome="fail") == 0
    assert value("funade_inflight_requests") == 0
    assert value("funade_batch_size_sum") == 3
    assert value("funade_batch_size_bucket", le="2.0") == 0
    assert value("funade_batch_size_bucket", le="4.0") == 1
    assert value("funade_queue_duration_seconds_count") == 3
    assert value("funade_queue_duration_seconds_bucket", le="0.0005") == 1
    assert value("funade_model_call_seconds_total") == 0.5
    assert value("funade_last_inference_timestamp_seconds") > 0
    assert ("funade_model_load_seconds", frozenset({("model", "calc")})) not in sums


def test_several_workers_count_through_prometheus_client(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``PROMETHEUS_MULTIPROC_DIR`` set (``--workers N``), counts go through
    prometheus_client's objects, whose files every worker's scrape reads together
    (tests/serving/test_server.py counts requests across two workers); without it, into plain
    numbers."""
    assert not ServingMetrics("calc").multiprocess
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert ServingMetrics("calc").multiprocess
