"""Pod readiness from a watch (funade.deploy.k8s.podwatch) against the stand-in API server: a
pod becoming ready is seen without a list per pass, a 410 Gone lists again, a resync lists
again, and a watch that cannot reach the server is no copy to trust (the backend lists)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from funade.deploy.backends import ReplicaState
from funade.deploy.backends.kubernetes import OWNER, KubernetesBackend
from funade.deploy.k8s.client import connect
from funade.deploy.k8s.podwatch import PodWatch
from funade.settings import Settings

from .apiserver import ApiServer
from .test_backend import SPEC, Cluster, cluster  # noqa: F401 - the stand-in's fixture


def _until(condition: Callable[[], object], what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _pod_lists(cluster: Cluster) -> int:  # noqa: F811
    """Lists of pods the stand-in has answered (not watches)."""
    return sum(
        1
        for method, target, _ in cluster.server.requests
        if method == "GET" and target.split("?")[0].endswith("/pods") and "watch=1" not in target
    )


@pytest.fixture
def watched(cluster: Cluster) -> Iterator[tuple[KubernetesBackend, PodWatch]]:  # noqa: F811
    kube = connect(cluster.settings)
    watch = PodWatch(kube, OWNER, timeout_seconds=1)
    backend = cluster.backend(watch=watch)
    watch.start()
    yield backend, watch
    backend.close()


def test_a_pod_becoming_ready_is_seen_without_a_list_per_pass(
    cluster: Cluster,  # noqa: F811
    watched: tuple[KubernetesBackend, PodWatch],
) -> None:
    backend, watch = watched
    replica = backend.start(SPEC)
    (pod,) = cluster.server.pods_of("churn-r3")
    _until(lambda: [p["metadata"]["name"] for p in watch.pods() or []] == [pod], "the new pod")
    lists = _pod_lists(cluster)
    assert [r.state for r in backend.replicas()] == [ReplicaState.STARTING]
    cluster.server.mark_ready(pod)
    _until(lambda: [r.state for r in backend.replicas()] == [ReplicaState.READY], "the ready pod")
    assert _pod_lists(cluster) == lists  # passes read the watch's copy, not a list each
    assert watch.lists == 1
    # The pod going away is seen too: the slot is starting again, its replica the same.
    cluster.server.mark_failed(pod, "CrashLoopBackOff")
    _until(lambda: backend.replicas()[0].state is ReplicaState.FAILED, "the failing pod")
    (failed,) = backend.replicas()
    assert (failed.id, failed.detail) == (replica.id, "CrashLoopBackOff")
    assert watch.lists == 1


def test_a_watch_from_a_compacted_history_is_gone_and_lists_again(
    cluster: Cluster,  # noqa: F811
    watched: tuple[KubernetesBackend, PodWatch],
) -> None:
    backend, watch = watched
    backend.start(SPEC)
    (pod,) = cluster.server.pods_of("churn-r3")
    _until(lambda: watch.pods(), "the first list")
    # Something else changes (the resourceVersion moves past the watch's, which sees no pod
    # event), then the server forgets its history: the next stream from the watch's version
    # is 410 Gone.
    cluster.server.update_as("kubectl", "Secret", "churn-r3-credentials", {"metadata": {}})
    cluster.server.compact()
    _until(lambda: watch.gone >= 1, "a 410 Gone")
    _until(lambda: watch.lists >= 2, "the list after it")
    cluster.server.mark_ready(pod)
    _until(lambda: backend.replicas()[0].state is ReplicaState.READY, "the ready pod")


def test_it_lists_again_every_resync(cluster: Cluster) -> None:  # noqa: F811
    watch = PodWatch(connect(cluster.settings), OWNER, timeout_seconds=1, resync_seconds=0.5)
    watch.start()
    try:
        _until(lambda: watch.lists >= 3, "two resyncs")
        assert watch.gone == 0
    finally:
        watch.stop()


def test_a_watch_that_cannot_reach_the_server_is_no_copy_and_the_backend_lists(
    cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    with ApiServer() as gone:  # a server that was there, and then was not
        kubeconfig = tmp_path / "away"
        kubeconfig.write_text(gone.kubeconfig())
    away = connect(Settings(home=tmp_path / "home", kubernetes_kubeconfig=kubeconfig))
    watch = PodWatch(away, OWNER, timeout_seconds=1)
    watch.start()
    backend = cluster.backend(watch=watch)
    try:
        backend.start(SPEC)
        (pod,) = cluster.server.pods_of("churn-r3")
        cluster.server.mark_ready(pod)
        time.sleep(0.2)
        assert watch.pods() is None
        lists = _pod_lists(cluster)
        assert [r.state for r in backend.replicas()] == [ReplicaState.READY]
        assert _pod_lists(cluster) == lists + 1
    finally:
        watch.stop()
        backend.close()
