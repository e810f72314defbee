"""Real podman for the tests that build and run images (tests/images/, tests/deploy/backends/):
skipped only where podman is not installed; elsewhere a missing base image, or a podman that
cannot start a container, fails naming scripts/podman-setup, which makes both (as root, once per
machine: Debian's podman and a base image made from Debian packages, since no image registry is
in reach here)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from funade.api.schemas import VersionOut
from tests.deploy.conftest import Plane

PODMAN = shutil.which("podman")
ROOT = Path(__file__).resolve().parents[2]
BASE = os.environ.get("FUNADE_BASE_IMAGE", "localhost/funade-base:bookworm-py311")
CACHE = Path(os.environ.get("FUNADE_CI_CACHE", "/var/cache/funade-ci"))
SETUP = "scripts/podman-setup (as root)"

needs_podman = pytest.mark.skipif(
    PODMAN is None,
    reason="podman is not installed: run scripts/podman-setup (as root; Debian's podman, and a "
    "base image made from Debian packages)",
)


def podman(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    assert PODMAN is not None
    done = subprocess.run(
        [PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done


def remove_image(*tags: str, force: bool = False) -> None:
    """Remove the images ``tags`` name (``force``: and the containers that use them). A
    ``podman rmi`` also deletes the image's untagged parents that nothing else uses: the
    intermediate images of its build, a build cache that another build running at that moment
    may have just taken. Safe here because every test that runs podman is in one xdist group,
    one at a time (tests/conftest.py)."""
    if tags:
        podman("rmi", *(["--force"] if force else []), *tags, check=False)


@pytest.fixture(scope="module", name="podman_ready")
def podman_ready_fixture() -> Iterator[None]:
    """podman that can run a container of the base image, as scripts/podman-setup leaves it;
    CONTAINERS_CONF, unless set, is the containers.conf it wrote (for every podman started
    meanwhile, funade's too)."""
    conf = CACHE / "containers.conf"
    with pytest.MonkeyPatch.context() as patch:
        if "CONTAINERS_CONF" not in os.environ and conf.is_file():
            patch.setenv("CONTAINERS_CONF", str(conf))
        if podman("image", "exists", BASE, check=False).returncode != 0:
            pytest.fail(f"The base image {BASE} does not exist: run {SETUP}.")
        ran = podman("run", "--rm", BASE, "python", "-c", "print('ok')", check=False)
        if ran.returncode != 0:
            pytest.fail(
                f"podman cannot run a container of {BASE}: run {SETUP} and use the "
                f"containers.conf it writes (CONTAINERS_CONF={conf}). {ran.stderr}"
            )
        yield


def build_wheel(out: Path) -> Path:
    """A wheel of this checkout (hatchling's are reproducible: the same source, the same bytes,
    so an image's dependency layer is reused from one run to the next)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("funade-*.whl")
    return built


@pytest.fixture(scope="module", name="wheel")
def wheel_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of this checkout, for images that install funade (``--funade-wheel``)."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def free_port() -> int:
    """A port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(name="remote")
def remote_fixture(plane: Plane, monkeypatch: pytest.MonkeyPatch) -> Plane:
    """The control plane, as `funade build` finds it: FUNADE_URL and FUNADE_API_KEY set."""
    monkeypatch.setenv("FUNADE_URL", plane.url)
    monkeypatch.setenv("FUNADE_API_KEY", plane.client._http.headers["authorization"][7:])
    return plane


@pytest.fixture(name="made")
def made_fixture() -> Iterator[tuple[list[str], list[str]]]:
    """The containers (with their anonymous volumes) and the image tags a test made, removed
    at the end (``remove_image``; the layers below it stay, the build cache of the next run)."""
    containers: list[str] = []
    images: list[str] = []
    yield containers, images
    for name in containers:
        podman("rm", "--force", "--volumes", "--time", "2", name, check=False)
    remove_image(*images)


def log_iris(plane: Plane) -> tuple[Any, np.ndarray, VersionOut]:
    """A small scikit-learn classifier registered as iris:1 through ``plane``; the model, its
    inputs and the version. Its image's layers are test_podman_build.py's: cached once that
    ran."""
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(n_samples=60, n_features=4, n_informative=2, random_state=0)
    model = LogisticRegression().fit(x, y)
    plane.log(model, "iris", sample_input=x[:2])
    return model, x, plane.client.get_version("iris", "1")


def wait_ready(url: str, name: str | None, timeout: float) -> None:
    """Until the server at ``url`` is ready; else fail with container ``name``'s log (at once
    when it stopped; ``None``: a server that is no container)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if (
            name is not None
            and podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip() != "true"
        ):
            break
        time.sleep(0.2)
    if name is None:
        raise AssertionError(f"{url} was not ready in {timeout} s")
    logs = podman("logs", name, check=False)
    raise AssertionError(
        f"{name} was not ready in {timeout} s; its log:\n{logs.stdout}{logs.stderr}"
    )
