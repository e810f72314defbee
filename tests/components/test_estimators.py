"""train_and_evaluate as a plain function: classifiers and regressors scored on held-out rows,
params given as text or as KFP's doubles taking the estimator's types, refusals naming the
field. (Estimator paths that must be refused: tests/security/test_components.py.)"""

from __future__ import annotations

import pandas as pd
import pytest

from funade.components import resolve_estimator, split_table, train_and_evaluate
from funade.errors import InvalidInputError

pytest.importorskip("sklearn")


def _table(kind: str) -> pd.DataFrame:
    from sklearn.datasets import make_classification, make_regression

    if kind == "classification":
        x, y = make_classification(n_samples=200, n_features=4, random_state=0)
    else:
        x, y = make_regression(n_samples=200, n_features=4, noise=0.1, random_state=0)
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    frame["y"] = y
    return frame


def test_a_classifier_is_scored_by_accuracy() -> None:
    parts = split_table(_table("classification"), 0.25, seed=0)
    trained = train_and_evaluate(
        parts.train, parts.test, "y", "sklearn.linear_model.LogisticRegression", {"C": 1.0}
    )
    assert set(trained.metrics) == {"accuracy", "f1_macro", "roc_auc"}
    assert (
        trained.score
        == trained.metrics["accuracy"]
        == trained.model.score(  # type: ignore[attr-defined]
            parts.test.drop(columns="y"), parts.test["y"]
        )
    )


def test_a_regressor_is_scored_by_r2() -> None:
    parts = split_table(_table("regression"), 0.25, seed=0)
    trained = train_and_evaluate(parts.train, parts.test, "y", "sklearn.linear_model.Ridge")
    assert set(trained.metrics) == {"r2", "mae", "rmse"}
    assert trained.score == trained.metrics["r2"] > 0.99


def test_params_take_the_types_of_the_estimators_defaults() -> None:
    parts = split_table(_table("classification"), 0.25, seed=0)
    given = {"max_depth": "3", "min_samples_leaf": 2.0, "random_state": "0", "splitter": "best"}
    trained = train_and_evaluate(
        parts.train, parts.test, "y", "sklearn.tree.DecisionTreeClassifier", given
    )
    params = trained.model.get_params()  # type: ignore[attr-defined]
    assert (params["max_depth"], params["min_samples_leaf"], params["random_state"]) == (3, 2, 0)
    assert type(params["min_samples_leaf"]) is int


def test_params_the_estimator_does_not_take_are_refused() -> None:
    parts = split_table(_table("classification"), 0.25, seed=0)
    with pytest.raises(InvalidInputError, match="does not take these params") as caught:
        train_and_evaluate(
            parts.train, parts.test, "y", "sklearn.linear_model.LogisticRegression", {"depth": 3}
        )
    assert (caught.value.field, caught.value.value) == ("params", ["depth"])


def test_a_missing_target_column_is_refused() -> None:
    parts = split_table(_table("classification"), 0.25, seed=0)
    with pytest.raises(InvalidInputError, match="the train table has no column 'label'") as caught:
        train_and_evaluate(parts.train, parts.test, "label", "sklearn.linear_model.Ridge")
    assert caught.value.field == "target"
    assert "a, b, c, d, y" in (caught.value.fix or "")


def test_estimators_of_the_allowed_packages_resolve() -> None:
    from sklearn.ensemble import RandomForestClassifier

    assert resolve_estimator("sklearn.ensemble.RandomForestClassifier") is RandomForestClassifier
