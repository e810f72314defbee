"""funade steps as KFP *lightweight Python components* (``compile --components python``).

``kfpir`` compiles each step call as a container component whose container runs
``funade pipeline step``. KFP also has lightweight Python components (``@dsl.component``): the
container runs ``python3 -m kfp.dsl.executor_main`` over a short Python function written into
the component, and KFP's executor hands that function its inputs (parameters as values,
artifacts as ``dsl.Artifact`` objects) and where its outputs go. ``kfp.local``'s
``SubprocessRunner`` runs only that form, so this is how a compiled funade pipeline runs end
to end on KFP's local runner, and it runs on KFP and Vertex AI as well (the image must then
hold the ``kfp`` SDK besides funade).

:func:`as_python_components` rewrites the executors of a compiled ``PipelineSpec``: the
DAG, conditions, loops, retries, resources, caching and the Kubernetes platform spec stay as
``kfpir`` wrote them, and so do the components' interfaces but for two names: a step's single
parameter output is ``Output`` (the return value, as ``@dsl.component`` names it), and the
channels of parameter outputs are named as ``kfp.local`` reads them (:func:`_channels`).
Each executor gets the function
``kfp.compiler`` would write for a ``@dsl.component`` with the same inputs and outputs
(``Input[Artifact]``, ``Input[List[Artifact]]`` for a fan-in, ``Output[Artifact]``,
``OutputPath(float)`` …); its body calls :func:`run_python_step` with the step's code reference
and code digest, which runs the step as ``funade pipeline step`` does (``kfpstep``): the same
serializers, the same artifact metadata, the same refusal of other code than was compiled. The
digest is in the component's command, so KFP's cache key changes when the step's code does.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from funade.errors import InvalidInputError
from funade.pipelines.kfpir import KfpCompileError

__all__ = ["COMPONENT_KINDS", "as_python_components", "run_python_step", "with_components"]

COMPONENT_KINDS = ("container", "python")
"""What ``compile --components`` takes: container components (the default), or lightweight
Python components."""

FUNADE_SINGLE, KFP_SINGLE = "output", "Output"
"""A step's one output: funade names it ``output``, KFP's ``@dsl.component`` ``Output``."""

FUNCTION = "funade_step"
"""The name of the generated function in every component (``--function_to_execute``)."""

# kfp.compiler 2.17's command for a lightweight component whose image already holds kfp
# (``install_kfp_package=False``): write the code to a file, run KFP's executor over it.
_COMMAND = [
    "sh",
    "-ec",
    'program_path=$(mktemp -d)\n\nprintf "%s" "$0" > "$program_path/ephemeral_component.py"\n'
    "_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main"
    "                         --component_module_path"
    '                         "$program_path/ephemeral_component.py"'
    '                         "$@"\n',
]
_HEADER = "\nimport kfp\nfrom kfp import dsl\nfrom kfp.dsl import *\nfrom typing import *\n\n"
_PYTHON_TYPES = {
    "NUMBER_INTEGER": "int",
    "NUMBER_DOUBLE": "float",
    "STRING": "str",
    "BOOLEAN": "bool",
    "LIST": "list",
    "STRUCT": "dict",
}
_STEP_ARGS = {
    "--pipeline": "pipeline",
    "--step": "step",
    "--function": "function",
    "--code-digest": "code_digest",
    "--cache-version": "cache_version",
}


def _step_reference(args: list[str]) -> dict[str, str]:
    """The step's reference from the container args ``kfpir`` wrote."""
    return {_STEP_ARGS[a]: args[i + 1] for i, a in enumerate(args) if a in _STEP_ARGS}


