"""The plain shape's decode path against the general one: every body, good or bad, gives the
same tensors, request and wanted outputs, or the same error (type, message, field, value)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pytest

from funade.registry.signature import Signature, TensorSpec
from funade.serving import decode
from funade.serving.decode import v1_general, v1_json, v2_general, v2_json

ONE = Signature(
    inputs=[TensorSpec(name="x", datatype="FP64", shape=[-1, 2])],
    outputs=[
        TensorSpec(name="predict", datatype="INT64", shape=[-1]),
        TensorSpec(name="scores", datatype="FP64", shape=[-1, 3]),
    ],
)
TWO = Signature(
    inputs=[
        TensorSpec(name="a", datatype="INT64", shape=[-1]),
        TensorSpec(name="b", datatype="BOOL", shape=[-1, 1]),
    ],
    outputs=[TensorSpec(name="y", datatype="FP64", shape=[-1])],
)


def _x(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1.5, 2.5]}
    item.update(changes)
    return {k: v for k, v in item.items() if v is not _DROP}


_DROP = object()

V2_BODIES: list[tuple[Signature, Any]] = [
    (ONE, {"inputs": [_x()]}),
    (ONE, {"inputs": [_x()], "outputs": [{"name": "predict"}], "id": "r1"}),
    (ONE, {"inputs": [_x(shape=[2, 2], data=[[1.0, 2.0], [3.0, 4.0]])]}),
    (ONE, {"inputs": [_x(shape=[0, 2], data=[])]}),
    (
        TWO,
        {
            "inputs": [
                {"name": "b", "datatype": "BOOL", "shape": [2, 1], "data": [True, False]},
                {"name": "a", "datatype": "INT64", "shape": [2], "data": [1, 2]},
            ]
        },
    ),
    # each of these leaves the plain shape or fails a check: the general path answers
    (ONE, {"inputs": [_x(data=[1, 2])]}),  # integers for FP64: converted
    (ONE, {"inputs": [_x(datatype="FP32")]}),  # not the signature's datatype
    (ONE, {"inputs": [_x(datatype="FLOAT")]}),
    (ONE, {"inputs": [_x(datatype=["FP64"])]}),
    (ONE, {"inputs": [_x(shape=[1, 3], data=[1.0, 2.0, 3.0])]}),
    (ONE, {"inputs": [_x(shape=[1, 2], data=[1.0, 2.0, 3.0])]}),
    (ONE, {"inputs": [_x(shape=[1, True])]}),
    (ONE, {"inputs": [_x(shape=[1, -2])]}),
    (ONE, {"inputs": [_x(shape="1,2")]}),
    (ONE, {"inputs": [_x(shape=[2])]}),
    (ONE, {"inputs": [_x(data=[1.0, None])]}),
    (ONE, {"inputs": [_x(data=[1.0, "2"])]}),
    (ONE, {"inputs": [_x(data=[True, False])]}),
    (ONE, {"inputs": [_x(data=[[1.0], [2.0, 3.0]])]}),
    (ONE, {"inputs": [_x(data={"a": 1})]}),
    (ONE, {"inputs": [_x(data=_DROP)]}),
    (ONE, {"inputs": [_x(name="y")]}),
    (ONE, {"inputs": [_x(name="")]}),
    (ONE, {"inputs": [_x(name=3)]}),
    (ONE, {"inputs": [_x(), _x()]}),
    (ONE, {"inputs": []}),
    (ONE, {"inputs": [_x(parameters={"binary_data_size": 16})]}),
    (ONE, {"inputs": [_x(parameters={"shared_memory_region": "r"})]}),
    (ONE, {"inputs": [_x(parameters=[])]}),
    (ONE, {"inputs": [_x(extra=1)]}),
    (ONE, {"inputs": [_x()], "parameters": {"binary_data_output": True}}),
    (ONE, {"inputs": [_x()], "parameters": {"binary_data_output": 1}}),
    (ONE, {"inputs": [_x()], "outputs": [{"name": "nope"}]}),
    (ONE, {"inputs": [_x()], "outputs": [{"name": "predict"}, {"name": "predict"}]}),
    (ONE, {"inputs": [_x()], "outputs": [{"name": ""}]}),
    (ONE, {"inputs": [_x()], "outputs": [{"name": "scores", "parameters": {"classification": 2}}]}),
    (
        ONE,
        {"inputs": [_x()], "outputs": [{"name": "predict", "parameters": {"classification": 2}}]},
    ),
    (ONE, {"inputs": [_x()], "outputs": {"name": "predict"}}),
    (ONE, {"inputs": [_x()], "outputs": ["predict"]}),
    (ONE, {"inputs": [_x()], "outputs": None}),
    (ONE, {"inputs": [_x()], "id": 7}),
    (ONE, {"inputs": [_x()], "id": None}),
    (ONE, {"inputs": [_x()], "other": 1}),
    (ONE, {"inputs": _x()}),
    (ONE, {"input": [_x()]}),
    (ONE, [_x()]),
    (ONE, None),
    (
        TWO,
        {
            "inputs": [
                {"name": "a", "datatype": "INT64", "shape": [2], "data": [1, 2]},
                {"name": "b", "datatype": "BOOL", "shape": [3, 1], "data": [True, False, True]},
            ]
        },
    ),
    (TWO, {"inputs": [{"name": "a", "datatype": "INT64", "shape": [2], "data": [1, 2]}]}),
    (
        TWO,
        {
            "inputs": [
                {"name": "a", "datatype": "INT64", "shape": [1], "data": [2**70]},
                {"name": "b", "datatype": "BOOL", "shape": [1, 1], "data": [True]},
            ]
        },
    ),
    (
        TWO,
        {
            "inputs": [
                {"name": "a", "datatype": "INT64", "shape": [1], "data": [1.5]},
                {"name": "b", "datatype": "BOOL", "shape": [1, 1], "data": [1]},
            ]
        },
    ),
]


def _outcome(run: Any) -> Any:
    try:
        return ("ok", *run())
    except Exception as exc:
        return (
            "error",
            type(exc),
            str(exc),
            getattr(exc, "field", None),
            repr(getattr(exc, "value", None)),
        )


def _same(one: Any, other: Any) -> None:
    assert type(one) is type(other), (one, other)
    if isinstance(one, dict):
        assert list(one) == list(other)
        for key in one:
            _same(one[key], other[key])
    elif isinstance(one, np.ndarray):
        assert one.dtype == other.dtype
        assert one.shape == other.shape
        np.testing.assert_array_equal(one, other)
    elif isinstance(one, list | tuple):
        assert len(one) == len(other), (one, other)
        for a, b in zip(one, other, strict=True):
            _same(a, b)
    elif hasattr(one, "__slots__"):
        for slot in one.__slots__:
            _same(getattr(one, slot), getattr(other, slot))
    else:
        assert one == other


@pytest.mark.parametrize(("signature", "doc"), V2_BODIES)
def test_v2_plain_and_general_paths_agree(signature: Signature, doc: Any) -> None:
    data = json.dumps(doc).encode()  # (orjson cannot write integers past 64 bits)
    fast = _outcome(lambda: v2_json(data, signature))
    general = _outcome(lambda: v2_general(data, None, signature))
    _same(fast, general)


def test_the_plain_shapes_take_the_plain_path() -> None:
    """(So the agreement above is between two paths, not one path twice.)"""
    plain = [doc for signature, doc in V2_BODIES if decode._plain_v2(doc, signature) is not None]
    assert plain == [doc for _, doc in V2_BODIES[:5]] + [{"inputs": [_x()], "id": None}]


@pytest.mark.parametrize("widen", [False, True])
def test_a_declared_datatype_that_widens_goes_the_general_way(widen: bool) -> None:
    data = orjson.dumps({"inputs": [_x(datatype="FP32")]})
    _same(
        _outcome(lambda: v2_json(data, ONE, widen=widen)),
        _outcome(lambda: v2_general(data, None, ONE, widen=widen)),
    )


@pytest.mark.parametrize(
    "data",
    [
        b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [NaN, 1.0]}]}',
        b"{",
        b"",
        b"[]",
    ],
)
def test_bodies_orjson_refuses_go_the_general_way(data: bytes) -> None:
    _same(_outcome(lambda: v2_json(data, ONE)), _outcome(lambda: v2_general(data, None, ONE)))


V1_ONE = Signature(
    inputs=[TensorSpec(name="x", datatype="FP64", shape=[-1, 2])],
    outputs=[TensorSpec(name="y", datatype="INT64", shape=[-1])],
)
V1_INT = Signature(
    inputs=[TensorSpec(name="x", datatype="INT32", shape=[-1, 2])],
    outputs=[TensorSpec(name="y", datatype="INT64", shape=[-1])],
)
V1_TWO = Signature(
    inputs=[
        TensorSpec(name="a", datatype="FP64", shape=[-1]),
        TensorSpec(name="b", datatype="FP64", shape=[-1]),
    ],
    outputs=[TensorSpec(name="y", datatype="INT64", shape=[-1])],
)

V1_BODIES: list[tuple[Signature, bytes]] = [
    (V1_ONE, b'{"instances": [[1.5, 2.5]]}'),
    (V1_ONE, b'{"instances": [[1, 2], [3, 4]]}'),
    (V1_ONE, b'{"instances": [[true, false]]}'),
    (V1_INT, b'{"instances": [[1, 2]]}'),
    (V1_INT, b'{"instances": [[1, 3000000000]]}'),
    (V1_INT, b'{"instances": [[1.5, 2]]}'),
    (V1_ONE, b'{"instances": [[1.5, 2.5, 3.5]]}'),
    (V1_ONE, b'{"instances": [1.5, 2.5]}'),
    (V1_ONE, b'{"instances": [[1.5], [2.5, 3.5]]}'),
    (V1_ONE, b'{"instances": [[1.5, null]]}'),
    (V1_ONE, b'{"instances": [["a", "b"]]}'),
    (V1_ONE, b'{"instances": [{"x": [1.0, 2.0]}]}'),
    (V1_ONE, b'{"instances": [{"b64": "AAAA"}]}'),
    (V1_ONE, b'{"instances": []}'),
    (V1_ONE, b'{"instances": {"x": 1}}'),
    (V1_ONE, b'{"instances": [[1.0, 2.0]], "inputs": [[1.0, 2.0]]}'),
    (V1_ONE, b'{"instances": [[1.0, 2.0]], "signature_name": "s"}'),
    (V1_ONE, b'{"inputs": [[1.0, 2.0]]}'),
    (V1_ONE, b'{"rows": [[1.0, 2.0]]}'),
    (V1_ONE, b"[[1.0, 2.0]]"),
    (V1_ONE, b"{"),
    (V1_TWO, b'{"instances": [[1.0, 2.0]]}'),
    (V1_TWO, b'{"instances": [{"a": 1.0, "b": 2.0}]}'),
]


@pytest.mark.parametrize(("signature", "data"), V1_BODIES)
def test_v1_plain_and_general_paths_agree(signature: Signature, data: bytes) -> None:
    _same(
        _outcome(lambda: (v1_json(data, signature),)),
        _outcome(lambda: (v1_general(data, signature),)),
    )
