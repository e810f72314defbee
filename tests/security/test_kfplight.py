"""``compile --components python`` writes Python code into the pipeline's YAML: the text it
takes from the user (the pipeline's path, step names, cache_version) lands there only as string
literals, so a hostile name cannot add code to what every KFP pod runs."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import yaml

from funade.pipelines.kfpir import compile_kfp
from funade.pipelines.loader import load_pipeline

HOSTILE = "x'); import os; os.system('touch /tmp/pwned'); ('"

FLOW = f"""
from __future__ import annotations

import funade


@funade.step(name={HOSTILE!r}, cache_version={HOSTILE!r})
def make(rows: int) -> int:
    return rows


@funade.pipeline
def flow(rows: int = 1) -> None:
    make(rows)
"""


def _calls(code: str) -> list[str]:
    tree = ast.parse(code)
    return [ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)]


def test_hostile_names_stay_string_literals(tmp_path: Path) -> None:
    folder = tmp_path / "x'); import os; ('"
    folder.mkdir()
    (folder / "flow.py").write_text(FLOW)
    target = f"{folder / 'flow.py'}:flow"
    text = compile_kfp(load_pipeline(target), target=target, components="python")
    spec: dict[str, Any] = next(yaml.safe_load_all(text))
    (executor,) = spec["deploymentSpec"]["executors"].values()
    code = executor["container"]["command"][-1]
    # the only call in the code is to funade's step runner
    assert _calls(code) == ["__funade_run"]
    call = next(n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call))
    reference = ast.literal_eval(call.args[0])
    assert reference["pipeline"] == target
    assert reference["step"] == HOSTILE
    assert reference["cache_version"] == HOSTILE
