"""The engine's rules, with plain values: events in, intents out; no process, store or clock."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

import funade
from funade.pipelines.dsl import Pipeline
from funade.pipelines.engine import (
    CancelRequested,
    Engine,
    Failed,
    Finish,
    Input,
    Intent,
    Reuse,
    Settle,
    Start,
    Stop,
    Stopped,
    Stored,
    Succeeded,
    cache_key,
)


@funade.step
def source(n: int) -> list[int]:
    return list(range(n))


@funade.step
def double(x: int) -> int:
    return 2 * x


@funade.step
def add(a: int, b: int) -> int:
    return a + b


@funade.step
def total(values: list[int]) -> int:
    return sum(values)


class Scores(NamedTuple):
    score: float
    name: str


@funade.step
def evaluate(x: int) -> Scores:
    return Scores(x / 10, "m")


@funade.step
def publish(name: str) -> None:
    pass


def inline(value: Any, length: int | None = None) -> Stored:
    return Stored(digest=f"d:{value!r}", kind="json", value=value, inline=True, length=length)


def starts(intents: list[Intent]) -> list[str]:
    return [i.instance for i in intents if isinstance(i, Start)]


def finish_of(intents: list[Intent]) -> Finish | None:
    return next((i for i in intents if isinstance(i, Finish)), None)


def engine_for(pipeline: Pipeline, params: dict[str, Any] | None = None, **kw: Any) -> Engine:
    spec = pipeline.compile()
    values = {p.name: p.default for p in spec.params} | (params or {})
    return Engine(spec, values, **kw)


@funade.pipeline
def chain(n: int = 3) -> None:
    a = double(n)
    b = double(a)
    double(b)


def test_a_chain_runs_one_step_at_a_time_and_finishes() -> None:
    engine = engine_for(chain)
    assert starts(engine.start()) == ["double"]
    assert starts(engine.on(Succeeded("double", {"output": inline(6)}))) == ["double-2"]
    intents = engine.on(Succeeded("double-2", {"output": inline(12)}))
    assert starts(intents) == ["double-3"]
    start = next(i for i in intents if isinstance(i, Start))
    assert start.inputs["x"].stored == inline(12)
    intents = engine.on(Succeeded("double-3", {"output": inline(24)}))
    assert finish_of(intents) == Finish("succeeded", "")


@funade.pipeline(max_parallel=2)
def wide() -> None:
    for i in range(5):
        double(i)


def test_independent_steps_run_in_parallel_up_to_max_parallel() -> None:
    engine = engine_for(wide)
    first = starts(engine.start())
    assert len(first) == 2
    more = starts(engine.on(Succeeded(first[0], {"output": inline(0)})))
    assert len(more) == 1
    assert len(engine.running) == 2


@funade.pipeline
def fan(n: int = 3) -> None:
    items = source(n)
    doubled = double.map(x=items)
    total(doubled)


def test_fan_out_over_an_output_then_fan_in_collects_in_order() -> None:
    engine = engine_for(fan)
    assert starts(engine.start()) == ["source"]
    intents = engine.on(Succeeded("source", {"output": inline([0, 1, 2], length=3)}))
    assert starts(intents) == ["double[0]", "double[1]", "double[2]"]
    item = next(i for i in intents if isinstance(i, Start) and i.instance == "double[1]")
    assert item.inputs["x"].kind == "item"
    assert item.inputs["x"].index == 1
    engine.on(Succeeded("double[2]", {"output": inline(4)}))
    engine.on(Succeeded("double[0]", {"output": inline(0)}))
    intents = engine.on(Succeeded("double[1]", {"output": inline(2)}))
    (collect,) = [i for i in intents if isinstance(i, Start)]
    assert [s.value for s in collect.inputs["values"].items] == [0, 2, 4]


def test_fan_out_over_an_empty_list_gives_an_empty_list() -> None:
    engine = engine_for(fan, {"n": 0})
    engine.start()
    intents = engine.on(Succeeded("source", {"output": inline([], length=0)}))
    (collect,) = [i for i in intents if isinstance(i, Start)]
    assert collect.instance == "total"
    assert collect.inputs["values"].items == ()


@funade.pipeline
def fan_param(xs: list[int] = [1, 2]) -> None:  # noqa: B006
    double.map(x=xs)


def test_fan_out_over_a_parameter_is_known_at_the_start() -> None:
    engine = engine_for(fan_param, {"xs": [5, 6, 7]})
    intents = engine.start()
    assert starts(intents) == ["double[0]", "double[1]", "double[2]"]
    assert [i.inputs["x"].value for i in intents if isinstance(i, Start)] == [5, 6, 7]


def test_fan_out_over_something_that_is_not_a_list_fails_that_step() -> None:
    engine = engine_for(fan)
    engine.start()
    intents = engine.on(Succeeded("source", {"output": inline(7)}))
    settle = next(i for i in intents if isinstance(i, Settle) and i.instance == "double")
    assert settle.state == "failed"
    assert "is not a list, so the step cannot fan out over it" in settle.reason
    assert finish_of(intents) == Finish(
        "failed",
        "step 'double' failed: input 'x' (source.output) is not a list, so the step cannot "
        "fan out over it",
    )


@funade.pipeline
def zipped(xs: list[int] = [1, 2], ys: list[int] = [1]) -> None:  # noqa: B006
    add.map(a=xs, b=ys)


def test_zipped_fan_out_lists_must_have_one_length() -> None:
    engine = engine_for(zipped)
    intents = engine.start()
    (settle,) = [i for i in intents if isinstance(i, Settle)]
    assert settle.state == "failed"
    assert "differ in length (a has 2, b has 1)" in settle.reason


@funade.pipeline
def gated(threshold: float = 0.5) -> None:
    result = evaluate(3)
    with funade.when(result.score >= threshold):
        publish(result.name)
    double(1)


def test_a_condition_that_holds_runs_the_branch() -> None:
    engine = engine_for(gated, {"threshold": 0.2})
    assert set(starts(engine.start())) == {"evaluate", "double"}
    intents = engine.on(Succeeded("evaluate", {"score": inline(0.3), "name": inline("m")}))
    assert starts(intents) == ["publish"]


def test_a_condition_that_fails_skips_the_branch_and_says_why() -> None:
    engine = engine_for(gated, {"threshold": 0.9})
    engine.start()
    engine.on(Succeeded("double", {"output": inline(2)}))
    intents = engine.on(Succeeded("evaluate", {"score": inline(0.3), "name": inline("m")}))
    (settle,) = [i for i in intents if isinstance(i, Settle)]
    assert settle.state == "skipped"
    assert settle.reason == "condition not met: evaluate.score >= parameter 'threshold'"
    assert finish_of(intents) == Finish("succeeded", "")


def test_a_condition_on_a_value_that_is_not_small_json_fails_the_step() -> None:
    engine = engine_for(gated)
    engine.start()
    big = Stored(digest="d", kind="pickle", type_name="builtins.object")
    intents = engine.on(Succeeded("evaluate", {"score": big, "name": inline("m")}))
    (settle,) = [i for i in intents if isinstance(i, Settle)]
    assert settle.state == "failed"
    assert "needs a small JSON value" in settle.reason


@funade.pipeline
def after_skip() -> None:
    result = evaluate(1)
    with funade.when(result.score > 100):
        d = double(2)
    double(d)


def test_what_takes_a_skipped_output_is_skipped_too() -> None:
    engine = engine_for(after_skip)
    engine.start()
    intents = engine.on(Succeeded("evaluate", {"score": inline(0.1), "name": inline("m")}))
    settled = {i.instance: (i.state, i.reason) for i in intents if isinstance(i, Settle)}
    assert settled == {
        "double": ("skipped", "condition not met: evaluate.score > 100"),
        "double-2": ("skipped", "its input from step 'double' was skipped"),
    }


@funade.pipeline
def diamond() -> None:
    a = double(1)
    b = double(a)
    c = double(a)
    add(b, c)
    double(5)


def test_a_failure_stops_what_depends_on_it_but_not_the_rest() -> None:
    engine = engine_for(diamond)
    assert set(starts(engine.start())) == {"double", "double-4"}
    engine.on(Succeeded("double", {"output": inline(2)}))
    intents = engine.on(Failed("double-2", "ValueError: boom", retryable=False))
    settled = {i.instance: (i.state, i.reason) for i in intents if isinstance(i, Settle)}
    assert settled == {"add": ("upstream_failed", "step 'double-2' failed")}
    intents = engine.on(Succeeded("double-3", {"output": inline(4)}))
    assert finish_of(intents) is None  # double-4 still runs
    intents = engine.on(Succeeded("double-4", {"output": inline(10)}))
    assert finish_of(intents) == Finish("failed", "step 'double-2' failed: ValueError: boom")


@funade.pipeline
def flaky() -> None:
    double.with_options(retries=2, retry_backoff=0.5)(1)


def test_retries_back_off_exponentially_then_fail() -> None:
    engine = engine_for(flaky)
    engine.start()
    (retry,) = engine.on(Failed("double", "OSError: flaky"))
    assert isinstance(retry, Start)
    assert (retry.attempt, retry.delay) == (2, 0.5)
    (retry,) = engine.on(Failed("double", "OSError: flaky"))
    assert isinstance(retry, Start)
    assert (retry.attempt, retry.delay) == (3, 1.0)
    intents = engine.on(Failed("double", "OSError: flaky"))
    assert finish_of(intents) == Finish("failed", "step 'double' failed: OSError: flaky")


def test_a_failure_that_is_not_retryable_is_not_retried() -> None:
    engine = engine_for(flaky)
    engine.start()
    intents = engine.on(Failed("double", "wrong type", retryable=False))
    assert finish_of(intents) == Finish("failed", "step 'double' failed: wrong type")


def test_a_cache_hit_reuses_outputs_without_running() -> None:
    spec = chain.compile()
    first = Engine(spec, {"n": 3})
    start = first.start()[0]
    assert isinstance(start, Start)
    hits = {start.cache_key: {"output": inline(6)}}
    engine = Engine(spec, {"n": 3}, lookup=lambda keys: {k: hits[k] for k in keys if k in hits})
    intents = engine.start()
    assert isinstance(intents[0], Reuse)
    assert intents[0].outputs == {"output": inline(6)}
    assert starts(intents) == ["double-2"]


def test_a_step_with_the_cache_off_is_never_looked_up() -> None:
    @funade.pipeline
    def uncached() -> None:
        double.with_options(cache=False)(3)

    spec = uncached.compile()
    asked: list[str] = []

    def lookup(keys: list[str]) -> dict[str, dict[str, Stored]]:
        asked.extend(keys)
        return {k: {"output": inline(6)} for k in keys}

    engine = Engine(spec, {}, lookup=lookup)
    assert starts(engine.start()) == ["double"]
    assert asked == []


def test_the_cache_key_changes_with_code_inputs_version_and_packages() -> None:
    node = chain.compile().nodes[0]
    three = {"x": Input("value", value=3)}
    base = cache_key(node, three)
    assert base == cache_key(node, {"x": Input("value", value=3)})
    assert base != cache_key(node, {"x": Input("value", value=4)})
    assert base != cache_key(node.model_copy(update={"code_digest": "sha256:other"}), three)
    options = node.options.model_copy(update={"cache_version": "2"})
    assert base != cache_key(node.model_copy(update={"options": options}), three)
    packages = node.packages | {"numpy": "0.0.1"}
    assert base != cache_key(node.model_copy(update={"packages": packages}), three)


def test_resume_reuses_what_succeeded_and_runs_the_rest() -> None:
    engine = engine_for(chain, done={"double": {"output": inline(6)}})
    intents = engine.start()
    assert starts(intents) == ["double-2"]
    assert not [i for i in intents if isinstance(i, Reuse)]


def test_cancel_stops_running_steps_and_settles_pending_ones() -> None:
    engine = engine_for(diamond)
    engine.start()
    intents = engine.on(CancelRequested())
    assert {i.instance for i in intents if isinstance(i, Stop)} == {"double", "double-4"}
    intents = engine.on(Stopped("double"))
    intents += engine.on(Stopped("double-4"))
    settled = {i.instance: i.state for i in intents if isinstance(i, Settle)}
    assert settled == {"double-2": "cancelled", "double-3": "cancelled", "add": "cancelled"}
    assert finish_of(intents) == Finish("cancelled", "cancelled")


def test_news_about_a_settled_instance_is_ignored() -> None:
    engine = engine_for(chain)
    engine.start()
    engine.on(Succeeded("double", {"output": inline(6)}))
    assert engine.on(Succeeded("double", {"output": inline(7)})) == []


@pytest.mark.parametrize(("op", "left", "right", "holds"), [
    ("==", 1, 1, True), ("!=", 1, 1, False), ("<", 1, 2, True), ("<=", 2, 2, True),
    (">", 1, 2, False), (">=", 2, 2, True),
])  # fmt: skip
def test_every_comparison(op: str, left: int, right: int, holds: bool) -> None:
    from funade.pipelines.engine import _holds
    from funade.pipelines.spec import Binding, Condition

    condition = Condition(
        left=Binding(kind="value", value=left),
        op=op,
        right=Binding(kind="value", value=right),  # type: ignore[arg-type]
    )
    assert _holds(condition, left, right) is holds


def test_a_comparison_of_unlike_types_fails_the_step() -> None:
    @funade.pipeline
    def odd() -> None:
        result = evaluate(3)
        with funade.when(result.name > 3):
            publish("x")

    engine = engine_for(odd)
    engine.start()
    intents = engine.on(Succeeded("evaluate", {"score": inline(0.3), "name": inline("m")}))
    (settle,) = [i for i in intents if isinstance(i, Settle)]
    assert settle.state == "failed"
    assert settle.reason == "the condition evaluate.name > 3 compares str with int"
