"""Running one step inside a KFP container: ``funade pipeline step --executor-input '{{$}}' ...``.

The compiled component (``kfpir``) passes KFP's executor input (its inputs' values and
artifacts, where to write its outputs) and the step's code reference. This:

1. loads the pipeline file and the step (``--function module:qualname``) from the image, and
   refuses to run when the step's code digest there differs from the compiled one
   (``--code-digest``): the image holds other code than the cache key names;
2. reads parameters from the executor input, and artifacts from the local paths KFP's
   launcher mounts for their URIs (``gs://b/x`` → ``/gcs/b/x``, ``s3://`` → ``/s3/``,
   ``minio://`` → ``/minio/``), decoded as funade stored them (kind in the metadata);
3. calls the step function, writes parameter outputs to their output files and artifacts with
   funade's serializers into their paths, and the artifacts' metadata (kind, digest, size,
   type) into KFP's executor output file, so lineage and cache keys mean the same on KFP.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from funade.errors import InvalidInputError
from funade.pipelines import serializers
from funade.pipelines.codehash import code_session, describe_code
from funade.pipelines.loader import load_pipeline
from funade.pipelines.steps import Step
from funade.pipelines.task import _plain, _split, resolve_step

__all__ = ["local_path", "run_kfp_step"]

_PLAIN_NAME = re.compile(r"[0-9a-f]{64}(\.[A-Za-z0-9_-]{1,16})?")
_MOUNTS = {"gs://": "/gcs/", "s3://": "/s3/", "minio://": "/minio/"}


def local_path(uri: str) -> Path:
    """Where KFP's launcher puts the file of an artifact URI inside the container."""
    for prefix, mount in _MOUNTS.items():
        if uri.startswith(prefix):
            return Path(mount + uri.removeprefix(prefix))
    if uri.startswith("/"):
        return Path(uri)
    raise InvalidInputError(
        f"Artifact URI {uri!r} is not one KFP mounts (gs://, s3://, minio://).",
        field="uri",
        value=uri,
        fix="Run the step on KFP or Vertex AI, whose launcher gives such URIs.",
    )


def _load_artifact(artifact: Mapping[str, Any], work_dir: Path, where: str) -> Any:
    metadata = artifact.get("metadata") or {}
    kind, name = metadata.get("funade_kind"), metadata.get("funade_file")
    if not isinstance(kind, str) or not isinstance(name, str):
        raise InvalidInputError(
            f"{where}: artifact {artifact.get('uri')!r} was not stored by a funade step "
            "(its metadata has no funade_kind).",
            field=where,
            fix="Pass outputs of funade steps between funade steps.",
        )
    if kind not in serializers.KINDS or not _PLAIN_NAME.fullmatch(name):
        raise InvalidInputError(
            f"{where}: artifact {artifact.get('uri')!r} names the file {name!r} of kind "
            f"{kind!r}; a funade artifact is one file (<digest>.<ext>) directly in its folder.",
            field=where,
            value=name,
            fix="Pass outputs of funade steps between funade steps.",
        )
    return serializers.decode(kind, local_path(str(artifact["uri"])) / name, work_dir=work_dir)


def _parameter(value: Any, step: Step[..., Any], name: str) -> Any:
    hint = step.hints.get(name)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)  # KFP's JSON numbers are doubles
    return value


@contextmanager
def _run_source(pipeline: str) -> Iterator[None]:
    """While the step runs, ``FUNADE_RUN_SOURCE`` names the pipeline's file (as the local
    runner's steps have it), so a model the step registers records the git state of the
    project, not of wherever the engine's entry point (``funade``, KFP's executor) lives."""
    before = os.environ.get("FUNADE_RUN_SOURCE")
    os.environ["FUNADE_RUN_SOURCE"] = before or pipeline
    try:
        yield
    finally:
        if before is None:
            del os.environ["FUNADE_RUN_SOURCE"]


def run_kfp_step(
    executor_input: Mapping[str, Any],
    *,
    pipeline: str,
    function: str,
    code_digest: str,
    work_dir: Path,
) -> dict[str, Any]:
    """Run the step; returns (and writes) KFP's executor output."""
    load_pipeline(pipeline)
    step = resolve_step(function)
    where = f"step {step.name!r}"
    with code_session():
        here = describe_code(step.fn).digest
    if here != code_digest:
        raise InvalidInputError(
            f"{where}: its code in this image ({here}) is not the code the pipeline was "
            f"compiled with ({code_digest}).",
            field="code_digest",
            value=here,
            fix="Build the runtime image from the same code you compile, or compile again "
            "from the image's code.",
        )
    inputs = executor_input.get("inputs") or {}
    values: dict[str, Any] = {
        name: _parameter(value, step, name)
        for name, value in (inputs.get("parameterValues") or {}).items()
    }
    for name, given in (inputs.get("artifacts") or {}).items():
        artifacts = given.get("artifacts") or []
        loaded = [_load_artifact(a, work_dir, f"{where}, input {name!r}") for a in artifacts]
        declared = step.hints.get(name)
        is_list = getattr(declared, "__origin__", None) is list
        values[name] = loaded if is_list or len(loaded) != 1 else loaded[0]
    with _run_source(pipeline):
        returned = step.fn(**values)
    outputs = _split(step, returned, where)
    wanted = executor_input.get("outputs") or {}
    result: dict[str, Any] = {}
    for name, value in outputs.items():
        value = _plain(value)
        out_where = f"{where}, output {name!r}"
        serializers.check_type(value, step.outputs[name], where=out_where)
        parameter = (wanted.get("parameters") or {}).get(name)
        if parameter is not None:
            text = value if isinstance(value, str) else json.dumps(value)
            path = Path(parameter["outputFile"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            continue
        artifact = ((wanted.get("artifacts") or {}).get(name) or {}).get("artifacts", [{}])[0]
        folder = local_path(str(artifact["uri"]))
        encoded = serializers.encode(value, folder, where=out_where)
        result.setdefault("artifacts", {})[name] = {
            "artifacts": [
                {
                    "name": artifact.get("name", name),
                    "uri": artifact["uri"],
                    "metadata": {
                        "funade_kind": encoded.kind,
                        "funade_file": encoded.path.name,
                        "digest": encoded.digest,
                        "size": encoded.size,
                        "type_name": encoded.type_name,
                    },
                }
            ]
        }
    output_file = wanted.get("outputFile")
    if output_file:
        Path(output_file).parent.mkdir(parents=True, exist_ok=True)
        Path(output_file).write_text(json.dumps(result))
    return result
