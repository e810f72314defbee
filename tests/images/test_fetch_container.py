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
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import Result
from tests.deploy.conftest import Plane, plane  # noqa: F401 - the control plane fixture
from tests.images.podman import (  # noqa: F401 - fixtures
    BASE,
    free_port,
    log_iris,
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
    pytest.mark.slow,
    # The layers are test_podman_build.py's (same base, wheel and pins): cached once that ran.
    pytest.mark.timeout(900),
]


def test_a_fetch_image_pulls_its_version_from_the_control_plane_and_caches_it(
    podman_ready: None,
    wheel: Path,
    remote: Plane,
    cli: Callable[..., Result],
    made: tuple[list[str], list[str]],
) -> None:
    containers, images = made
    model, x, version = log_iris(remote)
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
    port = free_port()
    _podman(
        "run", "--detach", "--name", name, "--network", "host",
        "--env", f"FUNADE_URL={remote.url}", "--env", f"FUNADE_API_KEY={key}",
        tag, "--host", "127.0.0.1", "--port", str(port),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, name, timeout=90)
    _predicts(url, version.signature, model, x)
    # In the image's cache volume, by digest: the package as fetched, and unpacked.
    hex_ = digest.removeprefix("sha256:")
    cached = _podman("exec", name, "find", "/var/cache/funade", "-name", hex_).stdout.split()
    assert sorted(path.rsplit("/", 2)[1] for path in cached) == ["blobs", "unpacked"], cached

    # A wrong key: the control plane refuses the fetch, and the container exits saying so.
    refused = f"funade-test-{uuid.uuid4().hex[:12]}"
    containers.append(refused)
    _podman(
        "run", "--detach", "--name", refused, "--network", "host",
        "--env", f"FUNADE_URL={remote.url}", "--env", "FUNADE_API_KEY=fk_wrong",
        tag, "--host", "127.0.0.1", "--port", str(free_port()),
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