def _signature(component: Mapping[str, Any], where: str) -> tuple[list[str], str, dict[str, str]]:
    """The generated function's parameters, its return annotation (a single parameter output,
    which KFP's ``@dsl.component`` calls ``Output``, is the return value) and how its body
    passes each argument on."""
    params: list[str] = []
    returns = ""
    passed = {"parameters": "", "artifacts": "", "outputs": ""}
    seen: set[str] = set()
    sections = (
        ("inputDefinitions", "parameters", "parameters"),
        ("inputDefinitions", "artifacts", "artifacts"),
        ("outputDefinitions", "parameters", "outputs"),
        ("outputDefinitions", "artifacts", "outputs"),
    )
    for definitions, kind, bucket in sections:
        for name, definition in component.get(definitions, {}).get(kind, {}).items():
            if name in seen or (name == KFP_SINGLE and definitions == "inputDefinitions"):
                raise KfpCompileError(
                    f"{where}: {name!r} is both an input and an output, or an input named as "
                    "KFP names a return value; a lightweight Python component's function has "
                    "one argument per input and output.",
                    value=name,
                    fix="Rename the input or the output (a NamedTuple field), or compile with "
                    "--components container.",
                )
            seen.add(name)
            if kind == "parameters":
                python = _PYTHON_TYPES[definition["parameterType"]]
                if name == KFP_SINGLE:
                    returns = python
                    continue
                hint = python if definitions == "inputDefinitions" else f"OutputPath({python})"
            else:
                artifact = "List[Artifact]" if definition.get("isArtifactList") else "Artifact"
                hint = (
                    f"Input[{artifact}]"
                    if definitions == "inputDefinitions"
                    else "Output[Artifact]"
                )
            params.append(f"{name}: {hint}")
            passed[bucket] += f"{name!r}: {name}, "
    return params, returns, passed


def _code(component: Mapping[str, Any], reference: Mapping[str, str], where: str) -> str:
    params, returns, passed = _signature(component, where)
    call = "return __funade_run" if returns else "__funade_run"
    body = (
        "    from funade.pipelines.kfplight import run_python_step as __funade_run\n\n"
        f"    {call}(\n"
        f"        {dict(reference)!r},\n"
        f"        parameters={{{passed['parameters'].rstrip(', ')}}},\n"
        f"        artifacts={{{passed['artifacts'].rstrip(', ')}}},\n"
        f"        outputs={{{passed['outputs'].rstrip(', ')}}},\n"
        + (f"        returns={returns},\n" if returns else "")
        + "    )\n"
    )
    arrow = f" -> {returns}" if returns else ""
    return f"{_HEADER}def {FUNCTION}({', '.join(params)}){arrow}:\n{body}\n"


def _channels(spec: Mapping[str, Any]) -> tuple[dict[str, str], set[str]]:
    """The parameter channels named for ``kfp.local`` (old name → new), and the tasks whose one
    output (funade's ``output``) is a parameter, which KFP calls ``Output``.

    kfp.local (2.17) finds the task behind a condition's operand by the channel's name only:
    ``pipelinechannel--<task>-Output`` (a single output) or ``pipelinechannel--<task>--<name>``
    (a named one); ``kfp.compiler``'s ``pipelinechannel--<task>-<name>`` it takes for a pipeline
    parameter, and the condition for false. KFP and Vertex AI read channel names as opaque."""
    renamed: dict[str, str] = {}
    single: set[str] = set()
    for name, component in spec.get("components", {}).items():
        if "executorLabel" not in component:
            continue
        task = name.removeprefix("comp-")
        definitions = component.get("outputDefinitions", {})
        parameters = definitions.get("parameters", {})
        if list(definitions) == ["parameters"] and list(parameters) == [FUNADE_SINGLE]:
            single.add(task)
            renamed[f"pipelinechannel--{task}-{FUNADE_SINGLE}"] = f"pipelinechannel--{task}-Output"
            continue
        for output in parameters:
            renamed[f"pipelinechannel--{task}-{output}"] = f"pipelinechannel--{task}--{output}"
    return renamed, single


def _rename(
    node: Any, channel: re.Pattern[str], renamed: Mapping[str, str], single: set[str]
) -> Any:
    """``node`` with the channels renamed, and the references to the single outputs of
    ``single``'s tasks naming ``Output``."""
    if isinstance(node, str):
        return channel.sub(lambda m: renamed[m.group(0)], node)
    if isinstance(node, list):
        return [_rename(item, channel, renamed, single) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        channel.sub(lambda m: renamed[m.group(0)], k): _rename(v, channel, renamed, single)
        for k, v in node.items()
    }
    producer = node.get("producerTask", node.get("producerSubtask"))
    if producer in single and out.get("outputParameterKey") == FUNADE_SINGLE:
        out["outputParameterKey"] = KFP_SINGLE
    return out


