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

This module holds :class:`Pipeline` and ``@pipeline`` and is where users import the DSL from;
its parts live beside it: ``steps.py`` (``Step``, ``@step``), ``placeholders.py`` (what
parameters and step calls are while the function is built), ``builder.py`` (the graph,
``when``).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

from funade.auth.permissions import check_permissions
from funade.errors import InvalidInputError
from funade.pipelines.builder import Builder, current_builder, topological, type_text, when
from funade.pipelines.codehash import code_session
from funade.pipelines.placeholders import Param, literal
from funade.pipelines.spec import ParameterSpec, PipelineSpec
from funade.pipelines.steps import Step, seconds, step

__all__ = ["Pipeline", "Step", "pipeline", "step", "when"]


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
                literal(default, where=f"pipeline {self.name!r}, parameter {name!r} default")
            out.append(
                ParameterSpec(
                    name=name,
                    type=type_text(self.hints.get(name, p.annotation)),
                    required=required,
                    default=default,
                )
            )
        return out

    def compile(self, *, source: str = "") -> PipelineSpec:
        builder = Builder(self.name)
        placeholders = {
            name: Param(name, self.hints.get(name, inspect.Parameter.empty))
            for name in self.signature.parameters
        }
        token = current_builder.set(builder)
        try:
            self.fn(**placeholders)
            with code_session():
                nodes = {node_id: b.build() for node_id, b in builder.nodes.items()}
        finally:
            current_builder.reset(token)
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
            nodes=[nodes[n] for n in topological(self.name, nodes)],
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
