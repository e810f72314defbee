"""Flavors that can compute only the outputs asked for do (a model server asked for `predict`
alone skips `predict_proba`), and give the same values as when computing all of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from funade.registry.flavors import get_flavor
from funade.registry.package import build_package, read_manifest


def _fit(kind: str, data: Any) -> tuple[Any, dict[str, Any]]:
    x, y = data
    if kind == "sklearn":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression().fit(x, y), {}
    if kind == "xgboost":
        xgb = pytest.importorskip("xgboost")
        return xgb.XGBClassifier(n_estimators=3, max_depth=2).fit(x, y), {}
    if kind == "lightgbm":
        lgb = pytest.importorskip("lightgbm")
        return lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(x, y), {}
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(x, y)
    return to_onnx(model, np.zeros((1, 20), np.float32), options={id(model): {"zipmap": False}}), {}


@pytest.mark.parametrize(
    ("kind", "one", "other"),
    [
        ("sklearn", "predict", "predict_proba"),
        ("xgboost", "predict_proba", "predict"),
        ("lightgbm", "predict", "predict_proba"),
        ("onnx", "probabilities", "label"),
    ],
)
def test_only_the_wanted_outputs_are_computed(
    kind: str, one: str, other: str, data: Any, tmp_path: Path
) -> None:
    model, options = _fit(kind, data)
    build_package(model, tmp_path / "p", sample_input=data[0][:5], options=options)
    manifest = read_manifest(tmp_path / "p")
    flavor = get_flavor(manifest.flavor)
    loaded = flavor.load(tmp_path / "p", manifest.flavor_metadata, manifest.signature)
    name = manifest.signature.inputs[0].name
    dtype = np.float32 if manifest.signature.inputs[0].datatype == "FP32" else np.float64
    inputs = {name: data[0][:7].astype(dtype)}
    every = loaded.predict(inputs)
    assert set(every) == {one, other}
    only = loaded.predict(inputs, [one])
    assert set(only) == {one}
    np.testing.assert_array_equal(only[one], every[one])
    assert set(loaded.predict(inputs, ["no such output"])) == {one, other}  # the server refuses it
