"""OIP datatypes ↔ numpy dtypes, tensors ↔ OIP JSON, user input → named tensors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from funade.errors import InvalidInputError
from funade.registry.tensors import (
    DATATYPES,
    as_tensors,
    cast,
    datatype_of,
    normalize,
    numpy_dtype,
    tensor_from_json,
    tensor_to_json,
    tensors_from_json,
    tensors_to_json,
)

NUMERIC = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


def test_every_oip_datatype_is_mapped() -> None:
    assert set(DATATYPES) == {*NUMERIC, "BYTES"}


@pytest.mark.parametrize(("datatype", "dtype"), NUMERIC.items())
def test_numeric_datatype_maps_both_ways(datatype: str, dtype: type) -> None:
    assert numpy_dtype(datatype) == np.dtype(dtype)
    array = np.array([[1, 0], [0, 1]], dtype=dtype)
    assert datatype_of(array) == datatype


@pytest.mark.parametrize(("datatype", "dtype"), NUMERIC.items())
def test_numeric_tensor_json_round_trip(datatype: str, dtype: type) -> None:
    array = np.array([[1, 0, 1], [0, 1, 1]], dtype=dtype)
    obj = tensor_to_json("x", array)
    assert obj == {
        "name": "x",
        "datatype": datatype,
        "shape": [2, 3],
        "data": list(array.reshape(-1).tolist()),
    }
    name, back = tensor_from_json(json.loads(json.dumps(obj)))
    assert name == "x"
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize(
    "strings",
    [
        np.array(["a", "bé"]),
        np.array(["a", "bé"], dtype=object),
        np.array([b"a", "bé".encode()], dtype=object),
    ],
    ids=["unicode", "object-str", "object-bytes"],
)
def test_strings_are_bytes_tensors_sent_as_str(strings: np.ndarray) -> None:
    assert datatype_of(strings) == "BYTES"
    assert numpy_dtype("BYTES") == np.dtype(object)
    obj = tensor_to_json("s", strings)
    assert obj == {"name": "s", "datatype": "BYTES", "shape": [2], "data": ["a", "bé"]}
    _, back = tensor_from_json(obj)
    assert back.dtype == object
    assert back.tolist() == ["a", "bé"]


def test_json_data_may_be_nested_row_major() -> None:
    obj = {"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2], [3, 4]]}
    _, array = tensor_from_json(obj)
    np.testing.assert_array_equal(array, np.array([[1, 2], [3, 4]], dtype=np.float32))


def test_tensors_json_keeps_order() -> None:
    tensors = {"b": np.array([1.5]), "a": np.array([True])}
    objs = tensors_to_json(tensors)
    assert [o["name"] for o in objs] == ["b", "a"]
    back = tensors_from_json(objs)
    assert list(back) == ["b", "a"]


def test_unknown_datatype_names_the_choices() -> None:
    with pytest.raises(InvalidInputError) as info:
        numpy_dtype("FLOAT")
    assert info.value.field == "datatype"
    assert "FLOAT" in str(info.value)
    assert "FP32" in str(info.value)


@pytest.mark.parametrize(
    ("array", "shown"),
    [
        (np.array([1 + 2j]), "complex128"),
        (np.array(["2024-01-01"], dtype="datetime64[ns]"), "datetime64"),
    ],
)
def test_dtypes_without_oip_datatype_are_refused(array: np.ndarray, shown: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        datatype_of(array, name="when")
    assert info.value.field == "when"
    assert shown in str(info.value)
    assert "astype" in str(info.value)


def test_object_arrays_of_other_things_are_refused() -> None:
    with pytest.raises(InvalidInputError) as info:
        normalize(np.array([{"a": 1}, "x"], dtype=object), name="rows")
    assert info.value.field == "rows"
    assert "dict" in str(info.value)


def test_json_tensor_with_wrong_number_of_values() -> None:
    with pytest.raises(InvalidInputError) as info:
        tensor_from_json({"name": "x", "datatype": "FP32", "shape": [2, 3], "data": [1, 2]})
    assert info.value.field == "x.data"
    assert "2 values" in str(info.value)
    assert "needs 6" in str(info.value)


def test_json_tensor_with_bad_shape() -> None:
    with pytest.raises(InvalidInputError) as info:
        tensor_from_json({"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]})
    assert info.value.field == "x.shape"


def test_json_tensor_without_name() -> None:
    with pytest.raises(InvalidInputError) as info:
        tensor_from_json({"datatype": "FP32", "shape": [1], "data": [1]})
    assert info.value.field == "name"


def test_json_numbers_expected_but_strings_given() -> None:
    with pytest.raises(InvalidInputError) as info:
        tensor_from_json({"name": "x", "datatype": "INT64", "shape": [1], "data": ["7"]})
    assert info.value.field == "x.data"
    assert "INT64" in str(info.value)


def test_json_bytes_expected_but_numbers_given() -> None:
    with pytest.raises(InvalidInputError) as info:
        tensor_from_json({"name": "s", "datatype": "BYTES", "shape": [1], "data": [7]})
    assert info.value.field == "s"


def test_json_int_out_of_range_is_refused_not_wrapped() -> None:
    with pytest.raises(InvalidInputError) as info:
        tensor_from_json({"name": "p", "datatype": "UINT8", "shape": [2], "data": [1, 300]})
    assert info.value.field == "p"
    assert "0 to 255" in str(info.value)


def test_json_uint64_past_int64_round_trips_exactly() -> None:
    """Integers from 2**63 are not int64s: numpy reads them as floats unless told the type."""
    for array in (np.array([2**64 - 1, 1], dtype=np.uint64), np.array([[2**63], [5]], np.uint64)):
        _, back = tensor_from_json(tensor_to_json("h", array))
        assert back.dtype == np.uint64
        assert back.tolist() == array.tolist()


@pytest.mark.parametrize(
    ("datatype", "data", "field", "message"),
    [
        (
            "UINT64",
            [2**64, 1],
            "h.data",
            "from 1 to 18446744073709551616, outside the range of UINT64",
        ),
        ("INT64", [2**63], "h", "outside the range of INT64"),
        ("UINT64", [2**64 - 1, 1.5], "h", "has datatype FP64, but the model expects UINT64"),
    ],
)
def test_json_integers_past_int64_that_do_not_fit_are_refused(
    datatype: str, data: list[object], field: str, message: str
) -> None:
    with pytest.raises(InvalidInputError) as info:
        tensor_from_json({"name": "h", "datatype": datatype, "shape": [len(data)], "data": data})
    assert info.value.field == field
    assert message in str(info.value)


def test_json_float_for_int_is_refused_not_truncated() -> None:
    with pytest.raises(InvalidInputError) as info:
        tensor_from_json({"name": "n", "datatype": "INT32", "shape": [1], "data": [1.5]})
    assert "FP64" in str(info.value)
    assert "INT32" in str(info.value)


def test_cast_int_to_float_and_float64_to_float32() -> None:
    assert cast(np.array([1, 2]), "FP32", name="x").dtype == np.float32
    assert cast(np.array([1.5]), "FP32", name="x").dtype == np.float32


def test_cast_refuses_bool_to_number_and_back() -> None:
    with pytest.raises(InvalidInputError):
        cast(np.array([True]), "INT64", name="x")
    with pytest.raises(InvalidInputError):
        cast(np.array([1]), "BOOL", name="x")


def test_bytes_that_are_not_text_cannot_be_json() -> None:
    with pytest.raises(InvalidInputError) as info:
        tensor_to_json("img", np.array([b"\xff\xd8"], dtype=object))
    assert "Base64-encode" in str(info.value)


def test_as_tensors_array_list_series() -> None:
    fmt, tensors = as_tensors(np.zeros((3, 2)))
    assert fmt == "tensor"
    assert list(tensors) == ["input"]
    fmt, tensors = as_tensors([[1, 2], [3, 4]])
    assert tensors["input"].dtype == np.int64
    fmt, tensors = as_tensors(pd.Series([1.0, 2.0], name="s"))
    assert fmt == "tensor"
    assert tensors["input"].shape == (2,)


def test_as_tensors_dataframe_columns_in_order() -> None:
    frame = pd.DataFrame({"b": [1, 2], "a": ["x", "y"]})
    fmt, tensors = as_tensors(frame)
    assert fmt == "columns"
    assert list(tensors) == ["b", "a"]
    assert tensors["a"].dtype == object


def test_as_tensors_dict() -> None:
    fmt, tensors = as_tensors({"ids": [1, 2], "text": ["a", "b"]})
    assert fmt == "tensors"
    assert tensors["text"].dtype == object


def test_as_tensors_refuses_scalars_and_unnamed_columns() -> None:
    with pytest.raises(InvalidInputError) as info:
        as_tensors(3.0, field="sample_input")
    assert info.value.field == "sample_input"
    with pytest.raises(InvalidInputError) as info:
        as_tensors(pd.DataFrame(np.zeros((2, 2))), field="sample_input")
    assert info.value.field == "sample_input.columns"
    assert "to_numpy" in str(info.value)
    with pytest.raises(InvalidInputError):
        as_tensors({})
