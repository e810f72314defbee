"""Conformance to the Open Inference Protocol's REST definition, the same way for every server.

The document is ``open_inference_rest.yaml`` beside this module: the protocol's own definition
(kserve/open-inference-protocol, spec version 2.0, at the commit its header names), with the
spec's oddities worked around and each one listed there. Every operation of it is driven with
requests schemathesis generates from it (a fixed seed, deterministic, ``EXAMPLES`` per
operation, in both modes: requests the document allows and requests it does not), plus its
coverage phase (each field at its boundaries, missing, of the wrong type, other content types)
and the document's one example request. The path parameters are fixed to the served model's
name and version, so every request reaches that model's routes.

Each answer must be: no 5xx; a status the document lists for the operation; for those, the
documented content type and a body of the documented schema; a request the document forbids
refused with a 4xx; and every error (any 4xx) a JSON object with an ``error`` string, the
protocol's error shape.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import schemathesis
from schemathesis import Case
from schemathesis.checks import (
    CheckContext,
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.transport import Response
from schemathesis.schemas import APIOperation, BaseSchema

from tests.security import fuzzing

DOCUMENT = Path(__file__).with_name("open_inference_rest.yaml")
SPEC_VERSION = "2.0"
SPEC_COMMIT = "d49cc23f89d709d87b210ef9449e273ae243984e"
SEED = 20
EXAMPLES = 6
"""Generated requests per operation and mode (the coverage phase adds its own)."""
ABSENT = "absent"
"""A model no server here serves: its routes answer 404 (deviation 5), in the error shape."""
TIMEOUT_SECONDS = 30
SAMPLE = {"input0": np.array([[1.5, 2.5]], dtype=np.float32)}
"""What the echo model is packaged with: one FP32 input of shape [-1, 2] (the document's
example request sends two rows of it)."""


def error_object(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every error answer is the protocol's error object: ``{"error": "<message>", ...}``."""
    if response.status_code < 400:
        return None
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        raise AssertionError(
            f"A {response.status_code} whose body is not the protocol's error object "
            f'{{"error": "<message>"}}: {response.text[:300]!r}'
        )
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    error_object,
]


def document(name: str, version: str, examples: int = EXAMPLES) -> BaseSchema:
    """The protocol's document, configured to drive the model ``name`` at ``version`` (the path
    parameters are always these) with ``examples`` generated requests per operation and mode."""
    data: dict[str, Any] = {
        "seed": SEED,
        "suppress-health-check": ["all"],
        "request-timeout": TIMEOUT_SECONDS,
        "generation": {
            "max-examples": examples,
            "deterministic": True,
            "database": "none",
            "mode": "all",
            "allow-extra-parameters": False,
            "with-security-parameters": False,
        },
        "phases": {"examples": {"enabled": True}, "stateful": {"enabled": False}},
        "parameters": {"path.MODEL_NAME": name, "path.MODEL_VERSION": version},
    }
    return schemathesis.openapi.from_path(DOCUMENT, config=schemathesis.Config.from_dict(data))


def names_a_model(operation: APIOperation) -> bool:
    """The operations of one model (their path names it), not the server's own."""
    return "{MODEL_NAME}" in operation.path


def add_tests(
    cls: type,
    schema: BaseSchema,
    run: Callable[..., None],
    prefix: str = "",
    select: Callable[[APIOperation], bool] = lambda operation: True,
) -> None:
    """Add to ``cls`` a test method per operation of ``schema`` (``select`` picks them), named
    ``test_<prefix><operation>``: several documents' tests in one class, so that pytest-xdist's
    ``--dist loadscope`` keeps them on one worker, with one server (fixture) between them."""
    scratch = type("Scratch", (), {})
    fuzzing.one_test_per_operation(scratch, schema, run, select)
    for name, test in vars(scratch).items():
        if name.startswith("test_"):
            setattr(cls, f"test_{prefix}{name.removeprefix('test_')}", test)
