"""A complete training pipeline: data → split → a fan-out of models → the best one →
registered (with lineage to this run) only if it is good enough → optionally deployed.

    funade pipeline run examples/churn_pipeline/train.py:training --env dev
    funade pipeline run examples/churn_pipeline/train.py:training --env prd -p deploy=true
    funade lineage churn@candidate

Every step runs in a process of its own; a second run with the same code, data and parameters
is served from the cache. Environments (dev, prd) are in funade.yaml beside this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

import funade


class Split(NamedTuple):
    train: pd.DataFrame
    test: pd.DataFrame


@dataclass(frozen=True)
class Scored:
    """One trained candidate (a single output, stored pickled)."""

    c: float
    accuracy: float
    model: object


@funade.step
def load_data(rows: int, seed: int) -> pd.DataFrame:
    """The customers: 8 features and whether they left (synthetic, so the example needs no
    download)."""
    from sklearn.datasets import make_classification

    features, churned = make_classification(
        n_samples=rows, n_features=8, n_informative=5, random_state=seed
    )
    frame = pd.DataFrame(features, columns=[f"f{i}" for i in range(8)])
    frame["churned"] = churned
    print(f"loaded {len(frame)} customers, {frame['churned'].mean():.0%} churned")
    return frame


@funade.step
def split(data: pd.DataFrame, test_fraction: float) -> Split:
    test = data.sample(frac=test_fraction, random_state=0)
    return Split(data.drop(test.index), test)


@funade.step(retries=1, timeout="10m")
def train(data: pd.DataFrame, test: pd.DataFrame, c: float) -> Scored:
    from sklearn.linear_model import LogisticRegression

    x, y = data.drop(columns="churned").to_numpy(), data["churned"].to_numpy()
    model = LogisticRegression(C=c, max_iter=500).fit(x, y)
    accuracy = float(model.score(test.drop(columns="churned").to_numpy(), test["churned"]))
    print(f"C={c}: accuracy {accuracy:.3f}")
    return Scored(c, accuracy, model)


@funade.step
def pick_best(candidates: list[Scored]) -> Scored:
    best = max(candidates, key=lambda s: s.accuracy)
    print(f"best: C={best.c} ({best.accuracy:.3f}) of {len(candidates)}")
    return best


@funade.step
def accuracy_of(best: Scored) -> float:
    return best.accuracy


@funade.step(cache=False)
def register(best: Scored, test: pd.DataFrame, alias: str) -> int:
    sample = test.drop(columns="churned").to_numpy()[:5].astype(np.float64)
    version = funade.log_model(
        best.model,
        "churn",
        sample_input=sample,
        params={"C": best.c},
        metrics={"accuracy": best.accuracy},
        datasets={"test": test},
        alias=alias,
        progress=False,
    )
    print(f"registered churn:{version.version} as {alias}")
    return version.version


@funade.step(cache=False)
def ship(version: int) -> str:
    """The rollout hook: the deployment's verification and canary analysis decide the rest."""
    deployment = funade.deploy("churn", version, strategy="canary", steps=[50, 100])
    return deployment.name


@funade.pipeline(max_duration="30m", permissions=["register:churn", "deploy:churn"])
def training(
    rows: int = 2000,
    seed: int = 0,
    test_fraction: float = 0.25,
    cs: list[float] = [0.01, 0.1, 1.0, 10.0],  # noqa: B006 (a default, never mutated)
    min_accuracy: float = 0.8,
    alias: str = "candidate",
    deploy: bool = False,
) -> None:
    """Train churn models for several regularisation strengths and register the best."""
    data = load_data(rows, seed)
    parts = split(data, test_fraction)
    candidates = train.partial(data=parts.train, test=parts.test).map(c=cs)
    best = pick_best(candidates)
    with funade.when(accuracy_of(best) >= min_accuracy):
        version = register(best, parts.test, alias)
        with funade.when(deploy):
            ship(version)
