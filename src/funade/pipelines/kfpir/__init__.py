"""Compiling a funade pipeline to Kubeflow Pipelines v2 IR (a ``PipelineSpec``, as YAML).

The output is what ``kfp.compiler.Compiler`` writes for the same pipeline written with the KFP
SDK's container components, so KFP and Vertex AI Pipelines run it as they run their own:

- each step call is a task of a container component whose image is funade's runtime image;
  the container runs ``funade pipeline step`` with KFP's executor input (``{{$}}``), the step's
  ``module:qualname``, its code digest and ``cache_version``; so KFP's cache key (which hashes
  the component, its arguments and inputs) changes when the step's code does;
- outputs whose declared type is ``int``, ``float``, ``str``, ``bool``, ``list`` or ``dict`` are
  output parameters (what conditions and fan-outs need); any other type is an artifact
  (``system.Artifact``) that the step stores in KFP's artifact store (S3/GCS) with funade's
  serializers, its digest in the artifact's metadata;
- pipeline parameters and their defaults (after ``--env``'s values) are the root inputs;
- ``funade.when`` blocks are ``dsl.If`` condition groups; ``step.map(x=list)`` is a
  ``dsl.ParallelFor`` over ``list`` (``parallelism=max_parallel``); passing the fan-out's
  results on is ``dsl.Collected``;
- ``retries``/``retry_backoff`` are the task's retry policy; ``resources`` (``cpu``,
  ``memory``, ``cpu_request``, ``memory_request``, ``gpu`` and ``accelerator``) the
  container's resources; ``env`` its environment; ``timeout`` and secrets written
  ``k8s:SECRET/KEY`` go into the Kubernetes platform spec (``activeDeadlineSeconds``,
  ``secretAsEnv``), as ``kfp-kubernetes`` writes them: names, never values;
- ``cache=False``, a step funade may not cache (``uncacheable``) or ``--no-cache`` switch
  KFP's caching off for the task.

What KFP cannot express is refused with :class:`KfpCompileError`, naming the step and why.
Only ``kfp-pipeline-spec`` (the protobuf) is needed, imported when compiling.

The parts: ``ir`` (the IR's names, types and groups), ``compiler`` (groups, channels, tasks,
conditions, DAGs), ``containers`` (each step's container and Kubernetes platform spec) and
``schedule`` (what a schedule's steps get, ``scheduletoken``); here, the entry points.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from funade.errors import InvalidInputError
from funade.pipelines.config import apply_env, load_env
from funade.pipelines.dsl import Pipeline
from funade.pipelines.kfpir.compiler import Compiler
from funade.pipelines.kfpir.containers import Containers, SecretsHook
from funade.pipelines.kfpir.ir import HEADER_TYPES, KfpCompileError, kfp_name, parameter_type
from funade.pipelines.kfpir.schedule import ScheduleInputs
from funade.pipelines.params import bind_params
from funade.pipelines.spec import PipelineSpec

__all__ = [
    "DEFAULT_IMAGE",
    "KfpCompileError",
    "SecretsHook",
    "compile_kfp",
    "compile_spec",
    "kfp_name",
    "parameter_type",
    "to_yaml",
]

DEFAULT_IMAGE = "ghcr.io/funade/funade-runtime:0.1.0"
"""The runtime image the components run when ``--image`` is not given."""


def _protos() -> Any:
    from funade.pipelines.kfpproto import pipeline_spec_pb2

    try:
        return pipeline_spec_pb2()
    except ImportError as exc:  # kfp-pipeline-spec 2.17.3 imports google.rpc undeclared
        raise InvalidInputError(
            "Compiling for KFP needs the kfp-pipeline-spec package and what it imports "
            f"(module {exc.name!r} is not installed).",
            fix="pip install 'funade[kfp]'",
        ) from None


def compile_spec(
    spec: PipelineSpec,
    pipeline: Pipeline,
    *,
    defaults: Mapping[str, Any],
    image: str = DEFAULT_IMAGE,
    cache: bool = True,
    target: str = "",
    step_env: Mapping[str, str] | None = None,
    step_secrets: Mapping[str, str] | None = None,
    secrets_hook: SecretsHook | None = None,
    job_input: tuple[str, str] | None = None,
    secret_volume: tuple[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The PipelineSpec and the Kubernetes PlatformSpec (or None) of a compiled pipeline, as
    the dicts ``json_format.MessageToDict`` gives, each checked strictly against its proto.
    ``step_env`` and ``step_secrets`` are added to every step's (``funade pipeline submit``:
    the run's ids and its token's secret); ``secrets_hook`` passes secrets as container env
    entries instead of the Kubernetes platform spec (Vertex AI, ``vertexrefs``). A schedule's
    steps (``scheduletoken``) get ``job_input``, an input (name, placeholder) holding the job's
    name at run time, passed as ``--job``, and on Kubeflow ``secret_volume`` (Secret, path)
    mounted as ``kfp.kubernetes.use_secret_as_volume`` writes it."""
    from google.protobuf import json_format  # type: ignore[import-untyped]

    pb = _protos()
    containers = Containers(
        image=image,
        target=target or spec.source,
        step_env=dict(step_env or {}),
        step_secrets=dict(step_secrets or {}),
        secrets_hook=secrets_hook,
        schedule=ScheduleInputs(job_input, secret_volume),
    )
    compiler = Compiler(spec, pipeline, defaults, cache=cache, containers=containers)
    pipeline_spec, platform = compiler.build()
    message = json_format.ParseDict(pipeline_spec, pb.PipelineSpec(), ignore_unknown_fields=False)
    pipeline_spec = json_format.MessageToDict(message)
    if platform is not None:
        parsed = json_format.ParseDict(platform, pb.PlatformSpec(), ignore_unknown_fields=False)
        platform = json_format.MessageToDict(parsed)
    return pipeline_spec, platform


