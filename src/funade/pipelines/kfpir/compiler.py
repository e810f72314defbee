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
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from funade.errors import InvalidInputError
from funade.pipelines.builder import type_text
from funade.pipelines.config import apply_env, load_env
from funade.pipelines.dsl import Pipeline
from funade.pipelines.params import bind_params
from funade.pipelines.spec import Binding, Condition, NodeSpec, PipelineSpec

__all__ = [
    "DEFAULT_IMAGE",
    "KfpCompileError",
    "SecretsHook",
    "compile_kfp",
    "compile_spec",
    "to_yaml",
]

DEFAULT_IMAGE = "ghcr.io/funade/funade-runtime:0.1.0"
"""The runtime image the components run when ``--image`` is not given."""

SCHEMA_VERSION = "2.1.0"
SDK_VERSION = "funade-0.1.0"
_ARTIFACT = {"artifactType": {"schemaTitle": "system.Artifact", "schemaVersion": "0.0.1"}}
_PARAMETER_TYPES = {
    "int": "NUMBER_INTEGER",
    "float": "NUMBER_DOUBLE",
    "str": "STRING",
    "bool": "BOOLEAN",
    "list": "LIST",
    "dict": "STRUCT",
}
_HEADER_TYPES = {v: k for k, v in _PARAMETER_TYPES.items()}
_RESOURCE_KEYS = ("cpu", "memory", "cpu_request", "memory_request", "gpu", "accelerator")
_CPU = re.compile(r"([0-9]*[.])?[0-9]+m?$")
_MEMORY = re.compile(r"^[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?$")
_MEMORY_UNITS = {
    "E": 10**18, "Ei": 2**60, "P": 10**15, "Pi": 2**50, "T": 10**12, "Ti": 2**40,
    "G": 10**9, "Gi": 2**30, "M": 10**6, "Mi": 2**20, "K": 10**3, "Ki": 2**10, "": 1,
}  # fmt: skip
_SECRET = re.compile(r"^k8s:([a-z0-9]([-a-z0-9.]*[a-z0-9])?)/([-._a-zA-Z0-9]+)$")


SecretsHook = Callable[[str, Mapping[str, str]], list[dict[str, str]]]
"""How an engine without Kubernetes Secrets passes a step's secrets (``vertexrefs``): given
where (for errors) and the step's secrets, the container's env entries (references only)."""


class KfpCompileError(InvalidInputError):
    """A part of the pipeline that KFP cannot express; the message names the step and why."""


def _refuse(where: str, reason: str, fix: str, *, value: Any = None) -> KfpCompileError:
    return KfpCompileError(f"{where}: {reason}", value=value, fix=fix)


def kfp_name(text: str) -> str:
    """A task or component name as KFP writes it: lower case, dashes."""
    return re.sub("-+", "-", re.sub("[^-0-9a-z]+", "-", text.lower())).lstrip("-").rstrip("-")


def parameter_type(text: str) -> str | None:
    """The KFP parameter type of a declared type's text (``list[float]`` → LIST), or None for
    an artifact."""
    return _PARAMETER_TYPES.get(text.split("[", 1)[0].strip())


def _literal_type(value: Any) -> str | None:
    for kind, name in ((bool, "BOOLEAN"), (int, "NUMBER_INTEGER"), (float, "NUMBER_DOUBLE")):
        if isinstance(value, kind):
            return name
    if isinstance(value, str):
        return "STRING"
    if isinstance(value, list):
        return "LIST"
    if isinstance(value, dict):
        return "STRUCT"
    return None


# A channel is what KFP calls a pipeline channel: a value a task reads from elsewhere.
# ("param", name) | ("output", node, output) | ("collect", node, output) | ("item", group)
Channel = tuple[str, ...]


