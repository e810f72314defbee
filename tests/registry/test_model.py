"""``Model``: user input in, user output out; tensors in, tensors out; a readable repr."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from funade.errors import InvalidInputError
from funade.registry.model import Model
from funade.registry.package import build_package, load_package
from tests.registry.helpers import read_manifest_json, write_manifest_json


@pytest.fixture
def model(logreg: Any, data: Any, tmp_path: Path) -> Model:
    build_package(logreg, tmp_path / "pkg", sample_input=data[0][:5])
    return load_package(tmp_path / "pkg")


def test_predict_tensors(model: Model, logreg: Any, data: Any) -> None:
    out = model.predict_tensors({"input": data[0][:3]})
    assert list(out) == ["predict", "predict_proba"]
    np.testing.assert_array_equal(out["predict"], logreg.predict(data[0][:3]))


def test_predict_tensors_checks_names(model: Model) -> None:
    with pytest.raises(InvalidInputError) as info:
        model.predict_tensors({"X": np.ones((1, 20))})
    assert info.value.field == "input"


def test_predict_checks_input(model: Model) -> None:
    with pytest.raises(InvalidInputError) as info:
        model.predict(np.ones((2, 19)))
    assert info.value.field == "input"
    assert "(n, 20)" in str(info.value)


def test_predict_takes_lists_and_single_rows(model: Model, logreg: Any, data: Any) -> None:
    x = data[0]
    np.testing.assert_array_equal(
        model.predict_all(x[:2].tolist())["predict"], logreg.predict(x[:2])
    )
    assert model.predict_all(x[0])["predict"].shape == (1,)


def test_attributes_and_repr(model: Model, logreg: Any) -> None:
    assert model.name is None
    assert model.version is None
    assert model.flavor == "sklearn"
    assert model.signature is model.manifest.signature
    assert type(model.native) is type(logreg)
    assert repr(model) == (
        "<Model unnamed flavor=sklearn inputs=[input: FP64[-1, 20]] "
        "outputs=[predict: INT64[-1], predict_proba: FP64[-1, 2]]>"
    )
    model.name, model.version = "churn", 3
    assert repr(model).startswith("<Model churn v3 flavor=sklearn")


def test_predict_gives_the_first_output_or_the_one_asked_for(
    model: Model, logreg: Any, data: Any
) -> None:
    x = data[0][:3]
    np.testing.assert_array_equal(model.predict(x), logreg.predict(x))
    np.testing.assert_allclose(model.predict(x, output="predict_proba"), logreg.predict_proba(x))
    with pytest.raises(InvalidInputError, match="Model has no output 'proba'") as info:
        model.predict(x, output="proba")
    assert info.value.field == "output"
    assert info.value.fix == "Ask for one of ['predict', 'predict_proba']."


def test_a_declared_output_the_model_does_not_give_is_named(tmp_path: Path) -> None:
    from tests.serving.models import Arithmetic

    build_package(Arithmetic(), tmp_path / "pkg", sample_input={"x": np.ones((2, 2))})
    manifest = read_manifest_json(tmp_path / "pkg")
    manifest["signature"]["outputs"].append({"name": "ratio", "datatype": "FP64", "shape": [-1]})
    write_manifest_json(tmp_path / "pkg", manifest)
    model = load_package(tmp_path / "pkg")
    with pytest.raises(InvalidInputError) as info:
        model.predict({"x": np.ones((1, 2))}, output="ratio")
    assert info.value.message == "The model gave no output 'ratio' (it gave ['double', 'total'])."
    assert info.value.fix == (
        "Ask for one of ['double', 'total'], or make the model return 'ratio'."
    )
