"""The runtime image (`funade build --runtime`) serves whichever version is named when its
container starts: built once here with `--extra sklearn` (the default extras are every flavor's
but torch's and mlflow's: docs/containers.md says what they cost to build), run with host
networking against a real control plane (as test_fetch_container.py runs a `--fetch` image, for
the same reason: the plane listens on 127.0.0.1), two containers of the one image serve two
versions of a model by NAME:VERSION, each answering what the local model predicts. A wrong API
key, and a version that does not exist, make the container exit saying so.

The image is kept after the test, tagged by a hash of its inputs (the Containerfile, the files
beside it, the wheel's bytes and the base image's id): a next run with the same wheel (hatchling's
wheels are reproducible) and base finds it and builds nothing. It is kept tagged because a
`podman rmi` of the tag also deletes its untagged parent layers (podman 4.3), so a build cache
"left behind" by removing only the tag is no cache. The first run after funade's source changed
builds it anew: funade's and scikit-learn's `pip install` layer, the cost docs/containers.md
gives. Cached runtime images of other inputs more than an hour old are removed then (a run of
this module takes minutes; one still in use by a container is left).

Skipped only where podman is not installed; a missing base image fails naming
scripts/podman-setup."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import funade
from funade.api.schemas import VersionOut
from funade.images.containerfile import runtime_build
from tests.deploy.conftest import Plane, plane  # noqa: F401 - the control plane fixture
from tests.images.podman import (  # noqa: F401 - fixtures
    BASE,
    free_port,
    made_fixture,
    needs_podman,
    podman_ready_fixture,
    remote_fixture,
    remove_image,
    wait_ready,
    wheel_fixture,
)
from tests.images.podman import podman as _podman

pytestmark = [needs_podman, pytest.mark.slow, pytest.mark.timeout(900)]

FUNADE = Path(sys.executable).with_name("funade")
"""The `funade` command of this environment (the one the tests import)."""
CACHED = "localhost/funade-test/runtime-cache"
"""The repository of the runtime images this module keeps, tagged by their inputs' hash."""


@pytest.fixture(scope="module")
def runtime(podman_ready: None, wheel: Path) -> str:
    """The runtime image with the sklearn extra, built by `funade build --runtime` on the base
    scripts/podman-setup makes, funade from a wheel of this checkout; its tag. Kept: see the
    module's docstring."""
    base_id = _podman("image", "inspect", "--format", "{{.Id}}", BASE).stdout.strip()
    context = runtime_build(
        funade_version=funade.__version__, base=BASE, extras=("sklearn",), funade_wheel=wheel
    )
    inputs = hashlib.sha256(context.containerfile.encode() + base_id.encode())
    for item in context.files:
        inputs.update(item.path.encode() + (item.content or b""))
    inputs.update(wheel.read_bytes())
    tag = f"{CACHED}:{inputs.hexdigest()[:12]}"
    started = time.monotonic()
    if _podman("image", "exists", tag, check=False).returncode != 0:
        built = subprocess.run(
            [str(FUNADE), "build", "--runtime", "--extra", "sklearn", "--base", BASE,
             "--funade-wheel", str(wheel), "--tag", tag],
            capture_output=True, text=True, timeout=840, check=False,
        )  # fmt: skip
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    print(f"\n[podman timing] runtime image {tag}: {time.monotonic() - started:.1f} s")
    old = _podman(
        "images", f"--filter=reference={CACHED}", "--filter=until=1h",
        "--format={{.Repository}}:{{.Tag}}",
    ).stdout.split()  # fmt: skip
    remove_image(*(other for other in old if other != tag))  # refused while a container uses it
    return tag


def fitted(seed: int) -> tuple[Any, np.ndarray]:
    """A linear regression on data of ``seed``: two seeds give two models that predict
    different numbers for the same rows."""
    from sklearn.datasets import make_regression
    from sklearn.linear_model import LinearRegression

    x, y = make_regression(n_samples=40, n_features=4, noise=1.0, random_state=seed)
    return LinearRegression().fit(x, y), x


