"""A compiled pipeline: plain, JSON-serializable data that the engine runs and the store keeps.

``funade.pipelines.dsl`` builds a :class:`PipelineSpec` by calling the pipeline function once
with placeholders; nothing here knows about Python functions any more, only about their names
and digests, so a spec can be stored with its run, shown, diffed and checked.

An input of a step is bound (:class:`Binding`) to one of:

- ``value``: a JSON literal written in the pipeline function;
- ``param``: a pipeline parameter;
- ``output``: one output of another step;
- ``item``: element ``index`` of a list the step fans out over (``step.map(...)``);
- ``collect``: the list of one output over every instance of a fanned-out step (fan-in).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Binding",
    "Condition",
    "NodeSpec",
    "ParameterSpec",
    "PipelineSpec",
    "StepOptions",
]

BindingKind = Literal["value", "param", "output", "collect"]
Operator = Literal["truthy", "falsy", "==", "!=", "<", "<=", ">", ">="]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Binding(_Frozen):
    kind: BindingKind
    value: Any = None
    """The literal, for ``value``."""
    param: str | None = None
    node: str | None = None
    """The producing step, for ``output`` and ``collect``."""
    output: str | None = None

    def upstream(self) -> str | None:
        return self.node if self.kind in ("output", "collect") else None

    def describe(self) -> str:
        if self.kind == "value":
            return repr(self.value)
        if self.kind == "param":
            return f"parameter {self.param!r}"
        if self.kind == "collect":
            return f"every {self.node}.{self.output}"
        return f"{self.node}.{self.output}"


class Condition(_Frozen):
    """``left op right``: the step runs only when it holds (``funade.when``)."""

    left: Binding
    op: Operator
    right: Binding | None = None

    def describe(self) -> str:
        if self.op in ("truthy", "falsy"):
            return f"{'' if self.op == 'truthy' else 'not '}{self.left.describe()}"
        assert self.right is not None
        return f"{self.left.describe()} {self.op} {self.right.describe()}"


class StepOptions(_Frozen):
    retries: int = Field(default=0, ge=0, le=100)
    retry_backoff: float = Field(default=1.0, ge=0)
    """Seconds before the first retry; doubled for each next one."""
    timeout: float | None = Field(default=None, gt=0)
    """Seconds an attempt may take before it is killed."""
    cache: bool = True
    cache_version: str = ""
    resources: dict[str, str | int | float] = Field(default_factory=dict)
    """Hints for the engine that runs the step (cpu, memory, gpu); recorded, not enforced
    by the local runner."""
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict)
    """Environment variable → reference (``env:NAME`` or ``file:/path``), resolved by the
    runner when the step starts; only the reference is stored."""


class NodeSpec(_Frozen):
    id: str
    function: str
    """``module:qualname`` of the step function, imported by the step process."""
    inputs: dict[str, Binding] = Field(default_factory=dict)
    map_over: list[str] = Field(default_factory=list)
    """Inputs that fan out: the step runs once per element (zipped when several)."""
    outputs: dict[str, str] = Field(default_factory=dict)
    """Output name → the declared type, as text."""
    when: list[Condition] = Field(default_factory=list)
    after: list[str] = Field(default_factory=list)
    """Steps this one waits for although it takes none of their outputs."""
    options: StepOptions = Field(default_factory=StepOptions)
    code_digest: str = ""
    packages: dict[str, str] = Field(default_factory=dict)
    """The versions of the distributions the step's code imports (part of its cache key)."""
    uncacheable: str = ""
    """Why the step is never cached (its code reads a value that cannot be hashed, or code
    that changed after it was imported); "" when it may be."""

    def upstream(self) -> list[str]:
        found = [b.upstream() for b in self.inputs.values()]
        found += [b.upstream() for c in self.when for b in (c.left, c.right) if b is not None]
        return sorted({n for n in found if n is not None} | set(self.after))


class ParameterSpec(_Frozen):
    name: str
    type: str
    required: bool
    default: Any = None


class PipelineSpec(_Frozen):
    name: str
    source: str = ""
    """Where the pipeline comes from: ``path/to/file.py:function`` or ``module:function``."""
    description: str = ""
    params: list[ParameterSpec] = Field(default_factory=list)
    nodes: list[NodeSpec] = Field(default_factory=list)
    """In a topological order."""
    max_parallel: int = Field(default=4, ge=1)
    max_duration: float | None = None
    """Seconds; a run that takes longer breaches the pipeline's SLO (a notification)."""
    notify: list[dict[str, Any]] = Field(default_factory=list)
    permissions: list[str] = Field(default_factory=list)
    """What the run's token may do beyond reading its project (``register:<model>``,
    ``deploy:<model>``, ``deploy-code``), as the pipeline declares."""

    def node(self, node_id: str) -> NodeSpec:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)