def as_python_components(pipeline_spec: Mapping[str, Any]) -> dict[str, Any]:
    """``pipeline_spec`` (as ``kfpir.compile_spec`` gives it) with every step's executor a
    lightweight Python component running the same step."""
    renamed, single = _channels(pipeline_spec)
    spec: dict[str, Any] = dict(pipeline_spec)
    if renamed:
        names = "|".join(re.escape(n) for n in sorted(renamed, key=len, reverse=True))
        channel = re.compile(rf"(?:{names})(?=$|'|-loop-item$)")
        spec = _rename(spec, channel, renamed, single)
        for task in single:
            parameters = spec["components"][f"comp-{task}"]["outputDefinitions"]["parameters"]
            parameters[KFP_SINGLE] = parameters.pop(FUNADE_SINGLE)
    by_executor = {
        c["executorLabel"]: c for c in spec.get("components", {}).values() if "executorLabel" in c
    }
    executors: dict[str, Any] = {}
    for label, executor in spec["deploymentSpec"]["executors"].items():
        container = dict(executor["container"])
        reference = _step_reference(list(container["args"]))
        where = f"pipeline {spec['pipelineInfo']['name']!r}, step {reference.get('step')!r}"
        container["command"] = [*_COMMAND, _code(by_executor[label], reference, where)]
        container["args"] = ["--executor_input", "{{$}}", "--function_to_execute", FUNCTION]
        executors[label] = {**executor, "container": container}
    spec["deploymentSpec"] = {**spec["deploymentSpec"], "executors": executors}
    return spec


def with_components(pipeline_spec: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """``pipeline_spec`` with its steps as components of ``kind`` (one of
    :data:`COMPONENT_KINDS`), checked strictly against KFP's ``PipelineSpec`` proto."""
    if kind not in COMPONENT_KINDS:
        raise InvalidInputError(
            f"--components {kind!r} is not a kind of KFP component funade compiles steps to.",
            field="components",
            value=kind,
            fix="Use --components container (the default: funade pipeline step in the runtime "
            "image) or --components python (lightweight Python components, which kfp.local's "
            "SubprocessRunner runs).",
        )
    if kind == "container":
        return dict(pipeline_spec)
    from google.protobuf import json_format  # type: ignore[import-untyped]

    from funade.pipelines.kfpir import _protos

    rewritten = as_python_components(pipeline_spec)
    message = json_format.ParseDict(
        rewritten, _protos().PipelineSpec(), ignore_unknown_fields=False
    )
    return dict(json_format.MessageToDict(message))


def _runtime_artifact(artifact: Any) -> dict[str, Any]:
    # .path is where KFP's launcher (or kfp.local) has the artifact's URI on this machine
    return {"uri": artifact.path, "metadata": dict(artifact.metadata)}


def run_python_step(
    reference: Mapping[str, str],
    *,
    parameters: Mapping[str, Any],
    artifacts: Mapping[str, Any],
    outputs: Mapping[str, Any],
    returns: type | None = None,
) -> Any:
    """Run a step inside a lightweight component: what the generated function calls with the
    values KFP's executor gave it (parameters as values, artifacts as ``dsl.Artifact``s, output
    parameters as file paths, output artifacts as ``dsl.Artifact``s whose metadata this fills).
    A step whose one output is a parameter (``returns``, its type) returns it, as KFP's
    ``@dsl.component`` functions do."""
    from funade.pipelines.kfpstep import run_kfp_step

    missing = sorted({"pipeline", "function", "code_digest"} - set(reference))
    if missing:
        raise InvalidInputError(
            f"The step reference of this component lacks {', '.join(missing)}.",
            field="reference",
            value=dict(reference),
            fix="Compile the pipeline again with funade pipeline compile --components python.",
        )
    with tempfile.TemporaryDirectory(prefix="funade-step-") as work:
        files = {name: path for name, path in outputs.items() if isinstance(path, str)}
        if returns is not None:
            files[FUNADE_SINGLE] = str(Path(work) / "returned")
        executor_input = {
            "inputs": {
                "parameterValues": dict(parameters),
                "artifacts": {
                    name: {
                        "artifacts": [
                            _runtime_artifact(a)
                            for a in (given if isinstance(given, list) else [given])
                        ]
                    }
                    for name, given in artifacts.items()
                },
            },
            "outputs": {
                "parameters": {name: {"outputFile": path} for name, path in files.items()},
                "artifacts": {
                    name: {"artifacts": [{"name": artifact.name, "uri": artifact.path}]}
                    for name, artifact in outputs.items()
                    if not isinstance(artifact, str)
                },
            },
        }
        result = run_kfp_step(
            executor_input,
            pipeline=reference["pipeline"],
            function=reference["function"],
            code_digest=reference["code_digest"],
            work_dir=Path(work),
        )
        for name, written in result.get("artifacts", {}).items():
            outputs[name].metadata.update(written["artifacts"][0]["metadata"])
        if returns is None:
            return None
        text = Path(files[FUNADE_SINGLE]).read_text()
    return text if returns is str else json.loads(text)
