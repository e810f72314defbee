"""The lightgbm flavor: text models loaded as Boosters, answering like the scikit-learn API."""

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
from tests.registry.helpers import members, read_manifest_json, rewrite_file, write_manifest_json

lgb = pytest.importorskip("lightgbm")


def _fit(estimator: Any, x: Any, y: Any) -> Any:
    return estimator.set_params(n_estimators=10, num_leaves=7, verbose=-1).fit(x, y)


@pytest.fixture(scope="module")
def binary(data: tuple[np.ndarray, np.ndarray]) -> Any:
    return _fit(lgb.LGBMClassifier(), *data)


@pytest.fixture(scope="module")
def multiclass() -> tuple[Any, np.ndarray]:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_features=8, n_informative=5, n_classes=3, random_state=0)
    labels = np.array(["cat", "dog", "emu"])[y]  # string labels come back as strings
    return _fit(lgb.LGBMClassifier(), x, labels), x


def test_binary_classifier_round_trip(binary: Any, data: Any, tmp_path: Path) -> None:
    x = data[0]
    manifest, golden = build_package(binary, tmp_path / "pkg", sample_input=x[:5])
    assert manifest.flavor == "lightgbm"
    assert manifest.flavor_metadata == {
        "kind": "classifier",
        "file": "model.txt",
        "classes": [0, 1],
        "classes_dtype": "int64",
    }
    assert set(manifest.files) == {"model.txt"}
    assert {"lightgbm", "numpy"} <= set(manifest.requirements)
    assert [(s.name, s.datatype, s.shape) for s in manifest.signature.outputs] == [
        ("predict", "INT64", [-1]),
        ("predict_proba", "FP64", [-1, 2]),
    ]
    assert [t["name"] for t in golden[0]["outputs"]] == ["predict", "predict_proba"]
    model = load_package(tmp_path / "pkg")
    assert isinstance(model.native, lgb.Booster)
    out = model.predict_all(x)
    np.testing.assert_array_equal(out["predict"], binary.predict(x))
    np.testing.assert_array_equal(out["predict_proba"], binary.predict_proba(x))
    assert check_package_members(members(tmp_path / "pkg")) == manifest


def test_multiclass_with_string_labels(multiclass: Any, tmp_path: Path) -> None:
    classifier, x = multiclass
    manifest, _ = build_package(classifier, tmp_path / "pkg", sample_input=x[:5])
    assert manifest.flavor_metadata["classes"] == ["cat", "dog", "emu"]
    assert manifest.flavor_metadata["classes_dtype"] == "str"
    assert [(s.name, s.datatype) for s in manifest.signature.outputs] == [
        ("predict", "BYTES"),
        ("predict_proba", "FP64"),
    ]
    out = load_package(tmp_path / "pkg").predict_all(x)
    assert out["predict"].tolist() == classifier.predict(x).tolist()
    np.testing.assert_array_equal(out["predict_proba"], classifier.predict_proba(x))


def test_regressor_and_booster_round_trip(data: Any, tmp_path: Path) -> None:
    x, y = data
    regressor = _fit(lgb.LGBMRegressor(), x, x[:, 0] + y)
    manifest, _ = build_package(regressor, tmp_path / "reg", sample_input=x[:5])
    assert manifest.flavor_metadata == {"kind": "regressor", "file": "model.txt"}
    np.testing.assert_array_equal(load_package(tmp_path / "reg").predict(x), regressor.predict(x))
    booster = regressor.booster_
    manifest, _ = build_package(booster, tmp_path / "booster", sample_input=x[:5])
    assert manifest.flavor_metadata == {"kind": "booster", "file": "model.txt"}
    np.testing.assert_array_equal(load_package(tmp_path / "booster").predict(x), booster.predict(x))


def test_early_stopping_keeps_the_best_iteration(data: Any, tmp_path: Path) -> None:
    x, y = data
    classifier = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.3, verbose=-1).fit(
        x[:70], y[:70], eval_X=(x[70:],), eval_y=(y[70:],), callbacks=[lgb.early_stopping(3, False)]
    )
    assert classifier.best_iteration_ < 200
    build_package(classifier, tmp_path / "pkg", sample_input=x[:5])
    out = load_package(tmp_path / "pkg").predict_all(x)
    np.testing.assert_array_equal(out["predict_proba"], classifier.predict_proba(x))


def test_dataframe_fed_model_gets_its_columns_in_order(data: Any, tmp_path: Path) -> None:
    x, y = data
    frame = pd.DataFrame({"age": x[:, 0], "income": x[:, 1], "tenure": x[:, 2]})
    classifier = _fit(lgb.LGBMClassifier(), frame, y)
    manifest, _ = build_package(classifier, tmp_path / "pkg", sample_input=frame[:5])
    assert manifest.signature.input_format == "columns"
    shuffled = frame[["tenure", "income", "age"]]
    out = load_package(tmp_path / "pkg").predict_all(shuffled)
    np.testing.assert_array_equal(out["predict_proba"], classifier.predict_proba(frame))


