"""The pipeline engine: pure logic, events in, intents out.

:class:`Engine` holds the state of one run of a :class:`~funade.pipelines.spec.PipelineSpec`
and decides what happens next; it reads no clock, starts no process and touches no store, so
every rule here is tested with plain values (``tests/pipelines/test_engine.py``). A runner
(``funade.pipelines.runner``) performs the intents and reports back what happened.

Intents: :class:`Start` a step instance (maybe after a retry delay), :class:`Reuse` outputs a
cache hit gives, :class:`Settle` an instance that will not run (skipped by a condition or
because an input was skipped, not run because an upstream step failed, cancelled),
:class:`Stop` a running instance, and :class:`Finish` the run.

Events: :class:`Succeeded`, :class:`Failed`, :class:`Stopped`, :class:`CancelRequested`.

Independent steps run in parallel up to ``max_parallel``. A failed step does not stop the
others: what does not depend on it still runs, so a resume has as little left to do as can be.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from funade.pipelines.spec import Binding, Condition, NodeSpec, PipelineSpec

__all__ = [
    "DONE",
    "FINAL",
    "CancelRequested",
    "Engine",
    "Failed",
    "Finish",
    "Input",
    "Reuse",
    "Settle",
    "Start",
    "Stopped",
    "Stored",
    "Succeeded",
    "cache_key",
    "cacheable",
]

StepState = Literal[
    "pending",
    "running",
    "succeeded",
    "cached",
    "failed",
    "skipped",
    "upstream_failed",
    "cancelled",
]
RunState = Literal["running", "succeeded", "failed", "cancelled"]
DONE = frozenset({"succeeded", "cached"})
FINAL = DONE | {"failed", "skipped", "upstream_failed", "cancelled"}


class Stored(BaseModel):
    """One stored output value: its digest and kind, and the value itself when small JSON."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    digest: str
    kind: str
    size: int = 0
    type_name: str = ""
    value: Any = None
    inline: bool = False
    """``value`` is the whole value (small JSON): no blob needs to be fetched."""
    length: int | None = None


@dataclass(frozen=True)
class Input:
    """What the runner passes to a step for one input."""

    kind: Literal["value", "stored", "item", "list"]
    value: Any = None
    stored: Stored | None = None
    index: int | None = None
    items: tuple[Stored, ...] = ()


# Intents ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    instance: str
    node: str
    index: int | None
    attempt: int
    inputs: dict[str, Input]
    cache_key: str
    cacheable: bool
    delay: float = 0.0


@dataclass(frozen=True)
class Reuse:
    instance: str
    node: str
    index: int | None
    cache_key: str
    outputs: dict[str, Stored]


@dataclass(frozen=True)
class Settle:
    instance: str
    node: str
    index: int | None
    state: StepState
    reason: str


@dataclass(frozen=True)
class Stop:
    instance: str


@dataclass(frozen=True)
class Finish:
    state: RunState
    reason: str


Intent = Start | Reuse | Settle | Stop | Finish


# Events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Succeeded:
    instance: str
    outputs: dict[str, Stored]


@dataclass(frozen=True)
class Failed:
    instance: str
    error: str
    retryable: bool = True


@dataclass(frozen=True)
class Stopped:
    instance: str


@dataclass(frozen=True)
class CancelRequested:
    reason: str = "cancelled"


Event = Succeeded | Failed | Stopped | CancelRequested


@dataclass
class Instance:
    id: str
    node: str
    index: int | None
    state: StepState = "pending"
    attempt: int = 0
    outputs: dict[str, Stored] = field(default_factory=dict)
    cache_key: str = ""
    error: str = ""


