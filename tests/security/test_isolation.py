"""Model code and pipeline steps started by the control plane cannot reach the platform or other
projects (issue 17, finding 1). A real `funade up` as root runs a model that tries to read the
admin key, the database, another project's package and other processes' environments, and a
pipeline step that tries the same; each attempt must fail, and each must succeed for the files
that are theirs."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

import funade
from funade.api.schemas import LaunchIn
from funade.artifacts.digest import digest_hex
from funade.client import Client
from funade.deploy.replicaurl import ReplicaHTTP
from funade.sandbox.layout import interpreter_problem
from tests.security.models import SAMPLE, Probe
from tests.security.platform import Up, funade_up, wait_rollout

BASE = 2_000_000_000

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or interpreter_problem() is not None,
    reason=f"isolation by users needs root and a Python others can run ({interpreter_problem()})",
)


def test_ci_runs_the_isolation_tests() -> None:
    """The isolation tests skip only where they cannot run; CI is not such a place."""
    assert os.geteuid() == 0


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="funade-isolation-"))
    root.chmod(0o755)  # any user could reach the home: only funade keeps it private
    with funade_up(
        root / "home",
        FUNADE_SANDBOX_DIR=str(root / "sandbox"),
        AWS_SECRET_ACCESS_KEY="the-control-planes-cloud-secret",
        FUNADE_DATABASE_URL=f"sqlite:///{root / 'home' / 'funade.db'}",
    ) as platform:
        yield platform
    import shutil

    shutil.rmtree(root, ignore_errors=True)


def _deploy(up: Up, project: str) -> int:
    with Client(url=up.url, api_key=up.key, project=project) as admin:
        if project not in {p.name for p in admin.list_projects()}:
            admin.create_project(project)
        funade.log_model(Probe(), "probe", sample_input=SAMPLE, client=admin, progress=False)
        name = "probe" if project == "default" else f"probe-{project}"
        admin.create_deployment("probe", name=name)
    deployment = wait_rollout(up, name)
    assert deployment["rollout"]["state"] == "succeeded", deployment  # type: ignore[index]
    return _project_id(up, project)


def _project_id(up: Up, project: str) -> int:
    import sqlite3

    with sqlite3.connect(up.home / "funade.db") as db:
        (number,) = db.execute("SELECT id FROM projects WHERE name = ?", (project,)).fetchone()
    return int(number)


def _ask(up: Up, deployment: str, key: str, *asks: str) -> list[str]:
    body = {
        "inputs": [{"name": "ask", "datatype": "BYTES", "shape": [len(asks)], "data": list(asks)}]
    }
    deadline = time.monotonic() + 30
    while True:  # the gateway sees a new deployment within a second of its rollout
        response = httpx.post(
            f"{up.gateway_url}/v2/models/{deployment}/infer",
            json=body,
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
        )
        if response.status_code not in (404, 503) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert response.status_code == 200, response.text
    [output] = response.json()["outputs"]
    return list(output["data"])


def test_model_code_reaches_neither_the_platform_nor_other_projects(up: Up) -> None:
    mine = _deploy(up, "default")
    theirs = _deploy(up, "other")
    with Client(url=up.url, api_key=up.key) as admin:
        key = admin.create_key("probe", ["predict"], project="default").key
        version = admin.get_version("probe", "1")
    digest = digest_hex(version.artifact.digest)
    own_package = up.sandbox / f"p{mine}" / "cache" / "unpacked" / digest
    their_package = up.sandbox / f"p{theirs}" / "cache" / "unpacked" / digest
    assert (their_package / "funade.json").is_file(), "the other project's package is there"
    pids = up.replica_pids()
    [their_replica] = pids["probe-other"]
    [my_replica] = pids["probe"]
    asks = {
        "whoami:": f"{BASE + mine}:{BASE + mine}",
        # the platform's secrets
        f"read:{up.home / 'credentials'}": "PermissionError",
        f"read:{up.home / 'funade.db'}": "PermissionError",
        f"list:{up.home}": "PermissionError",
        f"read:{up.home / 'artifacts'}": "PermissionError",
        f"read:/proc/{up.process.pid}/environ": "PermissionError",
        "env:AWS_SECRET_ACCESS_KEY": "<unset>",
        "env:FUNADE_DATABASE_URL": "<unset>",
        "env:FUNADE_API_KEY": "<unset>",
        "env:FUNADE_HOME": "<unset>",
        # what it is given on purpose: the API's address (no credential for it) and its digest
        "env:FUNADE_URL": up.url,
        "env:FUNADE_MODEL_DIGEST": version.artifact.digest,
        # another project's files and processes
        f"read:{their_package / 'funade.json'}": "PermissionError",
        f"list:{up.sandbox / f'p{theirs}'}": "PermissionError",
        f"read:/proc/{their_replica}/environ": "PermissionError",
        # its own package: readable, not writable
        f"read:{own_package / 'funade.json'}": "ok",
        f"write:{own_package / 'funade.json'}": "PermissionError",
        f"read:/proc/{my_replica}/environ": "ok",
    }
    answers = dict(zip(asks, _ask(up, "probe", key, *asks), strict=True))
    assert answers == asks
    with Client(url=up.url, api_key=up.key, project="other") as admin:
        other_key = admin.create_key("probe", ["predict"], project="other").key
    assert _ask(up, "probe-other", other_key, "whoami:") == [f"{BASE + theirs}:{BASE + theirs}"]


def test_a_replica_answers_only_its_gateway(up: Up) -> None:
    """Replicas listen on private Unix sockets; without the gateway's token, they refuse."""
    with Client(url=up.url, api_key=up.key) as admin:
        if "probe" not in {d.name for d in admin.list_deployments()}:
            _deploy(up, "default")
        replicas = admin.get_deployment("probe").replicas
    ready = [r.url for r in replicas if r.state == "ready"]
    assert ready
    assert ready[0].startswith("unix:/"), "funade up's replicas listen on Unix sockets"
    with ReplicaHTTP(10) as http:  # closed even when an assertion fails
        body = {"inputs": [{"name": "ask", "datatype": "BYTES", "shape": [1], "data": ["whoami:"]}]}
        for path in (
            "/v2/models/probe/infer",
            "/v1/models/probe:predict",
            "/v2/models/probe",
            "/metrics",
        ):
            response = http.post(ready[0], path, json=body)
            if path != "/v2/models/probe/infer":
                response = http.get(ready[0], path)
            assert response.status_code == 401, (path, response.text)
            assert response.json()["code"] == "unauthenticated"
        forged = http.post(
            ready[0],
            "/v2/models/probe/infer",
            json=body,
            headers={"authorization": f"Bearer {up.key}"},
        )
        assert forged.status_code == 401, "not even the admin key opens a replica"
        assert http.get(ready[0], "/v2/health/ready").status_code == 200, "probes stay open"


