"""Compiling to KFP v2 IR: the YAML parses strictly into KFP's protos, and each mapping is what
``kfp.compiler.Compiler`` writes for the same pipeline written with the KFP SDK's container
components (``KFP_TWIN`` below); what KFP cannot express is refused naming the step and why."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from kfp import compiler
from kfp.pipeline_spec import pipeline_spec_pb2

import funade
from funade.errors import InvalidInputError
from funade.pipelines.kfpir import DEFAULT_IMAGE, KfpCompileError, compile_kfp
from funade.pipelines.loader import load_pipeline
from tests.conftest import Result
from tests.pipelines.kfp_twin import IMAGE, kfp_mixed, kfp_twin

EXAMPLE = Path(__file__).parents[2] / "examples" / "churn_pipeline" / "train.py"


@dataclass(frozen=True)
class Frame:
    rows: int


@funade.step
def load(rows: int, seed: int) -> Frame:
    return Frame(rows + seed)


@funade.step(
    retries=2,
    retry_backoff="5s",
    timeout="10m",
    resources={"cpu": 2, "memory": "4Gi", "gpu": 1, "accelerator": "nvidia.com/gpu"},
    secrets={"DB_PASSWORD": "k8s:db-credentials/password", "TOKEN": "k8s:api/token"},
)
def fit(data: Frame, c: float) -> float:
    return data.rows * c


@funade.step
def best(scores: list[float]) -> float:
    return max(scores)


@funade.step
def model(data: Frame, c: float) -> Frame:
    return Frame(int(data.rows * c))


@funade.step
def pick(models: list[Frame]) -> Frame:
    return models[0]


@funade.step(cache=False)
def publish(chosen: Frame, tag: str) -> int:
    return chosen.rows


@funade.step(resources={"cpu": "500m", "memory_request": "512Mi", "cpu_request": 0.5})
def announce(version: int) -> str:
    return str(version)


@funade.pipeline
def flow(
    rows: int = 100,
    seed: int = 0,
    cs: list[float] = [0.1, 1.0],  # noqa: B006
    threshold: float = 0.5,
    tag: str = "candidate",
    loud: bool = False,
) -> None:
    data = load(rows, seed)
    top = best(fit.partial(data=data).map(c=cs))
    chosen = pick(model.partial(data=data).map(c=[0.5, 2.0]))
    with funade.when(top > threshold):
        version = publish(chosen, tag)
        with funade.when(loud):
            announce(version)


def _documents(text: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    docs = list(yaml.safe_load_all(text))
    return docs[0], docs[1] if len(docs) > 1 else None


@pytest.fixture(scope="module")
def theirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    """What kfp 2.17.3's compiler writes for the twin, with its component names made ours."""
    path = tmp_path_factory.mktemp("kfp") / "twin.yaml"
    compiler.Compiler().compile(kfp_twin, str(path))
    text = path.read_text()
    for name in ("load", "fit", "best", "model", "pick", "publish", "announce"):
        text = text.replace(f"k-{name}", name)
    spec, platform = _documents(text)
    assert platform is not None
    return spec, platform


@pytest.fixture(scope="module")
def ours() -> tuple[dict[str, Any], dict[str, Any]]:
    spec, platform = _documents(compile_kfp(flow, target="tests/flow.py:flow", image=IMAGE))
    assert platform is not None
    return spec, platform


