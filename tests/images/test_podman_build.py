"""Images built for real, with podman: `funade build` of a small scikit-learn model registered
through a real control plane, on the base image scripts/podman-setup makes from Debian packages
(no registry can be reached here to pull python:3.11-slim), funade installed from a wheel of this
checkout and the frameworks from PyPI. The image runs with its port published on loopback; it
becomes ready, answers a prediction, its HEALTHCHECK passes, and it runs as uid 10001. A second
model of the same flavor and pins reuses every layer but the model's.

Skipped only where podman is not installed. Elsewhere a missing base image or a podman that
cannot start containers (this machine's rlimits) fails, naming scripts/podman-setup: it is run
once per machine, as root. The timings of each step are printed (`pytest -s`)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from funade.artifacts import unpack
from tests.conftest import Result
from tests.deploy.conftest import Plane, plane  # noqa: F401 - the control plane fixture
from tests.images.podman import (  # noqa: F401 - fixtures
    BASE,
    free_port,
    made_fixture,
    needs_podman,
    podman_ready_fixture,
    remote_fixture,
    wait_ready,
    wheel_fixture,
)
from tests.images.podman import podman as _podman

pytestmark = [
    needs_podman,
    # A first build installs funade's and scikit-learn's packages from PyPI: 30 to 45 s here,
    # more on a slower network than the suite's 300 s allow.
    pytest.mark.timeout(900),
]


def _fit(seed: int) -> tuple[Any, np.ndarray]:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(n_samples=60, n_features=4, n_informative=2, random_state=seed)
    return LogisticRegression().fit(x, y), x


def _timed(what: str, started: float, capsys: pytest.CaptureFixture[str]) -> float:
    """Seconds since ``started``, printed past the `cli` fixture's capture (`pytest -s`)."""
    took = time.monotonic() - started
    with capsys.disabled():
        print(f"\n[podman timing] {what}: {took:.1f} s")
    return took


def _layers(image: str) -> list[str]:
    inspected = json.loads(_podman("image", "inspect", image).stdout)[0]
    return list(inspected["RootFS"]["Layers"])


def test_an_sklearn_model_builds_runs_and_serves_in_a_container(
    podman_ready: None,
    wheel: Path,
    remote: Plane,
    cli: Callable[..., Result],
    made: tuple[list[str], list[str]],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    containers, images = made
    model, x = _fit(0)
    remote.log(model, "iris", sample_input=x[:2])
    version = remote.client.get_version("iris", "1")
    tag = f"localhost/funade-test/iris:{uuid.uuid4().hex[:12]}"
    images.append(tag)

    started = time.monotonic()
    built = cli("build", "iris:1", "--base", BASE, "--funade-wheel", str(wheel), "--tag", tag)
    _timed("funade build iris:1", started, capsys)
    assert built.code == 0, built.err
    assert f"Built {tag} (iris:1) with podman." in built.out
    inspected = json.loads(_podman("image", "inspect", tag).stdout)[0]
    config = inspected["Config"]
    assert config["Labels"]["dev.funade.digest"] == version.artifact.digest
    assert config["User"] == "10001:10001"
    assert inspected["Healthcheck"]["Test"][:3] == ["CMD", "python", "-c"]  # --format docker

    name = f"funade-test-{uuid.uuid4().hex[:12]}"
    containers.append(name)
    started = time.monotonic()
    _podman("run", "--detach", "--name", name, "--publish", "127.0.0.1::8080", tag)
    port = _podman("port", name, "8080").stdout.strip().rsplit(":", 1)[1]
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, name, timeout=60)
    in_container = _timed("podman run to ready", started, capsys)

    (spec,) = version.signature["inputs"]
    body = {
        "inputs": [
            {"name": spec["name"], "datatype": "FP64", "shape": [2, 4], "data": x[:2].tolist()}
        ]
    }
    answer = httpx.post(f"{url}/v2/models/iris/infer", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    outputs = {output["name"]: output["data"] for output in answer.json()["outputs"]}
    assert outputs["predict"] == model.predict(x[:2]).tolist()
    assert outputs["predict_proba"] == pytest.approx(model.predict_proba(x[:2]).ravel().tolist())
    # The same package served by a local process, for the start-up comparison.
    package = remote.client.download_artifact(version.artifact.digest, tmp_path / "iris.tar")
    unpack(package, tmp_path / "iris")
    port = str(free_port())
    started = time.monotonic()
    local = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "funade",
            "serve",
            str(tmp_path / "iris"),
            "--port",
            port,
            "--name",
            "iris",
            "--model-version",
            "1",
        ]
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", None, timeout=60)
        in_process = _timed("local funade serve to ready", started, capsys)
    finally:
        local.terminate()
        local.wait(timeout=20)
    with capsys.disabled():
        print(f"[podman timing] container / local start: {in_container / in_process:.2f}x")

    # Without systemd (here) podman schedules no health checks; `healthcheck run` runs one.
    health = _podman("healthcheck", "run", name, check=False)
    assert health.returncode == 0, f"HEALTHCHECK failed: {health.stdout}{health.stderr}"
    state = _podman("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()
    assert state == "healthy"
    assert _podman("exec", name, "id", "-u").stdout.strip() == "10001"

    # A second model of the same flavor and pins: every layer but the model's is reused.
    other, _ = _fit(1)
    remote.log(other, "iris", sample_input=x[:2])
    second = f"localhost/funade-test/iris:{uuid.uuid4().hex[:12]}"
    images.append(second)
    started = time.monotonic()
    again = cli("build", "iris:2", "--base", BASE, "--funade-wheel", str(wheel), "--tag", second)
    _timed("funade build iris:2 (same flavor and pins: cache warm)", started, capsys)
    assert again.code == 0, again.err
    first_layers, second_layers = _layers(tag), _layers(second)
    assert len(first_layers) == len(second_layers)
    assert first_layers[:-1] == second_layers[:-1]
    assert first_layers[-1] != second_layers[-1]