def run(tag: str, remote: Plane, ref: str, *, key: str | None = None) -> tuple[str, int]:
    """A container of the runtime image serving ``ref`` (host network, listening on a free port
    of 127.0.0.1); its name and port."""
    name = f"funade-test-{uuid.uuid4().hex[:12]}"
    port = free_port()
    key = key if key is not None else remote.client._http.headers["authorization"][7:]
    _podman(
        "run", "--detach", "--name", name, "--network", "host",
        "--env", f"FUNADE_URL={remote.url}", "--env", f"FUNADE_API_KEY={key}",
        tag, ref, "--host", "127.0.0.1", "--port", str(port),
    )  # fmt: skip
    return name, port


def predictions(port: int, version: VersionOut, rows: np.ndarray) -> tuple[str, list[float]]:
    """The version the server says it answered from, and its ``predict`` output for ``rows``."""
    (spec,) = version.signature["inputs"]
    body = {
        "inputs": [
            {"name": spec["name"], "datatype": "FP64", "shape": list(rows.shape),
             "data": rows.tolist()}
        ]
    }  # fmt: skip
    answer = httpx.post(f"http://127.0.0.1:{port}/v2/models/iris/infer", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    out = answer.json()
    outputs = {output["name"]: output["data"] for output in out["outputs"]}
    return str(out.get("model_version")), list(outputs["predict"])


def exited(name: str) -> tuple[int, str]:
    """Wait for container ``name`` to stop; its exit status and log."""
    status = _podman("wait", name, timeout=120).stdout.strip()
    logs = _podman("logs", name)
    return int(status), logs.stdout + logs.stderr


def test_the_runtime_image_serves_the_version_named_at_start(
    runtime: str, remote: Plane, made: tuple[list[str], list[str]]
) -> None:
    containers, _images = made
    labels = json.loads(_podman("image", "inspect", runtime).stdout)[0]["Config"]["Labels"]
    assert labels["dev.funade.runtime"] == "true"
    assert labels["dev.funade.extras"] == "sklearn"
    first, x1 = fitted(0)
    second, x2 = fitted(1)
    remote.log(first, "iris", sample_input=x1[:2])
    remote.log(second, "iris", sample_input=x2[:2])
    rows = x1[:3]
    assert not np.allclose(first.predict(rows), second.predict(rows)), "the versions differ"

    served = {}
    for number in (1, 2):
        name, port = run(runtime, remote, f"iris:{number}")
        containers.append(name)
        served[number] = (name, port)
    for number, model in ((1, first), (2, second)):
        name, port = served[number]
        wait_ready(f"http://127.0.0.1:{port}", name, timeout=120)
        version = remote.client.get_version("iris", str(number))
        answered, predicted = predictions(port, version, rows)
        assert answered == str(number)
        assert np.allclose(predicted, model.predict(rows)), (number, predicted)
        # Fetched by digest into the container's cache volume, as a --fetch image does.
        hex_ = version.artifact.digest.removeprefix("sha256:")
        cached = _podman("exec", name, "find", "/var/cache/funade", "-name", hex_).stdout.split()
        assert sorted(path.rsplit("/", 2)[1] for path in cached) == ["blobs", "unpacked"]


def test_the_runtime_image_exits_saying_why_on_a_wrong_key_or_a_missing_version(
    runtime: str, remote: Plane, made: tuple[list[str], list[str]]
) -> None:
    containers, _images = made
    model, x = fitted(0)
    remote.log(model, "iris", sample_input=x[:2])

    refused, _port = run(runtime, remote, "iris:1", key="fk_wrong")
    containers.append(refused)
    missing, _port = run(runtime, remote, "iris:7")
    containers.append(missing)

    status, said = exited(refused)
    assert status == 2, said  # `funade serve`'s: the model failed to load
    assert "API key" in said, said
    assert "Traceback" not in said, said
    status, said = exited(missing)
    assert status == 2, said
    assert "Model 'iris' has no version 7" in said, said
    assert "Traceback" not in said, said