def cache_key(node: NodeSpec, inputs: Mapping[str, Input]) -> str:
    """The step's cache key: its code (all the project's code and data it can reach, see
    ``codehash``), package versions, cache version, declared environment variables, outputs
    with their types, and input digests."""
    payload = {
        "code": node.code_digest,
        "packages": node.packages,
        "version": node.options.cache_version,
        "env": node.options.env,
        "outputs": node.outputs,
        "inputs": {name: _input_key(value) for name, value in sorted(inputs.items())},
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def cacheable(node: NodeSpec) -> bool:
    """Whether the step's outputs may come from, and go to, the cache."""
    return node.options.cache and not node.uncacheable


def _input_key(value: Input) -> Any:
    if value.kind == "value":
        text = json.dumps(value.value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "json:" + hashlib.sha256(text.encode()).hexdigest()
    if value.kind == "stored":
        assert value.stored is not None
        return value.stored.digest
    if value.kind == "item":
        assert value.stored is not None
        return [value.stored.digest, value.index]
    return [s.digest for s in value.items]


Lookup = Callable[[list[str]], Mapping[str, Mapping[str, Stored]]]
"""Cache keys → the outputs stored under those that are cached."""


class Engine:
    """The state of one run. Call :meth:`start` once, then :meth:`on` for every event."""

    def __init__(
        self,
        spec: PipelineSpec,
        params: Mapping[str, Any],
        *,
        lookup: Lookup | None = None,
        done: Mapping[str, Mapping[str, Stored]] | None = None,
    ) -> None:
        self.spec = spec
        self.params = dict(params)
        self.lookup = lookup
        self.done = dict(done or {})
        self.instances: dict[str, Instance] = {}
        self.known: dict[str, Mapping[str, Stored] | None] = {}
        """What the cache said of each key asked about (asked once per run)."""
        self.expanded: dict[str, list[str]] = {}
        self.cancelled = False
        self.finished: Finish | None = None
        self._nodes = {n.id: n for n in spec.nodes}
        self.upstream = {n.id: n.upstream() for n in spec.nodes}
        """Node → the nodes it waits for."""
        self._settled_nodes: set[str] = set()
        """Nodes all of whose instances are final (never looked at again)."""

    # Public -------------------------------------------------------------------------------

    def start(self) -> list[Intent]:
        return self._advance()

    def on(self, event: Event) -> list[Intent]:
        if isinstance(event, CancelRequested):
            return self._cancel()
        inst = self.instances[event.instance]
        if inst.state != "running":
            return []  # late news about an instance already settled
        if isinstance(event, Succeeded):
            inst.state, inst.outputs, inst.error = "succeeded", dict(event.outputs), ""
        elif isinstance(event, Stopped):
            inst.state, inst.error = "cancelled", "cancelled while running"
        else:
            node = self._nodes[inst.node]
            if self.cancelled:
                inst.state, inst.error = "cancelled", event.error
            elif event.retryable and inst.attempt <= node.options.retries:
                inst.attempt += 1
                inst.error = event.error
                delay = node.options.retry_backoff * 2 ** (inst.attempt - 2)
                return [self._start_intent(node, inst, delay=delay)]
            else:
                inst.state, inst.error = "failed", event.error
        return self._advance()

    @property
    def running(self) -> list[str]:
        return [i.id for i in self.instances.values() if i.state == "running"]

    # Deciding -----------------------------------------------------------------------------

    def _advance(self) -> list[Intent]:
        intents: list[Intent] = []
        progress = True
        while progress:
            progress = False
            for node in self.spec.nodes:
                before = len(intents)
                self._consider(node, intents)
                progress = progress or len(intents) > before
        if self.finished is None and self._all_settled():
            self.finished = self._outcome()
            intents.append(self.finished)
        return intents

    def _consider(self, node: NodeSpec, intents: list[Intent]) -> None:
        if node.id in self._settled_nodes:
            return
        if node.id in self.expanded:
            states = [self.instances[i].state for i in self.expanded[node.id]]
            if all(s in FINAL for s in states):
                self._settled_nodes.add(node.id)
                return
            if "pending" not in states:
                return
        status = self._upstream_status(node)
        if status == "wait":
            return
        if node.id not in self.expanded:
            if status != "ok":
                self._expand_as_one(node)
            else:
                error = self._expand(node)
                if error:
                    self._expand_as_one(node)
                    inst = self.instances[node.id]
                    inst.state, inst.error = "failed", error
                    intents.append(Settle(inst.id, node.id, None, "failed", error))
                    return
        pending = [
            self.instances[i]
            for i in self.expanded[node.id]
            if self.instances[i].state == "pending"
        ]
        settle_as: StepState | None = None
        reason = ""
        if self.cancelled:
            settle_as, reason = "cancelled", "the run was cancelled"
        elif status.startswith("failed:"):
            settle_as, reason = "upstream_failed", f"step {status[7:]!r} failed"
        elif status.startswith("skipped:"):
            settle_as, reason = "skipped", f"its input from step {status[8:]!r} was skipped"
        else:
            unmet = self._unmet(node)
            if unmet is not None:
                settle_as, reason = (
                    ("failed", unmet[1]) if unmet[0] == "error" else ("skipped", unmet[1])
                )
        if settle_as is not None:
            for inst in pending:
                inst.state, inst.error = settle_as, reason
                intents.append(Settle(inst.id, node.id, inst.index, settle_as, reason))
            return
        todo = []
        for inst in pending:
            if inst.id in self.done:
                inst.state, inst.outputs = "succeeded", dict(self.done[inst.id])
                continue
            inputs = self._inputs(node, inst)
            if not inst.cache_key:
                inst.cache_key = cache_key(node, inputs)
            todo.append((inst, inputs))
        use_cache = self.lookup is not None and cacheable(node)
        asked = sorted({i.cache_key for i, _ in todo if i.cache_key not in self.known})
        if use_cache and asked:
            assert self.lookup is not None
            found = self.lookup(asked)  # one question for a whole fan-out
            for key in asked:
                self.known[key] = found.get(key)
        for inst, inputs in todo:
            key = inst.cache_key
            hit = self.known.get(key) if use_cache else None
            if hit is not None and set(hit) == set(node.outputs):
                inst.state, inst.outputs = "cached", dict(hit)
                intents.append(Reuse(inst.id, node.id, inst.index, key, dict(hit)))
                continue
            if len(self.running) >= self.spec.max_parallel:
                return
            inst.state, inst.attempt = "running", 1
            intents.append(
                Start(inst.id, node.id, inst.index, 1, inputs, key, cacheable=cacheable(node))
            )

    def _start_intent(self, node: NodeSpec, inst: Instance, *, delay: float) -> Start:
        inputs = self._inputs(node, inst)
        return Start(
            inst.id,
            node.id,
            inst.index,
            inst.attempt,
            inputs,
            inst.cache_key,
            cacheable=cacheable(node),
            delay=delay,
        )

    def _cancel(self) -> list[Intent]:
        self.cancelled = True
        intents: list[Intent] = [Stop(i) for i in self.running]
        intents += self._advance()
        return intents

    # Facts --------------------------------------------------------------------------------

    def _upstream_status(self, node: NodeSpec) -> str:
        """``wait``, ``ok``, ``failed:<node>`` or ``skipped:<node>``."""
        skipped = None
        for up in self.upstream[node.id]:
            instances = self.expanded.get(up)
            if instances is None:
                return "wait"
            states = [self.instances[i].state for i in instances]
            if any(s not in FINAL for s in states):
                return "wait"
            if any(s in ("failed", "upstream_failed", "cancelled") for s in states):
                return f"failed:{up}"
            if states and all(s == "skipped" for s in states):
                skipped = skipped or up
        return f"skipped:{skipped}" if skipped else "ok"

    def _expand_as_one(self, node: NodeSpec) -> None:
        inst = Instance(node.id, node.id, None)
        self.instances[inst.id] = inst
        self.expanded[node.id] = [inst.id]

    def _expand(self, node: NodeSpec) -> str:
        """Create the node's instances; an error text if its fan-out lists do not fit."""
        if not node.map_over:
            self._expand_as_one(node)
            return ""
        lengths: dict[str, int] = {}
        for name in node.map_over:
            binding = node.inputs[name]
            length = self._length(binding)
            if length is None:
                return (
                    f"input {name!r} ({binding.describe()}) is not a list, so the step cannot "
                    "fan out over it"
                )
            lengths[name] = length
        if len(set(lengths.values())) > 1:
            sizes = ", ".join(f"{k} has {v}" for k, v in lengths.items())
            return f"the lists it fans out over differ in length ({sizes})"
        count = next(iter(lengths.values()))
        ids = [f"{node.id}[{i}]" for i in range(count)]
        for i, inst_id in enumerate(ids):
            self.instances[inst_id] = Instance(inst_id, node.id, i)
        self.expanded[node.id] = ids
        return ""

    def _length(self, binding: Binding) -> int | None:
        if binding.kind in ("value", "param"):
            value = binding.value if binding.kind == "value" else self._param(binding)
            return len(value) if isinstance(value, list | tuple) else None
        if binding.kind == "output":
            return self._stored(binding).length
        return None

    def _param(self, binding: Binding) -> Any:
        return self.params.get(binding.param or "")

    def _stored(self, binding: Binding) -> Stored:
        assert binding.node is not None
        assert binding.output is not None
        return self.instances[binding.node].outputs[binding.output]

    def _inputs(self, node: NodeSpec, inst: Instance) -> dict[str, Input]:
        inputs: dict[str, Input] = {}
        for name, binding in node.inputs.items():
            mapped = name in node.map_over
            if binding.kind in ("value", "param"):
                value = binding.value if binding.kind == "value" else self._param(binding)
                if mapped:
                    assert inst.index is not None
                    value = value[inst.index]
                inputs[name] = Input("value", value=value)
            elif binding.kind == "output":
                stored = self._stored(binding)
                if mapped:
                    inputs[name] = Input("item", stored=stored, index=inst.index)
                else:
                    inputs[name] = Input("stored", stored=stored)
            else:
                assert binding.node is not None
                assert binding.output is not None
                items = tuple(
                    self.instances[i].outputs[binding.output] for i in self.expanded[binding.node]
                )
                inputs[name] = Input("list", items=items)
        return inputs

    def _unmet(self, node: NodeSpec) -> tuple[str, str] | None:
        """("skip", why) for the first condition that does not hold, ("error", why) if one
        cannot be evaluated; None when all hold."""
        for condition in node.when:
            try:
                holds = _holds(condition, self._value(condition.left), self._right(condition))
            except _NoValue as exc:
                return "error", str(exc)
            if not holds:
                return "skip", f"condition not met: {condition.describe()}"
        return None

    def _right(self, condition: Condition) -> Any:
        return None if condition.right is None else self._value(condition.right)

    def _value(self, binding: Binding) -> Any:
        if binding.kind == "value":
            return binding.value
        if binding.kind == "param":
            return self._param(binding)
        stored = self._stored(binding)
        if not stored.inline:
            raise _NoValue(
                f"the condition on {binding.describe()} needs a small JSON value (a number, "
                f"string or boolean), but the output is {stored.type_name or stored.kind}"
            )
        return stored.value

    def _all_settled(self) -> bool:
        return all(n.id in self.expanded for n in self.spec.nodes) and all(
            i.state in FINAL for i in self.instances.values()
        )

    def _outcome(self) -> Finish:
        states = [i.state for i in self.instances.values()]
        if self.cancelled:
            return Finish("cancelled", "cancelled")
        failed = [i for i in self.instances.values() if i.state == "failed"]
        if failed or any(s in ("upstream_failed", "cancelled") for s in states):
            first = failed[0] if failed else None
            reason = f"step {first.id!r} failed: {first.error}" if first else "steps did not run"
            return Finish("failed", reason)
        return Finish("succeeded", "")


class _NoValue(Exception):
    pass


def _holds(condition: Condition, left: Any, right: Any) -> bool:
    op = condition.op
    if op == "truthy":
        return bool(left)
    if op == "falsy":
        return not left
    try:
        if op == "==":
            return bool(left == right)
        if op == "!=":
            return bool(left != right)
        if op == "<":
            return bool(left < right)
        if op == "<=":
            return bool(left <= right)
        if op == ">":
            return bool(left > right)
        return bool(left >= right)
    except TypeError:
        raise _NoValue(
            f"the condition {condition.describe()} compares {type(left).__name__} "
            f"with {type(right).__name__}"
        ) from None
