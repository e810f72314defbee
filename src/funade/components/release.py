"""Register what a pipeline trained, and roll it out with a canary."""

from __future__ import annotations

from typing import Any

import pandas as pd

import funade


@funade.step(cache=False)  # each run registers its own version
def register_model(
    model: object,
    name: str,
    test: pd.DataFrame,
    target: str,
    metrics: dict[str, float],
    params: dict[str, Any] | None = None,
    alias: str = "",
) -> int:
    """Register ``model`` as the next version of ``name``, with its metrics, params, the
    digest of the ``test`` rows it was scored on, and a sample of them as its example input;
    ``alias`` (e.g. ``candidate``) is pointed at it. The pipeline needs ``register:<name>``
    in its ``permissions``."""
    features = test.drop(columns=target)
    version = funade.log_model(
        model,
        name,
        sample_input=features.head(5),
        params=params or {},
        metrics=metrics,
        datasets={"test": test},
        alias=alias or None,
        progress=False,
    )
    print(f"registered {name}:{version.version}" + (f" as {alias}" if alias else ""))
    return version.version


@funade.step(cache=False)  # a rollout is an action, never served from the cache
def deploy_canary(name: str, version: int, steps: list[int] | None = None) -> str:
    """Roll ``version`` of model ``name`` out to the deployment of that name by a canary
    (``steps``: the shares of traffic, default 10, 50, 100), or create the deployment if there
    is none; the rollout's verification and analysis decide the rest. Needs ``deploy:<name>``
    in the pipeline's ``permissions``."""
    deployment = funade.deploy(name, version, strategy="canary", steps=steps or [10, 50, 100])
    print(f"deploying {name}:{version} to {deployment.name}")
    return deployment.name
