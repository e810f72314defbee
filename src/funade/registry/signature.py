"""Signatures: the named, typed and shaped tensors a model takes and gives.

``input_format`` records what the user passed as the sample, so ``predict`` accepts it back in the
same form: ``"tensor"`` (one array), ``"columns"`` (a DataFrame, one tensor per column, order kept)
or ``"tensors"`` (a dict of named arrays). A dict of named tensors is accepted in every format,
which is how requests arriving over the Open Inference Protocol are checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from funade.errors import InvalidInputError
from funade.registry.images import ImageInput
from funade.registry.tensors import (
    Datatype,
    InputFormat,
    Tensors,
    as_tensors,
    cast,
    datatype_of,
    is_dataframe,
    normalize,
)

__all__ = ["Signature", "TensorSpec", "from_tensors", "infer_signature", "to_tensors"]


class TensorSpec(BaseModel):
    """One tensor: its name, OIP datatype and shape (``-1``: any size; dimension 0: the batch)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    datatype: Datatype
    shape: list[int] = Field(min_length=1)
    image: ImageInput | None = Field(default=None, exclude_if=lambda value: value is None)
    """How a photo becomes this input, if it takes images (``registry.images``)."""
    labels: list[str] | None = Field(default=None, exclude_if=lambda value: value is None)
    """The class of each position along an output's last dimension (``["cat", "dog"]`` for
    ``probabilities`` of shape ``[-1, 2]``): what a classification answer names."""

    @model_validator(mode="after")
    def _sizes(self) -> Self:
        if any(d < -1 for d in self.shape):
            raise ValueError(f"shape {self.shape} of '{self.name}' has a size below -1")
        if self.labels is not None:
            classes = self.shape[-1]
            if len(self.shape) < 2 or classes not in (-1, len(self.labels)):
                raise ValueError(
                    f"'{self.name}' has shape {self.shape}; {len(self.labels)} labels need a "
                    f"last dimension of {len(self.labels)} classes"
                )
            if self.datatype in ("BYTES", "BOOL"):
                raise ValueError(f"'{self.name}' is {self.datatype}, not scores to label")
        return self

    def __str__(self) -> str:
        return f"{self.name}: {self.datatype}{self.shape}"