def _component(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return spec["components"][f"comp-{name}"]


def _tasks(spec: dict[str, Any], group: str | None = None) -> dict[str, Any]:
    dag = spec["root"]["dag"] if group is None else _component(spec, group)["dag"]
    return dag["tasks"]


def _executor(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return spec["deploymentSpec"]["executors"][f"exec-{name}"]["container"]


# -- strict parsing ------------------------------------------------------------------------


@pytest.mark.parametrize("env", [None, "dev", "prd"])
def test_the_example_parses_strictly_into_kfps_protos(env: str | None) -> None:
    target = f"{EXAMPLE}:training"
    spec, platform = _documents(compile_kfp(load_pipeline(target), target=target, env=env))
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    if platform is not None:
        json_format.ParseDict(
            platform, pipeline_spec_pb2.PlatformSpec(), ignore_unknown_fields=False
        )
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {DEFAULT_IMAGE}


def test_ours_parses_strictly_too(ours: tuple[dict[str, Any], dict[str, Any]]) -> None:
    spec, platform = ours
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec(), ignore_unknown_fields=False)


# -- each mapping, compared with kfp.compiler ------------------------------------------------

Pair = tuple[dict[str, Any], dict[str, Any]]


def test_parameters_and_defaults_are_kfps(ours: Pair, theirs: Pair) -> None:
    assert ours[0]["root"]["inputDefinitions"] == theirs[0]["root"]["inputDefinitions"]


def test_the_environments_values_become_the_defaults() -> None:
    target = f"{EXAMPLE}:training"
    spec, _ = _documents(compile_kfp(load_pipeline(target), target=target, env="prd"))
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["rows"] == {
        "defaultValue": 20000.0,
        "isOptional": True,
        "parameterType": "NUMBER_INTEGER",
    }
    assert params["alias"]["defaultValue"] == "production"
    train = _executor(spec, "train")
    assert train["resources"]["resourceMemoryLimit"] == "4Gi"  # prd's steps.train


def test_components_inputs_and_outputs_are_kfps(ours: Pair, theirs: Pair) -> None:
    for name in ("load", "fit", "best", "model", "pick", "publish", "announce"):
        mine, kfps = _component(ours[0], name), _component(theirs[0], name)
        assert mine.get("inputDefinitions") == kfps.get("inputDefinitions"), name
        assert mine["outputDefinitions"] == kfps["outputDefinitions"], name


def test_a_fan_out_and_its_fan_in_are_kfps(ours: Pair, theirs: Pair) -> None:
    for loop in ("for-loop-1", "for-loop-3"):
        mine, kfps = _tasks(ours[0])[loop], _tasks(theirs[0])[loop]
        assert mine["parameterIterator"] == kfps["parameterIterator"], loop
        assert mine["iteratorPolicy"] == kfps["iteratorPolicy"] == {"parallelismLimit": 4}
        assert mine["inputs"] == kfps["inputs"], loop
        assert (
            _component(ours[0], loop)["inputDefinitions"]
            == (_component(theirs[0], loop)["inputDefinitions"])
        )
        assert (
            _component(ours[0], loop)["outputDefinitions"]
            == (_component(theirs[0], loop)["outputDefinitions"])
        )
        assert (
            _component(ours[0], loop)["dag"]["outputs"]
            == (_component(theirs[0], loop)["dag"]["outputs"])
        )
    for consumer in ("best", "pick"):  # the collected list: parameters, then artifacts
        mine, kfps = _tasks(ours[0])[consumer], _tasks(theirs[0])[consumer]
        assert mine["inputs"] == kfps["inputs"]
        assert mine["dependentTasks"] == kfps["dependentTasks"]
    assert (
        _tasks(ours[0], "for-loop-1")["fit"]["inputs"]
        == (_tasks(theirs[0], "for-loop-1")["fit"]["inputs"])
    )


def test_conditions_are_kfps(ours: Pair, theirs: Pair) -> None:
    outer_mine, outer_kfps = _tasks(ours[0])["condition-4"], _tasks(theirs[0])["condition-4"]
    assert outer_mine["triggerPolicy"] == outer_kfps["triggerPolicy"]
    assert outer_mine["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--best-output'] > "
        "inputs.parameter_values['pipelinechannel--threshold']"
    )
    assert outer_mine["inputs"] == outer_kfps["inputs"]
    assert outer_mine["dependentTasks"] == outer_kfps["dependentTasks"]
    inner_mine = _tasks(ours[0], "condition-4")["condition-5"]
    inner_kfps = _tasks(theirs[0], "condition-4")["condition-5"]
    assert inner_mine["triggerPolicy"] == inner_kfps["triggerPolicy"]
    assert inner_mine["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--loud'] == true"
    )
    assert (
        _tasks(ours[0], "condition-4")["publish"]["inputs"]
        == (_tasks(theirs[0], "condition-4")["publish"]["inputs"])
    )
    assert (
        _tasks(ours[0], "condition-5")["announce"]["inputs"]
        == (_tasks(theirs[0], "condition-5")["announce"]["inputs"])
    )


def test_retries_are_kfps(ours: Pair, theirs: Pair) -> None:
    mine = _tasks(ours[0], "for-loop-1")["fit"]["retryPolicy"]
    assert mine == _tasks(theirs[0], "for-loop-1")["fit"]["retryPolicy"]
    assert mine["maxRetryCount"] == 2
    assert "retryPolicy" not in _tasks(ours[0])["load"]


def test_resources_are_kfps(ours: Pair, theirs: Pair) -> None:
    for name in ("fit", "announce"):
        mine = _executor(ours[0], name)["resources"]
        assert mine == _executor(theirs[0], name)["resources"], name
    assert "resources" not in _executor(ours[0], "load")


def test_secrets_by_reference_and_timeouts_are_kfp_kubernetes(ours: Pair, theirs: Pair) -> None:
    assert ours[1] == theirs[1]
    executors = ours[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors["exec-fit"]["activeDeadlineSeconds"] == "600"
    assert "password" in str(executors)  # the key's name, never a value: there is none to see


def test_caching_follows_the_steps_and_is_kfps(ours: Pair, theirs: Pair) -> None:
    assert _tasks(ours[0])["load"]["cachingOptions"] == {"enableCache": True}
    mine = _tasks(ours[0], "condition-4")["publish"]["cachingOptions"]
    assert mine == _tasks(theirs[0], "condition-4")["publish"]["cachingOptions"] == {}


def test_no_cache_switches_every_task_off() -> None:
    spec, _ = _documents(compile_kfp(flow, target="f.py:flow", cache=False))
    tasks = [_tasks(spec)["load"], _tasks(spec, "for-loop-1")["fit"]]
    assert [t["cachingOptions"] for t in tasks] == [{}, {}]


def test_the_code_digest_is_part_of_the_component(tmp_path: Path) -> None:
    """KFP's cache key hashes the component's container: a change to the step's code changes
    the component, so KFP does not serve the old code's results."""
    source = "import funade\n\n@funade.step\ndef one(n: int) -> int:\n    return n + {}\n\n"
    source += "@funade.pipeline\ndef p(n: int = 1) -> None:\n    one(n)\n"
    args = []
    for body in ("1", "2"):
        path = tmp_path / f"code{body}" / "steps_kfp.py"
        path.parent.mkdir()
        path.write_text(source.format(body))
        target = f"{path}:p"
        spec, _ = _documents(compile_kfp(load_pipeline(target), target=target))
        args.append(_executor(spec, "one")["args"])
    digests = [a[a.index("--code-digest") + 1] for a in args]
    assert digests[0].startswith("sha256:")
    assert digests[0] != digests[1]


def test_the_container_runs_the_step_through_funade(ours: Pair) -> None:
    container = _executor(ours[0], "fit")
    assert container["image"] == IMAGE
    assert container["command"] == ["funade", "pipeline", "step"]
    args = container["args"]
    assert args[:4] == ["--executor-input", "{{$}}", "--pipeline", "tests/flow.py:flow"]
    assert args[args.index("--function") + 1] == f"{__name__}:fit"


# -- refused, naming the step and the reason ----------------------------------------------


@funade.step
def pair(a: float, b: float) -> float:
    return a + b


@funade.step(secrets={"DB_PASSWORD": "env:PRD_DB"})
def reads_env(n: int) -> int:
    return n


@funade.step(resources={"tpu_cores": 8})
def odd_resources(n: int) -> int:
    return n


@funade.step
def frame(n: int) -> Frame:
    return Frame(n)


@funade.step
def count(n: int) -> int:
    return n


@funade.pipeline
def zipped(xs: list[float] = [1.0], ys: list[float] = [2.0]) -> None:  # noqa: B006
    pair.map(a=xs, b=ys)


@funade.pipeline
def env_secret(n: int = 1) -> None:
    reads_env(n)


@funade.pipeline
def odd(n: int = 1) -> None:
    odd_resources(n)


@funade.pipeline
def on_artifact(n: int = 1) -> None:
    with funade.when(frame(n)):
        count(n)


@funade.pipeline
def truthy_int(n: int = 1) -> None:
    with funade.when(count(n)):
        count(n)


@funade.pipeline
def escapes(n: int = 1) -> None:
    with funade.when(n > 0):
        inside = count(n)
    count(inside)


@funade.pipeline
def collected_inside(cs: list[float] = [1.0], loud: bool = True) -> None:  # noqa: B006
    made = model.partial(data=frame(1)).map(c=cs)
    with funade.when(loud):
        pick(made)


@funade.pipeline
def untyped(n: Frame) -> None:
    count(1)


@funade.step
def anything(n: int) -> int | None:  # no KFP parameter type: stored as an artifact
    return n


@funade.pipeline
def mismatched(n: int = 1) -> None:
    count(anything(n))


@funade.pipeline
def clashing(n: int = 1) -> None:
    count(n)
    count.with_options(name="Count")(n)


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        (zipped, "step 'pair': it fans out over 2 lists zipped (a, b); KFP's ParallelFor"),
        (env_secret, "step 'reads_env': secret DB_PASSWORD = 'env:PRD_DB' is read from the"),
        (odd, "step 'odd_resources': resource 'tpu_cores' has no KFP form."),
        (on_artifact, "step 'count', condition 'frame.output': it tests frame.output, which is"),
        (truthy_int, "funade.when(count.output) tests truth, which KFP expresses only for"),
        (escapes, "step 'count-2', input 'n': it reads count.output, but step 'count' runs"),
        (untyped, "parameter 'n': its type Frame has no KFP parameter type."),
        (mismatched, "step 'count', input 'n': it is declared a parameter (NUMBER_INTEGER) but"),
        (clashing, "step 'Count': its KFP task name 'count' is also step 'count''s."),
        (collected_inside, "step 'pick', input 'models': it collects the fan-out of step 'model'"),
    ],
    ids=[
        "zip",
        "env-secret",
        "resource",
        "artifact-condition",
        "truthy",
        "escape",
        "type",
        "artifact-into-parameter",
        "name-clash",
        "collect-into-condition",
    ],
)
def test_what_kfp_cannot_express_is_refused(pipeline: funade.Pipeline, message: str) -> None:
    with pytest.raises(KfpCompileError) as caught:
        compile_kfp(pipeline, target="f.py:p")
    assert message in str(caught.value)
    assert caught.value.fix


