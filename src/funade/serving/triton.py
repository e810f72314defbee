"""Triton's HTTP extensions that Open Inference Protocol clients call besides the protocol itself:
model configuration, statistics and the repository index (``tritonclient``'s
``get_model_config``, ``get_inference_statistics`` and ``get_model_repository_index``).

- **Configuration** (``GET /v2/models/{m}/config``) is built from the signature: Triton's JSON
  form of a model config, ``max_batch_size`` > 0 with each tensor's ``dims`` without the batch
  dimension when every input has one (``-1`` first), else 0 and the whole shapes.
- **Statistics** (``GET /v2/models/{m}/stats``) come from the server's Prometheus metrics: requests
  answered (``success``: an HTTP status below 400, ``fail``: the rest) and the time they took,
  the time they queued for a batch, the model's calls (``compute_infer``; funade does not time
  input and output conversion apart from them, so ``compute_input``/``compute_output`` are
  absent), rows inferred and calls made. With several workers, all of theirs together.
- **Repository index** (``POST /v2/repository/index``): the one model this server serves, its
  version and whether it is ``READY``. Loading and unloading models (the rest of Triton's
  repository extension) is not offered: a server serves one model version for its life.
"""

from __future__ import annotations

from typing import Any

from funade.registry.signature import Signature
from funade.serving.metrics import ServingMetrics

CONFIG_TYPES = {
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FP16": "TYPE_FP16",
    "FP32": "TYPE_FP32",
    "FP64": "TYPE_FP64",
    "BYTES": "TYPE_STRING",
}
"""Open Inference Protocol datatypes as Triton's model configuration names them."""


def model_config(
    name: str, flavor: str, signature: Signature, max_batch_size: int
) -> dict[str, Any]:
    """Triton's model configuration (its JSON form) of the served model."""
    batched = bool(signature.inputs) and all(
        spec.shape and spec.shape[0] == -1 for spec in signature.inputs
    )

    def tensor(spec: Any) -> dict[str, Any]:
        dims = list(spec.shape[1:] if batched else spec.shape)
        entry = {"name": spec.name, "data_type": CONFIG_TYPES[spec.datatype], "dims": dims}
        if not dims:  # one value per row: Triton writes dims [1] reshaped to a scalar
            entry.update(dims=[1], reshape={"shape": []})
        return entry

    return {
        "name": name,
        "platform": f"funade_{flavor}",
        "backend": "funade",
        "max_batch_size": max_batch_size if batched else 0,
        "input": [tensor(spec) for spec in signature.inputs],
        "output": [tensor(spec) for spec in signature.outputs],
    }


def _duration(count: float, seconds: float) -> dict[str, int]:
    return {"count": int(count), "ns": int(seconds * 1e9)}


def statistics(name: str, version: str, metrics: ServingMetrics) -> dict[str, Any]:
    """Triton's statistics of the served model, from the metrics."""
    sums = metrics.sums()
    model = ("model", metrics.model)

    def value(sample: str, **labels: str) -> float:
        return sums.get((sample, frozenset({model, *labels.items()})), 0.0)

    success = ("success", "fail")
    stats = {
        outcome: _duration(
            value("funade_inference_seconds_count", outcome=outcome),
            value("funade_inference_seconds_sum", outcome=outcome),
        )
        for outcome in success
    }
    stats["queue"] = _duration(
        value("funade_queue_duration_seconds_count"), value("funade_queue_duration_seconds_sum")
    )
    executions = value("funade_batch_size_count")
    stats["compute_infer"] = _duration(executions, value("funade_model_call_seconds_total"))
    last = value("funade_last_inference_timestamp_seconds")
    return {
        "model_stats": [
            {
                "name": name,
                "version": version,
                "last_inference": int(last * 1000),
                "inference_count": int(value("funade_batch_size_sum")),
                "execution_count": int(executions),
                "inference_stats": stats,
            }
        ]
    }


def repository_index(name: str, version: str, ready: bool) -> list[dict[str, str]]:
    """The repository index: the one model served here."""
    entry = {"name": name, "version": version, "state": "READY" if ready else "UNAVAILABLE"}
    if not ready:
        entry["reason"] = "the model is still loading (or failed to load: see /v2/health/ready)"
    return [entry]
