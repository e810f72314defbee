"""The container backend when the engine fails to run a container, against the stand-in
`podman` of tests/images/test_ondemand.py (no podman needed): the replica is EXITED with what
the engine said, the half-made container is removed, and the replica is forgotten on stop."""

from __future__ import annotations

from pathlib import Path

import pytest

import funade
from funade.deploy.backends import ReplicaState
from funade.deploy.backends.container import ContainerBackend
from funade.images.engine import ContainerEngine
from tests.deploy.test_local_backend import Blobs, spec_of
from tests.images.test_ondemand import engine  # noqa: F401 - the stand-in engine fixture
from tests.serving.fakes import arithmetic_package


def test_a_container_the_engine_cannot_run_is_a_replica_that_exited(
    engine: ContainerEngine,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blobs = Blobs()
    digest = blobs.add(arithmetic_package(tmp_path / "calc"))
    monkeypatch.setenv("HAVE_DIGEST", digest)  # the image exists: only `run` fails
    backend = ContainerBackend(
        engine,
        tmp_path / "containers",
        owner="test",
        fetch=blobs.open,
        funade_version=funade.__version__,
    )
    replica = backend.start(spec_of(digest))
    assert replica.state is ReplicaState.EXITED
    assert replica.detail == (
        "`podman run` failed (exit status 126): Error: runc: the container could not be created"
    )
    record = (tmp_path / "record").read_text().splitlines()
    assert record[-1] == f"rm --force funade-{replica.id}", "the half-made container removed"
    assert [r.id for r in backend.replicas()] == [replica.id]
    assert list((tmp_path / "containers").glob("*.labels")) == [], "the label file removed"
    backend.stop(replica.id)
    assert backend.replicas() == []
    backend.close()
