"""The Open Inference Protocol v2 REST format, cross-checked with NVIDIA's ``tritonclient.http``:
requests it builds decode to the same arrays, and responses we encode parse back with its
``InferResult``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pytest
import tritonclient.http as triton
from tritonclient.http._utils import _get_error
from tritonclient.utils import np_to_triton_dtype

from funade.errors import InvalidInputError
from funade.registry.signature import TensorSpec
from funade.serving.protocol import (
    HEADER_LENGTH,
    InferOutput,
    InferRequest,
    InferResponse,
    RequestedOutput,
    decode_infer_request,
    encode_infer_response,
    error_body,
    model_metadata,
    server_metadata,
)
from tests.serving.protocol import DATATYPES, SAMPLES, SHAPES, assert_same, sample

Array = npt.NDArray[Any]


def _json_data(array: Array, *, nested: bool) -> Any:
    values = array if nested else array.reshape(-1)
    if array.dtype == object:
        return np.vectorize(lambda b: b.decode(), otypes=[object])(values).tolist()
    return values.tolist()


def _body(*inputs: dict[str, Any], **extra: Any) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **extra})


def _tensor(name: str, datatype: str, shape: list[int], data: Any) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def _triton_request(
    arrays: dict[str, Array],
    *,
    binary: bool,
    outputs: list[triton.InferRequestedOutput] | None = None,
    **kwargs: Any,
) -> tuple[bytes, int | None]:
    inputs = []
    for name, array in arrays.items():
        infer_input = triton.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        infer_input.set_data_from_numpy(array, binary_data=binary)
        inputs.append(infer_input)
    body, header_length = triton.InferenceServerClient.generate_request_body(
        inputs, outputs=outputs, **kwargs
    )
    return body, header_length


def _triton_result(body: bytes, headers: dict[str, str]) -> triton.InferResult:
    length = headers.get(HEADER_LENGTH)
    return triton.InferResult.from_response_body(
        body, verbose=False, header_length=None if length is None else int(length)
    )


def _response(*outputs: InferOutput, **kwargs: Any) -> InferResponse:
    fields: dict[str, Any] = {"model_name": "m", "model_version": "1", "id": None, **kwargs}
    return InferResponse(outputs=list(outputs), **fields)


def _request(
    outputs: list[RequestedOutput] | None = None, *, binary_output: bool = False
) -> InferRequest:
    return InferRequest(
        id=None, inputs=[], outputs=outputs, parameters={}, binary_output=binary_output
    )


# --- requests: every datatype, JSON and binary ---------------------------------------------------


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("datatype", DATATYPES)
def test_json_request_round_trips(datatype: str, shape: tuple[int, ...], nested: bool) -> None:
    array = sample(datatype, shape)
    data = _json_data(array, nested=nested)
    request = decode_infer_request(_body(_tensor("x", datatype, list(shape), data)))
    (decoded,) = request.inputs
    assert (decoded.name, decoded.datatype, decoded.shape) == ("x", datatype, list(shape))
    assert_same(decoded.data, array)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("datatype", DATATYPES)
def test_tritonclient_request_decodes_to_the_same_array(
    datatype: str, shape: tuple[int, ...], binary: bool
) -> None:
    array = sample(datatype, shape)
    body, header_length = _triton_request({"x": array}, binary=binary)
    request = decode_infer_request(body, header_length=header_length)
    assert_same(request.inputs[0].data, array)


def test_tritonclient_request_with_several_inputs_mixed_binary_and_json() -> None:
    arrays = {name: SAMPLES[name] for name in ("FP32", "BYTES", "BOOL", "UINT64")}
    inputs = []
    for index, (name, array) in enumerate(arrays.items()):
        infer_input = triton.InferInput(name, list(array.shape), name)
        inputs.append(infer_input.set_data_from_numpy(array, binary_data=index % 2 == 0))
    outputs = [
        triton.InferRequestedOutput("b", binary_data=False),
        triton.InferRequestedOutput("a"),
    ]
    body, header_length = triton.InferenceServerClient.generate_request_body(
        inputs, outputs=outputs, request_id="req-7", parameters={"temperature": 0.5}
    )
    request = decode_infer_request(body, header_length=header_length)
    assert [i.name for i in request.inputs] == list(arrays)
    for decoded in request.inputs:
        assert_same(decoded.data, arrays[decoded.name])
    assert request.id == "req-7"
    assert request.parameters == {"temperature": 0.5}
    assert request.binary_output is False
    assert request.outputs == [
        RequestedOutput("b", False, {"binary_data": False}),
        RequestedOutput("a", True, {"binary_data": True}),
    ]


def test_tritonclient_without_outputs_asks_for_binary_outputs() -> None:
    body, _ = _triton_request({"x": SAMPLES["FP64"]}, binary=False)
    request = decode_infer_request(body)
    assert request.outputs is None
    assert request.binary_output is True


def test_nan_and_infinity_written_by_tritonclient_are_read() -> None:
    array = np.array([np.nan, np.inf, -np.inf, 1.0])
    body, _ = _triton_request({"x": array}, binary=False)
    assert b"NaN" in body  # rapidjson writes the non-standard literals
    decoded = decode_infer_request(body).inputs[0].data
    assert np.isnan(decoded[0])
    assert decoded[1:].tolist() == [np.inf, -np.inf, 1.0]


def test_kserve_style_request_with_nulls_and_empty_binary_input() -> None:
    empty = {**_tensor("e", "FP32", [0], None), "parameters": {"binary_data_size": 0}}
    given = {**_tensor("x", "INT32", [2], [1, 2]), "parameters": None}
    body = orjson.dumps({"id": "5b6f", "model_name": "m", "inputs": [empty, given]})
    request = decode_infer_request(body, header_length=len(body))
    assert_same(request.inputs[0].data, np.empty(0, np.float32))
    assert_same(request.inputs[1].data, np.array([1, 2], np.int32))
    assert request.inputs[1].parameters == {}


def test_integers_are_accepted_for_float_datatypes() -> None:
    request = decode_infer_request(_body(_tensor("x", "FP16", [3], [1, 2.5, -3])))
    assert_same(request.inputs[0].data, np.array([1, 2.5, -3], dtype=np.float16))


def test_ragged_nesting_counts_elements_in_row_major_order() -> None:
    request = decode_infer_request(_body(_tensor("x", "INT64", [2, 2], [[1], [2, 3, 4]])))
    assert request.inputs[0].data.tolist() == [[1, 2], [3, 4]]


def test_scalar_tensor_has_an_empty_shape() -> None:
    request = decode_infer_request(_body(_tensor("x", "FP64", [], [2.5])))
    assert_same(request.inputs[0].data, np.array(2.5))


def test_request_id_and_parameters_are_kept() -> None:
    body = _body(
        _tensor("x", "FP64", [1], [1.0]),
        id="abc",
        parameters={"binary_data_output": True, "priority": 2},
    )
    request = decode_infer_request(body)
    assert request.id == "abc"
    assert request.parameters == {"binary_data_output": True, "priority": 2}
    assert request.binary_output is True


# --- responses: every datatype, JSON and binary, parsed by tritonclient --------------------------


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("datatype", DATATYPES)
def test_tritonclient_reads_every_datatype_we_send(
    datatype: str, shape: tuple[int, ...], binary: bool
) -> None:
    array = sample(datatype, shape)
    body, headers = encode_infer_response(
        _response(InferOutput("y", array)), _request(binary_output=binary)
    )
    result = _triton_result(body, headers)
    got = result.as_numpy("y")
    assert result.get_output("y")["datatype"] == datatype
    if datatype == "BYTES" and not binary:  # JSON strings come back as str
        assert got.tolist() == np.vectorize(bytes.decode, otypes=[object])(array).tolist()
        assert got.shape == array.shape
    else:
        assert_same(got, array)


def test_json_response_shape_and_headers() -> None:
    body, headers = encode_infer_response(
        _response(InferOutput("y", np.array([[1, 2]], np.int32)), id="r1", parameters={"a": 1}),
    )
    assert headers == {"content-type": "application/json"}
    assert orjson.loads(body) == {
        "model_name": "m",
        "model_version": "1",
        "id": "r1",
        "parameters": {"a": 1},
        "outputs": [{"name": "y", "datatype": "INT32", "shape": [1, 2], "data": [1, 2]}],
    }


def test_binary_response_has_header_length_and_octet_stream() -> None:
    body, headers = encode_infer_response(
        _response(InferOutput("y", np.array([1.5], np.float32)), model_version=None),
        _request(binary_output=True),
    )
    assert headers["content-type"] == "application/octet-stream"
    length = int(headers[HEADER_LENGTH])
    assert orjson.loads(body[:length]) == {
        "model_name": "m",
        "outputs": [
            {"name": "y", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}}
        ],
    }
    assert body[length:] == np.array([1.5], "<f4").tobytes()


def test_requested_outputs_are_filtered_ordered_and_mixed_binary_and_json() -> None:
    outputs = [
        InferOutput("a", np.array([1, 2], np.int64)),
        InferOutput("b", np.array([[0.5]], np.float16)),
        InferOutput("c", np.array([b"x", b"yz"], dtype=object)),
        InferOutput("d", np.array([True])),
    ]
    request = _request(
        [
            RequestedOutput("c", True, {"binary_data": True}),
            RequestedOutput("a", None, {}),
            RequestedOutput("b", False, {"binary_data": False}),
        ],
        binary_output=True,  # decides for "a", which does not say
    )
    body, headers = encode_infer_response(_response(*outputs), request)
    result = _triton_result(body, headers)
    entries = result.get_response()["outputs"]
    assert [o["name"] for o in entries] == ["c", "a", "b"]
    assert ["data" in o for o in entries] == [False, False, True]
    assert result.as_numpy("c").tolist() == [b"x", b"yz"]
    assert_same(result.as_numpy("a"), np.array([1, 2], np.int64))
    assert_same(result.as_numpy("b"), np.array([[0.5]], np.float16))
    assert result.as_numpy("d") is None


def test_all_outputs_in_model_order_when_none_requested() -> None:
    body, _ = encode_infer_response(
        _response(InferOutput("z", np.array([1])), InferOutput("a", np.array([2]))), _request()
    )
    assert [o["name"] for o in orjson.loads(body)["outputs"]] == ["z", "a"]


def test_non_utf8_bytes_asked_for_as_json_are_sent_as_binary() -> None:
    array = np.array([b"\xff\xfe", b"ok"], dtype=object)
    body, headers = encode_infer_response(_response(InferOutput("y", array)), _request())
    assert headers["content-type"] == "application/octet-stream"
    assert _triton_result(body, headers).as_numpy("y").tolist() == [b"\xff\xfe", b"ok"]


def test_declared_datatype_casts_the_output() -> None:
    output = InferOutput("y", np.array([1.0, 2.0]), datatype="FP32", parameters={"unit": "m"})
    body, _ = encode_infer_response(_response(output))
    assert orjson.loads(body)["outputs"][0] == {
        "name": "y",
        "datatype": "FP32",
        "shape": [2],
        "parameters": {"unit": "m"},
        "data": [1.0, 2.0],
    }


def test_strings_and_numpy_string_arrays_are_bytes_outputs() -> None:
    body, headers = encode_infer_response(
        _response(InferOutput("u", np.array(["é", "b"])), InferOutput("s", np.array([b"x"])))
    )
    result = _triton_result(body, headers)
    assert result.as_numpy("u").tolist() == ["é", "b"]
    assert result.as_numpy("s").tolist() == ["x"]


def test_non_finite_floats_are_null_in_json_and_exact_in_binary() -> None:
    array = np.array([np.nan, np.inf, 1.0])
    body, _ = encode_infer_response(_response(InferOutput("y", array)))
    assert orjson.loads(body)["outputs"][0]["data"] == [None, None, 1.0]
    body, headers = encode_infer_response(
        _response(InferOutput("y", array)), _request(binary_output=True)
    )
    got = _triton_result(body, headers).as_numpy("y")
    assert math.isnan(got[0])
    assert got[1:].tolist() == [np.inf, 1.0]


def test_unknown_requested_output_names_the_outputs() -> None:
    with pytest.raises(InvalidInputError) as info:
        encode_infer_response(
            _response(InferOutput("a", np.array([1])), InferOutput("b", np.array([2]))),
            _request([RequestedOutput("c", None, {})]),
        )
    assert info.value.field == "outputs"
    assert info.value.value == "c"
    assert "The model has no output 'c'." in str(info.value)
    assert "Request one of ['a', 'b']" in str(info.value)


def test_output_of_python_objects_is_refused() -> None:
    with pytest.raises(InvalidInputError) as info:
        encode_infer_response(_response(InferOutput("y", np.array([{}], dtype=object))))
    assert info.value.field == "y"
    assert "holds Python objects" in str(info.value)


def test_strings_declared_as_numbers_are_refused() -> None:
    with pytest.raises(InvalidInputError) as info:
        encode_infer_response(
            _response(InferOutput("y", np.array(["a"], dtype=object), datatype="FP32"))
        )
    assert info.value.field == "outputs.y"
    assert "cannot be sent as FP32" in str(info.value)


# --- metadata and errors -------------------------------------------------------------------------


def test_model_metadata_from_signature_specs() -> None:
    spec = TensorSpec(name="x", datatype="FP64", shape=[-1, 20])
    out = TensorSpec(name="y", datatype="INT64", shape=[-1])
    assert model_metadata("churn", ["3"], "funade_sklearn", [spec], [out]) == {
        "name": "churn",
        "versions": ["3"],
        "platform": "funade_sklearn",
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 20]}],
        "outputs": [{"name": "y", "datatype": "INT64", "shape": [-1]}],
    }


def test_server_metadata_always_lists_the_binary_extension() -> None:
    assert server_metadata("funade", "0.1.0", ["model_repository"]) == {
        "name": "funade",
        "version": "0.1.0",
        "extensions": ["binary_tensor_data", "model_repository"],
    }
    assert server_metadata("funade", "0.1.0")["extensions"] == ["binary_tensor_data"]


class _ErrorResponse:
    """What tritonclient reads an error from: a status code and a body."""

    status_code = 400

    def __init__(self, body: bytes) -> None:
        self._body = body

    def read(self) -> bytes:
        return self._body


def test_tritonclient_reads_our_error_body() -> None:
    error = _get_error(_ErrorResponse(error_body("Input 'x' is missing.")))
    assert error is not None
    assert error.message() == "Input 'x' is missing."
    assert error.status() == "400"


# --- request errors ------------------------------------------------------------------------------


def _refused(body: bytes, header_length: int | None = None) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as info:
        decode_infer_request(body, header_length=header_length)
    return info.value


def test_malformed_json() -> None:
    error = _refused(b'{"inputs": [')
    assert error.field == "body"
    assert str(error).startswith("The request body is not valid JSON:")
    assert "Inference-Header-Content-Length" in str(error)


def test_json_that_is_not_an_object() -> None:
    error = _refused(b"[1, 2]")
    assert error.field == "body"
    assert "is a JSON array, not an object" in str(error)


@pytest.mark.parametrize(
    ("doc", "message"),
    [({}, 'The request has no "inputs" list.'), ({"inputs": {}}, '"inputs" is a JSON object')],
)
def test_missing_or_malformed_inputs(doc: dict[str, Any], message: str) -> None:
    error = _refused(orjson.dumps(doc))
    assert error.field == "inputs"
    assert message in str(error)


def test_duplicate_input_names() -> None:
    x = _tensor("x", "FP64", [1], [1.0])
    error = _refused(_body(x, _tensor("y", "FP64", [1], [1.0]), x))
    assert error.field == "inputs[2].name"
    assert "Input 'x' is given twice (inputs[0] and inputs[2])" in str(error)


@pytest.mark.parametrize(
    ("tensor", "field", "message"),
    [
        ("nope", "inputs[0]", "inputs[0] is a JSON string, not an object"),
        ({"datatype": "FP64"}, "inputs[0].name", "inputs[0] has no name"),
        (_tensor("x", "FLOAT", [1], [1]), "inputs[0].datatype", "datatype 'FLOAT'"),
        (_tensor("x", "FP64", [-1], [1]), "inputs[0].shape", "shape [-1], which is not"),
        (_tensor("x", "FP64", [1.0], [1]), "inputs[0].shape", "not a list of sizes"),
        (_tensor("x", "FP64", [True], [1]), "inputs[0].shape", "not a list of sizes"),
        (_tensor("x", "FP64", "2", [1]), "inputs[0].shape", "not a list of sizes"),
        ({"name": "x", "datatype": "FP64", "shape": [1]}, "inputs[0].data", 'no "data" list.'),
        (_tensor("x", "FP64", [1], 1.0), "inputs[0].data", "(it is a JSON number)"),
        (
            {**_tensor("x", "FP64", [1], [1]), "parameters": []},
            "inputs[0].parameters",
            '"inputs[0].parameters" is a JSON array, not an object',
        ),
    ],
)
def test_malformed_input(tensor: Any, field: str, message: str) -> None:
    error = _refused(_body(tensor))
    assert error.field == field
    assert message in str(error)


def test_datatype_error_lists_the_datatypes() -> None:
    error = _refused(_body(_tensor("x", "FLOAT", [1], [1])))
    assert error.value == "FLOAT"
    assert "Use one of: BOOL, INT8, INT16" in str(error)


def test_element_count_must_match_the_shape() -> None:
    error = _refused(_body(_tensor("x", "FP32", [2, 3], [1, 2, 3, 4, 5])))
    assert error.field == "inputs[0].data"
    assert error.value == "5 values"
    assert "Input 'x' has shape [2, 3], which holds 6 elements, but its data has 5." in str(error)
    assert "Send 6 values" in str(error)


def test_bytes_element_count_must_match_the_shape() -> None:
    error = _refused(_body(_tensor("s", "BYTES", [3], [["a"], ["b"]])))
    assert "which holds 3 elements, but its data has 2" in str(error)


@pytest.mark.parametrize(
    ("datatype", "data", "message"),
    [
        ("UINT8", [1, 300], "values from 1 to 300, outside the range of UINT8 (0 to 255)"),
        ("INT8", [-129], "outside the range of INT8 (-128 to 127)"),
        ("UINT64", [-1], "outside the range of UINT64"),
        ("INT64", [2**63], "outside the range of INT64"),
        ("UINT64", [2**64 - 1, -1], "outside the range of UINT64"),
        ("FP16", [1e5], "outside the range of FP16"),
        ("FP32", [1e39], "outside the range of FP32"),
    ],
)
def test_values_out_of_range(datatype: str, data: list[Any], message: str) -> None:
    error = _refused(_body(_tensor("x", datatype, [len(data)], data)))
    assert error.field == "inputs[0].data"
    assert message in str(error)
    assert f"Send values that fit in {datatype}" in str(error)


@pytest.mark.parametrize(
    ("datatype", "data", "message"),
    [
        ("INT32", [1.5, 2], "Input 'x' is INT32, but its data holds non-integer numbers."),
        ("INT32", [1.0, 2], "Input 'x' is INT32, but its data holds non-integer numbers."),
        ("INT32", [True, False], "Input 'x' is INT32, but its data holds booleans."),
        ("BOOL", [1, 0], "Input 'x' is BOOL, but its data holds integers."),
        ("FP32", ["1.5", "2"], "Input 'x' is FP32, but its data holds strings."),
        ("FP64", [1.0, None], "Input 'x' is FP64, but its data holds mixed values"),
        ("UINT64", [2**64 - 1, 0.5], "Input 'x' is UINT64, but its data holds non-integer"),
    ],
)
def test_values_of_the_wrong_kind(datatype: str, data: list[Any], message: str) -> None:
    error = _refused(_body(_tensor("x", datatype, [2], data)))
    assert error.field == "inputs[0].data"
    assert message in str(error)


def test_bytes_data_must_be_strings() -> None:
    error = _refused(_body(_tensor("s", "BYTES", [2], ["a", 1])))
    assert error.field == "inputs[0].data"
    assert "element 1 of its data is a JSON number (1)" in str(error)


def test_header_length_beyond_the_body() -> None:
    error = _refused(b"{}", header_length=3)
    assert error.field == "Inference-Header-Content-Length"
    assert "is 3, but the body has 2 bytes" in str(error)


def _binary_input(name: str, size: Any, **extra: Any) -> dict[str, Any]:
    parameters = {"binary_data_size": size}
    return {"name": name, "datatype": "FP32", "shape": [2], "parameters": parameters, **extra}


def test_binary_data_shorter_than_declared() -> None:
    header = _body(_binary_input("a", 8), _binary_input("b", 8))
    error = _refused(header + b"\x00" * 12, header_length=len(header))
    assert error.field == "inputs[1].parameters.binary_data_size"
    assert "Input 'b' declares 8 bytes of binary data, but only 4 remain" in str(error)


def test_binary_data_longer_than_declared() -> None:
    header = _body(_binary_input("a", 8))
    error = _refused(header + b"\x00" * 10, header_length=len(header))
    assert error.field == "body"
    assert "2 bytes after the JSON that no input's binary_data_size accounts for" in str(error)


def test_binary_data_size_that_does_not_fit_the_shape() -> None:
    header = _body(_binary_input("a", 4))
    error = _refused(header + b"\x00" * 4, header_length=len(header))
    assert error.field == "inputs[0].parameters.binary_data_size"
    assert "FP32 with shape [2], which takes 8 bytes" in str(error)


def test_binary_data_without_the_header() -> None:
    error = _refused(_body(_binary_input("a", 8)))
    assert error.field == "inputs[0].parameters.binary_data_size"
    assert "no Inference-Header-Content-Length header" in str(error)


def test_binary_data_after_json_without_the_header() -> None:
    error = _refused(_body(_binary_input("a", 8)) + b"\x00" * 8)
    assert error.field == "body"
    assert "not valid JSON: unexpected content after document" in str(error)
    assert "set Inference-Header-Content-Length to the JSON's length" in str(error)


@pytest.mark.parametrize("size", [-1, "8", True, 1.0])
def test_binary_data_size_must_be_a_count(size: Any) -> None:
    header = _body(_binary_input("a", size))
    error = _refused(header, header_length=len(header))
    assert error.field == "inputs[0].parameters.binary_data_size"
    assert "which is not a byte count" in str(error)


def test_data_and_binary_data_together() -> None:
    header = _body(_binary_input("a", 8, data=[1.0, 2.0]))
    error = _refused(header + b"\x00" * 8, header_length=len(header))
    assert error.field == "inputs[0].data"
    assert 'both "data" and binary_data_size' in str(error)


def test_shared_memory_is_refused() -> None:
    tensor = {**_tensor("x", "FP32", [1], [1.0]), "parameters": {"shared_memory_region": "r"}}
    error = _refused(_body(tensor))
    assert error.field == "inputs[0].parameters.shared_memory_region"
    assert "does not support shared memory" in str(error)


def test_classification_requested_by_tritonclient_is_answered_as_top_classes() -> None:
    """The classification extension: ``class_count`` asks for the top classes of an output as
    "<score>:<index>[:<label>]" strings, shape [batch, count], instead of the scores."""
    wanted = [triton.InferRequestedOutput("p", class_count=2), triton.InferRequestedOutput("q")]
    x = np.ones((2, 1), dtype=np.float32)
    body, header_length = _triton_request({"x": x}, binary=True, outputs=wanted)
    request = decode_infer_request(body, header_length=header_length)
    assert [(o.name, o.classification) for o in request.outputs or []] == [("p", 2), ("q", None)]
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], dtype=np.float32)
    response = _response(InferOutput("p", scores), InferOutput("q", scores))
    out, headers = encode_infer_response(response, request, {"p": ["cat", "dog", "owl"]})
    result = _triton_result(out, headers)
    assert result.as_numpy("p").tolist() == [
        [b"0.7:1:dog", b"0.2:2:owl"],
        [b"0.5:0:cat", b"0.25:1:dog"],
    ]
    assert result.get_output("p")["datatype"] == "BYTES"
    np.testing.assert_array_equal(result.as_numpy("q"), scores)  # the other output as it is
    plain, headers = encode_infer_response(response, request)
    assert _triton_result(plain, headers).as_numpy("p")[0].tolist() == [b"0.7:1", b"0.2:2"]


def test_classification_without_labels_names_indices_and_orders_ties_by_index() -> None:
    request = decode_infer_request(
        _body(
            _tensor("x", "FP32", [1], [1.0]),
            outputs=[{"name": "p", "parameters": {"classification": 3}}],
        )
    )
    scores = np.array([2, 5, 5], dtype=np.uint8)
    out, _ = encode_infer_response(_response(InferOutput("p", scores)), request)
    (entry,) = orjson.loads(out)["outputs"]
    assert entry == {"name": "p", "datatype": "BYTES", "shape": [3], "data": ["5:1", "5:2", "2:0"]}


@pytest.mark.parametrize(
    ("scores", "count", "message"),
    [
        (np.array([[0.1, 0.9]]), 3, "Output 'p' scores 2 classes; classification 3 asks for more."),
        (np.array([b"a", b"b"], dtype=object), 1, "holds no class scores to classify"),
        (np.float64(0.5), 1, "holds no class scores to classify"),
    ],
)
def test_classification_an_output_cannot_give_is_refused(
    scores: Any, count: int, message: str
) -> None:
    wanted = [{"name": "p", "parameters": {"classification": count}}]
    request = decode_infer_request(_body(_tensor("x", "FP32", [1], [1.0]), outputs=wanted))
    with pytest.raises(InvalidInputError) as info:
        encode_infer_response(_response(InferOutput("p", scores)), request)
    assert info.value.field == "outputs.p.parameters.classification"
    assert message in str(info.value)


@pytest.mark.parametrize("count", [0, -1, "3", True, 1.5])
def test_a_classification_that_is_not_a_count_is_refused(count: Any) -> None:
    wanted = [{"name": "y", "parameters": {"classification": count}}]
    error = _refused(_body(_tensor("x", "FP32", [1], [1.0]), outputs=wanted))
    assert error.field == "outputs[0].parameters.classification"
    assert f"asks for classification {count!r}, which is not a count of classes" in str(error)


def test_classification_of_an_input_is_refused() -> None:
    tensor = {**_tensor("x", "FP32", [1], [1.0]), "parameters": {"classification": 2}}
    error = _refused(_body(tensor))
    assert error.field == "inputs[0].parameters.classification"
    assert "does not support classification of an input" in str(error)


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"id": 7}, "id", 'The request "id" is a JSON number, not a string.'),
        ({"parameters": 1}, "parameters", '"parameters" is a JSON number, not an object'),
        (
            {"parameters": {"binary_data_output": "yes"}},
            "parameters.binary_data_output",
            "parameters.binary_data_output is 'yes', not true or false.",
        ),
        ({"outputs": "y"}, "outputs", '"outputs" is a JSON string, not a list.'),
        ({"outputs": [{}]}, "outputs[0].name", "outputs[0] has no name."),
        ({"outputs": [{"name": "y"}, {"name": "y"}]}, "outputs[1].name", "requested twice"),
        (
            {"outputs": [{"name": "y", "parameters": {"binary_data": 1}}]},
            "outputs[0].parameters.binary_data",
            "is 1, not true or false",
        ),
    ],
)
def test_malformed_request_fields(extra: dict[str, Any], field: str, message: str) -> None:
    error = _refused(_body(_tensor("x", "FP32", [1], [1.0]), **extra))
    assert error.field == field
    assert message in str(error)
