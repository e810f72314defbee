"""Conformance: real, unmodified Open Inference Protocol clients against a real model server.

NVIDIA's ``tritonclient.http`` and KServe's ``InferenceRESTClient`` talk over loopback HTTP to
``create_model_app`` serving fake models: ``Echo``, a python_class model packaged and loaded by
the registry like any user's, which answers every input back unchanged as ``<input>_out``.

Two kinds of echo server are used (started once per module, on free ports):

- one per datatype, taking ``vector`` (shape ``[-1]``), ``matrix`` (``[-1, 2]``) and ``cube``
  (``[-1, 2, 3]``) of that datatype: 1-D, 2-D and 3-D tensors, several inputs and outputs;
- ``mixed``: one ``[-1, 3]`` input of every datatype, all in one request.

The values sent are each datatype's extremes and awkward values (``tests.serving.protocol``).
Both clients give ``BYTES`` that travelled as JSON back as ``str``; KServe's also turns binary
``BYTES`` outputs into ``str``, so it cannot receive bytes that are not UTF-8 at all.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import numpy.typing as npt
import pytest
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, InferResponse, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from funade import __version__
from funade.registry.package import build_package, load_package
from funade.registry.tensors import numpy_dtype
from funade.serving.app import create_model_app
from funade.serving.config import ServeConfig
from funade.serving.runtime import Loaded
from tests.servers import serve
from tests.serving.protocol import DATATYPES, SAMPLES

Array = npt.NDArray[Any]
T = TypeVar("T")

MODEL = "echo"
VERSION = "3"
NAMES = ["vector", "matrix", "cube"]
OUTPUTS = [f"{name}_out" for name in NAMES]
MIXED = "mixed"
TIMEOUT = 10.0
"""Seconds any one client call may take (connect and read), and the server to become ready."""


class Echo:
    """The fake model: every input back, unchanged, as ``<name>_out``."""

    def load(self, path: Path) -> None:
        pass

    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {f"{name}_out": value for name, value in inputs.items()}


# --- servers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    url: str
    """``http://127.0.0.1:<port>``, what KServe's client takes."""

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, what tritonclient takes (it refuses a scheme)."""
        return self.url.removeprefix("http://")


def _benign(datatype: str, shape: tuple[int, ...]) -> Array:
    """Plain values to package the model with (the signature comes from their dtype and shape;
    the extremes are sent over HTTP, not packaged)."""
    if datatype == "BYTES":
        return np.full(shape, b"ok", dtype=object)
    return np.ones(shape, dtype=numpy_dtype(datatype))


def _package_sample(kind: str) -> dict[str, Array]:
    if kind == MIXED:
        return {datatype.lower(): _benign(datatype, (1, 3)) for datatype in DATATYPES}
    return {
        "vector": _benign(kind, (1,)),
        "matrix": _benign(kind, (1, 2)),
        "cube": _benign(kind, (1, 2, 3)),
    }


@contextmanager
def _serving(directory: Path) -> Iterator[Served]:
    def load() -> Loaded:
        return Loaded(model=load_package(directory), name=MODEL, version=VERSION, digest=None)

    app = create_model_app(ServeConfig(source=str(directory), name=MODEL), load)
    with serve(app) as url:
        _wait_ready(url, app.state.runtime)
        yield Served(url)


def _wait_ready(url: str, runtime: Any) -> None:
    """Poll /v2/health/ready until 200, within ``TIMEOUT``; between polls, block on the
    runtime's readiness event (which returns as soon as the model is loaded)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        response = httpx.get(f"{url}/v2/health/ready", timeout=TIMEOUT)
        if response.status_code == 200:
            return
        error = response.json().get("error")
        if error:
            raise AssertionError(f"the echo model failed to load: {error}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{url} was not ready within {TIMEOUT} s: {response.text}")
        runtime.wait_ready(min(remaining, 0.05))


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Served]]:
    """``echo(datatype)`` (or ``echo("mixed")``): a running echo server, started on first use
    and kept for the module."""
    with ExitStack() as stack:
        running: dict[str, Served] = {}

        def get(kind: str) -> Served:
            if kind not in running:
                directory = tmp_path_factory.mktemp(f"echo-{kind.lower()}") / "package"
                build_package(Echo(), directory, sample_input=_package_sample(kind))
                running[kind] = stack.enter_context(_serving(directory))
            return running[kind]

        yield get


# --- tensors ------------------------------------------------------------------------------------


