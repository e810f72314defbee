"""The pipeline commands, through the real `funade` entry point over a local home."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from funade.client import Client
from tests.conftest import Result

Cli = Callable[..., Result]

FLOW = """
import funade

@funade.step
def numbers(n: int) -> list[int]:
    print(f"making {n} numbers")
    return list(range(n))

@funade.step
def total(values: list[int]) -> int:
    if len(values) > 50:
        raise ValueError("too many numbers")
    return sum(values)

@funade.pipeline
def counting(n: int = 4) -> None:
    total(numbers(n))
"""


def flat(text: str) -> str:
    """What was printed, without the line breaks rich adds at the terminal's width."""
    return " ".join(text.split())


def write(tmp_path: Path, text: str = FLOW) -> str:
    path = tmp_path / "counting.py"
    path.write_text(text)
    return f"{path}:counting"


def test_run_show_list_and_logs(cli: Cli, tmp_path: Path) -> None:
    target = write(tmp_path)
    result = cli("pipeline", "run", target, "-p", "n=5")
    assert result.code == 0, result.err
    assert "numbers | making 5 numbers" in flat(result.out)
    assert re.search(r"Run 1 succeeded in [\d.]+s", result.out)

    again = cli("pipeline", "run", target, "-p", "n=5")
    assert "(2 of 2 steps from the cache)" in flat(again.out)

    shown = cli("runs", "show", "1")
    assert "Run 1 of counting — succeeded" in flat(shown.out)
    assert "params: {'n': 5}" in flat(shown.out)
    listed = cli("runs", "list", "--json")
    assert [r["id"] for r in json.loads(listed.out)] == [2, 1]
    logs = cli("runs", "logs", "1", "--step", "numbers")
    assert logs.out == "making 5 numbers\n"


def test_a_failed_run_exits_1_and_resumes_after_the_fix(cli: Cli, tmp_path: Path) -> None:
    target = write(tmp_path)
    failed = cli("pipeline", "run", target, "-p", "n=60")
    assert failed.code == 1
    assert "Run 1 failed" in flat(failed.out)
    assert "step 'total' failed: ValueError: too many numbers" in flat(failed.out)
    assert "funade runs resume 1" in flat(failed.out)
    write(tmp_path, FLOW.replace("> 50", "> 500"))
    resumed = cli("runs", "resume", "1")
    assert resumed.code == 0, resumed.out + resumed.err
    assert "Run 1 succeeded" in flat(resumed.out)
    data = json.loads(cli("runs", "show", "1", "--json").out)
    assert data["attempt"] == 2
    assert {s["instance"]: s["attempt"] for s in data["steps"]} == {"numbers": 1, "total": 2}
    assert data["steps"][1]["run_attempt"] == 2


def test_bad_input_is_refused_with_the_field_and_no_run(cli: Cli, tmp_path: Path) -> None:
    target = write(tmp_path)
    result = cli("pipeline", "run", target, "-p", "n=lots")
    assert result.code == 2
    assert "parameter 'n' = 'lots' (from --param) is not of its type, int" in flat(result.err)
    result = cli("pipeline", "run", target, "--env", "prd")
    assert result.code == 2
    assert "--env prd needs a config file" in flat(result.err)
    result = cli("pipeline", "run", str(tmp_path / "nope.py:counting"))
    assert result.code == 2
    assert "does not exist" in flat(result.err)
    result = cli("pipeline", "run", f"{tmp_path / 'counting.py'}:countin")
    assert "has no pipeline 'countin'; it has counting" in flat(result.err)
    assert json.loads(cli("runs", "list", "--json").out) == []
    assert cli("runs", "show", "7").err.startswith("error: Run 7 does not exist.")


def test_schedule_commands(cli: Cli, tmp_path: Path) -> None:
    target = write(tmp_path)
    made = cli(
        "schedule", "create", target, "--cron", "0 3 * * *", "--tz", "Asia/Tokyo", "-p", "n=3"
    )
    assert made.code == 0, made.err
    assert "Schedule counting (active): 0 3 * * * Asia/Tokyo" in flat(made.out)
    assert "params: {'n': 3}" in flat(made.out)
    assert made.out.count("next:") == 5
    listed = cli("schedule", "list", "--json")
    (schedule,) = json.loads(listed.out)
    assert schedule["source"] == target
    assert "paused" in cli("schedule", "pause", "counting").out
    assert "active" in cli("schedule", "resume", "counting").out
    bad = cli("schedule", "create", target, "--cron", "0 3 * *", "--name", "other")
    assert bad.code == 2
    assert "has 4 field(s); a cron expression has exactly 5" in flat(bad.err)
    bad = cli("schedule", "create", target, "--cron", "0 3 * * *", "-p", "m=1")
    assert "has no parameter 'm'" in flat(bad.err)
    assert cli("schedule", "delete", "counting").code == 0
    assert json.loads(cli("schedule", "list", "--json").out) == []


def test_lineage_and_metrics(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "register.py"
    path.write_text(
        """
import numpy as np
import funade

class Doubler:
    def load(self, path):
        pass

    def predict(self, x):
        return x * 2

@funade.step(cache=False)
def register(tag: str) -> int:
    version = funade.log_model(Doubler(), "doubler", sample_input=np.ones((2, 3)),
                               params={"tag": tag}, progress=False)
    return version.version

@funade.pipeline(permissions=["register:doubler"])
def shipping(tag: str = "a") -> None:
    register(tag)
"""
    )
    assert cli("pipeline", "run", f"{path}:shipping", "-p", "tag=b").code == 0
    shown = cli("lineage", "doubler:1")
    assert shown.code == 0, shown.err
    assert "← run 1 of pipeline shipping, succeeded" in flat(shown.out)
    assert "params: {'tag': 'b'}" in flat(shown.out)
    assert "← step register (attempt 1)" in flat(shown.out)
    assert "input tag: {'value': 'b'}" in flat(shown.out)

    with Client() as api:
        version = api.get_version("doubler", "1")
        assert version.lineage["run"]["id"] == 1
        text = api._http.get("/metrics").text  # the client's key is a read key and more
    assert (
        'funade_pipeline_runs_total{pipeline="shipping",project="default",state="succeeded"} 1.0'
        in text
    )
    assert (
        'funade_pipeline_steps_total{pipeline="shipping",project="default",state="succeeded",'
        'step="register"} 1.0' in text
    )
    assert (
        'funade_pipeline_last_success_timestamp_seconds{pipeline="shipping",project="default"}'
        in text
    )
