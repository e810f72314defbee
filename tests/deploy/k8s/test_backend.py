"""The Kubernetes backend against the stand-in API server (apiserver.py) and a real SQLite store:
a revision's objects, replica states read from pod readiness, adoption by a new backend, stop,
the Secret's scoped key and its renewal, failure states and conflicts."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from funade.artifacts import ArtifactStore
from funade.auth.service import authenticate
from funade.bootstrap import bootstrap, open_database
from funade.deploy.backends import BackendContext, ReplicaSpec, ReplicaState, make_backend
from funade.deploy.backends.kubernetes import KubernetesBackend
from funade.deploy.controller import ControllerLock
from funade.deploy.k8s.client import connect
from funade.deploy.k8s.credentials import StoreKeys
from funade.deploy.reconcile import Desired, Reconciler
from funade.errors import AuthenticationError, InvalidInputError, PermissionDeniedError
from funade.sandbox.layout import Sandbox
from funade.settings import Settings
from funade.store import Database
from funade.store.schema import ApiKey
from tests.conftest import Result

from .apiserver import ApiServer

DIGEST = "sha256:" + "0123456789abcdef" * 4
SPEC = ReplicaSpec(deployment="churn", revision=3, source="churn:3", digest=DIGEST)
API_URL = "http://funade.funade.svc:8470"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Cluster:
    server: ApiServer
    settings: Settings
    db: Database
    clock: Clock

    def backend(self, **options: Any) -> KubernetesBackend:
        return KubernetesBackend(
            connect(self.settings),
            keys=StoreKeys(self.db),
            api_url=lambda: API_URL,
            clock=self.clock,
            **options,
        )

    def secret(self, name: str = "churn-r3-credentials") -> dict[str, str]:
        secret = self.server.get("Secret", name)
        assert secret is not None
        return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}

    def key(self, text: str) -> ApiKey:
        with self.db.read() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.id == text.split("_")[1]))
            assert row is not None
            session.expunge(row)
            return row


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with ApiServer() as server:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(server.kubeconfig())
        settings = Settings(home=tmp_path / "home", kubernetes_kubeconfig=kubeconfig)
        db = open_database(settings, migrate=True)
        bootstrap(settings, db)
        yield Cluster(server, settings, db, Clock())
        db.dispose()


def test_a_started_replica_is_a_revision_of_objects_ready_when_its_pod_is(
    cluster: Cluster,
) -> None:
    backend = cluster.backend()
    replica = backend.start(SPEC)
    assert replica.state is ReplicaState.STARTING
    assert replica.url == "http://churn-r3.models.svc"
    assert replica.token == cluster.secret()["replica-token"]
    server = cluster.server
    assert server.names("Secret") == ["churn-r3-credentials"]
    assert server.names("Service") == ["churn-r3"]
    assert server.names("Deployment") == ["churn-r3"]
    assert server.names("HorizontalPodAutoscaler") == []
    applies = [r for r in server.requests if r[0] == "PATCH"]
    assert {r[2] for r in applies} == {"application/apply-patch+yaml"}
    assert all("fieldManager=funade" in r[1] and "force" not in r[1] for r in applies)
    container = server.get("Deployment", "churn-r3")["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert container["image"] == "funade/churn:3-0123456789ab"
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["FUNADE_URL"] == API_URL
    assert env["FUNADE_MODEL_DIGEST"] == DIGEST
    assert env["FUNADE_API_KEY"] == {
        "secretKeyRef": {"name": "churn-r3-credentials", "key": "api-key"}
    }
    assert [r.state for r in backend.replicas()] == [ReplicaState.STARTING]
    (pod,) = server.pods_of("churn-r3")
    server.mark_ready(pod)
    (ready,) = backend.replicas()
    assert (ready.id, ready.state, ready.url) == (replica.id, ReplicaState.READY, replica.url)
    backend.close()


def test_slots_scale_the_deployment_and_take_their_states_from_ready_pods(
    cluster: Cluster,
) -> None:
    backend = cluster.backend()
    first = backend.start(SPEC)
    cluster.clock.now += 1
    second = backend.start(SPEC)
    deployment = cluster.server.get("Deployment", "churn-r3")
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 2
    pods = cluster.server.pods_of("churn-r3")
    assert len(pods) == 2
    cluster.server.mark_ready(pods[1])
    states = {r.id: r.state for r in backend.replicas()}
    assert states == {first.id: ReplicaState.READY, second.id: ReplicaState.STARTING}
    backend.stop(first.id)
    assert cluster.server.get("Deployment", "churn-r3")["spec"]["replicas"] == 1  # type: ignore[index]
    assert [r.id for r in backend.replicas()] == [second.id]


def test_a_new_backend_adopts_what_runs_and_stop_all_deletes_nothing(cluster: Cluster) -> None:
    old = cluster.backend()
    replica = old.start(SPEC)
    old.stop_all(grace_seconds=1)
    old.close()
    assert cluster.server.names("Deployment") == ["churn-r3"]  # still serving
    new = cluster.backend()
    (adopted,) = new.replicas()
    assert (adopted.id, adopted.spec, adopted.token) == (replica.id, SPEC, replica.token)
    assert adopted.started_at == replica.started_at
    new.stop(adopted.id)
    assert cluster.server.names("Deployment") == []


def test_stopping_the_last_slot_deletes_the_revision_and_revokes_its_key(
    cluster: Cluster,
) -> None:
    backend = cluster.backend()
    replica = backend.start(SPEC)
    key = cluster.secret()["api-key"]
    backend.stop("churn-r3-nosuch")  # unknown: nothing happens
    assert cluster.server.names("Deployment") == ["churn-r3"]
    backend.stop(replica.id)
    for kind in ("Secret", "Service", "Deployment", "Pod"):
        assert cluster.server.names(kind) == [], kind
    assert backend.replicas() == []
    assert cluster.key(key).revoked_at is not None
    with cluster.db.read() as session, pytest.raises(AuthenticationError):
        authenticate(session, key, client_ip=None)


def test_the_secrets_key_reads_one_project_and_is_renewed_before_it_expires(
    cluster: Cluster,
) -> None:
    backend = cluster.backend(key_hours=10)
    backend.start(SPEC)
    first = cluster.secret()["api-key"]
    row = cluster.key(first)
    assert row.scopes == ["read"]
    assert row.project_id is not None  # one project, never a global key
    assert row.expires_at is not None
    assert row.name == "replicas of churn/3"
    assert backend.renew_keys() == []  # fresh: nothing to renew
    cluster.clock.now += 5 * 3600 + 1  # past half its life
    backend.replicas()  # each observation renews what is due
    second = cluster.secret()["api-key"]
    assert second != first
    assert cluster.key(first).revoked_at is not None
    assert cluster.key(second).revoked_at is None
    assert cluster.secret()["replica-token"]  # the token to the replica stays
    adopted = cluster.backend(key_hours=10)
    assert adopted.renew_keys() == []
    cluster.clock.now += 5 * 3600 + 1
    assert adopted.renew_keys() == [SPEC.key]  # the expiry is read back from the Secret
    assert cluster.key(second).revoked_at is not None


@pytest.mark.parametrize(
    ("reason", "message"),
    [("CrashLoopBackOff", "back-off 10s"), ("ErrImagePull", "manifest unknown")],
)
def test_a_pod_that_cannot_start_is_a_failed_replica(
    cluster: Cluster, reason: str, message: str
) -> None:
    backend = cluster.backend()
    backend.start(SPEC)
    (pod,) = cluster.server.pods_of("churn-r3")
    cluster.server.mark_failed(pod, reason, message)
    (replica,) = backend.replicas()
    assert replica.state is ReplicaState.FAILED
    assert replica.detail == f"{reason}: {message}"


def test_a_name_taken_by_an_object_that_is_not_funades_is_a_failed_start(
    cluster: Cluster,
) -> None:
    theirs = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "churn-r3", "labels": {"app": "churn"}},
        "spec": {"ports": [{"port": 80}]},
    }
    made = httpx.patch(
        f"{cluster.server.url}/api/v1/namespaces/models/services/churn-r3",
        params={"fieldManager": "kubectl"},
        json=theirs,
        headers={
            "authorization": f"Bearer {cluster.server.token}",
            "content-type": "application/apply-patch+yaml",
        },
    )
    assert made.status_code == 201
    backend = cluster.backend()
    replica = backend.start(SPEC)
    assert replica.state is ReplicaState.FAILED
    assert "Service models/churn-r3 exists and is not funade's" in replica.detail
    assert backend.replicas() == []
    assert cluster.server.names("Deployment") == []
    with cluster.db.read() as session:
        keys = session.scalars(select(ApiKey).where(ApiKey.name == "replicas of churn/3")).all()
        assert [k.revoked_at is not None for k in keys] == [True]


def test_autoscaling_adds_an_hpa_whose_floor_is_the_slots(cluster: Cluster) -> None:
    backend = cluster.backend(pods={"cpu": "1", "max_replicas": 5, "target_cpu": 60})
    backend.start(SPEC)
    backend.start(SPEC)
    hpa = cluster.server.get("HorizontalPodAutoscaler", "churn-r3")
    assert hpa is not None
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    assert "replicas" not in cluster.server.get("Deployment", "churn-r3")["spec"]  # type: ignore[index]


def test_a_runtime_image_is_told_the_version_and_its_digest(cluster: Cluster) -> None:
    backend = cluster.backend(runtime_image="ghcr.io/acme/funade-runtime:1.0")
    backend.start(SPEC.model_copy(update={"project": "default"}))
    deployment = cluster.server.get("Deployment", "churn-r3")
    assert deployment is not None
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/acme/funade-runtime:1.0"
    assert container["args"][:3] == ["churn:3", "--digest", DIGEST]


def test_another_projects_revision_gets_a_name_of_its_own(cluster: Cluster) -> None:
    backend = cluster.backend()
    with cluster.db.session() as session:
        from funade.projects import create_project

        create_project(session, "fraud")
    replica = backend.start(SPEC.model_copy(update={"project": "fraud"}))
    (name,) = cluster.server.names("Deployment")
    assert name.startswith("fraud-churn-")
    assert name.endswith("-r3")
    assert replica.url == f"http://{name}.models.svc"


# Made from settings ---------------------------------------------------------------------------


def context(settings: Settings) -> BackendContext:
    return BackendContext(
        sandbox=Sandbox.from_settings(settings),
        fetch=ArtifactStore.from_settings(settings).open,
        api_url=lambda: API_URL,
    )


def test_make_backend_builds_it_from_settings(cluster: Cluster) -> None:
    settings = cluster.settings.model_copy(
        update={"backend": "kubernetes", "kubernetes_images": "ghcr.io/acme/models"}
    )
    backend = make_backend(settings, context(settings))
    assert isinstance(backend, KubernetesBackend)
    assert backend.kube.namespace == "models"
    assert backend.api_url() == API_URL
    backend.start(SPEC)
    image = cluster.server.get("Deployment", "churn-r3")["spec"]["template"]["spec"]["containers"][
        0
    ]["image"]  # type: ignore[index]
    assert image == "ghcr.io/acme/models/churn:3-0123456789ab"
    backend.close()


def test_make_backend_without_a_cluster_names_the_setting(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", backend="kubernetes")
    with pytest.raises(InvalidInputError, match="no kubeconfig is set") as caught:
        make_backend(settings, context(settings))
    assert caught.value.field == "kubernetes_kubeconfig"


def test_funade_up_without_a_cluster_stops_before_the_gateway_and_lets_go_of_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("FUNADE_HOME", str(home))
    monkeypatch.setenv("FUNADE_BACKEND", "kubernetes")
    monkeypatch.setenv("FUNADE_KUBERNETES_KUBECONFIG", str(tmp_path / "missing"))
    done = cli("up", "--port", "0", "--gateway-port", "0")
    assert done.code == 2
    assert "kubernetes_kubeconfig" in done.err
    assert "is not a file" in done.err
    assert not (home / "gateway.json").exists()  # no gateway was started
    lock = ControllerLock(home / "controller.lock")
    assert lock.acquire()  # and the lock was let go of
    lock.release()


@pytest.mark.parametrize(
    ("pods", "field", "message"),
    [
        ({"cpus": 2}, "kubernetes_pods.cpus", "has no key 'cpus'"),
        ({"cpu": "lots"}, "kubernetes_pods.cpu", "is not a CPU quantity"),
        ({"tolerations": ["gpu"]}, "kubernetes_pods.tolerations", "is not a toleration"),
        ({"model_cache": "nfs:x"}, "kubernetes_pods.model_cache", "is not a model cache"),
        ({"target_cpu": 50}, "kubernetes_pods.max_replicas", "without max_replicas"),
        ({"max_replicas": 3}, "kubernetes_pods.cpu", "is missing"),
        ({"gpus": [1]}, "kubernetes_pods", "wrong type"),
    ],
)
def test_wrong_pod_settings_are_refused_naming_the_key(
    cluster: Cluster, pods: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message) as caught:
        cluster.backend(pods=pods)
    assert caught.value.field == field


# Driven by the controller's reconciler ---------------------------------------------------------


def test_the_reconciler_drives_it_to_the_count_restarts_a_failing_pod_and_retires_it(
    cluster: Cluster,
) -> None:
    backend = cluster.backend()
    reconciler = Reconciler(backend, clock=cluster.clock)
    want = {SPEC.key: Desired(SPEC, 2)}
    started = reconciler.step(want)
    assert [r.state for r in started] == [ReplicaState.STARTING] * 2
    assert cluster.server.get("Deployment", "churn-r3")["spec"]["replicas"] == 2  # type: ignore[index]
    for pod in cluster.server.pods_of("churn-r3"):
        cluster.server.mark_ready(pod)
    assert [r.state for r in reconciler.step(want)] == [ReplicaState.READY] * 2
    failing = cluster.server.pods_of("churn-r3")[0]
    cluster.server.mark_failed(failing, "CrashLoopBackOff")
    # The failed slot is stopped (Kubernetes removes the pod that is not ready) and, as its
    # revision has a ready replica, started again at once: a pod in its place.
    after = reconciler.step(want)
    assert sorted(r.state for r in after) == [ReplicaState.READY, ReplicaState.STARTING]
    assert any("unhealthy: CrashLoopBackOff" in e for e in reconciler.events)
    assert failing not in cluster.server.pods_of("churn-r3")
    assert len(cluster.server.pods_of("churn-r3")) == 2
    assert reconciler.step({}) == []
    assert cluster.server.names("Deployment") == []
    assert cluster.server.names("Secret") == []


def test_a_start_the_cluster_refuses_leaves_no_key_behind(cluster: Cluster) -> None:
    backend = cluster.backend()
    assert backend.replicas() == []  # adopted nothing
    backend.kube.namespace = "elsewhere"  # the stand-in answers 403 there, as RBAC would
    with pytest.raises(PermissionDeniedError, match="403 Forbidden"):
        backend.start(SPEC)
    backend.kube.namespace = "models"
    with cluster.db.read() as session:
        keys = session.scalars(select(ApiKey).where(ApiKey.name == "replicas of churn/3")).all()
        assert [k.revoked_at is not None for k in keys] == [True]
    assert backend.replicas() == []
