"""What the platform's processes import on the way to a first prediction, counted by module name
(no timing) from Python's own import report (``PYTHONPROFILEIMPORTTIME``, which `funade up`'s
children inherit): `funade up` answers without the registry's flavors and packages (numpy),
GraphQL or the gateway's server; the gateway it forks imports only what it serves with, after
what both share (``funade.gateway.prefork``); started as ``python -m funade.gateway`` (when it
cannot be forked) the gateway imports nothing of the command line, the API or the model server.
Each is seconds of a cold start on one core (benchmarks/platform)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from funade.settings import Settings
from funade.store import Database
from tests.gateway.test_prefork import healthz
from tests.security.platform import funade_up

IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$")

GATEWAY_SERVES_WITH = {
    "funade.gateway.app",
    "funade.web.front",
    "httptools",
    "uvloop",
    "sqlalchemy",
    "prometheus_client",
    "orjson",
}
NOT_IN_THE_GATEWAY = {
    "typer",  # the command line
    "rich",
    "click",
    "funade.cli",
    "fastapi",  # the API's and the model server's web stack
    "starlette",
    "uvicorn",  # the lean front is the default
    "httpx",
    "numpy",  # the registry's, the model server's
    "fsspec",  # the artifact store
    "funade.registry",
    "funade.serving.app",
    "funade.serving.server",
    "funade.api",
    "funade.deploy.backends",
}
NOT_IN_UP_TO_ANSWER = {
    "numpy",  # imported when a golden example is compared or a package registered
    "funade.registry.flavors",
    "funade.registry.package",
    "funade.registry.golden",
    "strawberry",  # GraphQL, on its first query
    "graphql",
    "websockets",
    "funade.gateway.app",  # the gateway's, imported in its process
    "funade.web.front",
    "funade.serving.app",
}


def imported(report: str) -> set[str]:
    """Every module (and each of its parents) named in an import-time report."""
    names: set[str] = set()
    for line in report.splitlines():
        if match := IMPORTED.match(line):
            parts = match[1].split(".")
            names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return names


def test_the_report_names_modules_and_their_parents() -> None:
    report = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       123 |        456 |   funade.gateway.app\n"
        "funade gateway at http://127.0.0.1:1\n"
    )
    assert imported(report) == {"funade", "funade.gateway", "funade.gateway.app"}


def _stat(pid: int) -> tuple[str, int]:
    """(name, parent pid) of ``pid``."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return text[text.index("(") + 1 : text.rindex(")")], int(fields[1])


def test_funade_up_forks_its_gateway_after_the_imports_both_need(tmp_path: Path) -> None:
    with funade_up(tmp_path / "home", PYTHONPROFILEIMPORTTIME="1") as up:
        name, parent = _stat(up.gateway_pid)
        assert (name, parent) == ("funade-gateway", up.process.pid)
        assert healthz(up.gateway_url).status_code == 200
        own = imported((up.home / "gateway.log").read_text())  # after the fork: its own
        api = imported("".join(up.seen))
    assert {"funade.gateway.app", "funade.web.front", "uvloop", "prometheus_client"} <= own
    assert own & {"sqlalchemy", "pydantic", "funade.store", "funade.settings"} == set(), "shared"
    assert own & NOT_IN_THE_GATEWAY == set()
    assert {"fastapi", "sqlalchemy", "funade.api.app"} <= api, "the report was read"
    assert api & NOT_IN_UP_TO_ANSWER == set()


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FUNADE_")}
    return {
        **environ,
        "FUNADE_HOME": str(settings.home),
        "FUNADE_DATABASE_URL": settings.resolved_database_url,
        **extra,
    }


def test_python_m_funade_gateway_imports_what_it_serves_with_only(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    url_file = tmp_path / "gateway.url"
    command = [sys.executable, "-X", "importtime", "-m", "funade.gateway", "--port", "0"]
    with subprocess.Popen(
        [*command, "--url-file", str(url_file)],
        env=_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as gateway:
        deadline = time.monotonic() + 60
        while not url_file.exists():
            assert gateway.poll() is None, "the gateway exited"
            assert time.monotonic() < deadline, "the gateway did not bind"
            time.sleep(0.02)
        assert healthz(url_file.read_text()).status_code == 200
        gateway.send_signal(signal.SIGTERM)
        _, report = gateway.communicate(timeout=60)
    modules = imported(report)
    assert modules >= GATEWAY_SERVES_WITH, "the report was read"
    assert modules & NOT_IN_THE_GATEWAY == set()


def test_funade_up_imports_no_gateway_server_to_manage_its_process() -> None:
    probe = (
        "import json, sys; import funade.gateway.server, funade.gateway.prefork; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"},
    )
    modules = set(json.loads(done.stdout))
    serving = {"funade.gateway.app", "funade.web.front", "uvicorn", "sqlalchemy"}
    assert modules & serving == set()
