"""What one Open Inference Protocol (OIP v2) inference request and response hold, decoded.

``v2.decode_infer_request`` turns a body into an ``InferRequest`` whose inputs are numpy arrays of
their datatype and shape; the server answers with an ``InferResponse`` that
``v2.encode_infer_response`` turns back into a body. Nothing here knows about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy.typing as npt

__all__ = ["InferInput", "InferOutput", "InferRequest", "InferResponse", "RequestedOutput"]


@dataclass(slots=True)
class InferInput:
    """One input tensor. ``data`` has the numpy dtype of ``datatype`` and the shape ``shape``;
    a ``BYTES`` tensor is an ``object`` array of ``bytes``. ``parameters`` are as sent."""

    name: str
    datatype: str
    shape: list[int]
    data: npt.NDArray[Any]
    parameters: dict[str, Any]


@dataclass(slots=True)
class RequestedOutput:
    """An output the client asked for; ``binary`` is its ``binary_data`` parameter (None: not
    said, so the request's ``binary_data_output`` decides); ``classification`` its
    ``classification`` parameter: the top classes to answer with instead of the scores (the
    classification extension)."""

    name: str
    binary: bool | None
    parameters: dict[str, Any]
    classification: int | None = None


@dataclass(slots=True)
class InferRequest:
    """A decoded inference request. ``outputs`` None means every output, in the model's order;
    ``binary_output`` is the request-level ``binary_data_output`` parameter."""

    id: str | None
    inputs: list[InferInput]
    outputs: list[RequestedOutput] | None
    parameters: dict[str, Any]
    binary_output: bool


@dataclass(slots=True)
class InferOutput:
    """One output tensor; ``datatype`` None means the one ``data``'s dtype maps to."""

    name: str
    data: npt.NDArray[Any]
    datatype: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class InferResponse:
    """The answer to an inference request; ``id`` echoes the request's."""

    model_name: str
    model_version: str | None
    id: str | None
    outputs: list[InferOutput]
    parameters: dict[str, Any] = field(default_factory=dict)
