"""KServe's v1 format: instances and columnar inputs in, predictions out."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import orjson
import pytest

from funade.errors import InvalidInputError
from funade.serving.protocol import (
    V1Request,
    decode_v1_request,
    encode_v1_response,
    v1_to_tensors,
)
from tests.serving.protocol import assert_same


def _tensors(doc: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return v1_to_tensors(decode_v1_request(orjson.dumps(doc)), names)


def _decode_and_convert(body: bytes, names: list[str]) -> None:
    v1_to_tensors(decode_v1_request(body), names)


def _refused(doc: Any, names: list[str] | None = None) -> InvalidInputError:
    body = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    with pytest.raises(InvalidInputError) as info:
        _decode_and_convert(body, names or ["x"])
    return info.value


# --- requests ------------------------------------------------------------------------------------


def test_decode_keeps_instances_or_inputs() -> None:
    assert decode_v1_request(b'{"instances": [[1, 2]]}') == V1Request([[1, 2]], None)
    assert decode_v1_request(b'{"inputs": {"a": [1]}}') == V1Request(None, {"a": [1]})


def test_rows_of_floats_are_one_float64_input() -> None:
    tensors = _tensors({"instances": [[1.0, 2.5], [3, 4]]}, ["x"])
    assert_same(tensors["x"], np.array([[1.0, 2.5], [3.0, 4.0]]))


def test_rows_of_integers_and_booleans_keep_their_kind() -> None:
    assert_same(_tensors({"instances": [[1, 2], [3, 4]]}, ["x"])["x"], np.array([[1, 2], [3, 4]]))
    assert_same(_tensors({"instances": [True, False]}, ["x"])["x"], np.array([True, False]))


def test_strings_become_object_arrays_of_bytes() -> None:
    tensors = _tensors({"instances": [["héllo", "a"], ["b", "c"]]}, ["text"])
    assert_same(tensors["text"], np.array([["héllo".encode(), b"a"], [b"b", b"c"]], dtype=object))


def test_b64_values_become_bytes() -> None:
    image = bytes(range(256))
    doc = {"instances": [{"b64": base64.b64encode(image).decode()}]}
    assert _tensors(doc, ["image"])["image"].tolist() == [image]


def test_named_instances_are_stacked_per_input_in_signature_order() -> None:
    doc = {"instances": [{"b": "x", "a": [1.0, 2.0]}, {"a": [3.0, 4.0], "b": "y"}]}
    tensors = _tensors(doc, ["a", "b"])
    assert list(tensors) == ["a", "b"]
    assert_same(tensors["a"], np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert_same(tensors["b"], np.array([b"x", b"y"], dtype=object))


def test_named_instance_may_hold_a_b64_value() -> None:
    doc = {"instances": [{"img": {"b64": "AAE="}, "id": 1}]}
    tensors = _tensors(doc, ["img", "id"])
    assert tensors["img"].tolist() == [b"\x00\x01"]
    assert_same(tensors["id"], np.array([1]))


def test_columnar_inputs_by_name() -> None:
    tensors = _tensors({"inputs": {"a": [[1.0], [2.0]], "b": ["p", "q"]}}, ["a", "b"])
    assert_same(tensors["a"], np.array([[1.0], [2.0]]))
    assert_same(tensors["b"], np.array([b"p", b"q"], dtype=object))


def test_columnar_list_is_the_single_input() -> None:
    assert_same(_tensors({"inputs": [[1, 2]]}, ["x"])["x"], np.array([[1, 2]]))


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (b"{nope", "body", "The request body is not valid JSON:"),
        (b"[1]", "body", "The request body is a JSON list, not an object."),
        (b'{"data": 1}', "body", 'neither "instances" nor "inputs" (it has [\'data\'])'),
        (b'{"instances": [1], "inputs": [1]}', "body", 'both "instances" and "inputs"'),
        (b'{"instances": {"a": 1}}', "instances", '"instances" must be a non-empty list'),
        (b'{"instances": []}', "instances", '"instances" must be a non-empty list'),
        (b'{"inputs": 3}', "inputs", '"inputs" must be a non-empty list, or an object'),
        (b'{"inputs": {}}', "inputs", '"inputs" must be a non-empty list, or an object'),
    ],
)
def test_malformed_requests(body: bytes, field: str, message: str) -> None:
    error = _refused(body)
    assert error.field == field
    assert message in str(error)


def test_named_instances_must_name_exactly_the_inputs() -> None:
    error = _refused({"instances": [{"a": 1, "b": 2}, {"a": 1, "c": 3}]}, ["a", "b"])
    assert error.field == "instances[1]"
    assert "instances[1] lacks 'b' and has unknown 'c'." in str(error)
    assert "The model takes the inputs a, b" in str(error)


def test_columnar_inputs_must_name_exactly_the_inputs() -> None:
    error = _refused({"inputs": {"a": [1]}}, ["a", "b"])
    assert error.field == "inputs"
    assert "inputs lacks 'b'." in str(error)


@pytest.mark.parametrize("doc", [{"instances": [[1, 2]]}, {"inputs": [[1, 2]]}])
def test_unnamed_values_for_a_model_with_several_inputs(doc: dict[str, Any]) -> None:
    error = _refused(doc, ["a", "b"])
    assert error.field in ("instances", "inputs")
    assert "The model takes 2 inputs (a, b), so the values must name them." in str(error)
    assert '{"instances": [{"a": ..., "b": ...}, ...]}' in str(error)


def test_mixed_named_and_unnamed_instances() -> None:
    error = _refused({"instances": [{"x": 1}, [1]]})
    assert error.field == "instances[1]"
    assert "Some instances are objects of named inputs and some are not." in str(error)


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ([[1, 2], [3]], "The rows of instances have different shapes."),
        ([["a", 1]], "instances mixes strings with other values"),
        ([[1.0, None]], "instances mixes strings with other values, or holds null"),
        ([{"b64": "!!"}], "instances has a b64 value that is not base64."),
    ],
)
def test_values_that_are_not_one_array(instances: list[Any], message: str) -> None:
    error = _refused({"instances": instances})
    assert error.field == "instances"
    assert message in str(error)


def test_named_value_errors_name_the_input() -> None:
    error = _refused({"instances": [{"a": [1, 2]}, {"a": [1]}]}, ["a"])
    assert error.field == "instances[*].a"


# --- responses -----------------------------------------------------------------------------------


def _predictions(body: bytes) -> Any:
    return orjson.loads(body)["predictions"]


def test_single_output_rows() -> None:
    body = encode_v1_response({"y": np.array([[0.25, 0.75], [1.0, 0.0]], np.float32)})
    assert _predictions(body) == [[0.25, 0.75], [1.0, 0.0]]


def test_primary_output_is_the_predictions() -> None:
    outputs = {"label": np.array([1, 0]), "proba": np.array([[0.1, 0.9], [0.8, 0.2]])}
    assert _predictions(encode_v1_response(outputs, primary="label")) == [1, 0]


def test_several_outputs_without_primary_are_one_object_per_row() -> None:
    outputs = {"label": np.array([b"cat", b"dog"], dtype=object), "score": np.array([0.5, 0.25])}
    assert _predictions(encode_v1_response(outputs)) == [
        {"label": "cat", "score": 0.5},
        {"label": "dog", "score": 0.25},
    ]


def test_bytes_that_are_not_utf8_are_b64() -> None:
    body = encode_v1_response({"y": np.array([b"\xff", "ok"], dtype=object)})
    assert _predictions(body) == [{"b64": "/w=="}, "ok"]


def test_scalar_fp16_and_bool_outputs() -> None:
    assert _predictions(encode_v1_response({"y": np.float16(0.5)})) == [0.5]
    assert _predictions(encode_v1_response({"y": np.array([True, False])})) == [True, False]


def test_unknown_primary_output() -> None:
    with pytest.raises(InvalidInputError) as info:
        encode_v1_response({"a": np.array([1])}, primary="b")
    assert info.value.field == "outputs"
    assert info.value.value == "b"
    assert "The model gave no output 'b'. Pick one of ['a']." in str(info.value)


def test_outputs_with_different_row_counts_cannot_be_rows() -> None:
    with pytest.raises(InvalidInputError) as info:
        encode_v1_response({"a": np.array([1, 2]), "b": np.array([1])})
    assert info.value.field == "outputs"
    assert "different numbers of rows ({'a': 2, 'b': 1})" in str(info.value)


def test_output_of_python_objects_is_refused() -> None:
    with pytest.raises(InvalidInputError) as info:
        encode_v1_response({"y": np.array([object()], dtype=object)})
    assert info.value.field == "y"
    assert "holds Python objects" in str(info.value)
