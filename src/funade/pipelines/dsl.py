"""The pipeline DSL: ``@funade.step``, ``@funade.pipeline``, ``funade.when``.

A pipeline is a Python function that calls steps. Building it (:meth:`Pipeline.compile`) calls
the function once with placeholders for its parameters: each step call records a node and
returns a reference to the node's outputs instead of running anything, so the DAG is exactly
the data flow written in the function, and a cycle cannot be written at all.

    @funade.step(retries=2, timeout="10m")
    def train(data: pd.DataFrame, c: float) -> Model: ...

    @funade.pipeline(max_duration="1h")
    def training(rows: int = 1000, threshold: float = 0.8) -> None:
        data = load(rows)
        models = train.partial(data=data).map(c=[0.1, 1.0, 10.0])     # fan-out
        best = pick(models)                                           # fan-in: a list
        with funade.when(evaluate(best) >= threshold):
            register(best)

Outside a pipeline, calling a step runs the plain function, so steps are unit-testable.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import graphlib
import inspect
import json
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, ParamSpec, Self, TypeVar, overload

from pydantic import ValidationError

from funade.auth.permissions import check_permissions
from funade.durations import parse_seconds
from funade.errors import InvalidInputError
from funade.pipelines import codefresh
from funade.pipelines.codehash import code_session, describe_code
from funade.pipelines.spec import (
    Binding,
    Condition,
    NodeSpec,
    Operator,
    ParameterSpec,
    PipelineSpec,
    StepOptions,
)

__all__ = ["Pipeline", "Step", "pipeline", "step", "when"]

codefresh.install()  # the project's modules imported from here on: from source, never a .pyc

P = ParamSpec("P")
R = TypeVar("R")

SINGLE = "output"
"""The name of a step's only output, when it does not return a NamedTuple."""


def seconds(value: float | str | None, *, field: str, where: str) -> float | None:
    """A duration: a number of seconds, or text like '30s', '10m', '2h'."""
    return None if value is None else parse_seconds(value, field=field, label=f"{where}: {field}")


# References: what a step call returns while a pipeline is being built --------------------


class _Operand:
    """Something a condition can compare: an output or a parameter."""

    def _binding(self) -> Binding:
        raise NotImplementedError

    def _compare(self, op: Operator, other: object) -> Comparison:
        return Comparison(Condition(left=self._binding(), op=op, right=_bind_operand(other)))

    def __lt__(self, other: object) -> Comparison:
        return self._compare("<", other)

    def __le__(self, other: object) -> Comparison:
        return self._compare("<=", other)

    def __gt__(self, other: object) -> Comparison:
        return self._compare(">", other)

    def __ge__(self, other: object) -> Comparison:
        return self._compare(">=", other)

    def __eq__(self, other: object) -> Comparison:  # type: ignore[override]
        return self._compare("==", other)

    def __ne__(self, other: object) -> Comparison:  # type: ignore[override]
        return self._compare("!=", other)

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise self._unusable("used in `if`, `while`, `and`, `or` or `not`", condition=True)

    def __iter__(self) -> Iterator[Any]:
        raise self._unusable("iterated (`for x in ...`, `list(...)`)", iterated=True)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise self._unusable(f"asked for its attribute {name!r}")

    def _unusable(
        self, use: str, *, condition: bool = False, iterated: bool = False
    ) -> InvalidInputError:
        """What using a placeholder as a Python value raises: it has none until the run."""
        return InvalidInputError(
            f"{self!r} has no value while the pipeline is being built, so it cannot be {use} "
            "in the pipeline function.",
            fix=self._instead(condition=condition, iterated=iterated),
        )

    def _instead(self, *, condition: bool, iterated: bool) -> str:
        if condition:
            return (
                "Use `with funade.when(<output> >= <value>):` to run steps only when a "
                "condition on an output holds."
            )
        return "Pass it to a step and use its value inside that step."


def _refuse(use: str) -> Callable[..., Any]:
    def refuse(self: _Operand, *args: object) -> Any:
        raise self._unusable(use)

    return refuse


