"""The example pipeline, compiled with ``--components python``, runs end to end on KFP's own
local runner (``kfp.local.SubprocessRunner``, kfp 2.17.3) — its fan-out, fan-in and nested
conditions driven by KFP, each step's code run by funade — and gives the same outputs (by
digest) and the same registered model as ``funade pipeline run`` on the same embedded funade."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kfp import components, local

from funade.client import Client
from tests.conftest import Result

pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "churn_pipeline" / "train.py"
TARGET = f"{EXAMPLE}:training"


def _kfp_outputs(run_root: Path) -> dict[str, dict[str, Any]]:
    """Each task's outputs as kfp.local left them: artifacts by the digest funade stored them
    under, parameters by value; keyed like funade's step instances (``train[1]``)."""
    out: dict[str, dict[str, Any]] = {}
    for executor_output in sorted(run_root.rglob("executor_output.json")):
        parts = executor_output.parent.relative_to(run_root).parts
        instance = parts[-1].replace("-", "_")
        if parts[0].startswith("for-loop-"):
            instance += f"[{parts[0].rsplit('-', 1)[1]}]"
        written = json.loads(executor_output.read_text())
        outputs = out.setdefault(instance, {})
        for name, listed in written.get("artifacts", {}).items():
            outputs[name.lower()] = listed["artifacts"][0]["metadata"]["digest"]
        for name, value in written.get("parameterValues", {}).items():  # returned values
            outputs[name.lower()] = value
        for parameter in executor_output.parent.iterdir():  # written to dsl.OutputPath files
            if parameter.is_file() and parameter.name != "executor_output.json":
                outputs[parameter.name] = json.loads(parameter.read_text())
    return out


def _funade_outputs(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        step["instance"]: {
            name: output["value"] if output["inline"] else output["digest"]
            for name, output in step["outputs"].items()
        }
        for step in run["steps"]
        if step["state"] == "succeeded"
    }


def _model(version: int) -> dict[str, Any]:
    with Client() as api:
        got = api.get_version("churn", version)
    git = got.lineage["git"]
    return {
        "digest": got.artifact.digest,
        "params": got.params,
        "metrics": got.metrics,
        "datasets": {k: v["digest"] for k, v in got.lineage["datasets"].items()},
        # the project's repository (not that of KFP's executor or funade's entry point)
        "git": git and {k: git[k] for k in ("root", "commit", "dirty")},
    }


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")
def test_the_example_runs_on_kfp_local_as_funade_runs_it(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    compiled = tmp_path / "training.yaml"
    result = cli(
        "pipeline", "compile", TARGET, "--target", "kfp", "--env", "dev",
        "--components", "python", "-o", str(compiled),
    )  # fmt: skip
    assert result.code == 0, result.err

    root = tmp_path / "kfp-root"
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root),
        workspace_root=str(tmp_path / "kfp-workspace"),  # not a new one under /tmp each time
    )
    training = components.load_component_from_file(str(compiled))
    task = training()  # runs the whole pipeline, raising if a task fails
    assert task.state.name == "FINAL"
    (run_root,) = root.iterdir()
    on_kfp = _kfp_outputs(run_root)

    here = cli("pipeline", "run", TARGET, "--env", "dev", "--no-logs")
    assert here.code == 0, here.out + here.err
    run = json.loads(cli("runs", "show", "1", "--json").out)
    by_funade = _funade_outputs(run)

    # every step ran on both, fan-out instances included; ship's condition (deploy) was false
    assert set(on_kfp) == set(by_funade) == {
        "load_data", "split", "train[0]", "train[1]", "pick_best", "accuracy_of", "register",
    }  # fmt: skip
    assert {s["instance"]: s["state"] for s in run["steps"]}["ship"] == "skipped"
    # the same outputs, by digest (the models' pickles too), except the version each registered
    assert on_kfp.pop("register") == {"output": 1}
    assert by_funade.pop("register") == {"output": 2}
    assert on_kfp == by_funade
    assert on_kfp["accuracy_of"]["output"] >= 0.8  # so the condition around register held

    # the same model: the same file, parameters, metrics and test data
    registered_on_kfp, registered_here = _model(1), _model(2)
    assert registered_on_kfp == registered_here
    assert registered_on_kfp["metrics"] == {"accuracy": on_kfp["accuracy_of"]["output"]}
    assert registered_on_kfp["git"] == registered_here["git"]
    assert registered_on_kfp["git"]["root"] == str(EXAMPLE.parents[2])
