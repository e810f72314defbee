"""Parameters as users write them: ``--param`` text and the config file's ``params`` parsed by
the declared type (never YAML 1.1), clear errors naming the parameter, the value and the fix;
``runs resume --param`` for parameters no reused step consumed; and a parameter used as a
Python value in the pipeline function."""

from __future__ import annotations

import datetime
import enum
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import funade
from funade.client import Client
from funade.errors import ConflictError, InvalidInputError
from funade.pipelines.config import load_env
from funade.pipelines.params import bind_params, consumers
from funade.pipelines.runs import resume_run, run_pipeline
from tests.conftest import Result


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@funade.step
def use(value: object) -> None:
    pass


@funade.pipeline
def typed(
    name: str = "a",
    lr: float = 0.1,
    n: int = 3,
    flag: bool = False,
    day: datetime.date | None = None,
    label: str | None = None,
    cs: list[float] = [0.1],  # noqa: B006
    sizes: dict[str, int] = {},  # noqa: B006
    colour: Colour = Colour.RED,
    loose=None,  # type: ignore[no-untyped-def]
    count=5,  # type: ignore[no-untyped-def]
) -> None:
    use(name)


def parsed(name: str, text: str) -> Any:
    return bind_params(typed, text={name: text})[name]


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        # A str gets the text as written: no YAML 1.1 booleans, octals, sexagesimals, nulls,
        # dates or numbers.
        *[
            ("name", text, text)
            for text in ("no", "yes", "on", "off", "0o17", "012", "1_000", "1:30", ".inf", "~")
        ],
        ("name", "2024-01-02", "2024-01-02"),
        ("name", "1.10", "1.10"),
        ("name", "", ""),
        ("name", "[a, b]", "[a, b]"),
        # Typed: parsed by the declared type.
        ("lr", "1e-3", 0.001),
        ("lr", "1E-3", 0.001),
        ("lr", ".5", 0.5),
        ("lr", "3", 3.0),
        ("n", "1_000", 1000),
        ("n", "-7", -7),
        ("n", "012", 12),
        ("flag", "true", True),
        ("flag", "False", False),
        ("flag", "yes", True),
        ("flag", "off", False),
        ("day", "null", None),
        ("label", "null", None),
        ("label", "no", "no"),
        ("cs", "[1e-3, 2]", [0.001, 2.0]),
        ("cs", "[]", []),
        ("sizes", '{"a": 1, "b": 2}', {"a": 1, "b": 2}),
        ("sizes", "{a: 1}", {"a": 1}),
        # Untyped: the default's type, else JSON, else the text.
        ("count", "7", 7),
        ("loose", "1e-3", 0.001),
        ("loose", "[1, a, true]", [1, "a", True]),
        ("loose", "yes", "yes"),
        ("loose", "0o17", "0o17"),
        ("loose", "~", "~"),
        ("loose", "NaN", "NaN"),
    ],
)
def test_param_text_is_parsed_by_the_declared_type(name: str, text: str, value: Any) -> None:
    got = parsed(name, text)
    assert got == value
    assert type(got) is type(value)


@pytest.mark.parametrize(
    ("name", "text", "expected", "fix"),
    [
        ("n", "0o17", "int", "Write a whole number, e.g. --param n=10."),
        ("n", "1:30", "int", "Write a whole number, e.g. --param n=10."),
        ("n", "1e3", "int", "Write a whole number, e.g. --param n=10."),
        ("lr", ".inf", "float", "Write a number, e.g. --param lr=0.001 (or 1e-3)."),
        ("lr", "fast", "float", "Write a number, e.g. --param lr=0.001 (or 1e-3)."),
        ("flag", "maybe", "bool", "Write true or false, e.g. --param flag=true."),
        ("cs", "[a]", "list[float]", "Write a JSON list, e.g. --param cs='[1, 2]'."),
        (
            "sizes",
            "{a: x}",
            "dict[str, int]",
            "Write a JSON object, e.g. --param sizes='{\"key\": 1}'.",
        ),
    ],
)
def test_a_value_that_is_not_of_the_type_is_refused_naming_the_fix(
    name: str, text: str, expected: str, fix: str
) -> None:
    with pytest.raises(InvalidInputError) as info:
        parsed(name, text)
    assert info.value.message == (
        f"pipeline 'typed': parameter {name!r} = {text!r} (from --param) is not of its type, "
        f"{expected}."
    )
    assert (info.value.field, info.value.value, info.value.fix) == (f"params.{name}", text, fix)


