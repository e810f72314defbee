"""Datatypes as strict as Triton: a v2 input declared with any datatype but the signature's is a
400 naming the input and both datatypes, for JSON and binary bodies alike, unless the deployment
turns on ``widen_datatypes`` and the conversion loses nothing. v1 ``instances`` carry no datatype
and keep converting as documented."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from funade.registry.tensors import DATATYPES, numpy_dtype
from funade.serving.runtime import widens
from tests.serving.fakes import arithmetic_package, running

URL = "/v2/models/calc/infer"
"""calc takes ``x``: FP64 ``[-1, 2]``."""
OTHERS = [d for d in DATATYPES if d not in ("FP64", "BYTES")]
"""Every numeric datatype but the signature's (BYTES has its own message)."""


@pytest.fixture(scope="module")
def calc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return arithmetic_package(tmp_path_factory.mktemp("calc") / "package")


@pytest.fixture(scope="module")
def strict(calc: Path) -> Iterator[str]:
    with running(calc) as (url, _):
        yield url


@pytest.fixture(scope="module")
def widening(calc: Path) -> Iterator[str]:
    with running(calc, widen_datatypes=True) as (url, _):
        yield url


def values(datatype: str) -> np.ndarray[Any, Any]:
    if datatype == "BOOL":
        return np.array([[True, False]])
    if datatype == "UINT64":
        return np.array([[2**64 - 1, 1]], dtype=np.uint64)  # FP64 cannot hold 2**64 - 1
    return np.array([[1, 2]], dtype=numpy_dtype(datatype))


def send(url: str, datatype: str, binary: bool) -> httpx.Response:
    """``x`` declared as ``datatype``, its data as JSON or as binary tensor data."""
    tensor = triton.InferInput("x", [1, 2], datatype)
    tensor.set_data_from_numpy(values(datatype), binary_data=binary)
    outputs = [triton.InferRequestedOutput("total", binary_data=False)]
    body, length = triton.InferenceServerClient.generate_request_body([tensor], outputs)
    headers = {"content-type": "application/json"}
    if length is not None:
        headers = {
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(length),
        }
    return httpx.post(url + URL, content=body, headers=headers)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", OTHERS)
def test_a_datatype_other_than_the_signatures_is_a_400_naming_both(
    strict: str, datatype: str, binary: bool
) -> None:
    response = send(strict, datatype, binary)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == "invalid_input"
    assert error["field"] == "inputs.x.datatype"
    assert error["value"] == datatype
    message = f"Input 'x' has datatype {datatype}; the model takes FP64. Send 'x' as FP64"
    assert error["error"].startswith(message)
    widening = ", or deploy with widen_datatypes on to have"
    assert (widening in error["error"]) is widens(datatype, "FP64")


def test_the_signatures_datatype_is_taken_in_json_and_binary(strict: str) -> None:
    for binary in (False, True):
        response = send(strict, "FP64", binary)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", OTHERS)
def test_widening_takes_only_what_converts_without_loss(
    widening: str, datatype: str, binary: bool
) -> None:
    response = send(widening, datatype, binary)
    if datatype in ("FP16", "FP32", "INT8", "INT16", "INT32", "UINT8", "UINT16", "UINT32"):
        assert response.status_code == 200, response.text
        (total,) = response.json()["outputs"]
        assert total["datatype"] == "FP64"
        assert total["data"] == [3.0]
    else:  # INT64 and UINT64 (past 2**53), BOOL: not exactly FP64, refused even so
        assert response.status_code == 400, response.text
        assert response.json()["error"] == (
            f"Input 'x' has datatype {datatype}; the model takes FP64. Send 'x' as FP64."
        )


def test_bytes_for_a_number_is_refused_even_with_widening(widening: str) -> None:
    body = {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1, 2], "data": ["1", "2"]}]}
    response = httpx.post(widening + URL, json=body)
    assert response.status_code == 400
    assert response.json()["error"] == (
        "Input 'x' has datatype BYTES; the model takes FP64. Send 'x' as FP64."
    )


def test_v1_instances_carry_no_datatype_and_keep_converting(strict: str) -> None:
    response = httpx.post(f"{strict}/v1/models/calc:predict", json={"instances": [[1, 2]]})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [[2.0, 4.0]]}  # double


@pytest.mark.parametrize(
    ("declared", "wanted", "exact"),
    [
        ("FP16", "FP32", True),
        ("FP32", "FP16", False),
        ("INT16", "FP32", True),
        ("INT32", "FP32", False),  # 2**31 - 1 has more bits than FP32's mantissa
        ("UINT8", "INT16", True),
        ("UINT64", "INT64", False),
        ("INT8", "UINT16", False),  # negative values
        ("INT32", "INT64", True),
        ("FP32", "INT64", False),
        ("BOOL", "INT8", False),
    ],
)
def test_widening_is_only_what_keeps_every_value(declared: str, wanted: str, exact: bool) -> None:
    assert widens(declared, wanted) is exact
