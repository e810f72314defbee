"""Triton's classification extension: an output answered as its top classes, not its scores.

A requested output with ``"parameters": {"classification": K}`` (``tritonclient``'s
``class_count``) comes back as ``BYTES`` of shape ``[..., K]``: ``"<score>:<index>[:<label>]"``
for the K highest scores along its last dimension, best first, named by the class labels the
package recorded. The server checks the count against the signature before the model runs
(``check_count``); ``classify`` checks it against the scores the model gave.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from funade.errors import InvalidInputError

__all__ = ["check_count", "classify"]


def check_count(name: str, count: int, classes: int, field: str) -> None:
    """Refuse a classification of more classes than output ``name`` scores (-1: not known)."""
    if classes != -1 and count > classes:
        raise InvalidInputError(
            f"Output '{name}' scores {classes} classes; classification {count} asks for more.",
            field=field,
            value=count,
            fix=f"Ask for at most {classes} classes.",
        )


def classify(
    scores: npt.NDArray[Any], count: int, labels: Sequence[str] | None, name: str
) -> npt.NDArray[Any]:
    """The ``count`` highest scores along the last dimension as the classification extension
    writes them: ``BYTES`` strings ``"<score>:<index>[:<label>]"``, best first (ties: the lower
    index first), of shape ``scores.shape[:-1] + [count]``."""
    array = np.asarray(scores)
    if array.ndim == 0 or array.dtype.kind not in "iuf":
        raise InvalidInputError(
            f"Output '{name}' ({array.dtype}, shape {list(array.shape)}) holds no class scores "
            "to classify.",
            field=f"outputs.{name}.parameters.classification",
            value=count,
            fix=f"Ask for '{name}' without classification, or classify an output of scores.",
        )
    check_count(name, count, array.shape[-1], f"outputs.{name}.parameters.classification")
    comparable = array.astype(np.float64) if array.dtype.kind == "u" else array
    order = np.argsort(-comparable, axis=-1, kind="stable")[..., :count]
    top = np.take_along_axis(array, order, axis=-1)
    named = list(labels or [])
    out = np.empty(order.shape, dtype=object)
    for at in np.ndindex(order.shape):
        index = int(order[at])
        label = f":{named[index]}" if index < len(named) else ""
        out[at] = f"{top[at]!s}:{index}{label}".encode()  # str: float32 0.7 stays "0.7"
    return out
