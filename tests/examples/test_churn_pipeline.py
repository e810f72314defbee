"""examples/churn_pipeline: the complete training pipeline the docs describe, run as a user
would (`funade pipeline run … --env dev`), then cached, then deployed through its hook."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result

pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "churn_pipeline" / "train.py"


def flat(result: Result) -> str:
    return " ".join((result.out + result.err).split())


def test_the_example_trains_registers_caches_and_deploys(cli: Callable[..., Result]) -> None:
    first = cli("pipeline", "run", f"{EXAMPLE}:training", "--env", "dev")
    assert first.code == 0, first.out + first.err
    text = flat(first)
    assert "best: C=" in text
    assert "registered churn:1 as candidate" in text
    assert "ship: skipped (condition not met: parameter 'deploy')" in text

    lineage = flat(cli("lineage", "churn@candidate"))
    assert "← run 1 of pipeline training, succeeded" in lineage
    assert "env: dev" in lineage
    assert "← step register (attempt 1)" in lineage
    assert "metrics: {'accuracy':" in lineage

    second = cli("pipeline", "run", f"{EXAMPLE}:training", "--env", "dev", "-p", "deploy=true")
    assert second.code == 0, second.out + second.err
    run = json.loads(cli("runs", "show", "2", "--json").out)
    states = {s["instance"]: s["state"] for s in run["steps"]}
    assert states["load_data"] == states["train[0]"] == states["pick_best"] == "cached"
    assert states["register"] == states["ship"] == "succeeded"
    deployments = json.loads(cli("deployments", "list", "--json").out)
    assert [(d["name"], d["revisions"][0]["version"]) for d in deployments] == [("churn", 2)]
