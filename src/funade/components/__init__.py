"""Steps teams reuse: read a table, split it, train and evaluate a scikit-learn estimator,
register the model, deploy it with a canary. Each is a ``funade.step`` like any other, so it
runs under ``funade pipeline run`` and compiles to KFP (``funade pipeline compile``); outside a
pipeline it is a plain function. See docs/components.md.

    from funade.components import read_table, split_table, train_and_evaluate, register_model

Needs pandas and scikit-learn: ``pip install 'funade[pandas,sklearn]'``.
"""

from __future__ import annotations

try:
    import pandas  # noqa: F401
    import sklearn  # noqa: F401
except ImportError as exc:  # pragma: no cover - the dev install has both
    from funade.errors import InvalidInputError

    raise InvalidInputError(
        f"funade.components needs pandas and scikit-learn (module {exc.name!r} is not installed).",
        fix="pip install 'funade[pandas,sklearn]'",
    ) from None

from funade.components.estimators import (
    ALLOWED_ESTIMATORS,
    Trained,
    resolve_estimator,
    train_and_evaluate,
)
from funade.components.release import deploy_canary, register_model
from funade.components.tables import Split, read_query, read_table, split_table

__all__ = [
    "ALLOWED_ESTIMATORS",
    "Split",
    "Trained",
    "deploy_canary",
    "read_query",
    "read_table",
    "register_model",
    "resolve_estimator",
    "split_table",
    "train_and_evaluate",
]
