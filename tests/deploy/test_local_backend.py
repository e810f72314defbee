"""The local backend and the reconciler with real ``funade serve`` subprocesses: converging,
restarting after ``kill -9``, adopting replicas after a control-plane restart, stopping; on
Unix sockets (the default) and on loopback TCP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from funade.artifacts.tarball import pack_directory
from funade.deploy.backends import ReplicaSpec, ReplicaState
from funade.deploy.backends.local import LocalBackend, process_start_ticks
from funade.deploy.backends.sockets import socket_base
from funade.deploy.reconcile import Desired, Reconciler
from funade.deploy.replicaurl import ReplicaHTTP
from funade.sandbox.layout import Sandbox
from funade.settings import Settings
from tests.deploy.conftest import until
from tests.serving.fakes import arithmetic_package


class Blobs:
    """Package tars by digest, as the artifact store would give them."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def add(self, directory: Path) -> str:
        tar = directory.with_suffix(".tar")
        info = pack_directory(directory, tar)
        self.blobs[info.digest] = tar.read_bytes()
        return info.digest

    def open(self, digest: str) -> Iterator[bytes]:
        yield self.blobs[digest]


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> Blobs:
    return Blobs()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, blobs: Blobs) -> str:
    """The digest of the arithmetic package."""
    return blobs.add(arithmetic_package(tmp_path_factory.mktemp("pkg") / "calc"))


def spec_of(digest: str, deployment: str = "churn", revision: int = 1, **more: Any) -> ReplicaSpec:
    return ReplicaSpec(
        deployment=deployment,
        revision=revision,
        source=f"{deployment}:{revision}",
        digest=digest,
        project_id=1,
        **more,
    )


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox.from_settings(Settings(home=tmp_path / "home"))


@pytest.fixture
def backend(tmp_path: Path, sandbox: Sandbox, blobs: Blobs) -> Iterator[LocalBackend]:
    """Replicas on Unix sockets, as ``funade up`` starts them by default."""
    sockets = socket_base(Path("/tmp"), tmp_path / "home")
    backend = LocalBackend(
        tmp_path / "replicas", sandbox=sandbox, fetch=blobs.open, sockets=sockets
    )
    yield backend
    for replica in backend.replicas():
        backend.stop(replica.id, grace_seconds=5)
    until(lambda: not list(backend.root.glob("*.json")), 15, "replicas stopped")
    backend.close()
    shutil.rmtree(sockets, ignore_errors=True)  # under /tmp, not the test's own directory


def converge(reconciler: Reconciler, desired: dict[str, Desired], ready: int) -> list[str]:
    """Step until ``ready`` replicas are ready; their ids."""
    seen: list[str] = []

    def done() -> bool:
        replicas = reconciler.step(desired)
        seen[:] = [r.id for r in replicas if r.state is ReplicaState.READY]
        return len(seen) == ready and len(replicas) == ready

    until(done, 60, f"{ready} ready replicas")
    return sorted(seen)


def predict(url: str, token: str) -> list[float]:
    """The ``double`` output for the row [1, 2]."""
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}
    http = ReplicaHTTP(10)
    try:
        response = http.post(
            url, "/v2/models/churn/infer", json=body, headers={"authorization": f"Bearer {token}"}
        )
    finally:
        http.close()
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
    return list(outputs["double"])


def test_converges_restarts_after_kill_9_adopts_and_stops(
    backend: LocalBackend, source: str, tmp_path: Path
) -> None:
    spec = spec_of(source)
    desired = {spec.key: Desired(spec, 2)}
    reconciler = Reconciler(backend, grace_seconds=5)
    first = converge(reconciler, desired, 2)
    by_id = {r.id: r for r in backend.replicas()}
    for rid in first:
        assert by_id[rid].url.startswith("unix:/tmp/funade-")
        assert predict(by_id[rid].url, by_id[rid].token) == [2.0, 4.0]
    record = json.loads((backend.root / f"{first[0]}.json").read_text())

    os.kill(record["pid"], signal.SIGKILL)
    until(lambda: process_start_ticks(record["pid"]) is None, 10, "the replica to die")
    after_kill = converge(reconciler, desired, 2)
    assert first[1] in after_kill
    assert first[0] not in after_kill
    assert any("exited" in e and first[0] in e for e in reconciler.events), "\n".join(
        reconciler.events
    )

    # A new control plane: a fresh backend and reconciler over the same directory adopt both.
    sockets = backend.sockets.base if backend.sockets else None
    adopted = LocalBackend(
        backend.root, sandbox=backend.sandbox, fetch=backend.fetch, sockets=sockets
    )
    again = Reconciler(adopted, grace_seconds=5)
    assert converge(again, desired, 2) == after_kill
    assert not any("started" in event for event in again.events)
    adopted.close()

    pids = [json.loads((backend.root / f"{r}.json").read_text())["pid"] for r in after_kill]
    assert reconciler.step({}) == []
    until(lambda: all(process_start_ticks(pid) is None for pid in pids), 15, "processes gone")
    until(lambda: not list(backend.root.iterdir()), 15, "records removed")


def test_a_replica_that_cannot_load_exits_with_its_error_and_backs_off(
    backend: LocalBackend, tmp_path: Path, blobs: Blobs
) -> None:
    broken = arithmetic_package(tmp_path / "broken")
    (broken / "funade.json").write_text("{}")  # its manifest names no flavor: it cannot load
    spec = spec_of(blobs.add(broken), deployment="broken")
    desired = {spec.key: Desired(spec, 1)}
    reconciler = Reconciler(backend, grace_seconds=1)
    until(
        lambda: (
            reconciler.step(desired) is not None
            and reconciler.backoff.get(spec.key) is not None
            and reconciler.backoff[spec.key].failures >= 2
        ),
        60,
        "two crashes",
    )
    entry = reconciler.backoff[spec.key]
    assert "exited with status" in entry.last_detail
    assert "funade.json" in entry.last_detail, entry.last_detail
    assert entry.until > time.time() - 1


