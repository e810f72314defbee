"""Compiling for KFP and running a compiled step: secrets leave as Kubernetes Secret names,
never values; hostile parameter defaults cannot add YAML documents or keys; an executor input
cannot make a step read a file outside its artifact's folder."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from funade.errors import InvalidInputError
from funade.pipelines.kfpir import KfpCompileError, compile_kfp
from funade.pipelines.kfpstep import run_kfp_step
from funade.pipelines.loader import load_pipeline


@pytest.fixture
def write_pipeline(tmp_path: Path) -> Callable[[str], str]:
    def write(source: str) -> str:
        path = tmp_path / "code" / "flow.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text("from __future__ import annotations\n\nimport funade\n")
        path.write_text(path.read_text() + textwrap.dedent(source))
        return f"{path}:flow"

    return write


FLOW = """
@funade.step(secrets={"DB_PASSWORD": "k8s:db-credentials/password"})
def connect(note: str) -> str:
    return note


@funade.pipeline
def flow(note: str = "x") -> None:
    connect(note)
"""


def test_only_secret_names_reach_the_yaml(
    write_pipeline: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_PASSWORD", "hunter2-value")
    target = write_pipeline(FLOW)
    text = compile_kfp(load_pipeline(target), target=target)
    assert "hunter2" not in text
    platform = list(yaml.safe_load_all(text))[1]
    executor = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-connect"]
    assert executor["secretAsEnv"][0]["secretName"] == "db-credentials"


@pytest.mark.parametrize(
    "reference", ["env:DB_PASSWORD", "file:/etc/shadow", "k8s:../x/y", "k8s:UPPER/key", "plain"]
)
def test_a_secret_that_is_not_a_kubernetes_reference_is_refused(
    write_pipeline: Callable[..., str], reference: str
) -> None:
    target = write_pipeline(FLOW.replace("k8s:db-credentials/password", reference))
    with pytest.raises(KfpCompileError, match="step 'connect': secret DB_PASSWORD = "):
        compile_kfp(load_pipeline(target), target=target)


def test_a_hostile_default_stays_one_value(write_pipeline: Callable[..., str]) -> None:
    hostile = "x'\\n---\\nroot: {}\\n# Name: other\\n"
    target = write_pipeline(FLOW.replace('note: str = "x"', f'note: str = "{hostile}"'))
    text = compile_kfp(load_pipeline(target), target=target)
    documents = list(yaml.safe_load_all(text))
    assert len(documents) == 2  # the PipelineSpec and the platform spec, no more
    params = documents[0]["root"]["inputDefinitions"]["parameters"]
    assert params["note"]["defaultValue"] == "x'\n---\nroot: {}\n# Name: other\n"
    assert [ln for ln in text.splitlines() if ln.startswith("# Name:")] == ["# Name: flow"]


STEPS = """
@funade.step
def make() -> bytes:
    return b"rows"


@funade.step
def size(frame: bytes) -> int:
    return len(frame)


@funade.pipeline
def flow() -> None:
    size(make())
"""


@pytest.mark.parametrize(
    ("name", "kind"),
    [("../../../etc/passwd", "json"), ("/etc/passwd", "json"), ("a" * 64 + ".pkl", "shell")],
)
def test_an_artifact_cannot_point_outside_its_folder(
    write_pipeline: Callable[..., str], tmp_path: Path, name: str, kind: str
) -> None:
    target = write_pipeline(STEPS)
    spec = next(yaml.safe_load_all(compile_kfp(load_pipeline(target), target=target)))
    args = spec["deploymentSpec"]["executors"]["exec-size"]["container"]["args"]
    artifact = {"uri": str(tmp_path), "metadata": {"funade_kind": kind, "funade_file": name}}
    with pytest.raises(InvalidInputError, match="a funade artifact is one file"):
        run_kfp_step(
            {"inputs": {"artifacts": {"frame": {"artifacts": [artifact]}}}},
            pipeline=target,
            function=args[args.index("--function") + 1],
            code_digest=args[args.index("--code-digest") + 1],
            work_dir=tmp_path / "work",
        )
