"""Sample tensors of every Open Inference Protocol datatype, shared by the protocol tests.

Each holds the datatype's extremes (or awkward values: empty and non-ASCII strings, FP16's
largest finite value) in a 2 x 3 array.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def _ints(dtype: type[np.integer[Any]]) -> npt.NDArray[Any]:
    info = np.iinfo(dtype)
    return np.array([[info.min, 0, info.max], [1, 2, 3]], dtype=dtype)


SAMPLES: dict[str, npt.NDArray[Any]] = {
    "BOOL": np.array([[True, False, True], [False, False, True]]),
    "INT8": _ints(np.int8),
    "INT16": _ints(np.int16),
    "INT32": _ints(np.int32),
    "INT64": _ints(np.int64),
    "UINT8": _ints(np.uint8),
    "UINT16": _ints(np.uint16),
    "UINT32": _ints(np.uint32),
    "UINT64": _ints(np.uint64),
    "FP16": np.array([[0.5, -1.25, 65504.0], [0.0, 1e-3, -2.0]], dtype=np.float16),
    "FP32": np.array([[0.1, -3.4e38, 3.4e38], [1e-30, 0.0, 2.5]], dtype=np.float32),
    "FP64": np.array([[0.1, -1.7e308, 1.7e308], [5e-324, 0.0, 2.5]], dtype=np.float64),
    "BYTES": np.array(
        [[b"", b"hello", "h\u00e9llo \u2603".encode()], [b"a b", b"\x00zero", b"x" * 300]],
        dtype=object,
    ),
}

DATATYPES = list(SAMPLES)

# Shapes every sample is also tried in: higher rank, and no elements at all.
SHAPES = [(2, 3), (1, 2, 3), (6,), (0, 3)]


def sample(datatype: str, shape: tuple[int, ...]) -> npt.NDArray[Any]:
    """The sample of ``datatype`` in ``shape`` (sliced to nothing for zero-size shapes)."""
    flat = SAMPLES[datatype].reshape(-1)
    return flat[: int(np.prod(shape))].reshape(shape)


def assert_same(got: npt.NDArray[Any], expected: npt.NDArray[Any]) -> None:
    """Equal values, shape and dtype (BYTES: object arrays of the same bytes)."""
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    assert got.tolist() == expected.tolist()
