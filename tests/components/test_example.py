"""docs/components.md's example, run as the page says: a pipeline built only from
funade.components reads a CSV, splits it, trains and scores a scikit-learn model, registers it
and rolls it out; and it compiles to KFP IR (both kinds of component) that parses strictly."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from google.protobuf import json_format
from kfp import components, local
from kfp.pipeline_spec import pipeline_spec_pb2

from funade.client import Client
from funade.pipelines.kfpir import compile_kfp
from funade.pipelines.loader import load_pipeline
from tests.conftest import Result
from tests.docs.markdown import ROOT, parse

pytest.importorskip("sklearn")


def _example() -> str:
    blocks, _ = parse(ROOT / "docs" / "components.md")
    return next(b.text for b in blocks if b.first_line.startswith("# train.py: a pipeline"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    from sklearn.datasets import make_classification

    features, churned = make_classification(n_samples=400, n_features=5, random_state=0)
    frame = pd.DataFrame(features, columns=[f"f{i}" for i in range(5)])
    frame["churned"] = churned
    frame.to_csv(tmp_path / "customers.csv", index=False)
    (tmp_path / "train.py").write_text(_example())
    return tmp_path


def test_the_example_trains_registers_and_deploys(
    cli: Callable[..., Result], project: Path
) -> None:
    target = f"{project / 'train.py'}:training"
    csv = str(project / "customers.csv")
    result = cli("pipeline", "run", target, "-p", f"path={csv}", "-p", "deploy=true", "--no-logs")
    assert result.code == 0, result.out + result.err
    run = json.loads(cli("runs", "show", "1", "--json").out)
    steps = {s["instance"]: s for s in run["steps"]}
    assert {k: s["state"] for k, s in steps.items()} == {
        "read_table": "succeeded",
        "split_table": "succeeded",
        "train_and_evaluate": "succeeded",
        "register_model": "succeeded",
        "deploy_canary": "succeeded",
    }
    metrics = steps["train_and_evaluate"]["outputs"]["metrics"]["value"]
    assert set(metrics) == {"accuracy", "f1_macro", "roc_auc"}
    assert steps["split_table"]["outputs"]["test"]["length"] == 100  # stratified: 25% of each

    version = json.loads(cli("models", "show", "churn@candidate", "--json").out)
    assert version["version"] == 1
    assert version["metrics"] == metrics
    assert version["params"] == {"C": 1.0, "max_iter": 500}
    assert [i["name"] for i in version["signature"]["inputs"]] == [f"f{i}" for i in range(5)]
    assert version["lineage"]["run"]["step"] == "register_model"
    deployments = json.loads(cli("deployments", "list", "--json").out)
    assert [(d["name"], d["revisions"][0]["version"]) for d in deployments] == [("churn", 1)]

    # another estimator and its params from the command line: a cache miss for training only
    again = cli(
        "pipeline", "run", target, "-p", f"path={csv}",
        "-p", "estimator=sklearn.tree.DecisionTreeClassifier", "-p", "params={max_depth: 3}",
        "--no-logs",
    )  # fmt: skip
    assert again.code == 0, again.out + again.err
    second = json.loads(cli("runs", "show", "2", "--json").out)
    states = {s["instance"]: s["state"] for s in second["steps"]}
    assert states["split_table"] == "cached"
    assert states["train_and_evaluate"] == "succeeded"


@pytest.mark.parametrize("components", ["container", "python"])
def test_the_example_compiles_to_kfp(project: Path, components: str) -> None:
    target = f"{project / 'train.py'}:training"
    text = compile_kfp(load_pipeline(target), target=target, components=components)
    spec: dict[str, Any] = next(yaml.safe_load_all(text))
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    root = spec["root"]["inputDefinitions"]["parameters"]
    assert root["params"] == {
        "defaultValue": {"C": 1.0, "max_iter": 500.0},
        "isOptional": True,
        "parameterType": "STRUCT",
    }
    trained = spec["components"]["comp-train-and-evaluate"]["outputDefinitions"]
    assert set(trained["artifacts"]) == {"model"}
    assert trained["parameters"] == {
        "metrics": {"parameterType": "STRUCT"},
        "score": {"parameterType": "NUMBER_DOUBLE"},
    }
    condition = spec["root"]["dag"]["tasks"]["condition-1"]["triggerPolicy"]["condition"]
    # the Python form names a NamedTuple field's channel as kfp.local reads it (docs/kfp.md)
    score = "train-and-evaluate-score" if components == "container" else "train-and-evaluate--score"
    assert condition == (
        f"inputs.parameter_values['pipelinechannel--{score}'] >= "
        "inputs.parameter_values['pipelinechannel--min_accuracy']"
    )
    executor = spec["deploymentSpec"]["executors"]["exec-train-and-evaluate"]["container"]
    where = executor["args"] if components == "container" else executor["command"]
    assert any("funade.components.estimators:train_and_evaluate" in part for part in where)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")
def test_the_example_runs_on_kfp_local(
    cli: Callable[..., Result], project: Path, tmp_path: Path
) -> None:
    # its condition reads one field of train_and_evaluate's outputs (trained.score), which
    # kfp.local resolves by the channel's name (kfplight names it for kfp.local)
    target = f"{project / 'train.py'}:training"
    compiled = tmp_path / "training.yaml"
    result = cli(
        "pipeline", "compile", target, "--target", "kfp", "--components", "python",
        "-o", str(compiled),
    )  # fmt: skip
    assert result.code == 0, result.err
    root = tmp_path / "kfp-root"
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root),
        workspace_root=str(tmp_path / "kfp-workspace"),  # not a new one under /tmp each time
    )
    training = components.load_component_from_file(str(compiled))
    training(path=str(project / "customers.csv"))
    (run_root,) = root.iterdir()
    trained = run_root / "train-and-evaluate"  # its outputs' dsl.OutputPath files
    metrics = json.loads((trained / "metrics").read_text())
    assert json.loads((trained / "score").read_text()) == metrics["accuracy"] >= 0.8

    with Client() as api:
        version = api.get_version("churn", "candidate")
    assert version.metrics == metrics
    assert version.params == {"C": 1.0, "max_iter": 500}
    assert not (run_root / "deploy-canary").exists()  # deploy is false
