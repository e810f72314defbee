"""Train a scikit-learn estimator named by its import path, and evaluate it on held-out rows.

The estimator is a pipeline parameter or a literal (text), so its path is checked before
anything is imported beyond the allowed packages: it must name a class, in one of
:data:`ALLOWED_ESTIMATORS`' packages, that is a scikit-learn estimator.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import re
from typing import Any, NamedTuple

import pandas as pd

import funade
from funade.errors import InvalidInputError

__all__ = ["ALLOWED_ESTIMATORS", "Trained", "resolve_estimator", "train_and_evaluate"]

ALLOWED_ESTIMATORS = ("sklearn", "lightgbm", "xgboost")
"""The packages whose estimators ``train_and_evaluate`` imports (scikit-learn's, and the
scikit-learn interfaces of LightGBM and XGBoost, which funade registers as their own flavors)."""

_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
_FIX = "Name a scikit-learn estimator class, e.g. sklearn.linear_model.LogisticRegression."


class Trained(NamedTuple):
    model: object
    metrics: dict[str, float]
    score: float  # accuracy for a classifier, R² for a regressor: what a condition compares


def _refuse(reason: str, value: str) -> InvalidInputError:
    return InvalidInputError(
        f"train_and_evaluate: estimator {value!r} {reason}",
        field="estimator",
        value=value,
        fix=_FIX,
    )


def resolve_estimator(path: str) -> type:
    """The estimator class at ``path`` (``sklearn.linear_model.LogisticRegression``), or
    ``InvalidInputError`` when it is not one: outside :data:`ALLOWED_ESTIMATORS` (nothing is
    imported then), not found, not a class, or not a scikit-learn estimator."""
    if not isinstance(path, str) or not _PATH.fullmatch(path):
        raise _refuse("is not a dotted import path (package.module.Class).", str(path))
    if path.split(".", 1)[0] not in ALLOWED_ESTIMATORS:
        raise _refuse(
            f"is outside the packages estimators may come from ({', '.join(ALLOWED_ESTIMATORS)}).",
            path,
        )
    module_name, _, name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise _refuse(f"names the module {module_name!r}, which is not installed.", path) from None
    found = getattr(module, name, None)
    if not isinstance(found, type):
        what = f"nothing in {module_name}" if found is None else f"a {type(found).__name__}"
        raise _refuse(f"is {what}, not a class.", path)
    from sklearn.base import BaseEstimator

    if (
        not issubclass(found, BaseEstimator)
        or found.__module__.split(".")[0] not in ALLOWED_ESTIMATORS
    ):
        raise _refuse("is not a scikit-learn estimator of the allowed packages.", path)
    return found


def _like_default(value: Any, default: Any) -> Any:
    """``value`` as the type of the estimator's default for it, where it arrived as another:
    ``--param`` text (``'8'``) or a KFP struct's double (``500.0`` for ``max_iter``)."""
    if isinstance(default, bool):
        return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value
    if isinstance(default, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return int(value) if isinstance(value, str) and re.fullmatch(r"-?\d+", value) else value
    if isinstance(value, str) and (isinstance(default, float) or default is None):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return parsed if parsed is None or isinstance(parsed, int | float | bool) else value
    return value


def _params(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    defaults = {
        name: p.default
        for name, p in inspect.signature(cls).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    return {k: _like_default(v, defaults.get(k)) for k, v in params.items()}


def _metrics(model: Any, x: pd.DataFrame, y: pd.Series) -> tuple[dict[str, float], float]:
    from sklearn import metrics
    from sklearn.base import is_classifier

    predicted = model.predict(x)
    if is_classifier(model):
        out = {
            "accuracy": float(metrics.accuracy_score(y, predicted)),
            "f1_macro": float(metrics.f1_score(y, predicted, average="macro")),
        }
        if hasattr(model, "predict_proba") and y.nunique() == 2:
            out["roc_auc"] = float(metrics.roc_auc_score(y, model.predict_proba(x)[:, 1]))
        return out, out["accuracy"]
    out = {
        "r2": float(metrics.r2_score(y, predicted)),
        "mae": float(metrics.mean_absolute_error(y, predicted)),
        "rmse": math.sqrt(float(metrics.mean_squared_error(y, predicted))),
    }
    return out, out["r2"]


@funade.step
def train_and_evaluate(
    train: pd.DataFrame,
    test: pd.DataFrame,
    target: str,
    estimator: str,
    params: dict[str, Any] | None = None,
) -> Trained:
    """Fit ``estimator(**params)`` on ``train``'s columns to predict ``target``, and score it
    on ``test``: accuracy, macro F1 and (two classes) ROC AUC for a classifier, R², MAE and
    RMSE for a regressor. A param that arrives as text (``--param 'params={max_depth: 8}'``)
    or as a whole float (KFP's JSON numbers) takes the type of the estimator's default."""
    cls = resolve_estimator(estimator)
    for frame_name, frame in (("train", train), ("test", test)):
        if target not in frame.columns:
            raise InvalidInputError(
                f"train_and_evaluate: the {frame_name} table has no column {target!r}.",
                field="target",
                value=target,
                fix="Name the column to predict; the table has "
                f"{', '.join(map(str, frame.columns[:10]))}.",
            )
    try:
        model = cls(**_params(cls, params or {}))
    except TypeError as exc:
        raise InvalidInputError(
            f"train_and_evaluate: {estimator} does not take these params ({exc}).",
            field="params",
            value=sorted(params or {}),
            fix=f"Pass the keyword arguments of {cls.__name__}(...).",
        ) from None
    model.fit(train.drop(columns=target), train[target])
    metrics, score = _metrics(model, test.drop(columns=target), test[target])
    print(f"{cls.__name__}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    return Trained(model, metrics, score)
