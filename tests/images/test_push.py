"""`funade build --push` against a real registry: Debian's docker-registry (the CNCF
distribution registry, which scripts/podman-setup installs) served on loopback over plain HTTP,
with its own config and storage in a temporary directory. The image of a version is built with
podman and pushed with --no-tls-verify; the registry then lists the tag, and skopeo reads the
pushed image's label back. A push without --no-tls-verify (podman speaks HTTPS, the registry
HTTP) and a push to a registry that is not there fail with an InvalidInputError naming --tag,
--push and the fix.

Skipped where podman or the registry is not installed; a missing base image fails naming
scripts/podman-setup (as root, once per machine)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
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
    wheel_fixture,
)

REGISTRY = shutil.which("docker-registry")
SKOPEO = shutil.which("skopeo")

pytestmark = [
    needs_podman,
    pytest.mark.skipif(
        REGISTRY is None or SKOPEO is None,
        reason="docker-registry or skopeo is not installed: run scripts/podman-setup (as root)",
    ),
    pytest.mark.slow,
    # The image's layers are those of test_podman_build.py's (same base, wheel and pins): cached
    # once that ran; a first build installs scikit-learn from PyPI.
    pytest.mark.timeout(900),
]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """``127.0.0.1:PORT``: a registry serving plain HTTP on loopback, storing in tmp_path."""
    assert REGISTRY is not None
    port = free_port()
    storage = tmp_path / "registry"
    storage.mkdir()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n",
        encoding="utf-8",
    )
    log = tmp_path / "registry.log"
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(
            [REGISTRY, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the registry did not start: {log.read_text()}")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_a_built_image_is_pushed_to_a_registry_over_plain_http(
    podman_ready: None,
    wheel: Path,
    remote: Plane,
    registry: str,
    cli: Callable[..., Result],
    made: tuple[list[str], list[str]],
) -> None:
    _, tags = made
    _, _, version = log_iris(remote)
    digest = version.artifact.digest
    tag = f"{registry}/models/x:{uuid.uuid4().hex[:8]}"
    tags.append(tag)
    build = ("build", "iris:1", "--base", BASE, "--funade-wheel", str(wheel), "--tag", tag)

    # podman speaks HTTPS to a registry unless told; this one serves HTTP.
    refused = cli(*build, "--push")
    assert refused.code == 2
    assert f"Built {tag} (iris:1) with podman." in refused.out
    assert f"podman could not push {tag} (--push) to the registry its --tag names" in refused.err
    assert "add --no-tls-verify" in refused.err
    assert _tags(registry) == []

    pushed = cli(*build, "--push", "--no-tls-verify")
    assert pushed.code == 0, pushed.err
    assert f"Pushed {tag}." in pushed.out
    assert _tags(registry) == [tag.rsplit(":", 1)[1]]
    assert SKOPEO is not None
    inspected = subprocess.run(
        [SKOPEO, "inspect", "--tls-verify=false", f"docker://{tag}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(inspected.stdout)["Labels"]["dev.funade.digest"] == digest

    # A registry that is not there: the same error, naming the --tag to fix.
    nowhere = f"127.0.0.1:{free_port()}/models/x:1"
    tags.append(nowhere)
    unreachable = cli(
        "build", "iris:1", "--base", BASE, "--funade-wheel", str(wheel), "--tag", nowhere,
        "--push", "--no-tls-verify",
    )  # fmt: skip
    assert unreachable.code == 2
    assert f"podman could not push {nowhere} (--push)" in unreachable.err
    assert "Name a registry that is up and that you may push to" in unreachable.err


def _tags(registry: str) -> list[str]:
    """The tags of models/x in the registry (none when the repository does not exist)."""
    answer = httpx.get(f"http://{registry}/v2/models/x/tags/list", timeout=10)
    if answer.status_code == 404:
        return []
    assert answer.status_code == 200, answer.text
    return list(answer.json()["tags"] or [])