def compile_kfp(
    pipeline: Pipeline,
    *,
    target: str,
    env: str | None = None,
    image: str = DEFAULT_IMAGE,
    cache: bool = True,
    components: str = "container",
) -> str:
    """The KFP v2 YAML of ``pipeline`` with environment ``env``'s config applied; its steps
    container components, or lightweight Python ones (``components="python"``, ``kfplight``)."""
    config = load_env(pipeline, env)
    spec = apply_env(pipeline.compile(source=target), config, env=env)
    defaults = bind_params(pipeline, env=config.get("params"), env_name=env, allow_missing=True)
    pipeline_spec, platform = compile_spec(
        spec, pipeline, defaults=defaults, image=image, cache=cache, target=target
    )
    if components != "container":
        from funade.pipelines.kfplight import with_components

        pipeline_spec = with_components(pipeline_spec, components)
    return to_yaml(pipeline_spec, platform)


def to_yaml(pipeline_spec: Mapping[str, Any], platform: Mapping[str, Any] | None) -> str:
    """The file ``kfp.compiler`` writes: a header, the PipelineSpec, then the PlatformSpec."""
    info = pipeline_spec["pipelineInfo"]
    header = ["# PIPELINE DEFINITION", f"# Name: {info['name']}"]
    if info.get("description"):
        lines = [ln for ln in info["description"].splitlines() if ln.strip()]
        header.append(f"# Description: {lines[0]}")
        header += [f"#              {ln}" for ln in lines[1:]]
    params = pipeline_spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    if params:
        header.append("# Inputs:")
        for name, definition in sorted(params.items()):
            default = (
                f" [Default: {definition['defaultValue']!r}]"
                if "defaultValue" in definition
                else ""
            )
            kind = HEADER_TYPES.get(definition["parameterType"], definition["parameterType"])
            header.append(f"#    {name}: {kind}{default}")
    documents = [yaml.safe_dump(dict(pipeline_spec), sort_keys=True)]
    if platform is not None:
        documents.append(yaml.safe_dump(dict(platform), sort_keys=True))
    return "\n".join(header) + "\n" + "---\n".join(documents)