def test_infinity_and_nan_are_refused_because_runs_store_json() -> None:
    for text in ("inf", "-Infinity", "nan"):
        with pytest.raises(InvalidInputError, match="is not a finite number") as info:
            parsed("lr", text)
        assert info.value.field == "params.lr"
    with pytest.raises(InvalidInputError, match=r"parameter 'cs' = \[1.0, inf\] \(from the call"):
        bind_params(typed, given={"cs": [1.0, float("inf")]})


def test_values_json_cannot_hold_are_refused() -> None:
    """A run stores its parameters and hands them to its steps as JSON: a date or an enum
    member is refused before anything runs, not a crash in the middle."""
    with pytest.raises(InvalidInputError) as info:
        parsed("day", "2024-01-02")
    assert str(info.value) == (
        "pipeline 'typed': parameter 'day' = datetime.date(2024, 1, 2) (from --param) is a "
        "date, which a run cannot store or pass to its steps: parameters are JSON values "
        "(strings, numbers, booleans, null, lists and objects of them). Declare it as a JSON "
        "type (a str for a date, say) and convert it in the step."
    )
    assert (info.value.field, info.value.value) == ("params.day", "2024-01-02")
    with pytest.raises(
        InvalidInputError, match=r"'colour' = <Colour\.BLUE: 'blue'> .* is a Colour"
    ):
        parsed("colour", "blue")


def test_python_values_are_still_checked_strictly() -> None:
    assert bind_params(typed, given={"lr": 1})["lr"] == 1.0
    with pytest.raises(InvalidInputError, match=r"parameter 'n' = '3' \(from the call\)") as info:
        bind_params(typed, given={"n": "3"})
    assert info.value.fix == "Give a value of type int for 'n'."


def test_a_recorded_runs_json_values_bind_again() -> None:
    """What a run stored (or an API launch sent) binds again, as JSON, on resume or when a
    queued run starts."""
    values = bind_params(typed, stored={"cs": [1, 2], "lr": 1, "n": "7", "label": None})
    assert {k: values[k] for k in ("cs", "lr", "n", "label")} == {
        "cs": [1.0, 2.0],
        "lr": 1.0,
        "n": 7,
        "label": None,
    }
    with pytest.raises(InvalidInputError, match=r"'name' = 5 \(from the recorded run\)"):
        bind_params(typed, stored={"name": 5})


def test_config_file_params_are_text_parsed_by_type(tmp_path: Path) -> None:
    config = tmp_path / "funade.yaml"
    config.write_text(
        """
defaults:
  params: {lr: 1e-3}
environments:
  dev:
    params:
      name: no
      label: 1.10
      n: 012
      flag: on
      cs: [1e-3, 2]
      loose: [1, a, 0o17]
    pipeline:
      notify: [{url: "https://hooks.example.com/x", on: [failure]}]
  bad:
    params: {n: 0o17}
  listed:
    params: [1, 2]
"""
    )
    here = funade.pipeline(config=config)(typed.fn)
    env = load_env(here, "dev")
    values = bind_params(here, env=env["params"], env_name="dev")
    assert {k: values[k] for k in ("name", "label", "n", "flag", "lr", "cs", "loose")} == {
        "name": "no",
        "label": "1.10",
        "n": 12,
        "flag": True,
        "lr": 0.001,
        "cs": [0.001, 2.0],
        "loose": [1, "a", "0o17"],
    }
    assert env["pipeline"]["notify"] == [{"url": "https://hooks.example.com/x", "on": ["failure"]}]
    with pytest.raises(InvalidInputError) as info:
        bind_params(here, env=load_env(here, "bad")["params"], env_name="bad")
    assert str(info.value) == (
        "pipeline 'typed': parameter 'n' = '0o17' (from environment 'bad') is not of its type, "
        "int. Set params.n in the config file to a whole number."
    )
    with pytest.raises(InvalidInputError, match="params must be a mapping") as info:
        load_env(here, "listed")
    assert info.value.field == "environments.listed.params"