class Signature(BaseModel):
    """What a model takes (``inputs``, passed in ``input_format``) and gives (``outputs``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec]
    input_format: InputFormat = "tensors"

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for kind, specs in (("input", self.inputs), ("output", self.outputs)):
            names = [s.name for s in specs]
            if len(set(names)) != len(names):
                raise ValueError(f"{kind} names are not unique: {names}")
        labelled = [s.name for s in self.inputs if s.labels is not None]
        if labelled:
            raise ValueError(f"inputs {labelled} have labels; only outputs are labelled")
        if self.input_format == "tensor" and len(self.inputs) != 1:
            raise ValueError("input_format 'tensor' needs exactly one input")
        return self

    @cached_property
    def labels(self) -> dict[str, list[str]]:
        """The class names of each output that has them (read once: every answer may use it)."""
        return {spec.name: spec.labels for spec in self.outputs if spec.labels is not None}


def infer_signature(sample_input: Any, outputs: Mapping[str, npt.NDArray[Any]]) -> Signature:
    """The signature of a model that took ``sample_input`` and gave ``outputs``."""
    input_format, inputs = as_tensors(sample_input, field="sample_input")
    return Signature(
        inputs=_specs(inputs), outputs=_specs(outputs, field="outputs"), input_format=input_format
    )


def _specs(tensors: Mapping[str, npt.NDArray[Any]], field: str = "") -> list[TensorSpec]:
    specs = []
    for name, value in tensors.items():
        array = normalize(value, name=name)
        datatype = datatype_of(array, name=f"{field}.{name}" if field else name)
        specs.append(TensorSpec(name=name, datatype=datatype, shape=[-1, *array.shape[1:]]))
    return specs


def to_tensors(user_input: Any, signature: Signature) -> Tensors:
    """``user_input`` as tensors named, typed and shaped as ``signature.inputs``, in their order.

    Raises ``InvalidInputError`` naming the input, what was given and what was expected.
    """
    if signature.input_format == "tensor" and is_dataframe(user_input):
        user_input = user_input.to_numpy()
    given_format, given = as_tensors(user_input)
    if given_format == "tensor":
        if len(signature.inputs) != 1:
            raise InvalidInputError(
                "The input is one array, but the model takes named inputs: "
                f"{', '.join(s.name for s in signature.inputs)}.",
                field=signature.inputs[0].name,
                value=_describe(given.popitem()[1]),
                fix=_format_fix(signature),
            )
        given = {signature.inputs[0].name: given.popitem()[1]}
    missing = [s.name for s in signature.inputs if s.name not in given]
    if missing:
        raise InvalidInputError(
            f"The input lacks {', '.join(map(repr, missing))}, which the model takes.",
            field=missing[0],
            value=sorted(given),
            fix=_format_fix(signature),
        )
    unexpected = [name for name in given if name not in {s.name for s in signature.inputs}]
    if unexpected:
        raise InvalidInputError(
            f"The model does not take {', '.join(map(repr, unexpected))}.",
            field=unexpected[0],
            value=sorted(given),
            fix=f"Drop them. {_format_fix(signature)}",
        )
    return {s.name: _conform(given[s.name], s) for s in signature.inputs}


def _conform(array: npt.NDArray[Any], spec: TensorSpec) -> npt.NDArray[Any]:
    """``array`` cast to ``spec``'s datatype with its shape checked (a single row, or a column
    given as ``(n,)`` for ``(n, 1)`` or the reverse, is reshaped)."""
    want = spec.shape
    if want[1:] == [1] and array.ndim == 1:
        array = array.reshape(-1, 1)
    elif array.ndim == len(want) - 1 and _fits(array.shape, want[1:]):
        array = array.reshape(1, *array.shape)
    elif len(want) == 1 and array.ndim == 2 and array.shape[1] == 1:
        array = array.reshape(-1)
    if array.ndim != len(want) or not _fits(array.shape, want):
        raise InvalidInputError(
            f"Input '{spec.name}' has shape {list(array.shape)}, but the model expects "
            f"{_shape_text(want)}.",
            field=spec.name,
            value=_describe(array),
            fix=f"Pass an array of shape {_shape_text(want)}.",
        )
    return cast(array, spec.datatype, name=spec.name)


def _fits(shape: tuple[int, ...], want: list[int]) -> bool:
    return len(shape) == len(want) and all(w in (-1, s) for s, w in zip(shape, want, strict=True))


def _shape_text(shape: list[int]) -> str:
    return (
        "("
        + ", ".join("n" if i == 0 and d == -1 else str(d) for i, d in enumerate(shape))
        + (",)" if len(shape) == 1 else ")")
    )


def _describe(array: npt.NDArray[Any]) -> str:
    kind = "string" if array.dtype.kind in "OUS" else str(array.dtype)
    return f"{kind} array of shape {list(array.shape)}"


def _format_fix(signature: Signature) -> str:
    specs = ", ".join(str(s) for s in signature.inputs)
    if signature.input_format == "columns":
        return f"Pass a DataFrame with the columns {specs}."
    if signature.input_format == "tensor":
        return f"Pass one array {specs}."
    return f"Pass a dict of arrays {specs}."


def from_tensors(tensors: Mapping[str, npt.NDArray[Any]], signature: Signature) -> Any:
    """Model outputs as a user sees them: the array if there is one output, else a dict of arrays
    in the signature's order (then any outputs the signature does not name)."""
    if len(tensors) == 1:
        return np.asarray(next(iter(tensors.values())))
    order = [s.name for s in signature.outputs if s.name in tensors]
    order += [name for name in tensors if name not in order]
    return {name: tensors[name] for name in order}


def inputs_from_tensors(tensors: Mapping[str, npt.NDArray[Any]], signature: Signature) -> Any:
    """Input tensors back in the form the user gives them: one array, a DataFrame or a dict."""
    if signature.input_format == "tensor":
        return next(iter(tensors.values()))
    if signature.input_format == "columns":
        return frame_from_tensors(tensors)
    return dict(tensors)


def frame_from_tensors(tensors: Mapping[str, npt.NDArray[Any]]) -> Any:
    """A pandas DataFrame with one column per tensor, in order (``(n, 1)`` columns flattened).

    A ``BYTES`` tensor arrives from the wire as ``bytes`` (the protocol's JSON strings, UTF-8
    encoded); a DataFrame's text column held ``str`` when the model was fitted, and an encoder
    fitted on ``"Zoé"`` takes ``b"Zo\\xc3\\xa9"`` for a category it never saw. So a column whose
    elements are all UTF-8 text comes back as ``str``; one with other bytes stays as it is."""
    from funade.registry.flavors.base import require  # lazy: flavors import this module

    pandas = require("pandas", extra="pandas", needed_by="A model that takes a DataFrame")
    return pandas.DataFrame(
        {
            k: _text(v.reshape(-1) if v.ndim == 2 and v.shape[1] == 1 else v)
            for k, v in tensors.items()
        }
    )


def _text(column: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if column.dtype != object or not all(isinstance(v, bytes) for v in column.flat):
        return column
    try:
        decoded = [v.decode("utf-8") for v in column.flat]
    except UnicodeDecodeError:
        return column
    out = np.empty(column.shape, dtype=object)
    out.flat[:] = decoded
    return out
