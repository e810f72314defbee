"""What a step process is given: its environment and its inputs.

The environment holds the run's lineage (run, step, attempt, the digests of the inputs), the
run's token and where the control plane is, the step's own variables and its secrets, each read
here from where its reference says (``env:NAME``, ``file:/path``). Each input is a JSON value,
or a stored output (a fan-in: a list of them) with the path of its blob in the local cache.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from funade.artifacts import ArtifactCache
from funade.errors import InvalidInputError
from funade.pipelines.engine import Input, Start, Stored

__all__ = ["step_environment", "task_input"]


def step_environment(
    run_env: Mapping[str, str],
    start: Start,
    env: Mapping[str, str],
    secrets: Mapping[str, str],
    where: str,
) -> dict[str, str]:
    """The environment of the step ``start`` starts: the run's variables (``run_env``), the
    step and its inputs, then the step's ``env`` and ``secrets`` over them."""
    out = {
        **run_env,
        "FUNADE_RUN_STEP": start.instance,
        "FUNADE_RUN_INPUTS": json.dumps(_input_digests(start.inputs)),
        **env,
    }
    for name, reference in secrets.items():
        out[name] = _secret(name, reference, where)
    return out


def task_input(value: Input, cache: ArtifactCache) -> dict[str, Any]:
    """One input as the step process reads it (a stored value's blob: its path in ``cache``)."""
    if value.kind == "value":
        return {"kind": "value", "value": value.value}
    if value.kind == "list":
        return {"kind": "list", "items": [_stored(s, cache) for s in value.items]}
    assert value.stored is not None
    return {"kind": value.kind, "stored": _stored(value.stored, cache), "index": value.index}


def _stored(stored: Stored, cache: ArtifactCache) -> dict[str, Any]:
    data = stored.model_dump()
    if not stored.inline:
        data["path"] = str(cache.blob_path(stored.digest))
    return data


def _input_digests(inputs: Mapping[str, Input]) -> dict[str, Any]:
    """Each input's digest (a list of them for a fan-in), and the element of a fan-out."""
    out: dict[str, Any] = {}
    for name, value in inputs.items():
        if value.kind == "value":
            out[name] = {"value": value.value} if len(json.dumps(value.value)) <= 256 else "value"
        elif value.kind == "list":
            out[name] = [s.digest for s in value.items]
        elif value.stored is not None:
            out[name] = value.stored.digest + (f"[{value.index}]" if value.kind == "item" else "")
    return out


def _secret(name: str, reference: str, where: str) -> str:
    scheme, _, rest = reference.partition(":")
    if scheme == "env" and rest:
        if rest not in os.environ:
            raise InvalidInputError(
                f"{where}: secret {name} refers to the environment variable {rest}, which "
                "is not set.",
                field=f"secrets.{name}",
                value=reference,
                fix=f"Set {rest} where the runner runs.",
            )
        return os.environ[rest]
    if scheme == "file" and rest:
        try:
            return Path(rest).read_text().strip()
        except OSError as exc:
            raise InvalidInputError(
                f"{where}: secret {name} refers to {rest}, which cannot be read ({exc.strerror}).",
                field=f"secrets.{name}",
                value=reference,
                fix="Give a readable file.",
            ) from None
    raise InvalidInputError(
        f"{where}: secret {name} = {reference!r} is not a reference.",
        field=f"secrets.{name}",
        value=reference,
        fix="Write env:NAME (an environment variable) or file:/path (a file's contents).",
    )
