"""Steps: ``@funade.step`` makes a function one node of a pipeline, run in a process of its own.

Inside a pipeline function being built, calling a step (or ``step.partial(...).map(...)``, a
fan-out) adds a node and returns placeholders for its outputs; anywhere else it runs the plain
function, so steps are unit-testable.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, Generic, ParamSpec, TypeVar, overload

from pydantic import ValidationError

from funade.durations import parse_seconds
from funade.errors import InvalidInputError
from funade.pipelines import codefresh
from funade.pipelines.builder import NodeSpecBuilder, current_builder
from funade.pipelines.placeholders import Mapped, Output, Outputs
from funade.pipelines.spec import StepOptions

__all__ = ["SINGLE", "Partial", "Step", "seconds", "step", "step_options"]

codefresh.install()  # the project's modules imported from here on: from source, never a .pyc

P = ParamSpec("P")
R = TypeVar("R")

SINGLE = "output"
"""The name of a step's only output, when it does not return a NamedTuple."""


def seconds(value: float | str | None, *, field: str, where: str) -> float | None:
    """A duration: a number of seconds, or text like '30s', '10m', '2h'."""
    return None if value is None else parse_seconds(value, field=field, label=f"{where}: {field}")


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
        builder = current_builder.get()
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
        options = step_options(self.options.model_dump() | changes, where=f"step {self.name!r}")
        return Step(self.fn, options, name or self.name)

    def __repr__(self) -> str:
        return f"<funade step {self.name}>"


class Partial:
    def __init__(self, step: Step[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.step, self.args, self.kwargs = step, args, kwargs

    def map(self, **over: Any) -> Any:
        builder = current_builder.get()
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


def step_options(raw: Mapping[str, Any], *, where: str) -> StepOptions:
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
        options = step_options(
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
