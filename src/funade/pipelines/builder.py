"""Building a pipeline's graph: each step call made while the pipeline function runs adds a
node (:class:`Builder`), with its inputs bound to parameters, other steps' outputs or JSON
values, and the conditions of the ``funade.when`` blocks around it; the nodes are then put in
an order that runs every node after what it depends on (a cycle is refused)."""

from __future__ import annotations

import contextlib
import contextvars
import graphlib
import inspect
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from funade.errors import InvalidInputError
from funade.pipelines.codehash import describe_code
from funade.pipelines.placeholders import (
    Comparison,
    Mapped,
    Output,
    Outputs,
    Param,
    Results,
    literal,
    short_repr,
)
from funade.pipelines.spec import Binding, Condition, NodeSpec

if TYPE_CHECKING:
    from funade.pipelines.steps import Step

__all__ = ["Builder", "NodeSpecBuilder", "current_builder", "topological", "type_text", "when"]


class NodeSpecBuilder:
    def __init__(self, node_id: str, step: Step[..., Any]) -> None:
        self.id = node_id
        self.step = step
        self.inputs: dict[str, Binding] = {}
        self.map_over: list[str] = []
        self.when: list[Condition] = []
        self.after: list[str] = []

    def wait_for(self, others: Sequence[Output | Results]) -> None:
        for other in others:
            node = other.node if isinstance(other, Output) else other._node
            if node.id not in self.after:
                self.after.append(node.id)

    def build(self) -> NodeSpec:
        fn = self.step.fn
        code = describe_code(fn)  # once per function and build (a step called 100 times)
        return NodeSpec(
            id=self.id,
            function=f"{fn.__module__}:{fn.__qualname__}",
            inputs=self.inputs,
            map_over=self.map_over,
            outputs={k: type_text(v) for k, v in self.step.outputs.items()},
            when=self.when,
            after=self.after,
            options=self.step.options,
            code_digest=code.digest,
            packages=code.packages,
            uncacheable=code.uncacheable,
        )


class Builder:
    def __init__(self, pipeline_name: str) -> None:
        self.pipeline_name = pipeline_name
        self.nodes: dict[str, NodeSpecBuilder] = {}
        self.conditions: list[Condition] = []

    def add(
        self,
        step: Step[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        mapped: Mapping[str, Any] | None = None,
    ) -> NodeSpecBuilder:
        base = step.name
        node_id, n = base, 1
        while node_id in self.nodes:
            n += 1
            node_id = f"{base}-{n}"
        node = NodeSpecBuilder(node_id, step)
        where = f"pipeline {self.pipeline_name!r}, step {node_id!r}"
        try:
            bound = step.signature.bind_partial(*args, **kwargs, **(mapped or {}))
        except TypeError as exc:
            raise InvalidInputError(
                f"{where}: {exc}.", fix=f"Call it as {step.name}{step.signature}."
            ) from None
        missing = [
            name
            for name, p in step.signature.parameters.items()
            if p.default is inspect.Parameter.empty and name not in bound.arguments
        ]
        if missing:
            raise InvalidInputError(
                f"{where}: input {missing[0]!r} is not given.",
                field=missing[0],
                fix=f"Call it as {step.name}{step.signature}.",
            )
        for name, value in bound.arguments.items():
            is_mapped = mapped is not None and name in mapped
            node.inputs[name] = self._bind(value, step.hints.get(name), f"{where}, input {name!r}")
            if is_mapped:
                node.map_over.append(name)
        node.when = list(self.conditions)
        self.nodes[node_id] = node
        return node

    def _bind(self, value: Any, annotation: Any, where: str) -> Binding:
        if isinstance(value, Output):
            _check_compatible(value.annotation, annotation, where=where, source=repr(value))
            return value._binding()
        if isinstance(value, Param):
            _check_compatible(value.annotation, annotation, where=where, source=repr(value))
            return value._binding()
        if isinstance(value, Mapped):
            return value._collect()
        if isinstance(value, Outputs):
            raise InvalidInputError(
                f"{where}: step {value._node.id!r} returns several outputs or none.",
                fix=f"Pass one of them, e.g. `<result>.{next(iter(value._outputs), 'name')}`.",
            )
        if isinstance(value, Comparison):
            raise InvalidInputError(
                f"{where}: a comparison cannot be passed to a step.",
                fix="Compute it in a step, or use it in `funade.when(...)`.",
            )
        return literal(value, where=where)


def _check_compatible(given: Any, wanted: Any, *, where: str, source: str) -> None:
    """Refuse plain-class mismatches that are known before anything runs (str into int)."""
    if not (isinstance(given, type) and isinstance(wanted, type)) or wanted is object:
        return
    if issubclass(given, wanted) or (wanted is float and given is int):
        return
    raise InvalidInputError(
        f"{where}: {source} is a {given.__name__}, but the input is declared {wanted.__name__}.",
        value=given.__name__,
        fix="Pass a value of the declared type, or change one of the annotations.",
    )


def type_text(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return "Any"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


current_builder: contextvars.ContextVar[Builder | None] = contextvars.ContextVar(
    "funade_pipeline_builder", default=None
)


@contextlib.contextmanager
def when(condition: Comparison | Output | Param) -> Iterator[None]:
    """Steps called inside run only if ``condition`` holds when they are due; otherwise they
    (and what depends on them) are skipped. Conditions nest (all must hold)."""
    builder = current_builder.get()
    if builder is None:
        raise InvalidInputError(
            "funade.when(...) is used outside a pipeline function.",
            fix="Use it inside a function decorated with @funade.pipeline.",
        )
    if isinstance(condition, Comparison):
        spec = condition.condition
    elif isinstance(condition, Output | Param):
        spec = Condition(left=condition._binding(), op="truthy")
    else:
        raise InvalidInputError(
            f"funade.when() got {type(condition).__name__} {short_repr(condition)}.",
            fix="Give it a step output, or a comparison such as `score >= 0.9`.",
        )
    builder.conditions.append(spec)
    try:
        yield
    finally:
        builder.conditions.pop()


def topological(pipeline_name: str, nodes: Mapping[str, NodeSpec]) -> list[str]:
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for node_id, node in nodes.items():
        unknown = [u for u in node.upstream() if u not in nodes]
        if unknown:
            raise InvalidInputError(
                f"pipeline {pipeline_name!r}, step {node_id!r} waits for {unknown[0]!r}, "
                "which is not a step of this pipeline.",
                fix="Pass outputs of steps called in the same pipeline function.",
            )
        sorter.add(node_id, *node.upstream())
    try:
        return list(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = " → ".join(exc.args[1])
        raise InvalidInputError(
            f"pipeline {pipeline_name!r} has a cycle: {cycle}.",
            value=list(exc.args[1]),
            fix="Remove one of the .after(...) dependencies that close the loop.",
        ) from None
