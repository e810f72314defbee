"""What a pipeline function works with while it is being built: placeholders.

:meth:`Pipeline.compile <funade.pipelines.dsl.Pipeline.compile>` calls the pipeline function
with a :class:`Param` for each parameter, and each step call returns the node's outputs
(:class:`Output`, :class:`Outputs`, :class:`Mapped` for a fan-out) instead of running anything.
None has a value yet: comparing one makes a :class:`Comparison` for ``funade.when``, and any
other use as a Python value (``if``, ``int()``, ``len()``, arithmetic …) is refused with an
error that says what to write instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Self

from funade.errors import InvalidInputError
from funade.pipelines.spec import Binding, Condition, Operator

if TYPE_CHECKING:
    from funade.pipelines.builder import NodeSpecBuilder

__all__ = ["Comparison", "Mapped", "Output", "Outputs", "Param", "Results", "literal", "short_repr"]


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

    def after(self, *others: Output | Results) -> Output:
        self.node.wait_for(others)
        return self

    def __repr__(self) -> str:
        return f"output {self.node.id}.{self.name}"


class Results:
    """The outputs of one node, by name; ``after`` orders it after others."""

    def __init__(self, node: NodeSpecBuilder, outputs: Mapping[str, Any]) -> None:
        self._node = node
        self._outputs = dict(outputs)

    def _has(self, name: str) -> bool:
        return not name.startswith("_") and name in self._outputs

    def after(self, *others: Output | Results) -> Self:
        self._node.wait_for(others)
        return self


class Outputs(Results):
    """The outputs of a step that returns a NamedTuple (by attribute), or none."""

    def __getattr__(self, name: str) -> Output:
        if not self._has(name):
            raise AttributeError(
                f"step {self._node.id!r} has no output {name!r}; "
                f"it has {sorted(self._outputs) or 'none'}"
            )
        return Output(self._node, name, self._outputs[name])


class Mapped(Results):
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
    return literal(other, where="a condition")


def literal(value: object, *, where: str) -> Binding:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"{where}: {type(value).__name__} {short_repr(value)} cannot be written into the "
            "pipeline; only JSON values (numbers, strings, booleans, lists, dicts) can.",
            value=type(value).__name__,
            fix="Make it a pipeline parameter, or produce it in a step.",
        ) from None
    return Binding(kind="value", value=value)


def short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