def echo_tensors(datatype: str, rows: int = 6) -> dict[str, Array]:
    """``vector``, ``matrix`` and ``cube`` of ``datatype``, filled (cyclically, each from a
    different start) with the datatype's extremes and awkward values."""
    flat = SAMPLES[datatype].reshape(-1)
    return {
        "vector": np.resize(flat, (rows,)),
        "matrix": np.resize(flat[::-1], (rows, 2)),
        "cube": np.resize(np.roll(flat, 2), (rows, 2, 3)),
    }


def mixed_tensors() -> dict[str, Array]:
    """One 2 x 3 tensor of every datatype."""
    return {datatype.lower(): SAMPLES[datatype] for datatype in DATATYPES}


def as_text(array: Array) -> Array:
    """A ``BYTES`` tensor as the clients give back one that travelled as JSON: ``str``s."""
    texts = [item.decode("utf-8") for item in array.reshape(-1)]
    return np.array(texts, dtype=object).reshape(array.shape)


def assert_exact(got: Array | None, expected: Array) -> None:
    """Same shape, dtype and values (NaN equal to NaN)."""
    assert got is not None
    np.testing.assert_array_equal(got, expected, strict=True)


# --- tritonclient -------------------------------------------------------------------------------


@contextmanager
def triton_client(served: Served) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(
        served.address, connection_timeout=TIMEOUT, network_timeout=TIMEOUT
    ) as client:
        yield client


def triton_inputs(
    tensors: dict[str, Array], binary: bool | Callable[[int], bool]
) -> list[triton.InferInput]:
    """``tensors`` as tritonclient inputs; ``binary`` may say per input (by index)."""
    inputs = []
    for index, (name, array) in enumerate(tensors.items()):
        infer_input = triton.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        infer_input.set_data_from_numpy(
            array, binary_data=binary(index) if callable(binary) else binary
        )
        inputs.append(infer_input)
    return inputs


def triton_error(call: Callable[[], object]) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value


def test_tritonclient_health_and_metadata(echo: Callable[[str], Served]) -> None:
    expected_metadata = {
        "name": MODEL,
        "versions": [VERSION],
        "platform": "funade_python_class",
        "inputs": [
            {"name": "vector", "datatype": "INT16", "shape": [-1]},
            {"name": "matrix", "datatype": "INT16", "shape": [-1, 2]},
            {"name": "cube", "datatype": "INT16", "shape": [-1, 2, 3]},
        ],
        "outputs": [
            {"name": "vector_out", "datatype": "INT16", "shape": [-1]},
            {"name": "matrix_out", "datatype": "INT16", "shape": [-1, 2]},
            {"name": "cube_out", "datatype": "INT16", "shape": [-1, 2, 3]},
        ],
    }
    with triton_client(echo("INT16")) as client:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready(MODEL)
        assert client.is_model_ready(MODEL, model_version=VERSION)
        assert not client.is_model_ready(MODEL, model_version="2")
        assert not client.is_model_ready("nope")
        assert client.get_server_metadata() == {
            "name": "funade",
            "version": __version__,
            "extensions": [
                "binary_tensor_data",
                "classification",
                "model_configuration",
                "statistics",
            ],
        }
        assert client.get_model_metadata(MODEL) == expected_metadata
        assert client.get_model_metadata(MODEL, model_version=VERSION) == expected_metadata
        error = triton_error(lambda: client.get_model_metadata("nope"))
        assert error.status() == "404"
        assert "Model 'nope' is not served here" in error.message()
        error = triton_error(lambda: client.get_model_metadata(MODEL, model_version="2"))
        assert error.status() == "404"
        assert "Model 'echo' version '2' is not served here" in error.message()


