"""The binary tensor encoding, checked against NVIDIA's own ``tritonclient.utils``."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from funade.errors import InvalidInputError
from funade.serving.protocol import tensor_from_bytes, tensor_to_bytes
from tests.serving.protocol import DATATYPES, SAMPLES, SHAPES, assert_same, sample


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("datatype", DATATYPES)
def test_every_datatype_round_trips(datatype: str, shape: tuple[int, ...]) -> None:
    array = sample(datatype, shape)
    data = tensor_to_bytes(array, datatype)
    assert_same(tensor_from_bytes(data, datatype, list(shape)), array)


@pytest.mark.parametrize("datatype", DATATYPES)
def test_bytes_match_tritonclient(datatype: str) -> None:
    array = SAMPLES[datatype]
    if datatype == "BYTES":
        expected = serialize_byte_tensor(array).item()
        assert tensor_to_bytes(array, datatype) == expected
        decoded = tensor_from_bytes(expected, datatype, [2, 3])
        assert decoded.tolist() == deserialize_bytes_tensor(expected).reshape(2, 3).tolist()
    else:
        assert tensor_to_bytes(array, datatype) == array.tobytes()  # tritonclient sends tobytes()


def test_bool_is_one_byte_per_element() -> None:
    assert tensor_to_bytes(np.array([True, False, True]), "BOOL") == b"\x01\x00\x01"


def test_bytes_elements_are_length_prefixed_little_endian() -> None:
    data = tensor_to_bytes(np.array(["ab", b"\xff"], dtype=object), "BYTES")
    assert data == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 1) + b"\xff"


def test_numbers_are_little_endian_whatever_the_array_order() -> None:
    big = np.array([1, 258], dtype=">u2")
    assert tensor_to_bytes(big, "UINT16") == b"\x01\x00\x02\x01"


def test_array_is_cast_to_the_datatype() -> None:
    assert tensor_to_bytes(np.array([1.0, 2.0]), "INT32") == np.array([1, 2], "<i4").tobytes()


def test_decoded_array_is_writable_and_owns_its_memory() -> None:
    data = bytearray(np.arange(4, dtype="<f4").tobytes())
    array = tensor_from_bytes(memoryview(data), "FP32", [2, 2])
    data[:4] = b"\x00\x00\x80\x7f"  # the caller's buffer changes; the array does not
    array[0, 0] = 7.0
    assert array.tolist() == [[7.0, 1.0], [2.0, 3.0]]


def test_wrong_byte_count_names_the_expected_size() -> None:
    with pytest.raises(InvalidInputError) as info:
        tensor_from_bytes(b"\x00" * 12, "FP32", [2, 2], field="inputs[0].data", name="x")
    assert info.value.field == "inputs[0].data"
    assert info.value.value == 12
    assert "FP32 with shape [2, 2], which takes 16 bytes" in str(info.value)


def test_bool_bytes_other_than_0_and_1_are_refused() -> None:
    with pytest.raises(InvalidInputError) as info:
        tensor_from_bytes(b"\x01\x02", "BOOL", [2], name="flags")
    assert "holds a byte 2" in str(info.value)
    assert "1 for true, 0 for false" in str(info.value)


def test_truncated_bytes_element_is_refused() -> None:
    data = struct.pack("<I", 5) + b"abc"
    with pytest.raises(InvalidInputError) as info:
        tensor_from_bytes(data, "BYTES", [1], field="f", name="text")
    assert info.value.field == "f"
    assert "end inside element 0" in str(info.value)


def test_missing_bytes_elements_are_refused() -> None:
    data = struct.pack("<I", 1) + b"a"
    with pytest.raises(InvalidInputError) as info:
        tensor_from_bytes(data, "BYTES", [2], name="text")
    assert "needs 2 BYTES elements" in str(info.value)


def test_extra_bytes_after_the_elements_are_refused() -> None:
    data = struct.pack("<I", 1) + b"a" + b"junk"
    with pytest.raises(InvalidInputError) as info:
        tensor_from_bytes(data, "BYTES", [1], name="text")
    assert "1 BYTES elements in 5 bytes, but its binary data has 9" in str(info.value)


def test_bytes_tensor_of_numbers_is_refused() -> None:
    with pytest.raises(InvalidInputError) as info:
        tensor_to_bytes(np.array([1, "a"], dtype=object), "BYTES", name="mixed")
    assert info.value.field == "mixed"
    assert "holds a int (1)" in str(info.value)


def test_strings_cannot_be_written_as_numbers() -> None:
    with pytest.raises(InvalidInputError) as info:
        tensor_to_bytes(np.array(["a"], dtype=object), "FP32", name="out")
    assert info.value.field == "out"
    assert "cannot be written as FP32" in str(info.value)
