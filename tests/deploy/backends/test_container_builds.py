"""Image builds run off the reconciler's thread (funade.deploy.backends.container with
funade.images.background), with real podman as root behind a builder stand-in: a `podman`
script that holds `build` of one tag until the test lets it go and hands every other command,
and the held build once let go, to the real podman. While one version's build is held, another
deployment's replica, on an image already built, becomes ready and serves; the held one is
STARTING with the detail "building image TAG", then ready and serving once its build finishes.
A build that fails (a base image that is not there) makes its replica exit with the builder's
own words, counted as a crash: the next start, after the backoff, builds again. An image tagged
for the package but made by another funade (another checkout's wheel) is built again, not run.

Skipped only where podman is not installed; a missing base image fails naming
scripts/podman-setup. The `source` fixture (test_container.py's) builds the arithmetic model's
image first, which on a machine whose builder holds no layer yet takes a minute or more."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import funade
from funade.deploy.backends import Replica, ReplicaState
from funade.deploy.backends.container import ContainerBackend
from funade.deploy.reconcile import Desired, Reconciler
from funade.images.containerfile import default_tag
from funade.images.engine import ContainerEngine
from tests.deploy.backends.test_container import (  # noqa: F401 - fixtures
    CHURN,
    blobs,
    crashed,
    dispose,
    make_backend,
    predict,
    source,
    spec_of,
)
from tests.deploy.conftest import until
from tests.deploy.test_local_backend import Blobs
from tests.images.podman import (  # noqa: F401 - fixtures
    BASE,
    PODMAN,
    needs_podman,
    podman,
    podman_ready_fixture,
    remove_image,
    wheel_fixture,
)

pytestmark = [needs_podman, pytest.mark.timeout(900)]

HOLDING = """#!/bin/sh
# A builder stand-in: `build ... -t {tag} ...` waits until {release} exists (after writing
# {held}); everything else, and that build once let go, is the real podman's.
if [ "$1" = build ]; then
  case " $* " in
    *" -t {tag} "*)
      touch {held}
      while [ ! -e {release} ]; do sleep 0.2; done ;;
  esac
fi
exec {podman} "$@"
"""


NewBackend = Callable[..., ContainerBackend]


@pytest.fixture
def new_backend(
    podman_ready: None,
    tmp_path: Path,
    wheel: Path,
    blobs: Blobs,  # noqa: F811
) -> Iterator[NewBackend]:
    """``new_backend(engine=None, base=BASE)``: a backend (replicas on TCP, an owner of its own)
    over this module's packages and wheel; each disposed of (``dispose``) at the end."""
    made: list[ContainerBackend] = []

    def make(engine: ContainerEngine | None = None, base: str = BASE) -> ContainerBackend:
        root = tmp_path / f"c{len(made)}"
        made.append(make_backend(root, wheel, blobs, engine=engine, unix=False, base=base))
        return made[-1]

    yield make
    for backend in made:
        dispose(backend)


def test_a_held_build_stalls_no_other_deployment_and_its_replica_starts_once_built(
    tmp_path: Path,
    source: str,  # noqa: F811
    new_backend: NewBackend,
) -> None:
    held = f"held{uuid.uuid4().hex[:8]}"  # a model whose image no one has built
    tag = default_tag(held, 1, source)
    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "bin" / "podman"
    script.parent.mkdir()
    assert PODMAN is not None
    script.write_text(
        HOLDING.format(tag=tag, held=marks / "held", release=marks / "release", podman=PODMAN)
    )
    script.chmod(0o755)
    backend = new_backend(ContainerEngine.find("podman", executable=str(script)))
    fast = spec_of(source)  # CHURN:1, whose image the `source` fixture built
    slow = spec_of(source, deployment=held)
    desired = {fast.key: Desired(fast, 1), slow.key: Desired(slow, 1)}
    reconciler = Reconciler(backend, grace_seconds=2)
    try:
        seen: dict[str, Replica] = {}

        def fast_ready() -> bool:
            seen.clear()
            seen.update((r.spec.deployment, r) for r in reconciler.step(desired))
            return CHURN in seen and seen[CHURN].state is ReplicaState.READY

        until(fast_ready, 180, f"{CHURN} ready while {held}'s build is held: {seen}")
        assert (marks / "held").exists(), "the held build reached the builder"
        waiting = seen[held]
        assert waiting.state is ReplicaState.STARTING
        assert waiting.detail == f"building image {tag}"
        assert waiting.url == ""
        assert np.allclose(predict(seen[CHURN].url, seen[CHURN].token), [2.0, 4.0])
        assert podman("image", "exists", tag, check=False).returncode == 1, "not built yet"
        # One start each: the waiting replica counts as starting, and is not started again.
        assert sum("started" in e for e in reconciler.events) == 2, reconciler.events
    finally:
        (marks / "release").touch()

    def both_ready() -> bool:
        seen.clear()
        seen.update((r.spec.deployment, r) for r in reconciler.step(desired))
        return len(seen) == 2 and all(r.state is ReplicaState.READY for r in seen.values())

    until(both_ready, 300, f"both ready once the build was let go: {seen}")
    assert seen[held].id == waiting.id, "the replica that waited is the one that runs"
    assert seen[held].token == waiting.token
    assert np.allclose(predict(seen[held].url, seen[held].token, held), [2.0, 4.0])
    assert sum("started" in e for e in reconciler.events) == 2, reconciler.events
    log = backend.root / "builds" / f"{source.removeprefix('sha256:')[:12]}.log"
    assert log.read_text().count(f" -t {tag} ") == 1, "built once"
    remove_image(tag, force=True)


