"""Small real models and data for the registry tests (trained in milliseconds)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="session")
def data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_features=20, random_state=0)
    return x, y


@pytest.fixture(scope="session")
def logreg(data: tuple[np.ndarray, np.ndarray]) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(*data)


@pytest.fixture(scope="session")
def forest(data: tuple[np.ndarray, np.ndarray]) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=5, random_state=0).fit(*data)


@pytest.fixture(scope="session")
def frame(data: tuple[np.ndarray, np.ndarray]) -> Any:
    """A DataFrame with two numeric columns and a string one."""
    import pandas as pd

    x, _ = data
    return pd.DataFrame(
        {"age": x[:, 0], "income": x[:, 1], "plan": np.where(x[:, 2] > 0, "gold", "basic")}
    )


@pytest.fixture(scope="session")
def frame_pipeline(frame: Any, data: tuple[np.ndarray, np.ndarray]) -> Any:
    """A DataFrame-fed pipeline: scale the numbers, one-hot the plan, logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = ColumnTransformer(
        [("num", StandardScaler(), ["age", "income"]), ("cat", OneHotEncoder(), ["plan"])]
    )
    return make_pipeline(columns, LogisticRegression()).fit(frame, data[1])
