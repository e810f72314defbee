"""Golden examples: sample inputs and the outputs the model gave, in Open Inference Protocol form.

Each example is ``{"inputs": [tensor...], "outputs": [tensor...]}``, so a deployment verifier can
POST ``{"inputs": example["inputs"]}`` to ``/v2/models/<name>/infer`` and hand the response's
``"outputs"`` with the example's to ``compare_outputs``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from funade.errors import InvalidInputError
from funade.registry.tensors import tensor_from_json, tensors_to_json

MAX_GOLDEN_BYTES = 1024 * 1024


def make_golden_examples(
    inputs: Mapping[str, npt.NDArray[Any]], outputs: Mapping[str, npt.NDArray[Any]]
) -> list[dict[str, Any]]:
    """One example holding the whole sample batch; refused if its JSON is over 1 MiB."""
    example = {"inputs": tensors_to_json(inputs), "outputs": tensors_to_json(outputs)}
    size = len(json.dumps(example))
    if size > MAX_GOLDEN_BYTES:
        rows = next(iter(inputs.values())).shape[0] if inputs else 0
        raise InvalidInputError(
            f"The sample input and its outputs take {size:,} bytes as JSON, over the "
            f"{MAX_GOLDEN_BYTES:,} bytes golden examples may take.",
            field="sample_input",
            value=f"{rows} rows",
            fix="Pass fewer rows, e.g. X[:5].",
        )
    return [example]


def compare_outputs(
    expected: Sequence[Mapping[str, Any]],
    actual: Sequence[Mapping[str, Any]],
    *,
    rtol: float = 1e-5,
    atol: float = 1e-8,
) -> list[str]:
    """How ``actual`` OIP output tensors differ from ``expected`` ones; empty when they match.

    Numbers match within ``rtol``/``atol`` (NaN matches NaN); strings and booleans exactly.
    Outputs in ``actual`` that ``expected`` does not name are ignored.
    """
    differences: list[str] = []
    by_name = {t.get("name"): t for t in actual}
    for want in expected:
        name = want["name"]
        got = by_name.get(name)
        if got is None:
            differences.append(f"output '{name}' is missing")
            continue
        if got.get("datatype") != want["datatype"]:
            differences.append(
                f"output '{name}' has datatype {got.get('datatype')}, expected {want['datatype']}"
            )
            continue
        try:
            _, have = tensor_from_json(got)
        except InvalidInputError as exc:
            differences.append(f"output '{name}' is not a valid tensor: {exc}")
            continue
        _, expect = tensor_from_json(want)
        differences.extend(_compare(name, expect, have, rtol=rtol, atol=atol))
    return differences


def _compare(
    name: str, expect: npt.NDArray[Any], have: npt.NDArray[Any], *, rtol: float, atol: float
) -> list[str]:
    if expect.shape != have.shape:
        return [f"output '{name}' has shape {list(have.shape)}, expected {list(expect.shape)}"]
    if expect.dtype.kind in "iuf":
        close = np.isclose(have, expect, rtol=rtol, atol=atol, equal_nan=True)
    else:
        close = have == expect
    if bool(np.all(close)):
        return []
    wrong = np.argwhere(~close)
    first = tuple(int(i) for i in wrong[0])
    text = (
        f"output '{name}' differs in {len(wrong)} of {expect.size} values; "
        f"first at {list(first)}: {_plain(have[first])!r}, expected {_plain(expect[first])!r}"
    )
    if expect.dtype.kind in "iuf":
        diff = np.abs(have.astype(np.float64) - expect.astype(np.float64))
        text += f" (largest difference {float(np.nanmax(diff)):.3g})"
    return [text]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