FLOW = """
import funade

@funade.step
def load(n: int) -> int:
    return n

@funade.step
def double(x: int) -> int:
    return 2 * x

@funade.step
def check(x: int, limit: int, lr: float) -> float:
    if x > limit:
        raise ValueError(f"{x} is over {limit}")
    return x * lr

@funade.pipeline
def tuning(n: int = 4, limit: int = 5, lr: float = 0.1) -> None:
    check(double(load(n)), limit, lr)
"""


def write(tmp_path: Path) -> str:
    path = tmp_path / "tuning.py"
    path.write_text(FLOW)
    return f"{path}:tuning"


def test_param_text_on_the_command_line(cli: Callable[..., Result], tmp_path: Path) -> None:
    target = write(tmp_path)
    done = cli("pipeline", "run", target, "-p", "lr=1e-3", "-p", "limit=1_000", "--json")
    assert done.code == 0, done.err
    run = json.loads(done.out)
    assert run["params"] == {"n": 4, "limit": 1000, "lr": 0.001}
    assert run["steps"][-1]["outputs"]["output"]["value"] == pytest.approx(0.008)
    bad = cli("pipeline", "run", target, "-p", "limit=0o17")
    assert bad.code == 2
    assert " ".join(bad.err.split()) == (
        "error: pipeline 'tuning': parameter 'limit' = '0o17' (from --param) is not of its "
        "type, int. Write a whole number, e.g. --param limit=10."
    )