def test_a_package_that_cannot_be_fetched_makes_a_replica_that_exited(
    backend: LocalBackend,
) -> None:
    spec = spec_of("sha256:" + "0" * 64, deployment="gone")
    replica = backend.start(spec)
    assert replica.state is ReplicaState.EXITED
    [seen] = backend.replicas()
    assert seen.state is ReplicaState.EXITED
    assert "the model package could not be prepared" in seen.detail, seen.detail


def test_a_reused_pid_is_not_taken_for_a_replica(backend: LocalBackend, source: str) -> None:
    spec = spec_of(source)
    replica = backend.start(spec)
    path = backend.root / f"{replica.id}.json"
    record = json.loads(path.read_text())
    real_pid = record["pid"]
    record["start_ticks"] += 1  # as if the pid now belonged to a process started later
    path.write_text(json.dumps(record))
    fresh = LocalBackend(backend.root, sandbox=backend.sandbox, fetch=backend.fetch)
    [seen] = fresh.replicas()
    assert seen.state is ReplicaState.EXITED
    assert seen.detail.startswith("no longer running")
    fresh.close()
    os.killpg(real_pid, signal.SIGKILL)


def test_stopping_an_unknown_replica_is_a_no_op(backend: LocalBackend) -> None:
    backend.stop("nobody-r1-000000")
    assert backend.replicas() == []


def test_runtime_options_reach_the_model_server(backend: LocalBackend, source: str) -> None:
    from funade.deploy.backends import RuntimeConfig

    runtime = RuntimeConfig(max_batch_size=1, env={"MODEL_MARKER": "yes"})
    spec = spec_of(source, revision=3, runtime=runtime)
    reconciler = Reconciler(backend)
    [rid] = converge(reconciler, {spec.key: Desired(spec, 1)}, 1)
    record = json.loads((backend.root / f"{rid}.json").read_text())
    environ = Path(f"/proc/{record['pid']}/environ").read_bytes().split(b"\0")
    assert b"MODEL_MARKER=yes" in environ
    cmdline = Path(f"/proc/{record['pid']}/cmdline").read_bytes().split(b"\0")
    assert cmdline[cmdline.index(b"--max-batch-size") + 1] == b"1"
    [replica] = backend.replicas()
    assert np.allclose(predict(replica.url, replica.token), [2.0, 4.0])


def test_stop_all_drains_every_replica_and_waits_until_they_are_gone(
    backend: LocalBackend, source: str
) -> None:
    started = [backend.start(spec_of(source, revision=n)) for n in (1, 2)]
    until(lambda: all(r.state is ReplicaState.READY for r in backend.replicas()), 60, "ready")
    pids = [json.loads((backend.root / f"{r.id}.json").read_text())["pid"] for r in started]
    backend.stop_all(grace_seconds=5)
    assert backend.replicas() == []
    assert list(backend.root.glob("*.json")) == [], "returned only once they were gone"
    assert backend.sockets is not None
    assert not backend.sockets.base.exists(), "the sockets' directory went with them"
    assert [process_start_ticks(pid) for pid in pids] == [None, None]


def listening_tcp_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            next(handle)
            inodes |= {f[9] for f in map(str.split, handle) if f[3] == "0A"}  # LISTEN
    return inodes


def socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.startswith("socket:["):
            out.add(target[len("socket:[") : -1])
    return out


def test_a_replica_listens_on_its_private_socket_and_no_tcp_port(
    backend: LocalBackend, source: str
) -> None:
    replica = backend.start(spec_of(source))
    until(lambda: backend.replicas()[0].state is ReplicaState.READY, 60, "ready")
    [seen] = backend.replicas()
    assert backend.sockets is not None
    path = backend.sockets.socket(replica.id)
    assert seen.url == f"unix:{path}"
    assert len(str(path)) <= 107
    pid = json.loads((backend.root / f"{replica.id}.json").read_text())["pid"]
    assert socket_inodes(pid), "it has its listening socket"
    assert not socket_inodes(pid) & listening_tcp_inodes()
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    assert oct(path.parent.stat().st_mode & 0o777) == oct(0o700)
    who = backend.sandbox.run_as(1)
    if who is not None:  # the replica's user owns its directory; funade's, the base
        assert (path.stat().st_uid, path.parent.stat().st_uid) == (who.uid, who.uid)
        assert oct(backend.sockets.base.stat().st_mode & 0o777) == oct(0o711)
    else:
        assert oct(backend.sockets.base.stat().st_mode & 0o777) == oct(0o700)
    assert backend.sockets.base.stat().st_uid == os.geteuid()
    backend.stop(replica.id, grace_seconds=5)
    until(lambda: not path.parent.exists(), 15, "its socket directory removed once it stopped")


def test_with_tcp_a_replica_listens_on_a_loopback_port(
    tmp_path: Path, sandbox: Sandbox, blobs: Blobs, source: str
) -> None:
    backend = LocalBackend(tmp_path / "tcp", sandbox=sandbox, fetch=blobs.open)
    try:
        backend.start(spec_of(source))
        until(lambda: backend.replicas()[0].state is ReplicaState.READY, 60, "ready")
        [seen] = backend.replicas()
        assert seen.url.startswith("http://127.0.0.1:")
        assert predict(seen.url, seen.token) == [2.0, 4.0]
    finally:
        backend.stop_all(grace_seconds=5)
        backend.close()
