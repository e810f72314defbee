"""The flavor registry: by name, by model, and what it says when it knows neither."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from funade.errors import UnknownFlavorError
from funade.registry.flavors import FLAVOR_NAMES, detect_flavor, get_flavor


class Echo:
    def load(self, path: Path) -> None:
        pass

    def predict(self, inputs: Any) -> Any:
        return inputs


def test_names() -> None:
    assert FLAVOR_NAMES == (
        "sklearn",
        "onnx",
        "python_class",
        "torch",
        "xgboost",
        "lightgbm",
        "mlflow",
    )
    assert [get_flavor(n).name for n in FLAVOR_NAMES] == list(FLAVOR_NAMES)


def test_unknown_name() -> None:
    with pytest.raises(UnknownFlavorError) as info:
        get_flavor("tensorflow")
    assert info.value.field == "flavor"
    assert info.value.value == "tensorflow"
    assert "use one of: sklearn, onnx, python_class" in str(info.value).lower()


def test_detect(logreg: Any, tmp_path: Path) -> None:
    from skl2onnx import to_onnx

    assert detect_flavor(logreg).name == "sklearn"
    proto = to_onnx(logreg, np.zeros((1, 20), np.float32), options={id(logreg): {"zipmap": False}})
    assert detect_flavor(proto).name == "onnx"
    assert detect_flavor(proto.SerializeToString()).name == "onnx"
    assert detect_flavor(tmp_path / "model.onnx").name == "onnx"
    assert detect_flavor(str(tmp_path / "model.onnx")).name == "onnx"
    assert detect_flavor(Echo()).name == "python_class"


def test_detect_unknown_names_the_type_and_the_ways_out() -> None:
    with pytest.raises(UnknownFlavorError) as info:
        detect_flavor({"weights": [1, 2]})
    error = info.value
    assert error.field == "model"
    assert error.value == "builtins.dict"
    assert "flavor=" in str(error)
    assert "load(self, path) and predict(self, inputs)" in str(error)
    with pytest.raises(UnknownFlavorError):
        detect_flavor(Echo)  # the class, not an instance