def test_the_fix_for_an_env_secret_names_the_kubernetes_form() -> None:
    with pytest.raises(KfpCompileError) as caught:
        compile_kfp(env_secret, target="f.py:p")
    assert "k8s:SECRET_NAME/KEY" in str(caught.value.fix)


# -- the command ----------------------------------------------------------------------------


def test_the_command_writes_the_yaml(cli: Callable[..., Result], tmp_path: Path) -> None:
    out = tmp_path / "pipeline.yaml"
    result = cli(
        "pipeline", "compile", f"{EXAMPLE}:training", "--env", "prd", "--image", IMAGE,
        "-o", str(out),
    )  # fmt: skip
    assert result.code == 0, result.err
    # the terminal may wrap a long path anywhere: compare without any whitespace
    assert f"wrote{out}" in "".join(result.out.split()), result.out
    spec, _ = _documents(out.read_text())
    assert spec["pipelineInfo"]["name"] == "training"
    assert _executor(spec, "train")["image"] == IMAGE
    assert out.read_text().startswith("# PIPELINE DEFINITION\n# Name: training\n")


def test_the_command_refuses_an_unknown_engine(cli: Callable[..., Result], tmp_path: Path) -> None:
    result = cli(
        "pipeline", "compile", f"{EXAMPLE}:training", "--target", "argo",
        "-o", str(tmp_path / "p.yaml"),
    )  # fmt: skip
    assert result.code != 0
    assert "--target 'argo' is not an engine funade compiles for" in " ".join(result.err.split())
    assert not (tmp_path / "p.yaml").exists()


