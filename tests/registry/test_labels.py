"""Class names recorded on the outputs that score them (``labels=``), checked at registration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from funade.errors import InvalidInputError
from funade.registry.package import build_package, load_package
from funade.registry.signature import Signature, TensorSpec
from tests.serving.models import Arithmetic

SAMPLE = {"x": np.array([[1.0, 2.0]])}  # Arithmetic: double FP64[-1, 2], total FP64[-1]


@pytest.mark.parametrize("labels", [["left", "right"], {"double": ["left", "right"]}])
def test_labels_are_recorded_on_the_output_that_scores_that_many_classes(
    tmp_path: Path, labels: Any
) -> None:
    manifest, _ = build_package(Arithmetic(), tmp_path / "p", sample_input=SAMPLE, labels=labels)
    outputs = {spec.name: spec.labels for spec in manifest.signature.outputs}
    assert outputs == {"double": ["left", "right"], "total": None}
    loaded = load_package(tmp_path / "p")
    assert loaded.signature.outputs[0].labels == ["left", "right"]
    written = (tmp_path / "p" / "funade.json").read_text()
    assert written.count('"labels"') == 1  # absent where there are none


@pytest.mark.parametrize(
    ("labels", "field", "message"),
    [
        (["a", "b", "c"], "labels", "no output scores 3 classes (double: FP64[-1, 2], total: "),
        ("ab", "labels", "they are one string, not a list of class names"),
        ({"nope": ["a", "b"]}, "labels.nope", "The model has no output 'nope' to label."),
        (["a", "a"], "labels", "a class of 'double' is named twice"),
        (["a", ""], "labels", "'double' needs a non-empty list of non-empty strings"),
        ({"total": ["a", "b"]}, "labels", "'total' has shape [-1]; 2 labels need a last dimension"),
        ({"double": ["a"]}, "labels", "'double' has shape [-1, 2]; 1 labels need a last dimension"),
    ],
)
def test_labels_that_do_not_fit_the_model_are_refused(
    tmp_path: Path, labels: Any, field: str, message: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        build_package(Arithmetic(), tmp_path / "p", sample_input=SAMPLE, labels=labels)
    assert caught.value.field == field
    assert message in str(caught.value)
    assert caught.value.fix
    assert not (tmp_path / "p" / "funade.json").exists()


def test_a_signature_labels_outputs_only() -> None:
    spec = {"name": "x", "datatype": "FP32", "shape": [-1, 2], "labels": ["a", "b"]}
    with pytest.raises(ValidationError, match=r"inputs \['x'\] have labels"):
        Signature.model_validate({"inputs": [spec], "outputs": []})
    with pytest.raises(ValidationError, match="is BYTES, not scores to label"):
        TensorSpec.model_validate({**spec, "datatype": "BYTES"})


def test_a_scikit_learn_classifier_names_its_probabilities_by_its_classes(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    x = np.array([[0.0, 0], [1, 1], [0, 1], [1, 0]])
    model = LogisticRegression().fit(x, ["stays", "leaves", "stays", "leaves"])
    manifest, _ = build_package(model, tmp_path / "auto", sample_input=x)
    outputs = {spec.name: spec.labels for spec in manifest.signature.outputs}
    assert outputs == {"predict": None, "predict_proba": ["leaves", "stays"]}  # classes_ order
    manifest, _ = build_package(model, tmp_path / "given", sample_input=x, labels=["L", "S"])
    assert manifest.signature.outputs[1].labels == ["L", "S"]
    only = {"methods": ["predict"]}
    manifest, _ = build_package(model, tmp_path / "none", sample_input=x, options=only)
    assert [spec.labels for spec in manifest.signature.outputs] == [None]
