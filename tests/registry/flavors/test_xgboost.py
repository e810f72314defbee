"""The xgboost flavor: scikit-learn-style estimators and Boosters in xgboost's own format."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from funade.errors import InvalidArtifactError, InvalidInputError, ModelLoadError
from funade.registry.flavors import detect_flavor
from funade.registry.package import build_package, check_package_members, load_package
from tests.registry.helpers import members, rewrite_file

xgb = pytest.importorskip("xgboost")


@pytest.fixture(scope="module")
def classifier(data: tuple[np.ndarray, np.ndarray]) -> Any:
    return xgb.XGBClassifier(n_estimators=8, max_depth=3, random_state=0).fit(*data)


@pytest.fixture(scope="module")
def regressor(data: tuple[np.ndarray, np.ndarray]) -> Any:
    x, y = data
    return xgb.XGBRegressor(n_estimators=8, max_depth=3, random_state=0).fit(x, x[:, 0] + y)


@pytest.mark.parametrize("fmt", ["ubj", "json"])
def test_classifier_round_trip(fmt: str, classifier: Any, data: Any, tmp_path: Path) -> None:
    x = data[0]
    manifest, golden = build_package(
        classifier, tmp_path / "pkg", sample_input=x[:5], options={"format": fmt}
    )
    assert manifest.flavor == "xgboost"
    assert manifest.flavor_metadata == {
        "class_name": "XGBClassifier",
        "format": fmt,
        "file": f"model.{fmt}",
        "methods": ["predict", "predict_proba"],
    }
    assert set(manifest.files) == {f"model.{fmt}"}
    assert "numpy" in manifest.requirements
    assert {"xgboost", "xgboost-cpu"} & set(manifest.requirements)
    assert [(s.name, s.datatype, s.shape) for s in manifest.signature.outputs] == [
        ("predict", "INT64", [-1]),
        ("predict_proba", "FP32", [-1, 2]),
    ]
    assert [t["name"] for t in golden[0]["outputs"]] == ["predict", "predict_proba"]
    model = load_package(tmp_path / "pkg")
    assert type(model.native) is xgb.XGBClassifier
    assert model.native is not classifier
    out = model.predict_all(x)
    np.testing.assert_array_equal(out["predict"], classifier.predict(x))
    np.testing.assert_array_equal(out["predict_proba"], classifier.predict_proba(x))
    assert check_package_members(members(tmp_path / "pkg")) == manifest


def test_regressor_round_trip(regressor: Any, data: Any, tmp_path: Path) -> None:
    x = data[0]
    manifest, _ = build_package(regressor, tmp_path / "pkg", sample_input=x[:5])
    assert manifest.flavor_metadata["class_name"] == "XGBRegressor"
    assert [(s.name, s.datatype) for s in manifest.signature.outputs] == [("predict", "FP32")]
    model = load_package(tmp_path / "pkg")
    np.testing.assert_array_equal(model.predict(x), regressor.predict(x))
    assert check_package_members(members(tmp_path / "pkg")) == manifest


def test_booster_round_trip(data: Any, tmp_path: Path) -> None:
    x, y = data
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(x, label=y), 5
    )
    manifest, _ = build_package(booster, tmp_path / "pkg", sample_input=x[:3])
    assert manifest.flavor_metadata["class_name"] == "Booster"
    assert manifest.flavor_metadata["methods"] == ["predict"]
    assert "scikit-learn" not in manifest.requirements
    model = load_package(tmp_path / "pkg")
    assert isinstance(model.native, xgb.Booster)
    np.testing.assert_array_equal(model.predict(x), booster.predict(xgb.DMatrix(x)))


def test_dataframe_fed_model_gets_its_columns_in_order(data: Any, tmp_path: Path) -> None:
    x, y = data
    frame = pd.DataFrame({"age": x[:, 0], "income": x[:, 1], "tenure": x[:, 2]})
    model = xgb.XGBClassifier(n_estimators=4, max_depth=2).fit(frame, y)
    manifest, _ = build_package(model, tmp_path / "pkg", sample_input=frame[:5])
    assert manifest.signature.input_format == "columns"
    loaded = load_package(tmp_path / "pkg")
    shuffled = frame[["tenure", "age", "income"]]  # names matter, not order
    np.testing.assert_array_equal(loaded.predict_all(shuffled)["predict"], model.predict(frame))


def test_the_same_model_gives_the_same_bytes(classifier: Any, data: Any, tmp_path: Path) -> None:
    first, _ = build_package(classifier, tmp_path / "a", sample_input=data[0][:2])
    second, _ = build_package(classifier, tmp_path / "b", sample_input=data[0][:2])
    assert first.files == second.files


def test_detect(classifier: Any, regressor: Any) -> None:
    assert detect_flavor(classifier).name == "xgboost"  # before sklearn, whose estimator it is
    assert detect_flavor(regressor).name == "xgboost"
    assert detect_flavor(classifier.get_booster()).name == "xgboost"


def test_bad_options_and_unfitted_models(classifier: Any, data: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        build_package(
            classifier, tmp_path / "a", sample_input=data[0][:2], options={"format": "pickle"}
        )
    assert info.value.field == "options.format"
    with pytest.raises(InvalidInputError) as info:
        build_package(xgb.XGBClassifier(), tmp_path / "b", sample_input=data[0][:2])
    assert "Fit the model" in str(info.value)


@pytest.mark.parametrize("fmt", ["ubj", "json"])
@pytest.mark.parametrize(
    "garbage", [b"garbage", b'{"not": "a model"}', b"{i\x07learner", pickle.dumps({"a": 1})]
)
def test_server_refuses_a_file_that_is_not_a_model(
    fmt: str, garbage: bytes, classifier: Any, data: Any, tmp_path: Path
) -> None:
    build_package(classifier, tmp_path / "pkg", sample_input=data[0][:2], options={"format": fmt})
    rewrite_file(tmp_path / "pkg", f"model.{fmt}", garbage)
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(members(tmp_path / "pkg"))
    assert info.value.value == f"model.{fmt}"
    assert f"'model.{fmt}'" in str(info.value)


@pytest.mark.parametrize("fmt", ["ubj", "json"])
def test_truncated_file_is_a_model_load_error(
    fmt: str, classifier: Any, data: Any, tmp_path: Path
) -> None:
    build_package(classifier, tmp_path / "pkg", sample_input=data[0][:2], options={"format": fmt})
    whole = (tmp_path / "pkg" / f"model.{fmt}").read_bytes()
    rewrite_file(tmp_path / "pkg", f"model.{fmt}", whole[: len(whole) // 2])
    with pytest.raises(InvalidArtifactError):
        check_package_members(members(tmp_path / "pkg"))
    with pytest.raises(ModelLoadError) as info:
        load_package(tmp_path / "pkg")
    assert f"Could not load the xgboost model from 'model.{fmt}'" in str(info.value)
    assert info.value.value == "xgboost"


def test_server_reads_a_large_model_from_its_head(tmp_path: Path) -> None:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=1000, n_features=20, random_state=0)
    model = xgb.XGBClassifier(n_estimators=150, max_depth=6, random_state=0).fit(x, y)
    manifest, _ = build_package(model, tmp_path / "pkg", sample_input=x[:2])
    whole = (tmp_path / "pkg" / "model.ubj").read_bytes()
    assert len(whole) > 64 * 1024
    assert check_package_members(members(tmp_path / "pkg")) == manifest
    # A bad marker inside the first 64 KiB is seen; the rest is left to the replica's check.
    rewrite_file(tmp_path / "pkg", "model.ubj", whole[:1000] + b"\xff" * (len(whole) - 1000))
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(members(tmp_path / "pkg"))
    assert "not valid UBJSON" in str(info.value)
    rewrite_file(tmp_path / "pkg", "model.ubj", whole[: len(whole) - 100])
    check_package_members(members(tmp_path / "pkg"))  # cut short past the first 64 KiB
    with pytest.raises(ModelLoadError) as load:  # ... the replica refuses before xgboost reads it
        load_package(tmp_path / "pkg")
    assert "'model.ubj'" in str(load.value)


def test_detection_does_not_import_xgboost() -> None:
    code = (
        "import sys\n"
        "from funade.registry.flavors import detect_flavor\n"
        "class Echo:\n"
        "    def load(self, path): pass\n"
        "    def predict(self, inputs): return inputs\n"
        "assert detect_flavor(Echo()).name == 'python_class'\n"
        "assert 'xgboost' not in sys.modules, 'xgboost was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
