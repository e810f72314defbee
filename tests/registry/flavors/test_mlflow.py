"""The mlflow flavor: real MLflow models (a PythonModel and a scikit-learn pipeline) imported as
pyfuncs, their signatures, and the server's checks of the copied directory."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from funade.errors import InvalidArtifactError, InvalidInputError, ModelLoadError
from funade.registry.flavors import detect_flavor
from funade.registry.package import build_package, check_package_members, load_package
from funade.registry.signature import TensorSpec
from tests.registry.helpers import members, rewrite_file

# MLflow phones home with usage telemetry unless told not to, and it decides when first imported.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
pytest.importorskip("mlflow")
# MLflow's own noise, not ours: importing mlflow.pyfunc infers schemas for MLflow's agent types
# and warns that some hold Any, and saving without an input example is nagged about.
_ANY_HINT = ".*Any type hint is inferred as AnyType"
pytestmark = [
    pytest.mark.filterwarnings(f"ignore:{_ANY_HINT}:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*An input example was not provided:UserWarning"),
]
with warnings.catch_warnings():  # the marks above do not cover this module's import
    warnings.filterwarnings("ignore", _ANY_HINT, UserWarning)
    import mlflow.pyfunc


# predict's input is hinted np.ndarray, a hint MLflow neither validates nor warns about (it
# warns, past any filter, when there is none; other hints it enforces as a signature).
class Doubler(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """Doubles a tensor."""

    def predict(self, context: Any, model_input: np.ndarray, params: Any = None) -> Any:
        return np.asarray(model_input) * 2


class Splitter(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """Two outputs: the sum of each row, and whether it is over 1."""

    def predict(self, context: Any, model_input: np.ndarray, params: Any = None) -> Any:
        total = np.asarray(model_input).sum(axis=1)
        return {"total": total, "big": total > 1}


def _save_pyfunc(path: Path, signature: Any = None, model: Any = None) -> Path:
    # pip_requirements given: MLflow would otherwise infer them in a subprocess (seconds).
    mlflow.pyfunc.save_model(
        str(path),
        python_model=model or Doubler(),
        signature=signature,
        pip_requirements=["numpy"],
    )
    return path


@pytest.fixture
def x() -> np.ndarray:
    return np.arange(12, dtype=np.float32).reshape(4, 3)


def test_pyfunc_with_a_tensor_signature_round_trip(x: np.ndarray, tmp_path: Path) -> None:
    from mlflow.models import infer_signature

    source = _save_pyfunc(tmp_path / "mlflow", infer_signature(x, x * 2))
    manifest, golden = build_package(source, tmp_path / "pkg", sample_input=x[:2])
    assert manifest.flavor == "mlflow"
    assert manifest.flavor_metadata == {
        "directory": "mlflow_model",
        "loader_module": "mlflow.pyfunc.model",
        "model_file": "python_model.pkl",
    }
    assert {"mlflow_model/MLmodel", "mlflow_model/python_model.pkl"} <= set(manifest.files)
    assert {"mlflow-skinny", "numpy"} <= set(manifest.requirements)
    sig = manifest.signature
    assert sig.input_format == "tensor"
    assert sig.inputs == [TensorSpec(name="input", datatype="FP32", shape=[-1, 3])]
    assert sig.outputs == [TensorSpec(name="predict", datatype="FP32", shape=[-1, 3])]
    assert golden[0]["outputs"][0]["data"] == (x[:2] * 2).reshape(-1).tolist()
    model = load_package(tmp_path / "pkg")
    assert type(model.native).__name__ == "PyFuncModel"
    np.testing.assert_array_equal(model.predict(x), x * 2)
    assert check_package_members(members(tmp_path / "pkg")) == manifest


def test_without_an_mlflow_signature_the_sample_gives_it(tmp_path: Path) -> None:
    source = _save_pyfunc(tmp_path / "mlflow", model=Splitter())
    sample = np.array([[0.5, 0.25], [1.0, 2.0]])
    manifest, _ = build_package(source, tmp_path / "pkg", flavor="mlflow", sample_input=sample)
    sig = manifest.signature
    assert sig.input_format == "tensor"
    assert sig.inputs == [TensorSpec(name="input", datatype="FP64", shape=[-1, 2])]
    assert [(s.name, s.datatype) for s in sig.outputs] == [("total", "FP64"), ("big", "BOOL")]
    out = load_package(tmp_path / "pkg").predict_all(sample)
    np.testing.assert_array_equal(out["total"], [0.75, 3.0])
    np.testing.assert_array_equal(out["big"], [False, True])


def test_sklearn_pipeline_with_a_column_signature(
    frame_pipeline: Any, frame: pd.DataFrame, tmp_path: Path
) -> None:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    signature = infer_signature(frame, frame_pipeline.predict(frame))
    mlflow.sklearn.save_model(
        frame_pipeline,
        str(tmp_path / "mlflow"),
        signature=signature,
        pip_requirements=["scikit-learn", "skops"],
    )
    manifest, _ = build_package(tmp_path / "mlflow", tmp_path / "pkg", sample_input=frame[:5])
    assert manifest.flavor_metadata["loader_module"] == "mlflow.sklearn"
    sig = manifest.signature
    assert sig.input_format == "columns"
    assert [(s.name, s.datatype) for s in sig.inputs] == [
        ("age", "FP64"),
        ("income", "FP64"),
        ("plan", "BYTES"),
    ]
    assert [(s.name, s.datatype) for s in sig.outputs] == [("predict", "INT64")]
    model = load_package(tmp_path / "pkg")
    np.testing.assert_array_equal(model.predict(frame), frame_pipeline.predict(frame))
    assert check_package_members(members(tmp_path / "pkg")) == manifest


def test_detect(tmp_path: Path) -> None:
    source = _save_pyfunc(tmp_path / "mlflow")
    assert detect_flavor(source).name == "mlflow"
    assert detect_flavor(str(source)).name == "mlflow"
    (tmp_path / "empty").mkdir()
    assert not get_mlflow_flavor().matches(tmp_path / "empty")
    assert not get_mlflow_flavor().matches("no\x00such path")


def get_mlflow_flavor() -> Any:
    from funade.registry.flavors import get_flavor

    return get_flavor("mlflow")


def test_a_directory_without_mlmodel_is_refused(x: np.ndarray, tmp_path: Path) -> None:
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(InvalidInputError) as info:
        build_package(tmp_path / "not-a-model", tmp_path / "pkg", flavor="mlflow", sample_input=x)
    assert info.value.field == "model"
    assert "MLmodel" in str(info.value)


def test_a_model_without_pyfunc_is_refused(x: np.ndarray, tmp_path: Path) -> None:
    source = _save_pyfunc(tmp_path / "mlflow")
    text = (source / "MLmodel").read_text()
    (source / "MLmodel").write_text(text.replace("python_function:", "no_pyfunc:"))
    with pytest.raises(InvalidInputError) as info:
        build_package(source, tmp_path / "pkg", sample_input=x)
    assert "no python_function flavor" in str(info.value)


@pytest.mark.parametrize(
    ("file", "garbage", "why"),
    [
        ("mlflow_model/MLmodel", b"flavors: [unclosed", "not valid YAML"),
        ("mlflow_model/MLmodel", b"flavors:\n  sklearn: {}\n", "no python_function flavor"),
        ("mlflow_model/MLmodel", b"\xff\xfe", "not UTF-8"),
        ("mlflow_model/python_model.pkl", b"garbage", "not a pickle"),
    ],
)
def test_server_refuses_a_bad_mlflow_file(
    file: str, garbage: bytes, why: str, x: np.ndarray, tmp_path: Path
) -> None:
    build_package(_save_pyfunc(tmp_path / "mlflow"), tmp_path / "pkg", sample_input=x)
    rewrite_file(tmp_path / "pkg", file, garbage)
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(members(tmp_path / "pkg"))
    assert info.value.value == file
    assert why in str(info.value)


def test_server_refuses_a_package_without_the_model_file_mlmodel_names(
    x: np.ndarray, tmp_path: Path
) -> None:
    build_package(_save_pyfunc(tmp_path / "mlflow"), tmp_path / "pkg", sample_input=x)
    text = (tmp_path / "pkg" / "mlflow_model" / "MLmodel").read_bytes()
    rewrite_file(
        tmp_path / "pkg",
        "mlflow_model/MLmodel",
        text.replace(b"python_model.pkl", b"elsewhere.pkl"),
    )
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(members(tmp_path / "pkg"))
    assert "mlflow_model/elsewhere.pkl" in str(info.value)


def test_truncated_model_file_is_a_model_load_error(x: np.ndarray, tmp_path: Path) -> None:
    build_package(_save_pyfunc(tmp_path / "mlflow"), tmp_path / "pkg", sample_input=x)
    whole = (tmp_path / "pkg" / "mlflow_model" / "python_model.pkl").read_bytes()
    rewrite_file(tmp_path / "pkg", "mlflow_model/python_model.pkl", whole[: len(whole) // 2])
    check_package_members(members(tmp_path / "pkg"))  # its start is still a pickle's
    with pytest.raises(ModelLoadError) as info:
        load_package(tmp_path / "pkg")
    message = str(info.value)
    assert "Could not load the mlflow model from 'mlflow_model/python_model.pkl'" in message
    assert info.value.value == "mlflow"


def test_pickles_are_checked_wherever_they_are(x: np.ndarray, tmp_path: Path) -> None:
    source = _save_pyfunc(tmp_path / "mlflow")
    (source / "extra").mkdir()
    (source / "extra" / "lookup.pkl").write_bytes(pickle.dumps({"a": 1}))
    build_package(source, tmp_path / "pkg", sample_input=x)
    check_package_members(members(tmp_path / "pkg"))
    rewrite_file(tmp_path / "pkg", "mlflow_model/extra/lookup.pkl", b"not a pickle")
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(members(tmp_path / "pkg"))
    assert info.value.value == "mlflow_model/extra/lookup.pkl"


def test_detection_does_not_import_mlflow(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    code = (
        "import sys\n"
        "from funade.registry.flavors import detect_flavor\n"
        f"assert detect_flavor({str(tmp_path)!r}).name == 'mlflow'\n"
        "assert 'mlflow' not in sys.modules, 'mlflow was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
