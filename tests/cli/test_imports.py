"""What the `funade` command imports, counted in a fresh interpreter (no timing): the CLI's help
and a call to a remote control plane import neither the web stack nor the store, and the local
case (the API run in-process, with no FUNADE_URL) builds the API without the dashboard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WEB = {"fastapi", "starlette", "strawberry", "graphql", "jinja2", "uvicorn"}
STORE = {"sqlalchemy", "alembic"}
HEAVY = {"numpy", "fsspec", "segno", "prometheus_client"}

PROBE = """
import json, sys
sys.argv = ["funade", *json.loads(sys.argv[1])]
from funade.entry import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1
roots = sorted({name.split(".")[0] for name in sys.modules})
print("\\nPROBE " + json.dumps({"code": code, "modules": roots}))
"""


def loaded(args: list[str], env: dict[str, str]) -> tuple[int, set[str]]:
    """Run `funade ARGS` in a new interpreter: its exit code and the top-level modules it had
    imported when it ended."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("PROBE ")), None)
    assert line is not None, done.stdout + done.stderr
    report = json.loads(line.removeprefix("PROBE "))
    return report["code"], set(report["modules"])


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["models", "--help"],
        ["pipeline", "run", "--help"],
        ["pipeline", "compile", "--help"],
        ["serve", "--help"],
    ],
    ids=" ".join,
)
def test_help_imports_no_web_stack_store_or_client(args: list[str]) -> None:
    code, modules = loaded(args, _env())
    assert code == 0
    assert modules & (WEB | STORE | HEAVY | {"httpx", "pydantic_settings"}) == set()


def test_models_list_against_a_control_plane_imports_only_the_client(
    app_url: str, admin_key: str
) -> None:
    """With FUNADE_URL (a control plane elsewhere) the command needs the client and the API's
    schemas (httpx, pydantic), nothing of the server."""
    code, modules = loaded(["models", "list"], _env(FUNADE_URL=app_url, FUNADE_API_KEY=admin_key))
    assert code == 0
    assert {"httpx", "pydantic"} <= modules
    assert modules & (WEB | STORE | HEAVY) == set()


def test_models_list_in_process_builds_the_api_without_the_dashboard(tmp_path: Path) -> None:
    """Without FUNADE_URL the command runs the API in-process over FUNADE_HOME, so it imports
    FastAPI, uvicorn and the store, but not the dashboard (Jinja2) or GraphQL (strawberry); and
    Alembic only to create the home, not once it is current."""
    env = _env(FUNADE_HOME=str(tmp_path / "home"))
    code, modules = loaded(["models", "list"], env)
    assert code == 0
    assert {"fastapi", "uvicorn", "sqlalchemy", "alembic"} <= modules
    assert modules & {"strawberry", "graphql", "jinja2"} == set()
    code, modules = loaded(["models", "list"], env)
    assert code == 0
    assert {"fastapi", "uvicorn", "sqlalchemy"} <= modules
    assert (
        modules & {"strawberry", "graphql", "jinja2", "alembic", "prometheus_client", "websockets"}
        == set()
    )
