"""The drills of test_zero_failures.py (blue/green, canary, automatic rollback, kill -9 of a
replica, kill -9 of the control plane, each under load with no failed request) with the replicas
in containers: `funade up` with ``backend = "podman"``, real podman as root, each version's
image built on demand (on the base scripts/podman-setup makes, funade from a wheel of this
checkout). A module of its own, so that pytest-xdist (--dist loadscope) runs it on the other
worker from the local backend's drills.

Skipped only where podman is not installed (CI installs it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.images.podman import BASE, needs_podman, podman_ready_fixture, wheel_fixture  # noqa: F401
from tests.reliability.conftest import Platform, started
from tests.reliability.test_zero_failures import (  # noqa: F401 - the drills, run here again
    test_blue_green_switch,
    test_broken_versions_are_rolled_back_automatically,
    test_canary_to_full_traffic,
    test_kill_9_of_one_of_two_replicas,
    test_kill_9_of_the_control_plane_and_its_restart,
)

pytestmark = [needs_podman, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def platform(
    podman_ready: None, wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """The drills' platform, its replicas podman containers."""
    env = {
        "FUNADE_CONTAINER_BASE_IMAGE": BASE,
        "FUNADE_CONTAINER_FUNADE_WHEEL": str(wheel),
    }
    home = tmp_path_factory.mktemp("reliability-podman") / "home"
    with started(home, "podman", env) as platform:
        yield platform
