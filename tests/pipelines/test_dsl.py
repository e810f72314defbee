"""Building pipelines: the DAG from the data flow, and every mistake refused before a run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import pytest

import funade
from funade.errors import InvalidInputError
from funade.pipelines.config import apply_env, load_env
from funade.pipelines.params import bind_params, parse_assignments


@funade.step
def load(rows: int) -> list[float]:
    return [float(i) for i in range(rows)]


class Split(NamedTuple):
    train: list[float]
    test: list[float]


@funade.step(retries=2, timeout="10m", cache_version="v2", resources={"memory": "2Gi"})
def split(data: list[float]) -> Split:
    return Split(data[:-1], data[-1:])


@funade.step
def fit(train: list[float], c: float) -> float:
    return sum(train) * c


@funade.step
def best(scores: list[float]) -> float:
    return max(scores)


@funade.pipeline(max_duration="1h", max_parallel=3)
def training(rows: int = 10, cs: list[float] = [0.1, 1.0]) -> None:  # noqa: B006
    """Train and pick the best."""
    parts = split(load(rows))
    scores = fit.partial(train=parts.train).map(c=cs)
    with funade.when(best(scores) > 0.5):
        load(1)


def test_the_dag_follows_the_data_flow() -> None:
    spec = training.compile(source="x.py:training")
    assert [n.id for n in spec.nodes] == ["load", "split", "fit", "best", "load-2"]
    nodes = {n.id: n for n in spec.nodes}
    assert nodes["split"].inputs["data"].describe() == "load.output"
    assert nodes["split"].outputs == {"train": "list[float]", "test": "list[float]"}
    assert nodes["fit"].map_over == ["c"]
    assert nodes["fit"].inputs["c"].describe() == "parameter 'cs'"
    assert nodes["best"].inputs["scores"].describe() == "every fit.output"
    assert nodes["load-2"].when[0].describe() == "best.output > 0.5"
    assert nodes["split"].options.retries == 2
    assert nodes["split"].options.timeout == 600
    assert nodes["split"].options.resources == {"memory": "2Gi"}
    assert spec.max_duration == 3600
    assert spec.max_parallel == 3
    assert spec.description == "Train and pick the best."
    assert [(p.name, p.type, p.required, p.default) for p in spec.params] == [
        ("rows", "int", False, 10),
        ("cs", "list[float]", False, [0.1, 1.0]),
    ]
    assert nodes["load"].function == f"{__name__}:load"


def test_a_step_called_outside_a_pipeline_is_a_plain_function() -> None:
    assert load(3) == [0.0, 1.0, 2.0]
    assert fit.partial(train=[1.0, 2.0]).map(c=[1.0, 2.0]) == [3.0, 6.0]


def test_after_orders_steps_without_data_and_a_cycle_is_refused() -> None:
    @funade.pipeline
    def ordered() -> None:
        a = load(1)
        load(2).after(a)

    assert ordered.compile().nodes[1].after == ["load"]

    @funade.pipeline
    def looped() -> None:
        a = load(1)
        b = load(2).after(a)
        a.after(b)

    with pytest.raises(InvalidInputError, match="pipeline 'looped' has a cycle: load") as info:
        looped.compile()
    assert "Remove one of the .after" in str(info.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (lambda: load(), "pipeline 'bad', step 'load': input 'rows' is not given"),
        (lambda: load(1, 2), "pipeline 'bad', step 'load': too many positional arguments"),
        (lambda: load(object()), "input 'rows': object <object object"),
        (lambda: fit(split(load(1)), 1.0), "returns several outputs or none"),
        (lambda: load("ten"), None),
    ],
)
def test_mistakes_in_a_pipeline_are_refused_when_it_is_built(
    body: object, message: str | None
) -> None:
    @funade.pipeline
    def bad() -> None:
        body()  # type: ignore[operator]

    if message is None:  # a literal of the wrong type is caught when the step runs
        bad.compile()
        return
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(")):
        bad.compile()


def test_an_output_or_parameter_of_the_wrong_type_is_refused() -> None:
    @funade.step
    def text() -> str:
        return "x"

    @funade.pipeline
    def typed(name: str = "a") -> None:
        load(text())

    with pytest.raises(
        InvalidInputError,
        match=re.escape(
            "step 'load', input 'rows': output text.output is a str, but the input is declared int"
        ),
    ):
        typed.compile()

    @funade.pipeline
    def by_param(name: str = "a") -> None:
        load(name)

    with pytest.raises(InvalidInputError, match="parameter 'name' is a str"):
        by_param.compile()


def test_placeholders_cannot_be_used_as_values() -> None:
    @funade.pipeline
    def branching(rows: int = 3) -> None:
        if rows > 2:
            load(rows)

    with pytest.raises(InvalidInputError, match=r"[uU]se .* `with funade\.when"):
        branching.compile()


def test_when_outside_a_pipeline_and_a_pipeline_without_steps() -> None:
    with (
        pytest.raises(InvalidInputError, match=r"funade.when\(...\) is used outside a pipeline"),
        funade.when(True),  # type: ignore[arg-type]
    ):
        pass

    @funade.pipeline
    def empty() -> None:
        pass

    with pytest.raises(InvalidInputError, match="pipeline 'empty' calls no steps"):
        empty.compile()


def test_bad_step_options_name_the_option() -> None:
    with pytest.raises(InvalidInputError, match="step 'f': option 'retries' = -1"):

        @funade.step(retries=-1)
        def f() -> None:
            pass

    with pytest.raises(InvalidInputError, match="step 'g': timeout 'soon' is not a duration"):

        @funade.step(timeout="soon")
        def g() -> None:
            pass


def test_params_are_bound_and_checked() -> None:
    assert bind_params(training) == {"rows": 10, "cs": [0.1, 1.0]}
    assert bind_params(training, text={"rows": "20", "cs": "[1, 2]"}) == {
        "rows": 20,
        "cs": [1.0, 2.0],
    }
    assert bind_params(training, env={"rows": 5}, given={"rows": 6}) == {
        "rows": 6,
        "cs": [0.1, 1.0],
    }
    with pytest.raises(InvalidInputError, match=r"parameter 'rows' = 1.5 \(from the call\) is not"):
        bind_params(training, given={"rows": 1.5})
    with pytest.raises(InvalidInputError, match=r"'training' has no parameter 'row' \(given in"):
        bind_params(training, given={"row": 1})

    @funade.pipeline
    def needs(rows: int) -> None:
        load(rows)

    with pytest.raises(InvalidInputError, match="parameter 'rows' is required and was not given"):
        bind_params(needs)
    assert parse_assignments(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(InvalidInputError, match="--param 'oops' is not NAME=VALUE"):
        parse_assignments(["oops"])


def test_environment_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "conf.yaml"
    here = funade.pipeline(config=config)(training.fn)
    with pytest.raises(InvalidInputError, match="--env dev needs a config file"):
        load_env(here, "dev")
    config.write_text("environments: [1, 2]\n")
    with pytest.raises(InvalidInputError, match="must be a mapping with an `environments:`"):
        load_env(here, "dev")
    config.write_text("environments:\n  dev: {params: {rows: 2}, colour: red}\n")
    with pytest.raises(InvalidInputError, match="environment 'dev': unknown section 'colour'"):
        load_env(here, "dev")
    config.write_text("environments: {dev: {steps: {trian: {retries: 1}}}}\n")
    spec = here.compile()
    with pytest.raises(InvalidInputError, match="options of step 'trian', which the pipeline"):
        apply_env(spec, load_env(here, "dev"), env="dev")
    config.write_text("environments: {dev: {steps: {fit: {retries: many}}}}\n")
    with pytest.raises(InvalidInputError, match="step 'fit': option 'retries' = 'many'"):
        apply_env(spec, load_env(here, "dev"), env="dev")
    config.write_text("environments: {dev: {pipeline: {speed: 1}}}\n")
    with pytest.raises(InvalidInputError, match="unknown pipeline option 'speed'"):
        apply_env(spec, load_env(here, "dev"), env="dev")
    config.write_text("environments: {dev: [\n")
    with pytest.raises(InvalidInputError, match=r"conf\.yaml is not valid YAML"):
        load_env(here, "dev")
    assert load_env(here, None) == {}