def test_the_same_model_gives_the_same_bytes(binary: Any, data: Any, tmp_path: Path) -> None:
    first, _ = build_package(binary, tmp_path / "a", sample_input=data[0][:2])
    second, _ = build_package(binary, tmp_path / "b", sample_input=data[0][:2])
    assert first.files == second.files


def test_refused_models(data: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        build_package(lgb.LGBMClassifier(), tmp_path / "a", sample_input=data[0][:2])
    assert "not fitted" in str(info.value)

    def logloss(y_true: Any, y_pred: Any) -> Any:
        p = 1 / (1 + np.exp(-y_pred))
        return p - y_true, p * (1 - p)

    custom = _fit(lgb.LGBMClassifier(objective=logloss), *data)
    with pytest.raises(InvalidInputError) as info:
        build_package(custom, tmp_path / "b", sample_input=data[0][:2])
    assert "custom objective" in str(info.value)
    assert "model.booster_" in str(info.value)
    with pytest.raises(InvalidInputError) as info:
        build_package(_fit(lgb.LGBMClassifier(), *data), tmp_path / "c", options={"x": 1})
    assert info.value.field == "options.x"


def test_detect(binary: Any) -> None:
    assert detect_flavor(binary).name == "lightgbm"  # before sklearn, whose estimator it is
    assert detect_flavor(binary.booster_).name == "lightgbm"


@pytest.mark.parametrize("garbage", [b"garbage", b"tree\nversion=v4\n", pickle.dumps([1])])
def test_server_refuses_a_file_that_is_not_a_model(
    garbage: bytes, binary: Any, data: Any, tmp_path: Path
) -> None:
    build_package(binary, tmp_path / "pkg", sample_input=data[0][:2])
    rewrite_file(tmp_path / "pkg", "model.txt", garbage)
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(members(tmp_path / "pkg"))
    assert info.value.value == "model.txt"
    assert "'model.txt'" in str(info.value)


def test_server_refuses_metadata_without_labels(binary: Any, data: Any, tmp_path: Path) -> None:
    build_package(binary, tmp_path / "pkg", sample_input=data[0][:2])
    manifest = read_manifest_json(tmp_path / "pkg")
    del manifest["flavor_metadata"]["classes"]
    write_manifest_json(tmp_path / "pkg", manifest)
    with pytest.raises(InvalidArtifactError):
        check_package_members(members(tmp_path / "pkg"))
    with pytest.raises(ModelLoadError):
        load_package(tmp_path / "pkg")


# LightGBM itself aborts or segfaults on these: the flavor must refuse them before it reads them.
@pytest.mark.parametrize("where", ["in the trees", "in the parameters"])
def test_truncated_file_is_a_model_load_error(
    where: str, binary: Any, data: Any, tmp_path: Path
) -> None:
    build_package(binary, tmp_path / "pkg", sample_input=data[0][:2])
    whole = (tmp_path / "pkg" / "model.txt").read_bytes()
    cut = len(whole) // 3 if where == "in the trees" else whole.index(b"[max_depth: ") + 5
    rewrite_file(tmp_path / "pkg", "model.txt", whole[:cut])
    with pytest.raises(InvalidArtifactError):
        check_package_members(members(tmp_path / "pkg"))
    with pytest.raises(ModelLoadError) as info:
        load_package(tmp_path / "pkg")
    assert "Could not load the lightgbm model from 'model.txt'" in str(info.value)
    assert info.value.value == "lightgbm"


def test_server_reads_the_layout_of_a_large_model_from_its_head(data: Any, tmp_path: Path) -> None:
    x, y = data
    big = lgb.LGBMClassifier(n_estimators=150, num_leaves=15, min_child_samples=2, verbose=-1)
    manifest, _ = build_package(big.fit(x, y), tmp_path / "pkg", sample_input=x[:2])
    whole = (tmp_path / "pkg" / "model.txt").read_bytes()
    assert len(whole) > 64 * 1024
    assert check_package_members(members(tmp_path / "pkg")) == manifest
    rewrite_file(tmp_path / "pkg", "model.txt", whole[: len(whole) - 20_000])
    with pytest.raises(InvalidArtifactError) as info:  # tree_sizes say it is longer
        check_package_members(members(tmp_path / "pkg"))
    assert "cut short" in str(info.value)


def test_detection_does_not_import_lightgbm() -> None:
    code = (
        "import sys\n"
        "from funade.registry.flavors import detect_flavor\n"
        "class Echo:\n"
        "    def load(self, path): pass\n"
        "    def predict(self, inputs): return inputs\n"
        "assert detect_flavor(Echo()).name == 'python_class'\n"
        "assert 'lightgbm' not in sys.modules, 'lightgbm was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