def test_without_kfp_pipeline_spec_the_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kfp.pipeline_spec", None)  # as if not installed
    with pytest.raises(InvalidInputError) as caught:
        compile_kfp(flow, target="f.py:flow")
    assert "needs the kfp-pipeline-spec package and what it imports (module" in str(caught.value)
    assert caught.value.fix == "pip install 'funade[kfp]'"


@funade.step
def score(n: int) -> float:
    return n / 2


@funade.pipeline
def mixed(limit: int = 3) -> None:
    with funade.when(score(limit) >= limit):
        count(limit)


def test_an_int_compared_with_a_float_is_cast_as_kfp_casts_it(tmp_path: Path) -> None:
    spec, _ = _documents(compile_kfp(mixed, target="f.py:mixed"))
    compiler.Compiler().compile(kfp_mixed, str(tmp_path / "mixed.yaml"))
    kfps, _ = _documents((tmp_path / "mixed.yaml").read_text().replace("k-score", "score"))
    mine = _tasks(spec)["condition-1"]["triggerPolicy"]
    assert mine == _tasks(kfps)["condition-1"]["triggerPolicy"]
    assert mine["condition"] == (
        "inputs.parameter_values['pipelinechannel--score-output'] >= "
        "double(int(inputs.parameter_values['pipelinechannel--limit']))"
    )


def test_kubernetes_secrets_come_from_the_environments_config(tmp_path: Path) -> None:
    """The docs' way: the step reads env: locally; prd's config gives the Kubernetes Secret."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "secretive.py").write_text(
        "import funade\n\n"
        "@funade.step(secrets={'DB_PASSWORD': 'env:LOCAL_DB'})\n"
        "def connect(n: int) -> int:\n    return n\n\n"
        "@funade.pipeline\ndef p(n: int = 1) -> None:\n    connect(n)\n"
    )
    (code / "funade.yaml").write_text(
        "environments:\n  prd:\n    steps:\n"
        "      connect: {secrets: {DB_PASSWORD: 'k8s:db-credentials/password'}}\n"
    )
    target = f"{code / 'secretive.py'}:p"
    with pytest.raises(KfpCompileError, match="secret DB_PASSWORD = 'env:LOCAL_DB'"):
        compile_kfp(load_pipeline(target), target=target)
    _, platform = _documents(compile_kfp(load_pipeline(target), target=target, env="prd"))
    assert platform is not None
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors["exec-connect"]["secretAsEnv"][0]["keyToEnv"] == [
        {"envVar": "DB_PASSWORD", "secretKey": "password"}
    ]