def test_a_build_that_fails_is_a_crash_with_the_builders_reason_and_is_retried(
    source: str,  # noqa: F811
    new_backend: NewBackend,
) -> None:
    missing = f"localhost/funade-test/no-such-base:{uuid.uuid4().hex[:8]}"
    backend = new_backend(base=missing)
    broken = f"nobase{uuid.uuid4().hex[:8]}"
    spec = spec_of(source, deployment=broken)
    desired = {spec.key: Desired(spec, 1)}
    reconciler = Reconciler(backend, grace_seconds=1)
    first = reconciler.step(desired)
    assert [(r.state, r.detail) for r in first] == [
        (ReplicaState.STARTING, f"building image {default_tag(broken, 1, source)}")
    ]
    detail = crashed(reconciler, desired, spec.key, "two failed builds")
    assert detail.startswith("no image: `podman build --format docker -f "), detail
    assert "failed (exit status 125): " in detail, detail
    assert missing in detail, "the builder's own words name the base it could not get"
    log = backend.root / "builds" / f"{source.removeprefix('sha256:')[:12]}.log"
    assert f"(all of its output: {log})" in detail
    assert log.read_text().count("$ ") >= 2, "the next start built again"
    assert any("no image: `podman build" in e for e in reconciler.events), reconciler.events


STALE = """FROM {base}
LABEL dev.funade.digest="{digest}" dev.funade.funade-version="{version}"
LABEL dev.funade.funade-wheel="sha256:{other}" dev.funade.serve-uds="true"
"""
"""An image "another funade" made for the package: this funade's version, another wheel."""


def test_an_image_of_the_package_made_by_another_funade_is_rebuilt_not_reused(
    tmp_path: Path,
    wheel: Path,
    source: str,  # noqa: F811
    new_backend: NewBackend,
) -> None:
    model = f"stale{uuid.uuid4().hex[:8]}"
    tag = default_tag(model, 1, source)
    context = tmp_path / "stale"
    context.mkdir()
    (context / "Containerfile").write_text(
        STALE.format(base=BASE, digest=source, version=funade.__version__, other="0" * 64)
    )
    podman("build", "--format", "docker", "-t", tag, str(context), timeout=300)
    stale = podman("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
    try:
        backend = new_backend()
        started = backend.start(spec_of(source, deployment=model))
        assert (started.state, started.detail) == (
            ReplicaState.STARTING,
            f"building image {tag}",
        ), "the other funade's image is not run"
        replicas: list[Replica] = []

        def ready() -> bool:
            replicas[:] = backend.replicas()
            return [r.state for r in replicas] == [ReplicaState.READY]

        until(ready, 300, f"the replica ready on the rebuilt image: {replicas}")
        assert replicas[0].id == started.id
        assert np.allclose(predict(replicas[0].url, replicas[0].token, model), [2.0, 4.0])
        rebuilt = podman("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
        assert rebuilt != stale, "the tag moved to a new image"
        labels = podman(
            "image", "inspect", "--format", '{{index .Labels "dev.funade.funade-wheel"}}', tag
        ).stdout.strip()
        assert labels == "sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest()
        ran = podman("inspect", "--format", "{{.Image}}", f"funade-{started.id}").stdout.strip()
        assert ran == rebuilt, "the container runs the rebuilt image"
        backend.stop_all(grace_seconds=2)
    finally:
        podman("rmi", "--force", tag, check=False)
        podman("rmi", "--force", stale, check=False)