def test_resume_takes_params_no_succeeded_step_consumed(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    target = write(tmp_path)
    assert cli("pipeline", "run", target).code == 1  # 8 is over 5: check fails
    refused = cli("runs", "resume", "1", "-p", "n=1")
    assert refused.code == 2
    assert " ".join(refused.err.split()) == (
        "error: Run 1: parameter 'n' cannot change from 4 to 1 on resume: step(s) double, load "
        "already used it and succeeded, and the resume reuses their outputs. Resume without "
        "--param n (it stays 4), or start a new run with `funade pipeline run ... --param n=...`."
    )
    assert json.loads(cli("runs", "show", "1", "--json").out)["attempt"] == 1  # nothing started
    bad = cli("runs", "resume", "1", "-p", "nope=1")
    assert "pipeline 'tuning' has no parameter 'nope'" in " ".join(bad.err.split())
    same = cli("runs", "resume", "1", "-p", "n=4", "-p", "limit=3")  # n unchanged: fine
    assert same.code == 1  # still over the limit
    resumed = cli("runs", "resume", "1", "-p", "limit=10", "-p", "lr=1e-2", "--json")
    assert resumed.code == 0, resumed.out + resumed.err
    run = json.loads(resumed.out)
    assert (run["state"], run["attempt"]) == ("succeeded", 3)
    assert run["params"] == {"n": 4, "limit": 10, "lr": 0.01}
    assert {s["instance"]: s["run_attempt"] for s in run["steps"]} == {
        "load": 1,
        "double": 1,
        "check": 3,
    }
    assert run["steps"][-1]["outputs"]["output"]["value"] == pytest.approx(0.08)


def test_resume_from_python_with_params(admin: Client, tmp_path: Path) -> None:
    target = write(tmp_path)
    failed = run_pipeline(target, client=admin)
    assert failed.state == "failed"
    with pytest.raises(ConflictError, match="step\\(s\\) double, load already used it") as info:
        resume_run(failed.id, client=admin, params={"n": 2})
    assert (info.value.field, info.value.value) == ("params.n", 2)
    run = resume_run(failed.id, client=admin, params={"limit": 8})
    assert (run.state, run.params["limit"]) == ("succeeded", 8)


def test_consumers_follow_inputs_fan_outs_conditions_and_downstream_steps() -> None:
    @funade.step
    def make(k: int) -> int:
        return k

    @funade.step
    def add(a: int, b: int) -> int:
        return a + b

    @funade.pipeline
    def graph(k: int = 1, ks: list[int] = [1, 2], gate: bool = True, free: int = 0) -> None:  # noqa: B006
        first = make(k)
        fanned = make.map(k=ks)
        with funade.when(gate):
            add(first, 1)
        use(fanned)
        add(2, 3)

    spec = graph.compile()
    assert consumers(spec, "k") == {"make", "add"}
    assert consumers(spec, "ks") == {"make-2", "use"}
    assert consumers(spec, "gate") == {"add"}
    assert consumers(spec, "free") == set()


@pytest.mark.parametrize(
    ("body", "use"),
    [
        ("for i in range(n): make(i)", "used as an integer (`range(n)`, `x[n]`)"),
        ("make(n + 1)", "used in arithmetic (`n + 1`, `n * 2`, `-n`)"),
        ("make(2 * n)", "used in arithmetic (`n + 1`, `n * 2`, `-n`)"),
        ("make(str(n))", "used as text (`str(n)`, `f'{n}'`, `print(n)`)"),
        ("make(f'run-{n}')", "used as text (`str(n)`, `f'{n}'`, `print(n)`)"),
        ("make(int(n))", "converted to a number (`int(n)`, `float(n)`, `round(n)`)"),
        ("make(len(n))", "measured (`len(n)`)"),
        ("make(n.real)", "asked for its attribute 'real'"),
    ],
)
def test_a_parameter_used_as_a_value_gets_a_one_line_error(body: str, use: str) -> None:
    namespace: dict[str, Any] = {"funade": funade}
    exec(  # noqa: S102 - the pipeline function under test
        "@funade.step\n"
        "def make(x: object) -> int:\n"
        "    return 1\n\n"
        "@funade.pipeline\n"
        "def flow(n: int = 3) -> None:\n"
        f"    {body}\n",
        namespace,
    )
    with pytest.raises(InvalidInputError) as info:
        namespace["flow"].compile()
    message = str(info.value)
    assert message == (
        f"parameter 'n' has no value while the pipeline is being built, so it cannot be {use} "
        "in the pipeline function. Pass it to a step (`my_step(n)`) and use its value inside "
        "that step; for a condition, use `with funade.when(n > 3):`."
    )
    assert "\n" not in message


def test_a_parameter_in_if_or_a_loop_says_what_to_use_instead() -> None:
    @funade.pipeline
    def branching(n: int = 3, flag: bool = True, cs: list[int] = [1]) -> None:  # noqa: B006
        if flag:
            use(n)

    with pytest.raises(InvalidInputError) as info:
        branching.compile()
    assert str(info.value) == (
        "parameter 'flag' has no value while the pipeline is being built, so it cannot be used "
        "in `if`, `while`, `and`, `or` or `not` in the pipeline function. Use `with "
        "funade.when(flag):` to run steps only when a condition on it holds."
    )

    @funade.pipeline
    def comparing(n: int = 3) -> None:
        if n > 3:
            use(n)

    with pytest.raises(InvalidInputError, match=r"^The comparison parameter 'n' > 3 has no value"):
        comparing.compile()

    @funade.pipeline
    def looping(cs: list[int] = [1]) -> None:  # noqa: B006
        for c in cs:
            use(c)

    with pytest.raises(InvalidInputError) as info:
        looping.compile()
    assert str(info.value).endswith(
        "cannot be iterated (`for x in ...`, `list(...)`) in the pipeline function. Use "
        "`my_step.map(x=cs)` to run a step once per element, or pass it to a step and loop there."
    )