_UNUSABLE = {
    "used as an integer (`range(n)`, `x[n]`)": ("__index__",),
    "converted to a number (`int(n)`, `float(n)`, `round(n)`)": (
        "__int__", "__float__", "__complex__", "__round__", "__trunc__", "__floor__", "__ceil__",
    ),
    "used as text (`str(n)`, `f'{n}'`, `print(n)`)": ("__str__", "__format__", "__bytes__"),
    "measured (`len(n)`)": ("__len__",),
    "indexed (`n[0]`)": ("__getitem__",),
    "searched (`x in n`)": ("__contains__",),
    "used in arithmetic (`n + 1`, `n * 2`, `-n`)": (
        *(
            f"__{prefix}{op}__"
            for op in (
                "add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "divmod", "pow",
                "lshift", "rshift", "and", "xor", "or",
            )
            for prefix in ("", "r")
        ),
        "__neg__", "__pos__", "__abs__", "__invert__",
    ),
}  # fmt: skip
for _use, _names in _UNUSABLE.items():
    for _name in _names:
        setattr(_Operand, _name, _refuse(_use))


class Param(_Operand):
    def __init__(self, name: str, annotation: Any) -> None:
        self.name = name
        self.annotation = annotation

    def _binding(self) -> Binding:
        return Binding(kind="param", param=self.name)

    def _instead(self, *, condition: bool, iterated: bool) -> str:
        if condition:
            usage = self.name if self.annotation is bool else f"{self.name} > 3"
            return (
                f"Use `with funade.when({usage}):` to run steps only when a condition on it holds."
            )
        if iterated:
            return (
                f"Use `my_step.map(x={self.name})` to run a step once per element, or pass it "
                "to a step and loop there."
            )
        return (
            f"Pass it to a step (`my_step({self.name})`) and use its value inside that step; "
            f"for a condition, use `with funade.when({self.name} > 3):`."
        )

    def __repr__(self) -> str:
        return f"parameter {self.name!r}"


class Output(_Operand):
    """One output of one step call."""

    def __init__(self, node: NodeSpecBuilder, name: str, annotation: Any) -> None:
        self.node = node
        self.name = name
        self.annotation = annotation

    def _binding(self) -> Binding:
        return Binding(kind="output", node=self.node.id, output=self.name)

    def after(self, *others: Output | _Results) -> Output:
        self.node.wait_for(others)
        return self

    def __repr__(self) -> str:
        return f"output {self.node.id}.{self.name}"


class _Results:
    """The outputs of one node, by name; ``after`` orders it after others."""

    def __init__(self, node: NodeSpecBuilder, outputs: Mapping[str, Any]) -> None:
        self._node = node
        self._outputs = dict(outputs)

    def _has(self, name: str) -> bool:
        return not name.startswith("_") and name in self._outputs

    def after(self, *others: Output | _Results) -> Self:
        self._node.wait_for(others)
        return self


class Outputs(_Results):
    """The outputs of a step that returns a NamedTuple (by attribute), or none."""

    def __getattr__(self, name: str) -> Output:
        if not self._has(name):
            raise AttributeError(
                f"step {self._node.id!r} has no output {name!r}; "
                f"it has {sorted(self._outputs) or 'none'}"
            )
        return Output(self._node, name, self._outputs[name])


class Mapped(_Results):
    """The outputs of a fanned-out step: passed to another step, one output becomes a list."""

    def __getattr__(self, name: str) -> Mapped:
        if not self._has(name):
            raise AttributeError(f"step {self._node.id!r} has no output {name!r}")
        return Mapped(self._node, {name: self._outputs[name]})

    def _collect(self) -> Binding:
        if len(self._outputs) != 1:
            raise InvalidInputError(
                f"step {self._node.id!r} has several outputs ({', '.join(self._outputs)}); "
                "pick one to collect.",
                fix=f"Pass e.g. `{self._node.id}_results.{next(iter(self._outputs), 'x')}`.",
            )
        return Binding(kind="collect", node=self._node.id, output=next(iter(self._outputs)))