STEP = """
import funade
from tests_probe import probe

@funade.step
def snoop(asks: list[str]) -> list[str]:
    return [probe(a) for a in asks]

@funade.step
def whoami() -> list[str]:
    me = funade.Client().whoami()
    return [me.name, ",".join(me.scopes), str(me.project)]

@funade.pipeline
def snooping(asks: list[str]) -> None:
    snoop(asks)
    whoami()
"""


def test_pipeline_steps_reach_neither_the_platform_nor_other_projects(up: Up) -> None:
    import inspect
    import tempfile

    from tests.security import models

    code = Path(tempfile.mkdtemp(prefix="funade-pipeline-"))
    code.chmod(0o755)
    (code / "tests_probe.py").write_text(inspect.getsource(models))
    (code / "flow.py").write_text(STEP)
    for path in code.iterdir():
        path.chmod(0o644)
    mine = _project_id(up, "default")
    asks = {
        "whoami:": f"{BASE + mine}:{BASE + mine}",
        f"read:{up.home / 'credentials'}": "PermissionError",
        f"read:{up.home / 'funade.db'}": "PermissionError",
        f"read:/proc/{up.process.pid}/environ": "PermissionError",
        "env:AWS_SECRET_ACCESS_KEY": "<unset>",
        "env:FUNADE_DATABASE_URL": "<unset>",
    }
    with Client(url=up.url, api_key=up.key) as admin:
        run = admin.launch_run(
            LaunchIn(source=f"{code / 'flow.py'}:snooping", params={"asks": list(asks)})
        )
        deadline = time.monotonic() + 120
        while (run := admin.get_run(run.id)).state in ("queued", "running"):
            assert time.monotonic() < deadline, run
            time.sleep(0.2)
    assert run.state == "succeeded", (run.reason, admin_logs(up, run.id))
    by_step = {s.instance: s.outputs["output"]["value"] for s in run.steps}
    assert dict(zip(asks, by_step["snoop"], strict=True)) == asks
    # Its home is one made for this runner alone, and gone once it ended.
    with Client(url=up.url, api_key=up.key) as admin:
        again = admin.launch_run(
            LaunchIn(source=f"{code / 'flow.py'}:snooping", params={"asks": ["env:HOME"]})
        )
        while (again := admin.get_run(again.id)).state in ("queued", "running"):
            time.sleep(0.2)
    [home] = {s.instance: s.outputs["output"]["value"] for s in again.steps}["snoop"]
    assert home.startswith(f"{up.sandbox}/p{mine}/proc/run-{again.id}-"), home
    name, scopes, project = by_step["whoami"]
    assert (name, scopes, project) == (f"run {run.id}", "run", "default"), "a run token, not admin"


def admin_logs(up: Up, run_id: int) -> str:
    with Client(url=up.url, api_key=up.key) as admin:
        return admin.run_logs(run_id)


def test_probe_sample_is_the_same_everywhere() -> None:
    assert Probe().predict(SAMPLE)["answer"].tolist() == ["<unset>"]
    assert isinstance(np.asarray(SAMPLE["ask"]), np.ndarray)
