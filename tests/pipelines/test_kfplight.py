"""``compile --components python``: each step's executor is exactly what ``kfp.compiler`` writes
for a ``@dsl.component`` of the generated function, with the interface of the container form;
the rest of the IR is the container form's. The end-to-end run is in test_kfplocal.py."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from kfp import compiler, dsl
from kfp.pipeline_spec import pipeline_spec_pb2

from funade.errors import InvalidInputError
from funade.pipelines.kfpir import KfpCompileError, compile_kfp
from funade.pipelines.kfplight import FUNCTION, run_python_step
from funade.pipelines.loader import load_pipeline
from tests.conftest import Result

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "churn_pipeline" / "train.py"
TARGET = f"{EXAMPLE}:training"
IMAGE = "registry.example/funade-runtime:1"


def _spec(target: str, **options: Any) -> dict[str, Any]:
    text = compile_kfp(load_pipeline(target), target=target, image=IMAGE, **options)
    return dict(next(yaml.safe_load_all(text)))


@pytest.fixture(scope="module")
def python_form() -> dict[str, Any]:
    return _spec(TARGET, env="prd", components="python")


@pytest.fixture(scope="module")
def container_form() -> dict[str, Any]:
    return _spec(TARGET, env="prd")


def _kfp_writes(code: str, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the executor, the component) kfp.compiler writes for the generated function as a
    ``@dsl.component`` whose image holds kfp."""
    module_file = tmp_path / "generated.py"
    module_file.write_text(code)
    spec = importlib.util.spec_from_file_location("generated", module_file)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    component = dsl.component(
        getattr(module, FUNCTION), base_image=IMAGE, install_kfp_package=False
    )
    path = tmp_path / "component.yaml"
    compiler.Compiler().compile(component, str(path))
    written = yaml.safe_load(path.read_text())
    executor = written["deploymentSpec"]["executors"]["exec-funade-step"]
    interface = {k: v for k, v in written["root"].items() if k.endswith("Definitions")}
    return executor, interface


def test_each_executor_is_what_kfp_compiler_writes_for_its_function(
    python_form: dict[str, Any], tmp_path: Path
) -> None:
    executors = python_form["deploymentSpec"]["executors"]
    assert len(executors) == 7
    for label, executor in executors.items():
        container = dict(executor["container"])
        container.pop("resources", None)  # the task's settings, set apart from the function
        theirs, interface = _kfp_writes(container["command"][-1], tmp_path)
        assert {"container": container} == theirs, label
        component = python_form["components"][label.replace("exec-", "comp-")]
        assert {k: v for k, v in component.items() if k.endswith("Definitions")} == interface


def test_the_interfaces_and_the_dag_are_the_container_forms(
    python_form: dict[str, Any], container_form: dict[str, Any]
) -> None:
    # a step's one output, when a parameter, is KFP's "Output" (as @dsl.component names a
    # return value); the rest is unchanged: components, inputs, artifacts, settings
    def renamed(spec: dict[str, Any]) -> str:
        rest = {k: v for k, v in spec.items() if k != "deploymentSpec"}
        return (
            yaml.safe_dump(rest)
            .replace("-output", "-Output")
            .replace(": output\n", ": Output\n")
            .replace(" output:\n", " Output:\n")
        )

    assert renamed(python_form) == renamed(container_form)
    split = python_form["components"]["comp-split"]["outputDefinitions"]["artifacts"]
    assert set(split) == {"train", "test"}
    load = python_form["components"]["comp-load-data"]["outputDefinitions"]
    assert list(load["artifacts"]) == ["output"]
    accuracy = python_form["components"]["comp-accuracy-of"]["outputDefinitions"]
    assert accuracy == {"parameters": {"Output": {"parameterType": "NUMBER_DOUBLE"}}}
    condition = python_form["root"]["dag"]["tasks"]["condition-2"]["triggerPolicy"]["condition"]
    assert condition == (
        "inputs.parameter_values['pipelinechannel--accuracy-of-Output'] >= "
        "inputs.parameter_values['pipelinechannel--min_accuracy']"
    )
    container = python_form["deploymentSpec"]["executors"]["exec-train"]["container"]
    assert container["resources"] == {
        "cpuLimit": 2.0, "memoryLimit": 4.294967296,
        "resourceCpuLimit": "2", "resourceMemoryLimit": "4Gi",
    }  # fmt: skip
    code = container["command"][-1]
    assert "'code_digest': 'sha256:" in code  # so KFP's cache key follows the step's code
    assert "'function': 'train:train'" in code


@pytest.mark.parametrize("env", [None, "dev", "prd"])
def test_the_python_form_parses_strictly(env: str | None) -> None:
    spec = _spec(TARGET, env=env, components="python")
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)


def test_an_unknown_kind_of_component_is_refused(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    result = cli(
        "pipeline", "compile", TARGET, "--target", "kfp", "--components", "docker",
        "-o", str(tmp_path / "x.yaml"),
    )  # fmt: skip
    assert result.code != 0
    err = " ".join(result.err.split())
    assert "--components 'docker' is not a kind of KFP component funade compiles steps to" in err
    assert "--components python" in err
    assert not (tmp_path / "x.yaml").exists()


def test_an_input_named_like_an_output_is_refused(write_pipeline: Callable[..., str]) -> None:
    target = write_pipeline(
        """
        class Pair(NamedTuple):
            rows: int
            other: int


        @funade.step
        def grow(rows: int) -> Pair:
            return Pair(rows + 1, rows)


        @funade.pipeline
        def flow(rows: int = 1) -> None:
            grow(rows)
        """
    )
    with pytest.raises(KfpCompileError) as caught:
        _spec(target, components="python")
    assert str(caught.value).startswith("pipeline 'flow', step 'grow': 'rows' is both an input")
    assert "--components container" in (caught.value.fix or "")
    _spec(target)  # the container form has no such limit


def test_a_component_without_its_step_reference_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="lacks code_digest, function") as caught:
        run_python_step({"pipeline": "x.py:flow"}, parameters={}, artifacts={}, outputs={})
    assert caught.value.field == "reference"


def test_every_mapping_of_the_kfpir_tests_pipeline_survives(tmp_path: Path) -> None:
    # test_kfpir's pipeline: fan-outs over a parameter and a literal, fan-ins of parameters
    # and artifacts, nested conditions, retries, resources, secrets, timeouts, no-cache steps
    from tests.pipelines.test_kfpir import flow

    container = list(
        yaml.safe_load_all(compile_kfp(flow, target="tests/flow.py:flow", image=IMAGE))
    )
    python = list(
        yaml.safe_load_all(
            compile_kfp(flow, target="tests/flow.py:flow", image=IMAGE, components="python")
        )
    )
    assert python[1] == container[1]  # the Kubernetes platform spec: secrets, timeouts
    spec = python[0]
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    for label, executor in spec["deploymentSpec"]["executors"].items():
        ours = dict(executor["container"])
        assert ours.pop("resources", None) == container[0]["deploymentSpec"]["executors"][label][
            "container"
        ].get("resources")
        theirs, interface = _kfp_writes(ours["command"][-1], tmp_path)
        assert {"container": ours} == theirs, label
        component = spec["components"][label.replace("exec-", "comp-")]
        assert {k: v for k, v in component.items() if k.endswith("Definitions")} == interface
    publish = spec["components"]["comp-condition-4"]["dag"]["tasks"]["publish"]
    assert publish["cachingOptions"] == {}  # cache=False
    assert spec["root"]["dag"]["tasks"]["condition-4"]["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--best-Output'] > "
        "inputs.parameter_values['pipelinechannel--threshold']"
    )