class Comparison:
    def __init__(self, condition: Condition) -> None:
        self.condition = condition

    def __bool__(self) -> bool:
        raise InvalidInputError(
            f"The comparison {self.condition.describe()} has no value while the pipeline is "
            "being built (a parameter or a step output has none yet), so it cannot be used in "
            "`if`, `while`, `and`, `or` or `not` in the pipeline function.",
            fix="Use it in `with funade.when(...):` instead of `if`, to run steps only when it "
            "holds.",
        )


def _bind_operand(other: object) -> Binding:
    if isinstance(other, Param | Output):
        return other._binding()
    return _literal(other, where="a condition")


def _literal(value: object, *, where: str) -> Binding:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"{where}: {type(value).__name__} {_short(value)} cannot be written into the "
            "pipeline; only JSON values (numbers, strings, booleans, lists, dicts) can.",
            value=type(value).__name__,
            fix="Make it a pipeline parameter, or produce it in a step.",
        ) from None
    return Binding(kind="value", value=value)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# Building ---------------------------------------------------------------------------------


class NodeSpecBuilder:
    def __init__(self, node_id: str, step: Step[..., Any]) -> None:
        self.id = node_id
        self.step = step
        self.inputs: dict[str, Binding] = {}
        self.map_over: list[str] = []
        self.when: list[Condition] = []
        self.after: list[str] = []

    def wait_for(self, others: Sequence[Output | _Results]) -> None:
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
            outputs={k: _type_text(v) for k, v in self.step.outputs.items()},
            when=self.when,
            after=self.after,
            options=self.step.options,
            code_digest=code.digest,
            packages=code.packages,
            uncacheable=code.uncacheable,
        )


class _Builder:
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
        return _literal(value, where=where)


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


def _type_text(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return "Any"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


_current: contextvars.ContextVar[_Builder | None] = contextvars.ContextVar(
    "funade_pipeline_builder", default=None
)


@contextlib.contextmanager
def when(condition: Comparison | Output | Param) -> Iterator[None]:
    """Steps called inside run only if ``condition`` holds when they are due; otherwise they
    (and what depends on them) are skipped. Conditions nest (all must hold)."""
    builder = _current.get()
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
            f"funade.when() got {type(condition).__name__} {_short(condition)}.",
            fix="Give it a step output, or a comparison such as `score >= 0.9`.",
        )
    builder.conditions.append(spec)
    try:
        yield
    finally:
        builder.conditions.pop()


# Steps ------------------------------------------------------------------------------------


class Step(Generic[P, R]):
    """A function that runs as one node of a pipeline, in a process of its own."""

    def __init__(self, fn: Callable[P, R], options: StepOptions, name: str | None = None) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.options = options
        self.name = name or fn.__name__
        self.signature = inspect.signature(fn)
        try:
            self.hints = typing.get_type_hints(fn)
        except Exception:  # unresolvable forward references: no type checks
            self.hints = {}
        self.outputs = _outputs_of(self.hints.get("return", inspect.Parameter.empty))

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...
    @overload
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        builder = _current.get()
        if builder is None:
            return self.fn(*args, **kwargs)
        node = builder.add(self, args, kwargs)
        return self._result(node, Outputs)

    def _result(self, node: NodeSpecBuilder, kind: type[Outputs] | type[Mapped]) -> Any:
        if kind is Outputs and list(self.outputs) == [SINGLE]:
            return Output(node, SINGLE, self.outputs[SINGLE])
        return kind(node, self.outputs)

    def map(self, **over: Any) -> Any:
        """Run the step once per element of each keyword's list (zipped), in parallel."""
        return self.partial().map(**over)

    def partial(self, *args: Any, **kwargs: Any) -> Partial:
        """Fix inputs shared by every instance of a fan-out: ``train.partial(data=d).map(...)``."""
        return Partial(self, args, kwargs)

    def with_options(self, *, name: str | None = None, **changes: Any) -> Step[P, R]:
        """The same step with other options (``retries``, ``timeout``, ``cache`` …) or name."""
        options = _options(self.options.model_dump() | changes, where=f"step {self.name!r}")
        return Step(self.fn, options, name or self.name)

    def __repr__(self) -> str:
        return f"<funade step {self.name}>"


