"""The models under test and the requests sent to them.

Both are fitted once on ``make_classification(random_state=0)`` (100 rows, 20 features, two
classes) and stored twice: registered in a FUNADE_HOME with ``funade.log_model`` (what
``funade serve name:1`` loads) and pickled with joblib (what the floor and KServe load), so all
three servers answer with the same fitted estimator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import numpy.typing as npt
import orjson
from sklearn.base import ClassifierMixin
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import funade

FEATURES = 20
MODEL_KINDS = {
    "lr": ("LogisticRegression", lambda: LogisticRegression()),
    "rf": ("RandomForestClassifier", lambda: RandomForestClassifier(random_state=0)),
}


@dataclass(frozen=True)
class Prepared:
    """One fitted model, where each server finds it, and the rows to send it."""

    kind: str  # "lr" or "rf"
    title: str
    estimator: Any
    joblib_file: Path
    registered: dict[str, str]  # funade variant -> registered model name (served as name:1)
    input_name: str  # the first input of the signature funade recorded
    rows: npt.NDArray[np.float64]


def dataset() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    x, y = make_classification(random_state=0)
    assert x.shape[1] == FEATURES
    return x, y


def prepare(kind: str, work: Path, client: funade.Client) -> Prepared:
    """Fit ``kind``, pickle it under ``work`` and register it in ``client``'s registry as
    ``funade.log_model`` packages it by default (outputs ``predict`` and ``predict_proba``)."""
    title, make = MODEL_KINDS[kind]
    x, y = dataset()
    estimator: ClassifierMixin = make().fit(x, y)
    joblib_file = work / f"{kind}.joblib"
    joblib.dump(estimator, joblib_file)
    registered = {"funade": kind}
    version = funade.log_model(estimator, kind, sample_input=x[:5], client=client, progress=False)
    input_name = str(version.signature["inputs"][0]["name"])
    return Prepared(kind, title, estimator, joblib_file, registered, input_name, x)


def infer_body(input_name: str, rows: npt.NDArray[np.float64]) -> bytes:
    """An Open Inference Protocol v2 JSON request for ``rows`` (data flat, row-major) asking for
    the ``predict`` output: the answer the floor and KServe give, so all do the same work (funade
    computes only the outputs asked for; without ``outputs`` it would compute ``predict_proba``
    too)."""
    return orjson.dumps(
        {
            "inputs": [
                {
                    "name": input_name,
                    "datatype": "FP64",
                    "shape": list(rows.shape),
                    "data": rows.ravel().tolist(),
                }
            ],
            "outputs": [{"name": "predict"}],
        }
    )


def predictions(response: bytes) -> list[int] | None:
    """The ``predict`` output of a v2 response, or None if it has none."""
    try:
        doc = orjson.loads(response)
    except orjson.JSONDecodeError:
        return None
    for output in doc.get("outputs", []) if isinstance(doc, dict) else []:
        if output.get("name") == "predict":
            return [int(v) for v in np.asarray(output["data"]).ravel()]
    return None
