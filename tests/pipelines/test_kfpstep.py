"""``funade pipeline step``: what a compiled KFP component runs. Each test drives it as KFP's
launcher would: the args from the compiled YAML, ``{{$}}`` replaced by an executor input whose
artifact URIs are local paths (what the launcher mounts gs:// and s3:// URIs as)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from funade.errors import InvalidInputError
from funade.pipelines.kfpir import compile_kfp
from funade.pipelines.kfpstep import local_path
from funade.pipelines.loader import load_pipeline
from tests.conftest import Result

Cli = Callable[..., Result]

FLOW = """
from dataclasses import dataclass


@dataclass(frozen=True)
class Frame:
    rows: int


@funade.step
def make(rows: int) -> Frame:
    return Frame(rows)


@funade.step
def size(frame: Frame, factor: float) -> float:
    return frame.rows * factor


@funade.step
def biggest(frames: list[Frame]) -> int:
    return max(f.rows for f in frames)


@funade.pipeline
def flow(rows: int = 3) -> None:
    frame = make(rows)
    size(frame, 0.5)
    biggest(make.map(rows=[1, 2]))
"""


def _args(target: str, step: str) -> list[str]:
    spec = next(yaml.safe_load_all(compile_kfp(load_pipeline(target), target=target)))
    return list(spec["deploymentSpec"]["executors"][f"exec-{step}"]["container"]["args"])


def _run(cli: Cli, args: list[str], executor_input: dict[str, Any]) -> Result:
    given = [json.dumps(executor_input) if a == "{{$}}" else a for a in args]
    return cli("pipeline", "step", *given)


def test_a_step_stores_its_artifact_and_the_next_reads_it(
    cli: Cli, write_pipeline: Callable[..., str], tmp_path: Path
) -> None:
    target = write_pipeline(FLOW)
    made = tmp_path / "store" / "make" / "output"
    executor_output = tmp_path / "out" / "make.json"
    result = _run(
        cli,
        _args(target, "make"),
        {
            "inputs": {"parameterValues": {"rows": 3.0}},
            "outputs": {
                "artifacts": {"output": {"artifacts": [{"name": "output", "uri": str(made)}]}},
                "outputFile": str(executor_output),
            },
        },
    )
    assert result.code == 0, result.err
    written = json.loads(executor_output.read_text())["artifacts"]["output"]["artifacts"][0]
    assert written["metadata"]["funade_kind"] == "pickle"
    assert written["metadata"]["digest"].startswith("sha256:")
    assert (made / written["metadata"]["funade_file"]).is_file()

    parameter = tmp_path / "out" / "size"
    result = _run(
        cli,
        _args(target, "size"),
        {
            "inputs": {
                "parameterValues": {"factor": 0.5},
                "artifacts": {"frame": {"artifacts": [written]}},
            },
            "outputs": {"parameters": {"output": {"outputFile": str(parameter)}}},
        },
    )
    assert result.code == 0, result.err
    assert parameter.read_text() == "1.5"


def test_a_fan_in_reads_the_list_of_artifacts(
    cli: Cli, write_pipeline: Callable[..., str], tmp_path: Path
) -> None:
    target = write_pipeline(FLOW)
    made = []
    for rows in (1, 2):
        out = tmp_path / f"make-{rows}.json"
        uri = tmp_path / "store" / f"make-{rows}"
        _run(
            cli,
            _args(target, "make"),
            {
                "inputs": {"parameterValues": {"rows": rows}},
                "outputs": {
                    "artifacts": {"output": {"artifacts": [{"uri": str(uri)}]}},
                    "outputFile": str(out),
                },
            },
        )
        made.append(json.loads(out.read_text())["artifacts"]["output"]["artifacts"][0])
    parameter = tmp_path / "out" / "biggest"
    result = _run(
        cli,
        _args(target, "biggest"),
        {
            "inputs": {"artifacts": {"frames": {"artifacts": made}}},
            "outputs": {"parameters": {"output": {"outputFile": str(parameter)}}},
        },
    )
    assert result.code == 0, result.err
    assert parameter.read_text() == "2"


def test_other_code_in_the_image_is_refused(
    cli: Cli, write_pipeline: Callable[..., str], tmp_path: Path
) -> None:
    target = write_pipeline(FLOW)
    args = _args(target, "make")
    Path(target.rpartition(":")[0]).write_text(
        Path(target.rpartition(":")[0]).read_text().replace("Frame(rows)", "Frame(rows + 1)")
    )
    result = _run(cli, args, {"inputs": {"parameterValues": {"rows": 3}}, "outputs": {}})
    assert result.code != 0
    err = " ".join(result.err.split())
    assert "step 'make': its code in this image (sha256:" in err
    assert "is not the code the pipeline was compiled with" in err


def test_executor_input_that_is_not_json_is_refused(
    cli: Cli, write_pipeline: Callable[..., str]
) -> None:
    target = write_pipeline(FLOW)
    args = _args(target, "make")
    args[args.index("{{$}}")] = "{not json"
    result = cli("pipeline", "step", *args)
    assert result.code != 0
    assert "--executor-input is not JSON" in " ".join(result.err.split())


def test_uris_map_to_the_launchers_mounts() -> None:
    assert local_path("gs://bucket/run/x") == Path("/gcs/bucket/run/x")
    assert local_path("s3://bucket/x") == Path("/s3/bucket/x")
    assert local_path("minio://mlpipeline/x") == Path("/minio/mlpipeline/x")
    with pytest.raises(InvalidInputError, match="'http://x/y' is not one KFP mounts"):
        local_path("http://x/y")


def test_an_artifact_funade_did_not_store_is_refused(
    cli: Cli, write_pipeline: Callable[..., str], tmp_path: Path
) -> None:
    target = write_pipeline(FLOW)
    foreign = {"uri": str(tmp_path / "x"), "metadata": {}}
    result = _run(
        cli,
        _args(target, "size"),
        {
            "inputs": {
                "parameterValues": {"factor": 1.0},
                "artifacts": {"frame": {"artifacts": [foreign]}},
            }
        },
    )
    assert result.code != 0
    assert "input 'frame': artifact" in " ".join(result.err.split())
    assert "was not stored by a funade step" in " ".join(result.err.split())


def test_a_step_knows_its_pipelines_file_while_it_runs(
    cli: Cli, write_pipeline: Callable[..., str], tmp_path: Path
) -> None:
    # what funade.log_model reads for the git state of the project (not of KFP's entry point)
    target = write_pipeline(
        """
        @funade.step
        def where() -> str:
            return os.environ["FUNADE_RUN_SOURCE"]


        @funade.pipeline
        def flow() -> None:
            where()
        """
    )
    parameter = tmp_path / "out" / "where"
    result = _run(
        cli,
        _args(target, "where"),
        {"outputs": {"parameters": {"output": {"outputFile": str(parameter)}}}},
    )
    assert result.code == 0, result.err
    assert parameter.read_text() == target
    assert "FUNADE_RUN_SOURCE" not in os.environ
