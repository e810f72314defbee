"""Small real models for tests (trained in milliseconds; nothing is downloaded)."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np


@cache
def classification_data() -> tuple[Any, Any]:
    from sklearn.datasets import make_classification

    return make_classification(n_samples=200, n_features=20, random_state=0)


@cache
def logistic_regression() -> Any:
    from sklearn.linear_model import LogisticRegression

    x, y = classification_data()
    return LogisticRegression(max_iter=200).fit(x, y)


def sample() -> np.ndarray:
    return np.asarray(classification_data()[0][:5])
