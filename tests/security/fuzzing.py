"""Schema-driven fuzzing with schemathesis, the same way for every server we fuzz.

A fixed seed, deterministic generation (the same requests on every run and every machine),
25 generated requests per operation by default in both modes (data the schema allows and data
it does not), plus schemathesis's coverage phase (each parameter and field at its boundaries,
missing, of the wrong type). One parameter in five of each type gets a hostile value instead
(an integer past 32 or 64 bits, a name ending in a newline, a header break, a digit that is
not ASCII). Each answer must be no 5xx, no dropped connection (``requests`` raises), a status
the document lists for the operation, a documented content type and headers and, where one is
documented, a body of its schema; a request the schema forbids must be refused (4xx).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.schemas import APIOperation, BaseSchema

SEED = 17
HOSTILE_INTEGERS = [2**31, 2**63, 2**64, -(2**63) - 1, -1, 0]
"""Integers past the store's 32- and 64-bit columns, and the edges below them."""
HOSTILE_STRINGS = ["churn\n", "a\r\nb", "%", "²", "é", "\x7f", "..", "latest", "-1", " "]
"""A name ending in a newline, a header break, characters that look like digits, others."""
HOSTILE_SHARE = 0.2
"""How often a parameter of that type gets one of them instead of a generated value."""
EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
TIMEOUT_SECONDS = 30


def config(
    headers: dict[str, str] | None = None, examples: int = EXAMPLES, **known: list[str]
) -> schemathesis.Config:
    """The fuzzing configuration: ``headers`` on every request (a key); ``known`` values of path
    parameters by name, used for three requests in four (to reach past "no such project"; the
    fourth is generated, to fuzz the parameter itself)."""
    data: dict[str, Any] = {
        "seed": SEED,
        "suppress-health-check": ["all"],
        "request-timeout": TIMEOUT_SECONDS,
        "generation": {
            "max-examples": examples,
            "deterministic": True,
            "database": "none",
            "mode": "all",
            # Unknown query parameters are ignored, as HTTP APIs do; the key is ours to send
            # (or not, in the run without one), never a generated Authorization header.
            "allow-extra-parameters": False,
            "with-security-parameters": False,
        },
        "phases": {"examples": {"enabled": False}, "stateful": {"enabled": False}},
    }
    if headers:
        data["headers"] = headers
    data["dictionaries"] = {
        "hostile-integers": {"values": HOSTILE_INTEGERS},
        "hostile-strings": {"values": HOSTILE_STRINGS},
        **{name: {"values": values} for name, values in known.items()},
    }
    data["generation"]["dictionaries"] = {
        "integer": {"dictionary": "hostile-integers", "probability": HOSTILE_SHARE},
        "string": {"dictionary": "hostile-strings", "probability": HOSTILE_SHARE},
    }
    if known:
        data["parameters"] = {
            f"path.{name}": {"dictionary": name, "probability": 0.75} for name in known
        }
    return schemathesis.Config.from_dict(data)


def one_test_per_operation(
    cls: type,
    schema: BaseSchema,
    run: Callable[..., None],
    select: Callable[[APIOperation], bool] = lambda operation: True,
) -> None:
    """Add to ``cls`` one test method per operation of ``schema`` that ``select`` picks, each
    running ``run`` (a ``(self, case, fixtures...)`` function) on that operation's cases.
    schemathesis's own ``parametrize`` makes items that pytest 9 gives one node id, which
    pytest-xdist then runs once; a method of its own per operation has a name of its own."""
    for result in schema.get_all_operations():
        operation = result.ok()
        if not select(operation):
            continue

        def only(ctx: Any, label: str = operation.label) -> bool:
            return bool(ctx.operation.label == label)

        @functools.wraps(run)
        def test(*args: Any, **kwargs: Any) -> None:
            run(*args, **kwargs)

        name = "test_" + re.sub(r"[^a-z0-9]+", "_", operation.label.lower()).strip("_")
        test.__name__ = test.__qualname__ = name
        setattr(cls, name, schema.include(only).parametrize()(test))
