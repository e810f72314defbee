"""What `funade pipeline compile --target kfp` imports, counted in a fresh interpreter (no
timing; benchmarks/kfp/RESULTS.md has the times): the protobuf module of kfp-pipeline-spec,
but not the KFP SDK's `kfp/__init__.py` (its client, kubernetes, google-cloud-storage), the web
stack, the store, the HTTP client or the data libraries; and the module it loads is the one a
later `from kfp.pipeline_spec import pipeline_spec_pb2` (the SDK's own) gets."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.pipelines.standin import FLOW as STANDIN_FLOW

FLOW = "import funade\n" + STANDIN_FLOW.format(options="")

ABSENT = {
    "kfp.client",  # what the SDK's kfp/__init__.py imports
    "kfp.dsl",
    "kfp.components",
    "kubernetes",
    "google.cloud.storage",
    "google.auth",
    "requests",
    "fastapi",
    "starlette",
    "strawberry",
    "jinja2",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "httpx",
    "pydantic_settings",
    "numpy",
    "pandas",
    "sklearn",
    "fsspec",
}

PROBE = """
import json, sys
sys.argv = ["funade", *json.loads(sys.argv[1])]
from funade.entry import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1
print("\\nPROBE " + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _probe(code: str, *args: str, cwd: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("PROBE ")), None)
    assert line is not None, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(line.removeprefix("PROBE "))
    return report


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW))
    return tmp_path


def test_the_compile_command_imports_the_protobuf_but_not_the_kfp_sdk(flow: Path) -> None:
    pytest.importorskip("kfp.client")  # the SDK installed too: what used to be imported
    args = ["pipeline", "compile", "flow.py:flow", "--target", "kfp", "-o", "out.yaml"]
    report = _probe(PROBE, json.dumps(args), cwd=flow)
    assert report["code"] == 0
    modules = set(report["modules"])
    assert "kfp.pipeline_spec.pipeline_spec_pb2" in modules
    assert "google.protobuf.json_format" in modules
    assert "kfp" not in modules  # the SDK's kfp/__init__.py did not run
    assert {m for m in modules for a in ABSENT if m == a or m.startswith(f"{a}.")} == set()
    assert (flow / "out.yaml").read_text().count("pipelineInfo") == 1


SDK_AFTER = """
import json, sys
from funade.pipelines.kfpproto import pipeline_spec_pb2
ours = pipeline_spec_pb2()
assert "kfp" not in sys.modules
from kfp import compiler, dsl
from kfp.pipeline_spec import pipeline_spec_pb2 as theirs

@dsl.container_component
def noop():
    return dsl.ContainerSpec(image="img", command=["true"])

@dsl.pipeline(name="p")
def p():
    noop()

compiler.Compiler().compile(p, sys.argv[1])
print("PROBE " + json.dumps({"same": ours is theirs, "again": pipeline_spec_pb2() is ours}))
"""


def test_the_kfp_sdk_imported_afterwards_uses_the_same_module(tmp_path: Path) -> None:
    pytest.importorskip("kfp.compiler")
    report = _probe(SDK_AFTER, str(tmp_path / "p.yaml"), cwd=tmp_path)
    assert report == {"same": True, "again": True}
    assert "name: p" in (tmp_path / "p.yaml").read_text()


SDK_FIRST = """
import json, kfp
from kfp.pipeline_spec import pipeline_spec_pb2 as theirs
from funade.pipelines.kfpproto import pipeline_spec_pb2
print("PROBE " + json.dumps({"same": pipeline_spec_pb2() is theirs}))
"""


def test_with_kfp_imported_first_the_module_is_imported_as_usual(tmp_path: Path) -> None:
    pytest.importorskip("kfp.compiler")
    assert _probe(SDK_FIRST, cwd=tmp_path) == {"same": True}


BROKEN = """
import json, sys
sys.modules["google.rpc"] = None  # kfp-pipeline-spec imports it without declaring it
from funade.errors import InvalidInputError
from funade.pipelines.kfpir import _protos
try:
    _protos()
except InvalidInputError as exc:
    print("PROBE " + json.dumps({"error": str(exc), "left": [m for m in sys.modules
                                                         if m.startswith("kfp")]}))
"""


def test_a_module_that_fails_to_load_is_named_and_not_left_half_loaded(tmp_path: Path) -> None:
    report = _probe(BROKEN, cwd=tmp_path)
    assert report["error"] == (
        "Compiling for KFP needs the kfp-pipeline-spec package and what it imports (module "
        "'google.rpc' is not installed). pip install 'funade[kfp]'"
    )
    assert report["left"] == []


def test_the_collector_is_on_again_after_a_compile_that_worked_or_failed(
    flow: Path, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command holds cyclic collections while it compiles (a new process's speed); run in
    a process that goes on (a test, a notebook), it turns them on again."""
    import gc

    monkeypatch.chdir(flow)
    assert gc.isenabled()
    done = cli("pipeline", "compile", "flow.py:flow", "--target", "kfp", "-o", "out.yaml")
    assert done.code == 0, done.err
    assert gc.isenabled()
    failed = cli("pipeline", "compile", "flow.py:nothing", "--target", "kfp", "-o", "x.yaml")
    assert failed.code == 2
    assert "nothing" in failed.err
    assert gc.isenabled()
