"""An image built with `funade build --fetch` pulls its version from a real control plane when
the container starts: no package is baked in, `funade serve NAME:VERSION --digest D` inside the
container fetches it over HTTP with FUNADE_URL and FUNADE_API_KEY, checks the digest, caches it
under /var/cache/funade (the image's volume), and serves a prediction. With a wrong API key the
control plane refuses the fetch and the container exits saying so.

The control plane listens on 127.0.0.1 (the tests' fixture), which a container on podman's
bridge network cannot reach (its 127.0.0.1 is its own), so the container runs with
`--network host`, and its server is told `--host 127.0.0.1 --port FREE` (arguments after the
image name are appended to the entrypoint; the last --host/--port wins) so that it takes no port
on the host's other addresses. In a cluster the plane has a routable URL and none of this applies.

Skipped only where podman is not installed; a missing base image fails naming
scripts/podman-setup."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Result
from tests.deploy.conftest import Plane, plane  # noqa: F401 - the control plane fixture
from tests.images.podman import BASE, needs_podman, podman_ready_fixture, wheel_fixture  # noqa: F401
from tests.images.podman import podman as _podman

pytestmark = [
    needs_podman,
    pytest.mark.slow,
    # The layers are test_podman_build.py's (same base, wheel and pins): cached once that ran.
    pytest.mark.timeout(900),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def remote(plane: Plane, monkeypatch: pytest.MonkeyPatch) -> Plane:  # noqa: F811
    monkeypatch.setenv("FUNADE_URL", plane.url)
    monkeypatch.setenv("FUNADE_API_KEY", plane.client._http.headers["authorization"][7:])
    return plane


@pytest.fixture
def made() -> Iterator[tuple[list[str], list[str]]]:
    """The containers, volumes and image tags the test made, removed at the end."""
    containers: list[str] = []
    images: list[str] = []
    yield containers, images
    for name in containers:
        _podman("rm", "--force", "--volumes", "--time", "2", name, check=False)
    for tag in images:
        _podman("rmi", tag, check=False)


def test_a_fetch_image_pulls_its_version_from_the_control_plane_and_caches_it(
    podman_ready: None,
    wheel: Path,
    remote: Plane,
    cli: Callable[..., Result],
    made: tuple[list[str], list[str]],
) -> None:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    containers, images = made
    x, y = make_classification(n_samples=60, n_features=4, n_informative=2, random_state=0)
    model = LogisticRegression().fit(x, y)
    remote.log(model, "iris", sample_input=x[:2])
    version = remote.client.get_version("iris", "1")
    digest = version.artifact.digest
    tag = f"localhost/funade-test/iris-fetch:{uuid.uuid4().hex[:12]}"
    images.append(tag)
    built = cli(
        "build", "iris:1", "--fetch", "--base", BASE, "--funade-wheel", str(wheel), "--tag", tag
    )
    assert built.code == 0, built.err
    labels = json.loads(_podman("image", "inspect", tag).stdout)[0]["Config"]["Labels"]
    assert labels["dev.funade.fetch"] == "true"
    listed = _podman("run", "--rm", "--entrypoint", "ls", tag, "-A", "/models", check=False)
    assert listed.stdout.strip() == ""  # nothing baked in (no /models, or an empty one)

    key = remote.client._http.headers["authorization"][7:]
    name = f"funade-test-{uuid.uuid4().hex[:12]}"
    containers.append(name)
    port = _free_port()
    _podman(
        "run", "--detach", "--name", name, "--network", "host",
        "--env", f"FUNADE_URL={remote.url}", "--env", f"FUNADE_API_KEY={key}",
        tag, "--host", "127.0.0.1", "--port", str(port),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, name, timeout=90)
    _predicts(url, version.signature, model, x)
    cached = _podman("exec", name, "find", "/var/cache/funade", "-name", "*.tar*").stdout
    hex_ = digest.removeprefix("sha256:")
    assert hex_ in cached, cached

    # A wrong key: the control plane refuses the fetch, and the container exits saying so.
    refused = f"funade-test-{uuid.uuid4().hex[:12]}"
    containers.append(refused)
    _podman(
        "run", "--detach", "--name", refused, "--network", "host",
        "--env", f"FUNADE_URL={remote.url}", "--env", "FUNADE_API_KEY=fk_wrong",
        tag, "--host", "127.0.0.1", "--port", str(_free_port()),
    )  # fmt: skip
    status = _podman("wait", refused, timeout=90).stdout.strip()
    logs = _podman("logs", refused)
    assert status != "0", logs.stdout + logs.stderr
    assert "API key" in logs.stdout + logs.stderr


def _predicts(url: str, signature: dict[str, object], model: object, x: object) -> None:
    (spec,) = signature["inputs"]  # type: ignore[misc]
    rows = x[:2].tolist()  # type: ignore[index]
    body = {"inputs": [{"name": spec["name"], "datatype": "FP64", "shape": [2, 4], "data": rows}]}
    answer = httpx.post(f"{url}/v2/models/iris/infer", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    outputs = {output["name"]: output["data"] for output in answer.json()["outputs"]}
    assert outputs["predict"] == model.predict(x[:2]).tolist()  # type: ignore[attr-defined, index]


def _wait_ready(url: str, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if _podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip() != "true":
            break
        time.sleep(0.2)
    logs = _podman("logs", name, check=False)
    raise AssertionError(
        f"{name} was not ready in {timeout} s; its log:\n{logs.stdout}{logs.stderr}"
    )
