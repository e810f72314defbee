"""examples/digits: a CNN trained on scikit-learn's digits, exported to ONNX and registered; the
registered version reads held-out digits."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import funade
from funade import sdk
from funade.registry.signature import TensorSpec

for _needed in ("torch", "onnxscript", "onnxruntime", "sklearn"):
    pytest.importorskip(_needed)

TRAIN = Path(__file__).resolve().parents[2] / "examples" / "digits" / "train.py"

# torch.onnx's exporter runs torch internals that warn about their own deprecations.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning"
)


@pytest.fixture
def train(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("digits_train", TRAIN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "digits_train", module)
    spec.loader.exec_module(module)
    return module


def test_the_registered_model_reads_held_out_digits(
    train: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNADE_HOME", str(tmp_path / "home"))
    try:
        trained = train.main(epochs=8)
        assert trained.version == 1
        assert trained.onnx_accuracy >= 0.9
        model = funade.load_model("digits:1")
        assert model.flavor == "onnx"
        assert model.signature.inputs == [
            TensorSpec(name="image", datatype="FP32", shape=[-1, 1, 8, 8])
        ]
        assert [(s.name, s.datatype, s.shape) for s in model.signature.outputs] == [
            ("label", "INT64", [-1]),
            ("probabilities", "FP32", [-1, 10]),
        ]
        labels = model.predict(trained.x_test)
        assert (labels == trained.y_test).mean() >= 0.9
        assert model.predict(trained.x_test[:1]).shape == (1,)  # any batch size
        probabilities = model.predict(trained.x_test[:3], output="probabilities")
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    finally:
        sdk._close_default()