@dataclass
class _Group:
    name: str
    kind: str  # "root" | "condition" | "loop"
    parent: _Group | None
    condition: Condition | None = None
    node: str = ""  # the fanned-out node, for a loop
    item: str = ""  # a loop over a literal list: the name of its item input
    children: list[_Group] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # inputDefinitions
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # a loop's collected
    selectors: dict[str, Any] = field(default_factory=dict)  # dag.outputs
    task: dict[str, Any] = field(default_factory=dict)  # this group's task in its parent

    def ancestors(self) -> list[_Group]:
        out, group = [], self.parent
        while group is not None:
            out.append(group)
            group = group.parent
        return out


class _Compiler:
    def __init__(
        self,
        spec: PipelineSpec,
        pipeline: Pipeline,
        defaults: Mapping[str, Any],
        *,
        image: str,
        cache: bool,
        target: str,
        step_env: Mapping[str, str] | None = None,
        step_secrets: Mapping[str, str] | None = None,
        secrets_hook: SecretsHook | None = None,
        job_input: tuple[str, str] | None = None,
        secret_volume: tuple[str, str] | None = None,
    ) -> None:
        self.spec, self.pipeline, self.defaults = spec, pipeline, defaults
        # a schedule's steps: the job's name as an input (name, placeholder), a Secret mounted
        self.job_input, self.secret_volume = job_input, secret_volume
        self.image, self.cache, self.target = image, cache, target
        # what `funade pipeline submit` adds to every step: the run's ids, its token's secret
        self.step_env, self.step_secrets = dict(step_env or {}), dict(step_secrets or {})
        self.secrets_hook = secrets_hook
        self.nodes = {n.id: n for n in spec.nodes}
        self.root = _Group("root", "root", None)
        self.group_of: dict[str, _Group] = {}
        self.counter = 0
        self.components: dict[str, Any] = {}
        self.executors: dict[str, Any] = {}
        self.platform: dict[str, Any] = {}
        self.param_types: dict[str, str] = {}
        names: dict[str, str] = {}
        for node in spec.nodes:
            name = kfp_name(node.id)
            if name in names:
                raise _refuse(
                    f"pipeline {spec.name!r}, step {node.id!r}",
                    f"its KFP task name {name!r} is also step {names[name]!r}'s.",
                    "Rename one of the steps (name=... in @funade.step or with_options).",
                )
            names[name] = node.id

    # -- types --------------------------------------------------------------------------

    def _where(self, node: NodeSpec) -> str:
        return f"pipeline {self.spec.name!r}, step {node.id!r}"

    def output_type(self, node_id: str, output: str) -> str | None:
        return parameter_type(self.nodes[node_id].outputs.get(output, "Any"))

    def _declared(self, node: NodeSpec, name: str) -> str | None:
        """The KFP parameter type of the step function's annotation for input ``name``."""
        module_name, _, qualname = node.function.partition(":")
        obj: Any = sys.modules.get(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
        hints = getattr(obj, "hints", None)  # a Step: its function's resolved annotations
        if not isinstance(hints, dict) or name not in hints:
            return None
        return parameter_type(type_text(hints[name]))

    # -- groups -------------------------------------------------------------------------

    def _new_group(self, kind: str, parent: _Group, **extra: Any) -> _Group:
        self.counter += 1
        group = _Group(f"{kind.replace('loop', 'for-loop')}-{self.counter}", kind, parent, **extra)
        parent.children.append(group)
        return group

    def place(self) -> None:
        for node in self.spec.nodes:
            group = self.root
            for condition in node.when:
                found = next(
                    (
                        g
                        for g in group.children
                        if g.kind == "condition" and g.condition == condition
                    ),
                    None,
                )
                group = found or self._new_group("condition", group, condition=condition)
            if node.map_over:
                if len(node.map_over) > 1:
                    raise _refuse(
                        self._where(node),
                        f"it fans out over {len(node.map_over)} lists zipped "
                        f"({', '.join(node.map_over)}); KFP's ParallelFor iterates one.",
                        "Zip the lists into one list of records in a step, and map over it.",
                        value=node.map_over,
                    )
                item = ""
                if node.inputs[node.map_over[0]].kind == "value":  # KFP numbers it first
                    self.counter += 1
                    item = f"pipelinechannel--loop-item-param-{self.counter}"
                group = self._new_group("loop", group, node=node.id, item=item)
                # funade bounds the steps running at once; KFP bounds each loop's iterations
                group.task["iteratorPolicy"] = {"parallelismLimit": self.spec.max_parallel}
            self.group_of[node.id] = group

    # -- channels -----------------------------------------------------------------------

    def channel_name(self, channel: Channel) -> str:
        if channel[0] == "param":
            return f"pipelinechannel--{channel[1]}"
        if channel[0] in ("output", "collect"):
            return f"pipelinechannel--{kfp_name(channel[1])}-{channel[2]}"
        raise AssertionError(channel)

    def channel_type(self, channel: Channel) -> tuple[str | None, bool]:
        """(the parameter type, or None for an artifact; whether it is a list of artifacts)"""
        if channel[0] == "param":
            return self.param_types[channel[1]], False
        kind = self.output_type(channel[1], channel[2])
        if channel[0] == "collect":
            return ("LIST", False) if kind else (None, True)
        return kind, False

    def _definition(self, channel: Channel) -> dict[str, Any]:
        kind, is_list = self.channel_type(channel)
        if kind:
            return {"parameterType": kind}
        return {**_ARTIFACT, **({"isArtifactList": True} if is_list else {})}

    def supply(self, group: _Group, channel: Channel, deps: set[str], where: str) -> dict[str, Any]:
        """How a task in ``group`` reads ``channel`` (adding the group inputs it needs on the
        way down from where the value is made); ``deps`` gets the producing tasks."""
        kind, _ = self.channel_type(channel)
        key = "Parameter" if kind else "Artifact"
        if channel[0] == "param":
            if group is self.root:
                return {"componentInputParameter": channel[1]}
            return self._pass_down(group, channel, key, where)
        producer = self.group_of[channel[1]]
        if channel[0] == "collect":
            loop = producer
            assert loop.parent is not None
            producer_group, producer_task = loop.parent, loop.name
            output_key = self.channel_name(channel)
            self._collect(loop, channel)
        else:
            producer_group, producer_task = producer, kfp_name(channel[1])
            output_key = channel[2]
        if producer_group is group:
            deps.add(producer_task)
            return {
                f"taskOutput{key}": {
                    f"output{key}Key": output_key,
                    "producerTask": producer_task,
                }
            }
        if channel[0] == "collect":  # kfp.compiler 2.17 fails on it too (a TypeError)
            raise _refuse(
                where,
                f"it collects the fan-out of step {channel[1]!r} from inside a condition the "
                "fan-out is not in; KFP passes a collected fan-out only to steps beside it.",
                "Call the collecting step beside the fan-out (outside the funade.when), or "
                "move the fan-out into the same funade.when block.",
            )
        if producer_group in group.ancestors():
            return self._pass_down(group, channel, key, where)
        raise _refuse(
            where,
            f"it reads {channel[1]}.{channel[2]}, but step {channel[1]!r} runs inside a "
            "condition or fan-out that this step is not in; KFP cannot pass a value out of a "
            "dsl.If or a dsl.ParallelFor except by collecting a fan-out beside it.",
            "Call the step inside the same funade.when block as the step whose output it takes.",
        )

    def _pass_down(self, group: _Group, channel: Channel, key: str, where: str) -> dict[str, Any]:
        name = self.channel_name(channel)
        if name not in group.inputs:
            group.inputs[name] = self._definition(channel)
            assert group.parent is not None
            deps: set[str] = set()
            source = self.supply(group.parent, channel, deps, where)
            group.task.setdefault("inputs", {}).setdefault(f"{key.lower()}s", {})[name] = source
            group.task.setdefault("_deps", set()).update(deps)
        return {f"componentInput{key}": name}

    def _collect(self, loop: _Group, channel: Channel) -> None:
        name = self.channel_name(channel)
        if name in loop.outputs:
            return
        kind, _ = self.channel_type(channel)
        task = kfp_name(channel[1])
        if kind:
            loop.outputs[name] = {"parameterType": "LIST"}
            loop.selectors.setdefault("parameters", {})[name] = {
                "valueFromParameter": {"outputParameterKey": channel[2], "producerSubtask": task}
            }
        else:
            loop.outputs[name] = {**_ARTIFACT, "isArtifactList": True}
            loop.selectors.setdefault("artifacts", {})[name] = {
                "artifactSelectors": [{"outputArtifactKey": channel[2], "producerSubtask": task}]
            }

    def _binding_channel(self, binding: Binding) -> Channel | None:
        if binding.kind == "param":
            assert binding.param is not None
            return ("param", binding.param)
        if binding.kind in ("output", "collect"):
            assert binding.node is not None
            assert binding.output is not None
            return (binding.kind, binding.node, binding.output)
        return None

    # -- tasks --------------------------------------------------------------------------

    def task(self, node: NodeSpec) -> None:
        where = self._where(node)
        group = self.group_of[node.id]
        name = kfp_name(node.id)
        deps: set[str] = set()
        parameters: dict[str, Any] = {}
        artifacts: dict[str, Any] = {}
        in_params: dict[str, Any] = {}
        in_artifacts: dict[str, Any] = {}
        for input_name, binding in node.inputs.items():
            input_where = f"{where}, input {input_name!r}"
            declared = self._declared(node, input_name)
            if input_name in node.map_over:
                source, item_kind = self._loop_item(node, group, binding, input_where)
                parameters[input_name] = source
                in_params[input_name] = {"parameterType": declared or item_kind}
                continue
            channel = self._binding_channel(binding)
            if channel is None:
                literal_kind = _literal_type(binding.value)
                if literal_kind is None:
                    raise _refuse(
                        input_where,
                        f"the literal {binding.value!r} has no KFP parameter type.",
                        "Pass a number, text, boolean, list or mapping, or leave the input "
                        "to its default.",
                        value=binding.value,
                    )
                parameters[input_name] = {"runtimeValue": {"constant": binding.value}}
                in_params[input_name] = {"parameterType": declared or literal_kind}
                continue
            kind, _ = self.channel_type(channel)
            if declared is not None and not kind and channel[0] != "collect":
                raise _refuse(
                    input_where,
                    f"it is declared a parameter ({declared}) but takes "
                    f"{binding.describe()}, which KFP stores as an artifact (its type is not "
                    "int, float, str, bool, list or dict).",
                    "Annotate the producing step's return type with the plain type it returns.",
                )
            source = self.supply(group, channel, deps, input_where)
            if kind:
                parameters[input_name] = source
                in_params[input_name] = {"parameterType": kind}
            else:
                artifacts[input_name] = source
                in_artifacts[input_name] = self._definition(channel)
        for other in node.after:
            other_group = self.group_of[other]
            if other_group is group:
                deps.add(kfp_name(other))
            elif other_group.parent is group:
                deps.add(other_group.name)
        self._conditions_supplied(node)
        if self.job_input is not None:
            job_name, placeholder = self.job_input
            if job_name in node.inputs:
                raise _refuse(
                    where,
                    f"its input {job_name!r} has the name of the input that carries a "
                    "scheduled job's name.",
                    "Rename the step's input.",
                    value=job_name,
                )
            parameters[job_name] = {"runtimeValue": {"constant": placeholder}}
            in_params[job_name] = {"parameterType": "STRING"}
        inputs: dict[str, Any] = {}
        if artifacts:
            inputs["artifacts"] = artifacts
        if parameters:
            inputs["parameters"] = parameters
        task: dict[str, Any] = {
            "cachingOptions": {"enableCache": True} if self._cached(node) else {},
            "componentRef": {"name": f"comp-{name}"},
            "taskInfo": {"name": name},
        }
        if deps:
            task["dependentTasks"] = sorted(deps)
        if inputs:
            task["inputs"] = inputs
        retry = self._retry(node)
        if retry:
            task["retryPolicy"] = retry
        group.tasks[name] = task
        self._component(node, name, in_params, in_artifacts)

    def _loop_item(
        self, node: NodeSpec, loop: _Group, binding: Binding, where: str
    ) -> tuple[dict[str, Any], str]:
        assert loop.parent is not None
        channel = self._binding_channel(binding)
        if channel is None:
            if not isinstance(binding.value, list):
                raise _refuse(where, "it fans out over a value that is not a list.", "Pass a list.")
            item = loop.item
            loop.task["parameterIterator"] = {
                "itemInput": item,
                "items": {"raw": json.dumps(binding.value)},
            }
            element = (_literal_type(binding.value[0]) if binding.value else None) or "STRING"
            loop.inputs[item] = {"parameterType": element}  # as KFP: the first item's type
            return {"componentInputParameter": item}, element
        kind, _ = self.channel_type(channel)
        if kind != "LIST":
            raise _refuse(
                where,
                f"it fans out over {binding.describe()}, which is not a list parameter "
                "(KFP's ParallelFor iterates a list parameter, not an artifact).",
                "Declare the list's type (list[...]) on the parameter or the producing step.",
            )
        listed = self.channel_name(channel)
        source = self._pass_down(loop, channel, "Parameter", where)
        item = f"{source['componentInputParameter']}-loop-item"
        loop.inputs[item] = {"parameterType": "STRING"}
        loop.task["parameterIterator"] = {"itemInput": item, "items": {"inputParameter": listed}}
        text = (
            self.pipeline.hints.get(channel[1])
            if channel[0] == "param"
            else self.nodes[channel[1]].outputs.get(channel[2])
        )
        element = _element_type(text if isinstance(text, str) else type_text(text))
        return {"componentInputParameter": item}, element

    def _conditions_supplied(self, node: NodeSpec) -> None:
        """Each condition group around the node gets its operands as inputs."""
        group: _Group | None = self.group_of[node.id]
        while group is not None:
            if group.kind == "condition" and "triggerPolicy" not in group.task:
                assert group.condition is not None
                group.task["triggerPolicy"] = {"condition": self._condition(node, group)}
            group = group.parent

    def _condition(self, node: NodeSpec, group: _Group) -> str:
        condition = group.condition
        assert condition is not None
        where = f"{self._where(node)}, condition {condition.describe()!r}"
        operands: list[tuple[str, str]] = []
        sides = [condition.left] if condition.right is None else [condition.left, condition.right]
        for binding in sides:
            channel = self._binding_channel(binding)
            if channel is None:
                kind = _literal_type(binding.value)
                if kind in ("LIST", "STRUCT", None):
                    raise _refuse(
                        where,
                        "KFP conditions compare numbers, text and booleans, not "
                        f"{binding.value!r}.",
                        "Compare a number, text or boolean.",
                    )
                value = binding.value
                text = f"'{value}'" if isinstance(value, str) else json.dumps(value)
                operands.append((text, str(kind)))
                continue
            kind, _ = self.channel_type(channel)
            if kind not in ("NUMBER_INTEGER", "NUMBER_DOUBLE", "STRING", "BOOLEAN"):
                raise _refuse(
                    where,
                    f"it tests {binding.describe()}, which is "
                    f"{'an artifact' if kind is None else 'a ' + kind}; KFP conditions compare "
                    "numbers, text and booleans.",
                    "Compute the number or boolean the condition needs in a step "
                    "(e.g. accuracy_of(best) >= 0.8).",
                )
            source = self.supply(group, channel, set(), where)
            text = f"inputs.parameter_values['{source['componentInputParameter']}']"
            operands.append((f"int({text})" if kind == "NUMBER_INTEGER" else text, str(kind)))
        op = condition.op
        if op in ("truthy", "falsy"):
            if operands[0][1] != "BOOLEAN":
                raise _refuse(
                    where,
                    f"funade.when({condition.left.describe()}) tests truth, which KFP "
                    "expresses only for booleans.",
                    "Write the comparison out, e.g. funade.when(count > 0).",
                )
            return f"{operands[0][0]} == {'true' if op == 'truthy' else 'false'}"
        kinds = {k for _, k in operands}
        if kinds == {"NUMBER_INTEGER", "NUMBER_DOUBLE"}:
            operands = [(f"double({t})" if k == "NUMBER_INTEGER" else t, k) for t, k in operands]
        elif len(kinds) > 1:
            raise _refuse(
                where,
                f"it compares a {' with a '.join(sorted(kinds))}.",
                "Compare values of the same type.",
            )
        return f"{operands[0][0]} {op} {operands[1][0]}"

    def _cached(self, node: NodeSpec) -> bool:
        return self.cache and node.options.cache and not node.uncacheable

    def _retry(self, node: NodeSpec) -> dict[str, Any]:
        options = node.options
        if not options.retries:
            return {}
        return {
            "backoffDuration": f"{_number(options.retry_backoff)}s",
            "backoffFactor": 2.0,
            "backoffMaxDuration": "3600s",
            "maxRetryCount": options.retries,
        }

    # -- components and executors ---------------------------------------------------------

    def _component(
        self,
        node: NodeSpec,
        name: str,
        in_params: dict[str, Any],
        in_artifacts: dict[str, Any],
    ) -> None:
        component: dict[str, Any] = {"executorLabel": f"exec-{name}"}
        inputs: dict[str, Any] = {}
        if in_artifacts:
            inputs["artifacts"] = in_artifacts
        if in_params:
            inputs["parameters"] = in_params
        if inputs:
            component["inputDefinitions"] = inputs
        out_params, out_artifacts = {}, {}
        for output in node.outputs:
            kind = self.output_type(node.id, output)
            if kind:
                out_params[output] = {"parameterType": kind}
            else:
                out_artifacts[output] = dict(_ARTIFACT)
        outputs: dict[str, Any] = {}
        if out_artifacts:
            outputs["artifacts"] = out_artifacts
        if out_params:
            outputs["parameters"] = out_params
        if outputs:
            component["outputDefinitions"] = outputs
        self.components[f"comp-{name}"] = component
        self.executors[f"exec-{name}"] = {"container": self._container(node)}
        self._platform(node, name)

    def _container(self, node: NodeSpec) -> dict[str, Any]:
        args = [
            "--executor-input",
            "{{$}}",
            "--pipeline",
            self.target,
            "--step",
            node.id,
            "--function",
            node.function,
            "--code-digest",
            node.code_digest,
        ]
        if node.options.cache_version:
            args += ["--cache-version", node.options.cache_version]
        if self.job_input is not None:
            args += ["--job", f"{{{{$.inputs.parameters['{self.job_input[0]}']}}}}"]
        container: dict[str, Any] = {
            "args": args,
            "command": ["funade", "pipeline", "step"],
            "image": self.image,
        }
        env = [{"name": k, "value": v} for k, v in {**node.options.env, **self.step_env}.items()]
        if self.secrets_hook is not None:  # an engine without Kubernetes Secrets (Vertex)
            env += self.secrets_hook(self._where(node), self._secrets(node))
        if env:
            container["env"] = env
        resources = self._resources(node)
        if resources:
            container["resources"] = resources
        return container

    def _resources(self, node: NodeSpec) -> dict[str, Any]:
        given = node.options.resources
        where = self._where(node)
        unknown = sorted(set(given) - set(_RESOURCE_KEYS))
        if unknown:
            raise _refuse(
                where,
                f"resource {unknown[0]!r} has no KFP form.",
                f"Use {', '.join(_RESOURCE_KEYS)}.",
                value=unknown[0],
            )
        out: dict[str, Any] = {}
        for key, field_name in (("cpu", "Limit"), ("cpu_request", "Request")):
            if key in given:
                text = _number(given[key])
                if not _CPU.match(text):
                    raise _refuse(
                        where,
                        f"resource {key} = {given[key]!r} is not a CPU amount.",
                        "Write a number of cores (2, 0.5) or millicores ('500m').",
                        value=given[key],
                    )
                out[f"cpu{field_name}"] = (
                    float(text[:-1]) / 1000 if text.endswith("m") else float(text)
                )
                out[f"resourceCpu{field_name}"] = text
        for key, field_name in (("memory", "Limit"), ("memory_request", "Request")):
            if key in given:
                text = str(given[key])
                match = _MEMORY.match(text)
                if not match:
                    raise _refuse(
                        where,
                        f"resource {key} = {given[key]!r} is not a memory amount.",
                        "Write bytes with a unit, e.g. '4Gi' or '512M'.",
                        value=given[key],
                    )
                unit = match.group(1) or ""
                out[f"memory{field_name}"] = (
                    float(text[: len(text) - len(unit)]) * _MEMORY_UNITS[unit] / 10**9
                )
                out[f"resourceMemory{field_name}"] = text
        if "accelerator" in given and "gpu" not in given:
            raise _refuse(
                where,
                f"resource accelerator = {given['accelerator']!r} is given without a count.",
                "Add gpu: 1 (the number of accelerators).",
            )
        if "gpu" in given:
            count = given["gpu"]
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise _refuse(
                    where,
                    f"resource gpu = {count!r} is not a whole number of accelerators.",
                    "Write gpu: 1 (and accelerator: the type, default nvidia.com/gpu).",
                    value=count,
                )
            kind = str(given.get("accelerator", "nvidia.com/gpu"))
            out["accelerator"] = {
                "count": str(count),
                "resourceCount": str(count),
                "resourceType": kind,
                "type": kind,
            }
        return out

    def _platform(self, node: NodeSpec, name: str) -> None:
        where = self._where(node)
        config: dict[str, Any] = {}
        if node.options.timeout is not None:
            config["activeDeadlineSeconds"] = str(max(1, round(node.options.timeout)))
        by_secret: dict[str, list[dict[str, str]]] = {}
        secrets = self._secrets(node) if self.secrets_hook is None else {}
        for env_name, reference in secrets.items():
            match = _SECRET.match(reference)
            if not match:
                raise _refuse(
                    where,
                    f"secret {env_name} = {reference!r} is read from the machine that runs "
                    "the step, which on KFP is a pod with nothing of yours in it.",
                    f"Give it as a Kubernetes Secret, k8s:SECRET_NAME/KEY, in the config of "
                    f"the environment you compile for (steps: {{{node.id}: {{secrets: "
                    f"{{{env_name}: 'k8s:my-secret/{env_name.lower()}'}}}}}}).",
                    value=reference,
                )
            by_secret.setdefault(match.group(1), []).append(
                {"envVar": env_name, "secretKey": match.group(3)}
            )
        if by_secret:
            config["secretAsEnv"] = [
                {
                    "keyToEnv": keys,
                    "optional": False,
                    "secretName": secret,
                    "secretNameParameter": {"runtimeValue": {"constant": secret}},
                }
                for secret, keys in by_secret.items()
            ]
        if self.secret_volume is not None:
            secret, mount = self.secret_volume
            config["secretAsVolume"] = [
                {
                    "mountPath": mount,
                    "optional": False,
                    "secretName": secret,
                    "secretNameParameter": {"runtimeValue": {"constant": secret}},
                }
            ]
        if config:
            self.platform[f"exec-{name}"] = config

    def _secrets(self, node: NodeSpec) -> dict[str, str]:
        return {**node.options.secrets, **self.step_secrets}

    # -- the whole --------------------------------------------------------------------------

    def root_inputs(self) -> dict[str, Any]:
        parameters: dict[str, Any] = {}
        for param in self.spec.params:
            hint = self.pipeline.hints.get(param.name, inspect.Parameter.empty)
            kind = parameter_type(type_text(hint)) if hint is not inspect.Parameter.empty else None
            if kind is None and param.name in self.defaults:
                kind = _literal_type(self.defaults[param.name])
            if kind is None:
                raise _refuse(
                    f"pipeline {self.spec.name!r}, parameter {param.name!r}",
                    f"its type {param.type} has no KFP parameter type.",
                    "Declare it int, float, str, bool, list or dict.",
                    value=param.type,
                )
            self.param_types[param.name] = kind
            definition: dict[str, Any] = {"parameterType": kind}
            if param.name in self.defaults:
                value = self.defaults[param.name]
                if value is not None:
                    definition["defaultValue"] = value
                definition["isOptional"] = True
            parameters[param.name] = definition
        return {"parameters": parameters} if parameters else {}

    def dag(self, group: _Group) -> dict[str, Any]:
        tasks = dict(group.tasks)
        for child in group.children:
            self.components[f"comp-{child.name}"] = self._group_component(child)
            task = {k: v for k, v in child.task.items() if k != "_deps"}
            deps = set(child.task.get("_deps", set()))
            task["componentRef"] = {"name": f"comp-{child.name}"}
            task["taskInfo"] = {"name": child.name}
            if deps:
                task["dependentTasks"] = sorted(deps)
            tasks[child.name] = task
        dag: dict[str, Any] = {"tasks": tasks}
        if group.selectors:
            dag["outputs"] = group.selectors
        return dag

    def _group_component(self, group: _Group) -> dict[str, Any]:
        component: dict[str, Any] = {"dag": self.dag(group)}
        inputs: dict[str, Any] = {}
        for name, definition in group.inputs.items():
            key = "parameters" if "parameterType" in definition else "artifacts"
            inputs.setdefault(key, {})[name] = definition
        if inputs:
            component["inputDefinitions"] = inputs
        outputs: dict[str, Any] = {}
        for name, definition in group.outputs.items():
            key = "parameters" if "parameterType" in definition else "artifacts"
            outputs.setdefault(key, {})[name] = definition
        if outputs:
            component["outputDefinitions"] = outputs
        return component

    def build(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        root_inputs = self.root_inputs()
        self.place()
        for node in self.spec.nodes:
            self.task(node)
        root: dict[str, Any] = {"dag": self.dag(self.root)}
        if root_inputs:
            root["inputDefinitions"] = root_inputs
        info: dict[str, Any] = {"name": kfp_name(self.spec.name)}
        if self.spec.description:
            info["description"] = self.spec.description
        pipeline_spec = {
            "components": dict(sorted(self.components.items())),
            "deploymentSpec": {"executors": dict(sorted(self.executors.items()))},
            "pipelineInfo": info,
            "root": root,
            "schemaVersion": SCHEMA_VERSION,
            "sdkVersion": SDK_VERSION,
        }
        platform = None
        if self.platform:
            platform = {
                "platforms": {
                    "kubernetes": {
                        "deploymentSpec": {"executors": dict(sorted(self.platform.items()))}
                    }
                }
            }
        return pipeline_spec, platform


def _number(value: float | int | str) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _element_type(text: str | None) -> str:
    """The KFP type of the elements of ``list[X]`` (STRING, as KFP's loop items, if unknown)."""
    if text and "[" in text:
        inner = text.split("[", 1)[1].rsplit("]", 1)[0]
        return parameter_type(inner) or "STRING"
    return "STRING"


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
    compiler = _Compiler(
        spec,
        pipeline,
        defaults,
        image=image,
        cache=cache,
        target=target or spec.source,
        step_env=step_env,
        step_secrets=step_secrets,
        secrets_hook=secrets_hook,
        job_input=job_input,
        secret_volume=secret_volume,
    )
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
            kind = _HEADER_TYPES.get(definition["parameterType"], definition["parameterType"])
            header.append(f"#    {name}: {kind}{default}")
    documents = [yaml.safe_dump(dict(pipeline_spec), sort_keys=True)]
    if platform is not None:
        documents.append(yaml.safe_dump(dict(platform), sort_keys=True))
    return "\n".join(header) + "\n" + "---\n".join(documents)