class Partial:
    def __init__(self, step: Step[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.step, self.args, self.kwargs = step, args, kwargs

    def map(self, **over: Any) -> Any:
        builder = _current.get()
        if builder is None:
            lists = [list(v) for v in over.values()]
            return [
                self.step.fn(*self.args, **self.kwargs, **dict(zip(over, values, strict=True)))
                for values in zip(*lists, strict=True)
            ]
        if not over:
            raise InvalidInputError(
                f"step {self.step.name!r}: map() needs at least one keyword list to fan out.",
                fix=f"Call e.g. {self.step.name}.map(config=[...]).",
            )
        for name, value in over.items():
            if isinstance(value, Mapped):
                raise InvalidInputError(
                    f"step {self.step.name!r}: input {name!r} fans out over the results of "
                    "another fan-out; collect them in a step first.",
                    fix="Pass the collected list through a step that returns a list.",
                )
        node = builder.add(self.step, self.args, self.kwargs, mapped=over)
        return self.step._result(node, Mapped)


def _outputs_of(annotation: Any) -> dict[str, Any]:
    if annotation is None or annotation is type(None):
        return {}
    if (
        isinstance(annotation, type)
        and issubclass(annotation, tuple)
        and hasattr(annotation, "_fields")
        and getattr(annotation, "__annotations__", None)
    ):
        try:
            return dict(typing.get_type_hints(annotation))
        except Exception:  # unresolvable forward references: no type checks
            return dict.fromkeys(annotation._fields, inspect.Parameter.empty)
    return {SINGLE: annotation}


def _options(raw: Mapping[str, Any], *, where: str) -> StepOptions:
    values = dict(raw)
    for field in ("timeout", "retry_backoff"):
        if isinstance(values.get(field), str):
            values[field] = seconds(values[field], field=field, where=where)
    try:
        return StepOptions.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"])
        raise InvalidInputError(
            f"{where}: option {field!r} = {error.get('input')!r}: {error['msg']}.",
            field=field,
            value=error.get("input"),
            fix="See the step options in docs/pipelines.md.",
        ) from None


@overload
def step(fn: Callable[P, R], /) -> Step[P, R]: ...
@overload
def step(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    retry_backoff: float | str = 1.0,
    timeout: float | str | None = None,
    cache: bool = True,
    cache_version: str = "",
    resources: Mapping[str, str | int | float] | None = None,
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> Callable[[Callable[P, R]], Step[P, R]]: ...
def step(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    retry_backoff: float | str = 1.0,
    timeout: float | str | None = None,
    cache: bool = True,
    cache_version: str = "",
    resources: Mapping[str, str | int | float] | None = None,
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> Step[P, R] | Callable[[Callable[P, R]], Step[P, R]]:
    """Make a function a pipeline step (``@funade.step`` or ``@funade.step(retries=2, …)``)."""

    def wrap(f: Callable[P, R]) -> Step[P, R]:
        options = _options(
            {
                "retries": retries,
                "retry_backoff": retry_backoff,
                "timeout": timeout,
                "cache": cache,
                "cache_version": cache_version,
                "resources": dict(resources or {}),
                "env": dict(env or {}),
                "secrets": dict(secrets or {}),
            },
            where=f"step {name or f.__name__!r}",
        )
        return Step(f, options, name)

    return wrap(fn) if fn is not None else wrap


# Pipelines --------------------------------------------------------------------------------


class Pipeline:
    """A function of steps, compiled into a :class:`PipelineSpec` on demand."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        max_parallel: int = 4,
        max_duration: float | str | None = None,
        notify: Sequence[Mapping[str, Any]] = (),
        config: str | Path | None = None,
        permissions: Sequence[str] = (),
    ) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name = name or fn.__name__
        self.description = description if description is not None else inspect.getdoc(fn) or ""
        where = f"pipeline {self.name!r}"
        self.max_parallel = max_parallel
        self.max_duration = seconds(max_duration, field="max_duration", where=where)
        self.notify = [dict(n) for n in notify]
        self.config = config
        if isinstance(permissions, str):
            permissions = [permissions]
        self.permissions = check_permissions(list(permissions), field=f"{where}, permissions")
        self.signature = inspect.signature(fn)
        try:
            self.hints = typing.get_type_hints(fn)
        except Exception:
            self.hints = {}

    def params(self) -> list[ParameterSpec]:
        out = []
        for name, p in self.signature.parameters.items():
            required = p.default is inspect.Parameter.empty
            default = None if required else p.default
            if not required:
                _literal(default, where=f"pipeline {self.name!r}, parameter {name!r} default")
            out.append(
                ParameterSpec(
                    name=name,
                    type=_type_text(self.hints.get(name, p.annotation)),
                    required=required,
                    default=default,
                )
            )
        return out

    def compile(self, *, source: str = "") -> PipelineSpec:
        builder = _Builder(self.name)
        placeholders = {
            name: Param(name, self.hints.get(name, inspect.Parameter.empty))
            for name in self.signature.parameters
        }
        token = _current.set(builder)
        try:
            self.fn(**placeholders)
            with code_session():
                nodes = {node_id: b.build() for node_id, b in builder.nodes.items()}
        finally:
            _current.reset(token)
        if not builder.nodes:
            raise InvalidInputError(
                f"pipeline {self.name!r} calls no steps.",
                fix="Call functions decorated with @funade.step inside the pipeline function.",
            )
        return PipelineSpec(
            name=self.name,
            source=source,
            description=self.description,
            params=self.params(),
            nodes=[nodes[n] for n in _topological(self.name, nodes)],
            max_parallel=self.max_parallel,
            max_duration=self.max_duration,
            notify=self.notify,
            permissions=self.permissions,
        )

    def __call__(self, **params: Any) -> Any:
        """Run the pipeline locally (blocking) and return the finished run."""
        from funade.pipelines.runs import run_pipeline

        return run_pipeline(self, params=params)

    def __repr__(self) -> str:
        return f"<funade pipeline {self.name}>"


def _topological(pipeline_name: str, nodes: Mapping[str, NodeSpec]) -> list[str]:
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


@overload
def pipeline(fn: Callable[..., Any], /) -> Pipeline: ...
@overload
def pipeline(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    max_parallel: int = 4,
    max_duration: float | str | None = None,
    notify: Sequence[Mapping[str, Any]] = (),
    config: str | Path | None = None,
    permissions: Sequence[str] = (),
) -> Callable[[Callable[..., Any]], Pipeline]: ...
def pipeline(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    max_parallel: int = 4,
    max_duration: float | str | None = None,
    notify: Sequence[Mapping[str, Any]] = (),
    config: str | Path | None = None,
    permissions: Sequence[str] = (),
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Make a function of steps a pipeline (``@funade.pipeline`` or with options).

    ``max_parallel`` bounds the steps running at once; ``max_duration`` is the run-time SLO;
    ``notify`` lists webhooks (``{"url": ..., "kind": "slack"|"json", "on": [...]}``);
    ``config`` is the per-environment YAML file (default: ``funade.yaml`` beside the file);
    ``permissions`` are what the run's steps may do beyond reading the project and storing
    outputs: ``register:<model>`` (register versions of a model and move its aliases),
    ``deploy:<model>`` (deploy it), ``deploy-code`` (deploy a model whose loading runs code).
    The run's token gets them only if the key that starts the run may do the same.
    """

    def wrap(f: Callable[..., Any]) -> Pipeline:
        return Pipeline(
            f,
            name=name,
            description=description,
            max_parallel=max_parallel,
            max_duration=max_duration,
            notify=notify,
            config=config,
            permissions=permissions,
        )

    return wrap(fn) if fn is not None else wrap
