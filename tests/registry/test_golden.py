"""Golden examples in OIP request/response shape, and comparing a replica's outputs to them."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from funade.errors import InvalidInputError
from funade.registry.golden import MAX_GOLDEN_BYTES, compare_outputs, make_golden_examples

INPUTS = {"input": np.array([[1.0, 2.0], [3.0, 4.0]])}
OUTPUTS = {
    "predict": np.array(["yes", "no"], dtype=object),
    "predict_proba": np.array([[0.25, 0.75], [0.5, 0.5]]),
}


def test_one_example_in_oip_shape() -> None:
    examples = make_golden_examples(INPUTS, OUTPUTS)
    assert len(examples) == 1
    example = json.loads(json.dumps(examples[0]))
    assert example == {
        "inputs": [
            {"name": "input", "datatype": "FP64", "shape": [2, 2], "data": [1.0, 2.0, 3.0, 4.0]}
        ],
        "outputs": [
            {"name": "predict", "datatype": "BYTES", "shape": [2], "data": ["yes", "no"]},
            {
                "name": "predict_proba",
                "datatype": "FP64",
                "shape": [2, 2],
                "data": [0.25, 0.75, 0.5, 0.5],
            },
        ],
    }


def test_same_outputs_match() -> None:
    expected = make_golden_examples(INPUTS, OUTPUTS)[0]["outputs"]
    assert compare_outputs(expected, copy.deepcopy(expected)) == []


def test_tiny_float_noise_matches_and_extra_outputs_are_ignored() -> None:
    expected = make_golden_examples(INPUTS, OUTPUTS)[0]["outputs"]
    actual = copy.deepcopy(expected)
    actual[1]["data"][0] += 1e-9
    actual.append({"name": "extra", "datatype": "FP32", "shape": [1], "data": [0.0]})
    assert compare_outputs(expected, actual) == []


def test_a_changed_number_is_reported_with_where_and_how_much() -> None:
    expected = make_golden_examples(INPUTS, OUTPUTS)[0]["outputs"]
    actual = copy.deepcopy(expected)
    actual[1]["data"][3] = 0.9
    differences = compare_outputs(expected, actual)
    assert len(differences) == 1
    assert "'predict_proba' differs in 1 of 4 values" in differences[0]
    assert "first at [1, 1]: 0.9, expected 0.5" in differences[0]
    assert "largest difference 0.4" in differences[0]


def test_a_changed_label_missing_output_shape_and_datatype() -> None:
    expected = make_golden_examples(INPUTS, OUTPUTS)[0]["outputs"]
    label = copy.deepcopy(expected)
    label[0]["data"][1] = "yes"
    assert compare_outputs(expected, label) == [
        "output 'predict' differs in 1 of 2 values; first at [1]: 'yes', expected 'no'"
    ]
    assert compare_outputs(expected, expected[:1]) == ["output 'predict_proba' is missing"]
    shape = copy.deepcopy(expected)
    shape[1]["shape"] = [4]
    assert compare_outputs(expected, shape) == [
        "output 'predict_proba' has shape [4], expected [2, 2]"
    ]
    kind = copy.deepcopy(expected)
    kind[1]["datatype"] = "FP32"
    assert compare_outputs(expected, kind) == [
        "output 'predict_proba' has datatype FP32, expected FP64"
    ]


def test_a_malformed_actual_output_is_a_difference_not_a_crash() -> None:
    expected = make_golden_examples(INPUTS, OUTPUTS)[0]["outputs"]
    broken = copy.deepcopy(expected)
    broken[1]["data"] = [1.0]
    (difference,) = compare_outputs(expected, broken)
    assert "'predict_proba' is not a valid tensor" in difference


def test_nan_matches_nan() -> None:
    expected = make_golden_examples(INPUTS, {"y": np.array([np.nan, 1.0])})[0]["outputs"]
    assert compare_outputs(expected, copy.deepcopy(expected)) == []


def test_golden_examples_are_capped() -> None:
    rows = np.zeros((MAX_GOLDEN_BYTES // 8, 2))
    with pytest.raises(InvalidInputError) as info:
        make_golden_examples({"input": rows}, {"y": rows[:, 0]})
    assert info.value.field == "sample_input"
    assert "X[:5]" in str(info.value)
    assert f"{len(rows)} rows" == info.value.value
