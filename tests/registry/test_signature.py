"""Signatures: inference from samples, checking user input, and the user-facing output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from funade.errors import InvalidInputError
from funade.registry.signature import (
    Signature,
    TensorSpec,
    frame_from_tensors,
    from_tensors,
    infer_signature,
    inputs_from_tensors,
    to_tensors,
)

OUT = {"predict": np.array([0, 1])}


def test_infer_from_array() -> None:
    sig = infer_signature(np.zeros((2, 20)), OUT)
    assert sig.input_format == "tensor"
    assert sig.inputs == [TensorSpec(name="input", datatype="FP64", shape=[-1, 20])]
    assert sig.outputs == [TensorSpec(name="predict", datatype="INT64", shape=[-1])]


def test_infer_from_list() -> None:
    sig = infer_signature([[1, 2, 3], [4, 5, 6]], OUT)
    assert sig.inputs == [TensorSpec(name="input", datatype="INT64", shape=[-1, 3])]


def test_infer_from_dataframe() -> None:
    frame = pd.DataFrame({"age": [1.0, 2.0], "plan": ["a", "b"], "vip": [True, False]})
    sig = infer_signature(frame, OUT)
    assert sig.input_format == "columns"
    assert [(s.name, s.datatype, s.shape) for s in sig.inputs] == [
        ("age", "FP64", [-1]),
        ("plan", "BYTES", [-1]),
        ("vip", "BOOL", [-1]),
    ]


def test_infer_from_dict() -> None:
    sig = infer_signature({"image": np.zeros((2, 4, 4), np.uint8), "id": [1, 2]}, OUT)
    assert sig.input_format == "tensors"
    assert sig.inputs[0] == TensorSpec(name="image", datatype="UINT8", shape=[-1, 4, 4])
    assert sig.inputs[1] == TensorSpec(name="id", datatype="INT64", shape=[-1])


def test_signature_json_round_trip() -> None:
    sig = infer_signature(
        np.zeros((2, 3), np.float32), {"a": np.zeros((2, 2)), "b": OUT["predict"]}
    )
    assert Signature.model_validate_json(sig.model_dump_json()) == sig


def test_signature_rules() -> None:
    spec = TensorSpec(name="x", datatype="FP32", shape=[-1])
    with pytest.raises(ValidationError):
        Signature(inputs=[spec, spec], outputs=[])
    with pytest.raises(ValidationError):
        Signature(
            inputs=[spec, spec.model_copy(update={"name": "y"})], outputs=[], input_format="tensor"
        )
    with pytest.raises(ValidationError):
        TensorSpec(name="x", datatype="FLOAT", shape=[-1])  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        TensorSpec(name="x", datatype="FP32", shape=[-2])


ARRAY_SIG = Signature(
    inputs=[TensorSpec(name="x", datatype="FP32", shape=[-1, 3])], outputs=[], input_format="tensor"
)
COLUMNS_SIG = Signature(
    inputs=[
        TensorSpec(name="age", datatype="FP64", shape=[-1]),
        TensorSpec(name="plan", datatype="BYTES", shape=[-1]),
    ],
    outputs=[],
    input_format="columns",
)


def test_to_tensors_names_and_casts_one_array() -> None:
    tensors = to_tensors(np.ones((2, 3)), ARRAY_SIG)
    assert list(tensors) == ["x"]
    assert tensors["x"].dtype == np.float32
    assert to_tensors([[1, 2, 3]], ARRAY_SIG)["x"].shape == (1, 3)


def test_to_tensors_one_row_becomes_a_batch() -> None:
    assert to_tensors(np.ones(3), ARRAY_SIG)["x"].shape == (1, 3)


def test_to_tensors_accepts_named_tensors_and_dataframes_for_one_array() -> None:
    assert to_tensors({"x": np.ones((2, 3))}, ARRAY_SIG)["x"].shape == (2, 3)
    frame = pd.DataFrame(np.ones((2, 3)), columns=["a", "b", "c"])
    assert to_tensors(frame, ARRAY_SIG)["x"].shape == (2, 3)


def test_wrong_trailing_shape_names_input_and_expected_shape() -> None:
    with pytest.raises(InvalidInputError) as info:
        to_tensors(np.ones((2, 4)), ARRAY_SIG)
    error = info.value
    assert error.field == "x"
    assert "[2, 4]" in str(error)
    assert "(n, 3)" in str(error)
    assert error.value == "float64 array of shape [2, 4]"


def test_wrong_datatype_names_input_and_expected_datatype() -> None:
    with pytest.raises(InvalidInputError) as info:
        to_tensors(np.array([["a", "b", "c"]]), ARRAY_SIG)
    assert info.value.field == "x"
    assert "BYTES" in str(info.value)
    assert "expects FP32" in str(info.value)


def test_dataframe_columns_picked_by_name_in_signature_order() -> None:
    frame = pd.DataFrame({"plan": ["a", "b"], "age": [3, 4]})
    tensors = to_tensors(frame, COLUMNS_SIG)
    assert list(tensors) == ["age", "plan"]
    assert tensors["age"].dtype == np.float64


def test_missing_column_names_it_and_what_is_expected() -> None:
    with pytest.raises(InvalidInputError) as info:
        to_tensors(pd.DataFrame({"age": [1.0]}), COLUMNS_SIG)
    error = info.value
    assert error.field == "plan"
    assert "The input lacks 'plan', which the model takes." in str(error)
    assert "DataFrame with the columns age: FP64[-1], plan: BYTES[-1]" in str(error)


def test_unexpected_column_is_named() -> None:
    frame = pd.DataFrame({"age": [1.0], "plan": ["a"], "id": [7]})
    with pytest.raises(InvalidInputError) as info:
        to_tensors(frame, COLUMNS_SIG)
    assert info.value.field == "id"
    assert "Drop them" in str(info.value)
    assert "The model does not take 'id'." in str(info.value)


def test_one_array_for_named_inputs_is_refused() -> None:
    with pytest.raises(InvalidInputError) as info:
        to_tensors(np.ones((2, 2)), COLUMNS_SIG)
    assert info.value.field == "age"
    assert "named inputs: age, plan" in str(info.value)


def test_column_given_as_n_by_1_or_n() -> None:
    frame_sig = Signature(
        inputs=[TensorSpec(name="a", datatype="FP32", shape=[-1, 1])],
        outputs=[],
        input_format="columns",
    )
    assert to_tensors(pd.DataFrame({"a": [1.0, 2.0]}), frame_sig)["a"].shape == (2, 1)
    assert to_tensors({"age": np.ones((2, 1)), "plan": ["a", "b"]}, COLUMNS_SIG)["age"].shape == (
        2,
    )


def test_from_tensors_one_output_is_the_array() -> None:
    sig = Signature(
        inputs=ARRAY_SIG.inputs, outputs=[TensorSpec(name="y", datatype="INT64", shape=[-1])]
    )
    out = from_tensors({"y": np.array([1, 2])}, sig)
    np.testing.assert_array_equal(out, [1, 2])


def test_from_tensors_several_outputs_in_signature_order() -> None:
    specs = [TensorSpec(name=n, datatype="FP64", shape=[-1]) for n in ("b", "a")]
    sig = Signature(inputs=ARRAY_SIG.inputs, outputs=specs)
    out = from_tensors({"a": np.zeros(1), "b": np.ones(1)}, sig)
    assert list(out) == ["b", "a"]


def test_inputs_from_tensors_gives_back_the_users_form() -> None:
    tensors = to_tensors(pd.DataFrame({"age": [1.0], "plan": ["a"]}), COLUMNS_SIG)
    frame = inputs_from_tensors(tensors, COLUMNS_SIG)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["age", "plan"]
    assert isinstance(inputs_from_tensors({"x": np.ones((1, 3))}, ARRAY_SIG), np.ndarray)


def test_a_frame_gets_utf8_bytes_back_as_text_and_other_bytes_as_they_are() -> None:
    frame = frame_from_tensors(
        {
            "prénom": np.array(["Zoé".encode(), b"L\xc3\xa9a"], dtype=object),
            "raw": np.array([b"\xff\xfe", b"ok"], dtype=object),
            "mixed": np.array(["a", b"b"], dtype=object),
            "monthly charges": np.array([[80.0], [40.0]]),
        }
    )
    assert list(frame.columns) == ["prénom", "raw", "mixed", "monthly charges"]
    assert frame["prénom"].tolist() == ["Zoé", "Léa"]
    assert frame["raw"].tolist() == [b"\xff\xfe", b"ok"], "not UTF-8: left as bytes"
    assert frame["mixed"].tolist() == ["a", b"b"]
    assert frame["monthly charges"].tolist() == [80.0, 40.0]
