"""The compiler of a funade pipeline's spec to KFP's v2 IR: the groups (``dsl.If``,
``dsl.ParallelFor``) its steps are placed in, the channels that carry each input down to the task
that reads it, the conditions, retry policies and caching of tasks, and the DAGs and components
of the whole (``funade.pipelines.kfpir`` describes the mapping)."""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Mapping
from typing import Any

from funade.pipelines.builder import type_text
from funade.pipelines.dsl import Pipeline
from funade.pipelines.kfpir.containers import Containers
from funade.pipelines.kfpir.ir import (
    ARTIFACT,
    SCHEMA_VERSION,
    SDK_VERSION,
    Channel,
    Group,
    element_type,
    kfp_name,
    literal_type,
    number,
    parameter_type,
    refuse,
)
from funade.pipelines.spec import Binding, NodeSpec, PipelineSpec

__all__ = ["Compiler"]


class Compiler:
    """One pipeline's PipelineSpec and PlatformSpec, built by ``build``: its steps placed in
    condition and loop groups, each step a task reading its inputs through the channels KFP
    passes down the groups, each task's component and executor (``Containers``)."""

    def __init__(
        self,
        spec: PipelineSpec,
        pipeline: Pipeline,
        defaults: Mapping[str, Any],
        *,
        cache: bool,
        containers: Containers,
    ) -> None:
        self.spec, self.pipeline, self.defaults = spec, pipeline, defaults
        self.cache = cache
        self.containers = containers
        self.nodes = {n.id: n for n in spec.nodes}
        self.root = Group("root", "root", None)
        self.group_of: dict[str, Group] = {}
        self.counter = 0
        self.components: dict[str, Any] = {}
        self.executors: dict[str, Any] = {}
        self.platform: dict[str, Any] = {}
        self.param_types: dict[str, str] = {}
        names: dict[str, str] = {}
        for node in spec.nodes:
            name = kfp_name(node.id)
            if name in names:
                raise refuse(
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

    def _new_group(self, kind: str, parent: Group, **extra: Any) -> Group:
        self.counter += 1
        group = Group(f"{kind.replace('loop', 'for-loop')}-{self.counter}", kind, parent, **extra)
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
                    raise refuse(
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
        return {**ARTIFACT, **({"isArtifactList": True} if is_list else {})}

    def supply(self, group: Group, channel: Channel, deps: set[str], where: str) -> dict[str, Any]:
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
            raise refuse(
                where,
                f"it collects the fan-out of step {channel[1]!r} from inside a condition the "
                "fan-out is not in; KFP passes a collected fan-out only to steps beside it.",
                "Call the collecting step beside the fan-out (outside the funade.when), or "
                "move the fan-out into the same funade.when block.",
            )
        if producer_group in group.ancestors():
            return self._pass_down(group, channel, key, where)
        raise refuse(
            where,
            f"it reads {channel[1]}.{channel[2]}, but step {channel[1]!r} runs inside a "
            "condition or fan-out that this step is not in; KFP cannot pass a value out of a "
            "dsl.If or a dsl.ParallelFor except by collecting a fan-out beside it.",
            "Call the step inside the same funade.when block as the step whose output it takes.",
        )

    def _pass_down(self, group: Group, channel: Channel, key: str, where: str) -> dict[str, Any]:
        name = self.channel_name(channel)
        if name not in group.inputs:
            group.inputs[name] = self._definition(channel)
            assert group.parent is not None
            deps: set[str] = set()
            source = self.supply(group.parent, channel, deps, where)
            group.task.setdefault("inputs", {}).setdefault(f"{key.lower()}s", {})[name] = source
            group.task.setdefault("_deps", set()).update(deps)
        return {f"componentInput{key}": name}

    def _collect(self, loop: Group, channel: Channel) -> None:
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
            loop.outputs[name] = {**ARTIFACT, "isArtifactList": True}
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
                literal_kind = literal_type(binding.value)
                if literal_kind is None:
                    raise refuse(
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
                raise refuse(
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
        self.containers.schedule.add_job_input(node, where, parameters, in_params)
        inputs = _definitions(artifacts, parameters)
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
        self, node: NodeSpec, loop: Group, binding: Binding, where: str
    ) -> tuple[dict[str, Any], str]:
        assert loop.parent is not None
        channel = self._binding_channel(binding)
        if channel is None:
            if not isinstance(binding.value, list):
                raise refuse(where, "it fans out over a value that is not a list.", "Pass a list.")
            item = loop.item
            loop.task["parameterIterator"] = {
                "itemInput": item,
                "items": {"raw": json.dumps(binding.value)},
            }
            element = (literal_type(binding.value[0]) if binding.value else None) or "STRING"
            loop.inputs[item] = {"parameterType": element}  # as KFP: the first item's type
            return {"componentInputParameter": item}, element
        kind, _ = self.channel_type(channel)
        if kind != "LIST":
            raise refuse(
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
        element = element_type(text if isinstance(text, str) else type_text(text))
        return {"componentInputParameter": item}, element

    def _conditions_supplied(self, node: NodeSpec) -> None:
        """Each condition group around the node gets its operands as inputs."""
        group: Group | None = self.group_of[node.id]
        while group is not None:
            if group.kind == "condition" and "triggerPolicy" not in group.task:
                assert group.condition is not None
                group.task["triggerPolicy"] = {"condition": self._condition(node, group)}
            group = group.parent

    def _condition(self, node: NodeSpec, group: Group) -> str:
        condition = group.condition
        assert condition is not None
        where = f"{self._where(node)}, condition {condition.describe()!r}"
        operands: list[tuple[str, str]] = []
        sides = [condition.left] if condition.right is None else [condition.left, condition.right]
        for binding in sides:
            channel = self._binding_channel(binding)
            if channel is None:
                kind = literal_type(binding.value)
                if kind in ("LIST", "STRUCT", None):
                    raise refuse(
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
                raise refuse(
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
                raise refuse(
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
            raise refuse(
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
            "backoffDuration": f"{number(options.retry_backoff)}s",
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
        inputs = _definitions(in_artifacts, in_params)
        if inputs:
            component["inputDefinitions"] = inputs
        out_params, out_artifacts = {}, {}
        for output in node.outputs:
            kind = self.output_type(node.id, output)
            if kind:
                out_params[output] = {"parameterType": kind}
            else:
                out_artifacts[output] = dict(ARTIFACT)
        outputs = _definitions(out_artifacts, out_params)
        if outputs:
            component["outputDefinitions"] = outputs
        self.components[f"comp-{name}"] = component
        where = self._where(node)
        self.executors[f"exec-{name}"] = {"container": self.containers.container(node, where)}
        platform = self.containers.platform(node, where)
        if platform:
            self.platform[f"exec-{name}"] = platform

    # -- the whole --------------------------------------------------------------------------

    def root_inputs(self) -> dict[str, Any]:
        parameters: dict[str, Any] = {}
        for param in self.spec.params:
            hint = self.pipeline.hints.get(param.name, inspect.Parameter.empty)
            kind = parameter_type(type_text(hint)) if hint is not inspect.Parameter.empty else None
            if kind is None and param.name in self.defaults:
                kind = literal_type(self.defaults[param.name])
            if kind is None:
                raise refuse(
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

    def dag(self, group: Group) -> dict[str, Any]:
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

    def _group_component(self, group: Group) -> dict[str, Any]:
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


def _definitions(artifacts: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """A task's inputs, or a component's input or output definitions: ``artifacts`` and
    ``parameters`` under their keys, in that order, each left out when empty (as KFP writes
    them)."""
    definitions: dict[str, Any] = {}
    if artifacts:
        definitions["artifacts"] = artifacts
    if parameters:
        definitions["parameters"] = parameters
    return definitions
