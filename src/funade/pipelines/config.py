"""Per-environment configuration: one YAML file, one section per environment.

    # funade.yaml, beside the pipeline's file (or @funade.pipeline(config="conf/train.yaml"))
    defaults:                  # merged into every environment
      steps:
        "*": {retries: 1}      # every step
    environments:
      dev:
        params: {rows: 500}
      prd:
        params: {rows: 100000}
        pipeline: {max_duration: 2h, max_parallel: 8}
        steps:
          train: {timeout: 1h, resources: {memory: 8Gi}, secrets: {DB_PASSWORD: "env:PRD_DB"}}

``--env prd`` merges the section over the pipeline's own defaults; ``--param`` wins over both.
The file is read as YAML 1.2 (``on``, ``no`` and ``0o17`` are text, ``1e-3`` a number), and
``params`` as text that each parameter's declared type parses, as ``--param`` values are.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from funade.errors import InvalidInputError
from funade.pipelines.dsl import Pipeline
from funade.pipelines.spec import PipelineSpec
from funade.pipelines.steps import seconds, step_options
from funade.pipelines.yamltext import load_text, load_typed

__all__ = ["EnvConfig", "apply_env", "config_path", "load_env"]

DEFAULT_FILE = "funade.yaml"
_SECTIONS = {"params", "steps", "pipeline"}
_PIPELINE_KEYS = {"max_duration", "max_parallel", "notify"}

EnvConfig = dict[str, Any]


def config_path(pipeline: Pipeline) -> Path | None:
    """The pipeline's config file: its ``config=``, else ``funade.yaml`` beside its file."""
    try:
        here = Path(inspect.getfile(pipeline.fn)).resolve().parent
    except (TypeError, OSError):
        here = Path.cwd()
    if pipeline.config is not None:
        path = Path(pipeline.config)
        return path if path.is_absolute() else here / path
    candidate = here / DEFAULT_FILE
    return candidate if candidate.is_file() else None


def load_env(pipeline: Pipeline, env: str | None, path: Path | None = None) -> EnvConfig:
    """The merged section for ``env`` (``{}`` with no env); errors name the file and key."""
    path = path or config_path(pipeline)
    if env is None:
        return {}
    if path is None or not path.is_file():
        raise InvalidInputError(
            f"pipeline {pipeline.name!r}: --env {env} needs a config file, and "
            f"{str(path) if path else DEFAULT_FILE!r} does not exist.",
            field="env",
            value=env,
            fix=f"Create {DEFAULT_FILE} beside the pipeline's file with an "
            f"`environments: {{{env}: ...}}` section (see docs/pipelines.md).",
        )
    try:
        content = path.read_text()
        raw = load_typed(content) or {}
        texts = load_text(content) or {}
    except yaml.YAMLError as exc:
        raise InvalidInputError(
            f"{path.name} is not valid YAML: {exc}.",
            field="config",
            value=str(path),
            fix="Fix the YAML syntax.",
        ) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("environments", {}), dict):
        raise InvalidInputError(
            f"{path.name} must be a mapping with an `environments:` mapping.",
            field="config",
            value=str(path),
            fix="See the example in docs/pipelines.md.",
        )
    environments = raw.get("environments") or {}
    if env not in environments:
        known = ", ".join(sorted(environments)) or "none"
        raise InvalidInputError(
            f"pipeline {pipeline.name!r}: environment {env!r} is not in {path.name} "
            f"(it has: {known}).",
            field="env",
            value=env,
            fix=f"Use one of: {known}, or add `{env}:` under `environments:`.",
        )
    merged = _merge(raw.get("defaults") or {}, environments[env] or {})
    if not isinstance(merged.get("params") or {}, Mapping):
        raise InvalidInputError(
            f"{path.name}, environment {env!r}: params must be a mapping of names to values.",
            field=f"environments.{env}.params",
            value=merged["params"],
            fix="Write it as `params: {rows: 500, lr: 1e-3}`.",
        )
    if "params" in merged:  # as text, parsed by each parameter's type (pipelines.params)
        merged["params"] = _merge(
            _section(texts.get("defaults"), "params"),
            _section(_section(texts.get("environments"), env), "params"),
        )
    unknown = set(merged) - _SECTIONS
    if unknown:
        raise InvalidInputError(
            f"{path.name}, environment {env!r}: unknown section {sorted(unknown)[0]!r}.",
            field=f"environments.{env}.{sorted(unknown)[0]}",
            value=sorted(unknown)[0],
            fix=f"Use {', '.join(sorted(_SECTIONS))}.",
        )
    return merged


def _section(raw: Any, name: str) -> Mapping[str, Any]:
    value = raw.get(name) if isinstance(raw, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def apply_env(spec: PipelineSpec, config: EnvConfig, *, env: str | None) -> PipelineSpec:
    """The spec with the environment's pipeline and step options applied."""
    if not config:
        return spec
    where = f"pipeline {spec.name!r}, environment {env!r}"
    steps = config.get("steps") or {}
    names = {n.id for n in spec.nodes}
    for name in steps:
        if name != "*" and name not in names:
            raise InvalidInputError(
                f"{where}: the config sets options of step {name!r}, which the pipeline "
                "does not have.",
                field=f"environments.{env}.steps.{name}",
                value=name,
                fix=f"Use one of: {', '.join(sorted(names))}, or '*' for every step.",
            )
    nodes = []
    for node in spec.nodes:
        changes = _merge(steps.get("*") or {}, steps.get(node.id) or {})
        if changes:
            options = step_options(
                node.options.model_dump() | changes, where=f"{where}, step {node.id!r}"
            )
            node = node.model_copy(update={"options": options})
        nodes.append(node)
    pipeline = dict(config.get("pipeline") or {})
    unknown = set(pipeline) - _PIPELINE_KEYS
    if unknown:
        raise InvalidInputError(
            f"{where}: unknown pipeline option {sorted(unknown)[0]!r}.",
            field=f"environments.{env}.pipeline",
            value=sorted(unknown)[0],
            fix=f"Use {', '.join(sorted(_PIPELINE_KEYS))}.",
        )
    if "max_duration" in pipeline:
        pipeline["max_duration"] = seconds(
            pipeline["max_duration"], field="max_duration", where=where
        )
    data = spec.model_dump() | {"nodes": [n.model_dump() for n in nodes]} | pipeline
    try:
        return PipelineSpec.model_validate(data)
    except ValueError as exc:
        raise InvalidInputError(
            f"{where}: {exc}", field="pipeline", fix="Fix the pipeline section of the config."
        ) from None