@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
@pytest.mark.parametrize("binary_in", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("datatype", DATATYPES)
def test_tritonclient_round_trips_every_datatype(
    echo: Callable[[str], Served], datatype: str, binary_in: bool, binary_out: bool
) -> None:
    sent = echo_tensors(datatype)
    with triton_client(echo(datatype)) as client:
        result = client.infer(
            MODEL,
            triton_inputs(sent, binary_in),
            outputs=[triton.InferRequestedOutput(name, binary_data=binary_out) for name in OUTPUTS],
            request_id=f"round-trip-{datatype}",
        )
    response = result.get_response()
    assert response["model_name"] == MODEL
    assert response["model_version"] == VERSION
    assert response["id"] == f"round-trip-{datatype}"
    assert [output["name"] for output in response["outputs"]] == OUTPUTS
    for name, array in sent.items():
        output = result.get_output(f"{name}_out")
        assert output["datatype"] == datatype
        assert output["shape"] == list(array.shape)
        assert ("data" in output) is not binary_out
        assert ("binary_data_size" in output.get("parameters", {})) is binary_out
        expected = as_text(array) if datatype == "BYTES" and not binary_out else array
        assert_exact(result.as_numpy(f"{name}_out"), expected)


def test_tritonclient_mixes_every_datatype_and_encoding_in_one_request(
    echo: Callable[[str], Served],
) -> None:
    """Thirteen inputs, alternately binary and JSON; thirteen outputs, alternately too."""
    sent = mixed_tensors()
    outputs = [
        triton.InferRequestedOutput(f"{name}_out", binary_data=index % 2 == 1)
        for index, name in enumerate(sent)
    ]
    with triton_client(echo(MIXED)) as client:
        result = client.infer(MODEL, triton_inputs(sent, lambda i: i % 2 == 0), outputs=outputs)
    for index, (name, array) in enumerate(sent.items()):
        binary = index % 2 == 1
        assert ("data" in result.get_output(f"{name}_out")) is not binary
        expected = as_text(array) if name == "bytes" and not binary else array
        assert_exact(result.as_numpy(f"{name}_out"), expected)


def test_tritonclient_gets_every_output_in_binary_by_default(
    echo: Callable[[str], Served],
) -> None:
    """Without requested outputs tritonclient sets ``binary_data_output``: all outputs, in the
    signature's order, as binary data."""
    sent = echo_tensors("FP32")
    with triton_client(echo("FP32")) as client:
        result = client.infer(MODEL, triton_inputs(sent, binary=False))
    outputs = result.get_response()["outputs"]
    assert [output["name"] for output in outputs] == OUTPUTS
    for output, (name, array) in zip(outputs, sent.items(), strict=True):
        assert "data" not in output
        assert output["parameters"] == {"binary_data_size": array.nbytes}
        assert_exact(result.as_numpy(f"{name}_out"), array)


def test_tritonclient_gets_the_requested_outputs_in_its_order_and_encodings(
    echo: Callable[[str], Served],
) -> None:
    sent = echo_tensors("FP64")
    with triton_client(echo("FP64")) as client:
        result = client.infer(
            MODEL,
            triton_inputs(sent, binary=True),
            outputs=[
                triton.InferRequestedOutput("cube_out", binary_data=True),
                triton.InferRequestedOutput("vector_out", binary_data=False),
            ],
        )
    cube, vector = result.get_response()["outputs"]
    assert cube["name"] == "cube_out"
    assert cube["parameters"] == {"binary_data_size": sent["cube"].nbytes}
    assert "data" not in cube
    assert vector["name"] == "vector_out"
    assert vector["data"] == sent["vector"].tolist()
    assert result.as_numpy("matrix_out") is None
    assert_exact(result.as_numpy("cube_out"), sent["cube"])
    assert_exact(result.as_numpy("vector_out"), sent["vector"])


def test_tritonclient_gets_the_top_classes_of_an_output_it_asks_to_classify(
    echo: Callable[[str], Served],
) -> None:
    sent = echo_tensors("FP32", rows=2)
    sent["matrix"] = np.array([[0.25, 0.75], [0.5, 0.125]], dtype=np.float32)
    with triton_client(echo("FP32")) as client:
        result = client.infer(
            MODEL,
            triton_inputs(sent, binary=True),
            outputs=[triton.InferRequestedOutput("matrix_out", class_count=1)],
        )
    assert result.get_output("matrix_out")["datatype"] == "BYTES"
    assert result.as_numpy("matrix_out").tolist() == [[b"0.75:1"], [b"0.5:0"]]


def test_tritonclient_request_id_parameters_and_version(echo: Callable[[str], Served]) -> None:
    """Custom parameters and Triton's own (priority, timeout, sequence) are accepted; the id
    comes back; the versioned route answers."""
    sent = echo_tensors("INT64")
    with triton_client(echo("INT64")) as client:
        result = client.infer(
            MODEL,
            triton_inputs(sent, binary=True),
            model_version=VERSION,
            request_id="req-\u00e9-42",
            priority=1,
            timeout=5_000_000,
            sequence_id=7,
            sequence_start=True,
            sequence_end=True,
            parameters={"temperature": 0.25, "label": "caf\u00e9", "verbose": True, "top_k": 3},
        )
        response = result.get_response()
        assert response["id"] == "req-\u00e9-42"
        assert response["model_version"] == VERSION
        for name, array in sent.items():
            assert_exact(result.as_numpy(f"{name}_out"), array)
        error = triton_error(
            lambda: client.infer(MODEL, triton_inputs(sent, binary=True), model_version="2")
        )
    assert error.status() == "404"
    assert "Model 'echo' version '2' is not served here" in error.message()


def concurrent_tensors(count: int) -> dict[str, dict[str, Array]]:
    """``count`` different INT32 requests of 1 to 4 rows, by request id."""
    requests = {}
    for index in range(count):
        rows = 1 + index % 4
        base = index * 1000
        requests[f"concurrent-{index}"] = {
            "vector": np.arange(rows, dtype=np.int32) + base,
            "matrix": np.arange(rows * 2, dtype=np.int32).reshape(rows, 2) + base,
            "cube": np.arange(rows * 6, dtype=np.int32).reshape(rows, 2, 3) + base,
        }
    return requests


def test_tritonclient_concurrent_requests_each_get_their_own_answer(
    echo: Callable[[str], Served],
) -> None:
    """Requests in flight together (which the server may batch into one model call) are
    answered each with its own id and rows."""
    sent = concurrent_tensors(16)
    served = echo("INT32")
    with triton.InferenceServerClient(
        served.address, concurrency=8, connection_timeout=TIMEOUT, network_timeout=TIMEOUT
    ) as client:
        pending = {
            request_id: client.async_infer(
                MODEL, triton_inputs(tensors, binary=True), request_id=request_id
            )
            for request_id, tensors in sent.items()
        }
        results = {request_id: p.get_result(timeout=TIMEOUT) for request_id, p in pending.items()}
    for request_id, tensors in sent.items():
        assert results[request_id].get_response()["id"] == request_id
        for name, array in tensors.items():
            assert_exact(results[request_id].as_numpy(f"{name}_out"), array)


def test_tritonclient_bytes_that_are_not_utf8_come_back_exactly(
    echo: Callable[[str], Served],
) -> None:
    """Raw bytes go as binary data; asked for as JSON they still come back as binary data
    (JSON cannot hold them), which tritonclient reads."""
    sent = echo_tensors("BYTES")
    sent["vector"] = np.array(
        [b"\xff\xfe\xfd", b"\x80", b"\xc3\x28", b"", b"\x00\xff\x00", b"ok"], dtype=object
    )
    with triton_client(echo("BYTES")) as client:
        result = client.infer(
            MODEL,
            triton_inputs(sent, binary=True),
            outputs=[
                triton.InferRequestedOutput("vector_out", binary_data=False),
                triton.InferRequestedOutput("matrix_out", binary_data=False),
                triton.InferRequestedOutput("cube_out", binary_data=True),
            ],
        )
    vector = result.get_output("vector_out")
    assert "data" not in vector
    assert "binary_data_size" in vector["parameters"]
    assert "data" in result.get_output("matrix_out")  # UTF-8, so JSON as asked
    assert_exact(result.as_numpy("vector_out"), sent["vector"])
    assert_exact(result.as_numpy("matrix_out"), as_text(sent["matrix"]))
    assert_exact(result.as_numpy("cube_out"), sent["cube"])


SPECIAL = [math.nan, math.inf, -math.inf, -0.0, 1.5, 0.0]


@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64"])
@pytest.mark.parametrize("binary_in", [True, False], ids=["binary-in", "json-in"])
def test_tritonclient_non_finite_floats(
    echo: Callable[[str], Served], datatype: str, binary_in: bool
) -> None:
    """NaN, infinities and -0.0 survive binary outputs exactly, whether they went in as binary
    data or as the NaN/Infinity literals tritonclient writes in JSON. JSON outputs carry
    non-finite values as null, which tritonclient reads as NaN."""
    dtype = numpy_dtype(datatype)
    sent = echo_tensors(datatype)
    sent["vector"] = np.array(SPECIAL, dtype=dtype)
    with triton_client(echo(datatype)) as client:
        result = client.infer(
            MODEL,
            triton_inputs(sent, binary_in),
            outputs=[
                triton.InferRequestedOutput("vector_out", binary_data=True),
                triton.InferRequestedOutput("matrix_out", binary_data=False),
            ],
        )
        as_json = client.infer(
            MODEL,
            triton_inputs(sent, binary_in),
            outputs=[triton.InferRequestedOutput("vector_out", binary_data=False)],
        )
    binary = result.as_numpy("vector_out")
    assert_exact(binary, sent["vector"])
    assert binary is not None
    np.testing.assert_array_equal(np.signbit(binary), np.signbit(sent["vector"]))
    assert_exact(result.as_numpy("matrix_out"), sent["matrix"])
    assert as_json.get_output("vector_out")["data"] == [None, None, None, -0.0, 1.5, 0.0]
    assert_exact(as_json.as_numpy("vector_out"), np.array([math.nan] * 3 + SPECIAL[3:], dtype))


@pytest.mark.parametrize("datatype", ["FP32", "BOOL", "BYTES"])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_empty_tensors(
    echo: Callable[[str], Served], datatype: str, binary: bool
) -> None:
    sent = echo_tensors(datatype, rows=0)
    with triton_client(echo(datatype)) as client:
        result = client.infer(
            MODEL,
            triton_inputs(sent, binary),
            outputs=[triton.InferRequestedOutput(name, binary_data=binary) for name in OUTPUTS],
        )
    for name, array in sent.items():
        assert result.get_output(f"{name}_out")["shape"] == list(array.shape)
        assert_exact(result.as_numpy(f"{name}_out"), array)


def test_tritonclient_large_binary_tensors(echo: Callable[[str], Served]) -> None:
    """About 1.7 MiB each way, as binary data."""
    rng = np.random.default_rng(0)
    rows = 40_000
    sent = {
        "vector": rng.standard_normal(rows, dtype=np.float32),
        "matrix": rng.standard_normal((rows, 2), dtype=np.float32),
        "cube": rng.standard_normal((rows, 2, 3), dtype=np.float32),
    }
    with triton_client(echo("FP32")) as client:
        result = client.infer(MODEL, triton_inputs(sent, binary=True))
    for name, array in sent.items():
        assert_exact(result.as_numpy(f"{name}_out"), array)


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_tritonclient_asking_for_compressed_responses(
    echo: Callable[[str], Served], algorithm: str
) -> None:
    """The server may answer uncompressed (it does); tritonclient reads that."""
    sent = echo_tensors("UINT16")
    with triton_client(echo("UINT16")) as client:
        result = client.infer(
            MODEL, triton_inputs(sent, binary=True), response_compression_algorithm=algorithm
        )
    for name, array in sent.items():
        assert_exact(result.as_numpy(f"{name}_out"), array)


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_tritonclient_compressed_requests(echo: Callable[[str], Served], algorithm: str) -> None:
    sent = echo_tensors("UINT16")
    with triton_client(echo("UINT16")) as client:
        result = client.infer(
            MODEL, triton_inputs(sent, binary=True), request_compression_algorithm=algorithm
        )
    for name, array in sent.items():
        assert_exact(result.as_numpy(f"{name}_out"), array)


def test_tritonclient_unknown_model(echo: Callable[[str], Served]) -> None:
    sent = echo_tensors("INT8")
    with triton_client(echo("INT8")) as client:
        error = triton_error(lambda: client.infer("nope", triton_inputs(sent, binary=True)))
    assert error.status() == "404"
    assert "Model 'nope' is not served here; this server serves 'echo' version 3" in (
        error.message()
    )


def _replaced(datatype: str, name: str, value: Array) -> dict[str, Array]:
    tensors = echo_tensors(datatype)
    tensors[name] = value
    return tensors


BAD_REQUESTS = {
    "fp32-for-int32": (
        "INT32",
        _replaced("INT32", "vector", np.arange(6, dtype=np.float32)),
        ["'vector'", "FP32", "INT32"],
    ),
    "bytes-for-fp32": (
        "FP32",
        _replaced("FP32", "matrix", np.full((6, 2), b"1.5", dtype=object)),
        ["'matrix'", "BYTES", "FP32"],
    ),
    "int8-for-bool": (
        "BOOL",
        _replaced("BOOL", "cube", np.zeros((6, 2, 3), dtype=np.int8)),
        ["'cube'", "INT8", "BOOL"],
    ),
    "int64-for-bytes": (
        "BYTES",
        _replaced("BYTES", "vector", np.arange(6, dtype=np.int64)),
        ["'vector'", "INT64", "BYTES"],
    ),
    "wrong-inner-size": (
        "INT32",
        _replaced("INT32", "matrix", np.zeros((6, 3), dtype=np.int32)),
        ["'matrix'", "[6, 3]", "[-1, 2]"],
    ),
    "wrong-rank": (
        "INT32",
        _replaced("INT32", "cube", np.zeros((6, 6), dtype=np.int32)),
        ["'cube'", "[6, 6]", "[-1, 2, 3]"],
    ),
    "missing-input": (
        "INT32",
        {k: v for k, v in echo_tensors("INT32").items() if k != "cube"},
        ["'cube'", "missing"],
    ),
    "unknown-input": (
        "INT32",
        {**echo_tensors("INT32"), "extra": np.zeros(6, dtype=np.int32)},
        ["'extra'"],
    ),
    "different-batch-sizes": (
        "INT32",
        _replaced("INT32", "vector", np.zeros(5, dtype=np.int32)),
        ["batch sizes", "[5, 6]"],
    ),
}


@pytest.mark.parametrize(("datatype", "sent", "mentions"), BAD_REQUESTS.values(), ids=BAD_REQUESTS)
def test_tritonclient_bad_inputs_are_400_naming_the_input(
    echo: Callable[[str], Served], datatype: str, sent: dict[str, Array], mentions: list[str]
) -> None:
    with triton_client(echo(datatype)) as client:
        error = triton_error(lambda: client.infer(MODEL, triton_inputs(sent, binary=True)))
        json_error = triton_error(lambda: client.infer(MODEL, triton_inputs(sent, binary=False)))
    for raised in (error, json_error):
        assert raised.status() == "400"
        for mention in mentions:
            assert mention in raised.message()


def test_tritonclient_bad_requested_outputs_are_400(echo: Callable[[str], Served]) -> None:
    sent = echo_tensors("INT32")
    with triton_client(echo("INT32")) as client:
        unknown = triton_error(
            lambda: client.infer(
                MODEL,
                triton_inputs(sent, binary=True),
                outputs=[triton.InferRequestedOutput("nope_out")],
            )
        )
        classification = triton_error(
            lambda: client.infer(
                MODEL,
                triton_inputs(sent, binary=True),
                outputs=[triton.InferRequestedOutput("vector_out", class_count=2)],
            )
        )
    assert unknown.status() == "400"
    assert "The model has no output 'nope_out'" in unknown.message()
    assert classification.status() == "400"
    assert "INT32[-1], not class scores to classify" in classification.message()


NARROWING = {
    "int64-300-into-int8": ("INT8", np.array([300, 1, 2, 3, 4, 5], dtype=np.int64)),
    "uint64-max-into-int64": ("INT64", np.array([2**64 - 1, 1, 2, 3, 4, 5], dtype=np.uint64)),
    "fp64-1e300-into-fp32": ("FP32", np.array([1e300, 1, 2, 3, 4, 5], dtype=np.float64)),
}


@pytest.mark.parametrize(("datatype", "vector"), NARROWING.values(), ids=NARROWING)
def test_tritonclient_values_that_do_not_fit_the_input_are_400(
    echo: Callable[[str], Served], datatype: str, vector: Array
) -> None:
    sent = _replaced(datatype, "vector", vector)
    with triton_client(echo(datatype)) as client:
        error = triton_error(lambda: client.infer(MODEL, triton_inputs(sent, binary=True)))
    assert error.status() == "400"
    assert "'vector'" in error.message()


# --- KServe's InferenceRESTClient ---------------------------------------------------------------


def kserve(call: Callable[[InferenceRESTClient], Awaitable[T]]) -> T:
    """Run ``call`` with a fresh KServe v2 REST client (no retries, bounded timeout)."""

    async def main() -> T:
        config = RESTConfig(protocol="v2", retries=0, timeout=TIMEOUT)
        async with InferenceRESTClient(config) as client:
            return await call(client)

    return asyncio.run(main())


def kserve_inputs(
    tensors: dict[str, Array],
    binary: bool | Callable[[int], bool],
    parameters: dict[str, Any] | None = None,
) -> list[InferInput]:
    inputs = []
    for index, (name, array) in enumerate(tensors.items()):
        datatype = np_to_triton_dtype(array.dtype)
        # each input its own dict: KServe writes binary_data_size into the one it is given
        own = None if parameters is None else dict(parameters)
        infer_input = InferInput(name, list(array.shape), datatype, parameters=own)
        infer_input.set_data_from_numpy(
            array, binary_data=binary(index) if callable(binary) else binary
        )
        inputs.append(infer_input)
    return inputs


def kserve_numpy(response: InferResponse, name: str) -> Array:
    output = response.get_output_by_name(name)
    assert output is not None, f"no output {name!r}"
    array: Array = output.as_numpy()
    return array


def kserve_expected(array: Array) -> Array:
    """What KServe's client gives back for a sent tensor: ``BYTES`` always as ``str``."""
    return as_text(array) if array.dtype == object else array


def test_kserve_health(echo: Callable[[str], Served]) -> None:
    url = echo("INT16").url

    async def call(client: InferenceRESTClient) -> list[bool]:
        return [
            await client.is_server_live(url),
            await client.is_server_ready(url),
            await client.is_model_ready(url, MODEL),
            await client.is_model_ready(url, "nope"),
        ]

    assert kserve(call) == [True, True, True, False]


# KServe's client refuses FP16 in JSON itself ("Sending FP16 data via JSON is not supported").
KSERVE_ROUND_TRIPS = [
    pytest.param(datatype, binary_in, binary_out, id=f"{datatype}-{i}-{o}")
    for datatype in DATATYPES
    for binary_in, i in ((True, "binary-in"), (False, "json-in"))
    for binary_out, o in ((True, "binary-out"), (False, "json-out"))
    if binary_in or datatype != "FP16"
]


@pytest.mark.parametrize(("datatype", "binary_in", "binary_out"), KSERVE_ROUND_TRIPS)
def test_kserve_round_trips_every_datatype(
    echo: Callable[[str], Served], datatype: str, binary_in: bool, binary_out: bool
) -> None:
    sent = echo_tensors(datatype)
    served = echo(datatype)
    headers: dict[str, str] = {}
    request = InferRequest(
        MODEL,
        kserve_inputs(sent, binary_in),
        request_id=f"kserve-{datatype}",
        request_outputs=[
            RequestedOutput(name, parameters={"binary_data": binary_out}) for name in OUTPUTS
        ],
    )
    response = kserve(
        lambda client: client.infer(served.url, request, MODEL, response_headers=headers)
    )
    assert response.model_name == MODEL
    assert response.id == f"kserve-{datatype}"
    assert [output.name for output in response.outputs] == OUTPUTS
    # KServe's client drops binary_data_size once it has read the data; the headers tell.
    assert (headers["content-type"] == "application/octet-stream") is binary_out
    assert ("inference-header-content-length" in headers) is binary_out
    for name, array in sent.items():
        output = response.get_output_by_name(f"{name}_out")
        assert output is not None
        assert output.datatype == datatype
        assert output.shape == list(array.shape)
        assert_exact(kserve_numpy(response, f"{name}_out"), kserve_expected(array))


def test_kserve_mixes_every_datatype_and_encoding_in_one_request(
    echo: Callable[[str], Served],
) -> None:
    sent = mixed_tensors()
    served = echo(MIXED)
    request = InferRequest(
        MODEL,
        kserve_inputs(sent, lambda i: i % 2 == 0 or DATATYPES[i] == "FP16"),
        request_outputs=[
            RequestedOutput(f"{name}_out", parameters={"binary_data": index % 2 == 1})
            for index, name in enumerate(sent)
        ],
    )
    response = kserve(lambda client: client.infer(served.url, request, MODEL))
    assert [output.name for output in response.outputs] == [f"{name}_out" for name in sent]
    for name, array in sent.items():
        assert_exact(kserve_numpy(response, f"{name}_out"), kserve_expected(array))


def test_kserve_binary_data_output_parameter(echo: Callable[[str], Served]) -> None:
    """The request-level ``binary_data_output`` turns every output binary."""
    sent = echo_tensors("UINT32")
    served = echo("UINT32")
    headers: dict[str, str] = {}
    request = InferRequest(
        MODEL, kserve_inputs(sent, binary=False), parameters={"binary_data_output": True}
    )
    response = kserve(
        lambda client: client.infer(served.url, request, MODEL, response_headers=headers)
    )
    assert headers["content-type"] == "application/octet-stream"
    header_length = int(headers["inference-header-content-length"])
    assert int(headers["content-length"]) == header_length + sum(a.nbytes for a in sent.values())
    assert [output.name for output in response.outputs] == OUTPUTS
    for name, array in sent.items():
        assert_exact(kserve_numpy(response, f"{name}_out"), array)


def test_kserve_requested_outputs_in_its_order_and_encodings(
    echo: Callable[[str], Served],
) -> None:
    sent = echo_tensors("INT8")
    served = echo("INT8")
    headers: dict[str, str] = {}
    request = InferRequest(
        MODEL,
        kserve_inputs(sent, binary=True),
        request_outputs=[
            RequestedOutput("matrix_out", parameters={"binary_data": True}),
            RequestedOutput("vector_out", parameters={"binary_data": False}),
        ],
    )
    response = kserve(
        lambda client: client.infer(served.url, request, MODEL, response_headers=headers)
    )
    assert [output.name for output in response.outputs] == ["matrix_out", "vector_out"]
    header_length = int(headers["inference-header-content-length"])
    assert int(headers["content-length"]) == header_length + sent["matrix"].nbytes
    assert_exact(kserve_numpy(response, "matrix_out"), sent["matrix"])
    assert_exact(kserve_numpy(response, "vector_out"), sent["vector"])


def test_kserve_request_id_and_parameters(echo: Callable[[str], Served]) -> None:
    """Request, input and output parameters the server does not use are accepted."""
    sent = echo_tensors("FP64")
    served = echo("FP64")
    request = InferRequest(
        MODEL,
        kserve_inputs(sent, binary=True, parameters={"content_type": "np", "note": "x"}),
        request_id="kserve-\u00e9-7",
        parameters={"temperature": 0.5, "tags": "a,b", "verbose": False},
        request_outputs=[
            RequestedOutput(name, parameters={"binary_data": False, "custom": 1})
            for name in OUTPUTS
        ],
    )
    response = kserve(lambda client: client.infer(served.url, request, MODEL))
    assert response.id == "kserve-\u00e9-7"
    for name, array in sent.items():
        assert_exact(kserve_numpy(response, f"{name}_out"), array)


def test_kserve_concurrent_requests_each_get_their_own_answer(
    echo: Callable[[str], Served],
) -> None:
    sent = concurrent_tensors(16)
    served = echo("INT32")

    async def call(client: InferenceRESTClient) -> list[InferResponse]:
        requests = [
            InferRequest(MODEL, kserve_inputs(tensors, binary=True), request_id=request_id)
            for request_id, tensors in sent.items()
        ]
        return list(await asyncio.gather(*(client.infer(served.url, r, MODEL) for r in requests)))

    responses = kserve(call)
    for response, (request_id, tensors) in zip(responses, sent.items(), strict=True):
        assert response.id == request_id
        for name, array in tensors.items():
            assert_exact(kserve_numpy(response, f"{name}_out"), array)


def test_kserve_plain_dict_request(echo: Callable[[str], Served]) -> None:
    """``infer`` also takes the JSON body as a dict."""
    served = echo("INT64")
    body = {
        "id": "as-dict",
        "inputs": [
            {"name": "vector", "datatype": "INT64", "shape": [2], "data": [-(2**63), 2**63 - 1]},
            {"name": "matrix", "datatype": "INT64", "shape": [2, 2], "data": [[1, 2], [3, 4]]},
            {"name": "cube", "datatype": "INT64", "shape": [2, 2, 3], "data": list(range(12))},
        ],
    }
    response = kserve(lambda client: client.infer(served.url, body, MODEL))
    assert response.id == "as-dict"
    assert_exact(kserve_numpy(response, "vector_out"), np.array([-(2**63), 2**63 - 1]))
    assert_exact(kserve_numpy(response, "matrix_out"), np.array([[1, 2], [3, 4]]))
    assert_exact(kserve_numpy(response, "cube_out"), np.arange(12).reshape(2, 2, 3))


@pytest.mark.parametrize("datatype", ["FP32", "BYTES"])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_kserve_empty_tensors(echo: Callable[[str], Served], datatype: str, binary: bool) -> None:
    sent = echo_tensors(datatype, rows=0)
    served = echo(datatype)
    request = InferRequest(
        MODEL, kserve_inputs(sent, binary), parameters={"binary_data_output": binary}
    )
    response = kserve(lambda client: client.infer(served.url, request, MODEL))
    for name, array in sent.items():
        assert_exact(kserve_numpy(response, f"{name}_out"), kserve_expected(array))


def kserve_error(served: Served, request: InferRequest, model: str = MODEL) -> httpx.Response:
    async def call(client: InferenceRESTClient) -> InferResponse:
        return await client.infer(served.url, request, model)

    with pytest.raises(httpx.HTTPStatusError) as info:
        kserve(call)
    assert info.value.response.json()["error"] in str(info.value)  # the server's message
    return info.value.response


def test_kserve_unknown_model(echo: Callable[[str], Served]) -> None:
    served = echo("INT8")
    request = InferRequest("nope", kserve_inputs(echo_tensors("INT8"), binary=True))
    response = kserve_error(served, request, model="nope")
    assert response.status_code == 404
    assert response.json()["error"].startswith(
        "Model 'nope' is not served here; this server serves 'echo' version 3."
    )


@pytest.mark.parametrize(("datatype", "sent", "mentions"), BAD_REQUESTS.values(), ids=BAD_REQUESTS)
def test_kserve_bad_inputs_are_400_naming_the_input(
    echo: Callable[[str], Served], datatype: str, sent: dict[str, Array], mentions: list[str]
) -> None:
    served = echo(datatype)
    for binary in (True, False):
        response = kserve_error(served, InferRequest(MODEL, kserve_inputs(sent, binary)))
        assert response.status_code == 400
        for mention in mentions:
            assert mention in response.json()["error"]
