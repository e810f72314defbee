"""The ``kubernetes_pods`` setting: what every pod of the Kubernetes backend gets, in the words
of `funade manifests`' options, checked once when the backend is made."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from funade.deploy.k8s.options import (
    RenderOptions,
    check_options,
    parse_model_cache,
    parse_toleration,
)
from funade.errors import InvalidInputError

__all__ = ["KEYS", "pod_options"]

KEYS = (
    "cpu",
    "memory",
    "gpus",
    "node_selector",
    "tolerations",
    "image_pull_secrets",
    "model_cache",
    "ready_timeout_seconds",
    "max_replicas",
    "target_cpu",
)


def pod_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``RenderOptions`` fields from the setting's table; an InvalidInputError naming
    ``kubernetes_pods.<key>`` for an unknown key or a wrong value."""
    unknown = sorted(set(settings) - set(KEYS))
    if unknown:
        raise InvalidInputError(
            f"kubernetes_pods has no key {unknown[0]!r}.",
            field=f"kubernetes_pods.{unknown[0]}",
            value=settings[unknown[0]],
            fix=f"Use {', '.join(KEYS)}.",
        )
    options = dict(settings)
    key = ""
    try:
        key = "tolerations"
        options[key] = [parse_toleration(str(t)) for t in options.get(key) or []]
        key = "model_cache"
        if options.get(key) is not None:
            options[key] = parse_model_cache(str(options[key]))
        key = ""
        if options.get("target_cpu") is not None and options.get("max_replicas") is None:
            raise InvalidInputError(
                "kubernetes_pods sets target_cpu without max_replicas.",
                field="kubernetes_pods.max_replicas",
                value=None,
                fix="Give max_replicas to autoscale, e.g. 10; or drop target_cpu.",
            )
        check_options(RenderOptions(**options))
    except InvalidInputError as exc:
        if exc.field and exc.field.startswith("kubernetes_pods"):
            raise
        name = key or (exc.field or "").lstrip("-").replace("-", "_")
        raise InvalidInputError(
            f"kubernetes_pods.{name}: {exc.message}",
            field=f"kubernetes_pods.{name}",
            value=exc.value,
            fix=exc.fix,
        ) from None
    except TypeError as exc:  # a value of the wrong shape (a string for a list, ...)
        raise InvalidInputError(
            f"kubernetes_pods has a value of the wrong type: {exc}.",
            field="kubernetes_pods",
            value=dict(settings),
            fix='Write it as `funade manifests` takes it, e.g. {"cpu": "2", "tolerations": '
            '["nvidia.com/gpu:NoSchedule"], "max_replicas": 10}.',
        ) from None
    return options
