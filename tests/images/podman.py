"""Real podman for the tests that build and run images (tests/images/, tests/deploy/backends/):
skipped only where podman is not installed; elsewhere a missing base image, or a podman that
cannot start a container, fails naming scripts/podman-setup, which makes both (as root, once per
machine: Debian's podman and a base image made from Debian packages, since no image registry is
in reach here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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
