"""What the Kubernetes backend gives a revision's pods, and what it keeps from them: the key in
the Secret reads one project only (never admin, never write, never another project), a key it
renewed or revoked opens nothing, and no object it applies carries the store's URL, the
artifact store's credentials or the control plane's environment. Against the stand-in API
server (tests/deploy/k8s/apiserver.py) and a real SQLite store."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from funade.artifacts import ArtifactStore
from funade.auth.service import authenticate
from funade.bootstrap import bootstrap, open_database
from funade.deploy.backends import (
    BackendContext,
    ReplicaSpec,
    ReplicaState,
    RuntimeConfig,
    make_backend,
)
from funade.deploy.backends.kubernetes import KubernetesBackend
from funade.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from funade.projects import create_project
from funade.sandbox.layout import Sandbox
from funade.settings import Settings
from funade.store import Database
from tests.deploy.k8s.apiserver import ApiServer

DIGEST = "sha256:" + "ab" * 32
SPEC = ReplicaSpec(deployment="churn", revision=1, source="churn:1", digest=DIGEST)
STORE_SECRET = "s3-secret-that-must-not-leak"
ENV_SECRET = "an-environment-secret-of-the-control-plane"


@pytest.fixture
def setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ApiServer, Settings, Database, KubernetesBackend]]:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET)
    with ApiServer() as server:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(server.kubeconfig())
        settings = Settings(
            home=tmp_path / "home",
            backend="kubernetes",
            kubernetes_kubeconfig=kubeconfig,
            artifacts_options={"key": "AKIAEXAMPLE", "secret": STORE_SECRET},
        )
        db = open_database(settings, migrate=True)
        bootstrap(settings, db)
        with db.session() as session:
            create_project(session, "other")
        context = BackendContext(
            sandbox=Sandbox.from_settings(settings),
            fetch=ArtifactStore.from_settings(settings).open,
            api_url=lambda: "http://funade.funade.svc:8470",
        )
        backend = make_backend(settings, context)
        assert isinstance(backend, KubernetesBackend)
        yield server, settings, db, backend
        backend.close()
        db.dispose()


def secret_key(server: ApiServer) -> str:
    secret = server.get("Secret", "churn-r1-credentials")
    assert secret is not None
    return base64.b64decode(secret["data"]["api-key"]).decode()


def test_the_secrets_key_reads_its_project_and_nothing_more(
    setup: tuple[ApiServer, Settings, Database, KubernetesBackend],
) -> None:
    server, _, db, backend = setup
    backend.start(SPEC)
    with db.read() as session:
        principal = authenticate(session, secret_key(server), client_ip=None)
    assert not principal.is_global
    assert principal.scopes == frozenset({"read"})
    principal.require("read", "default")
    with pytest.raises(PermissionDeniedError):
        principal.require("write", "default")
    with pytest.raises(PermissionDeniedError):
        principal.require("admin", "default")
    with pytest.raises(PermissionDeniedError, match="needs a global 'admin' key"):
        principal.require("admin")
    with pytest.raises(NotFoundError, match="Project 'other' does not exist"):
        principal.require("read", "other")


def test_a_renewed_or_stopped_revisions_old_key_opens_nothing(
    setup: tuple[ApiServer, Settings, Database, KubernetesBackend],
) -> None:
    server, _, db, backend = setup
    replica = backend.start(SPEC)
    first = secret_key(server)
    backend.clock = lambda: 10**10  # long past half the key's life
    backend.renew_keys()
    second = secret_key(server)
    with db.read() as session:
        with pytest.raises(AuthenticationError):
            authenticate(session, first, client_ip=None)
        authenticate(session, second, client_ip=None)
    backend.stop(replica.id)
    with db.read() as session, pytest.raises(AuthenticationError):
        authenticate(session, second, client_ip=None)


def test_no_object_carries_the_stores_url_credentials_or_the_environment(
    setup: tuple[ApiServer, Settings, Database, KubernetesBackend],
) -> None:
    server, settings, _, backend = setup
    runtime = RuntimeConfig.model_construct(env={"LD_PRELOAD": "/tmp/evil.so", "OMP_THREADS": "2"})
    backend.start(SPEC.model_copy(update={"runtime": runtime}))
    objects = [
        server.get(kind, name)
        for kind in ("Secret", "Service", "Deployment")
        for name in server.names(kind)
    ]
    text = json.dumps(objects) + "".join(
        base64.b64decode(v).decode()
        for v in objects[0]["data"].values()  # type: ignore[index]
    )
    for leak in (
        settings.resolved_database_url,
        str(settings.home),
        STORE_SECRET,
        "AKIAEXAMPLE",
        ENV_SECRET,
        "AWS_SECRET_ACCESS_KEY",
    ):
        assert leak not in text, leak
    deployment = server.get("Deployment", "churn-r1")
    assert deployment is not None
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    names = [e["name"] for e in container["env"]]
    assert names == [  # LD_PRELOAD, which an earlier version's revision may hold, is not set
        "FUNADE_PROJECT",
        "FUNADE_REPLICA_TOKEN",
        "FUNADE_URL",
        "FUNADE_API_KEY",
        "OMP_THREADS",
        "FUNADE_MODEL_DIGEST",
    ]
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize(
    ("project", "deployment", "model"),
    [
        ("default", "9-lives", "Churn_Model.v2"),
        ("default", "a" * 63, "m" * 128),
        ("fraud-team", "churn", "churn"),
    ],
)
def test_every_name_funade_accepts_makes_objects_kubernetes_accepts(
    setup: tuple[ApiServer, Settings, Database, KubernetesBackend],
    project: str,
    deployment: str,
    model: str,
) -> None:
    """The stand-in refuses names and labels as the API server does (422); each name funade
    accepts for a project, deployment and model becomes names it takes, distinct per project."""
    server, _, db, backend = setup
    if project != "default":
        with db.session() as session:
            create_project(session, project)
    spec = ReplicaSpec(
        project=project, deployment=deployment, revision=12345, source=f"{model}:7", digest=DIGEST
    )
    replica = backend.start(spec)
    assert replica.state is not ReplicaState.FAILED, replica.detail
    assert len(server.names("Deployment")) == 1
    (name,) = server.names("Service")
    assert name.endswith("-r12345")
    assert len(name) <= 63


def test_two_projects_deployments_never_share_objects(
    setup: tuple[ApiServer, Settings, Database, KubernetesBackend],
) -> None:
    """Project a-b's deployment c and project a's deployment b-c would both be "a-b-c"."""
    server, _, db, backend = setup
    with db.session() as session:
        create_project(session, "a-b")
        create_project(session, "a")
    for project, deployment in (("a-b", "c"), ("a", "b-c")):
        spec = ReplicaSpec(
            project=project, deployment=deployment, revision=1, source="m:1", digest=DIGEST
        )
        assert backend.start(spec).state is not ReplicaState.FAILED
    assert len(set(server.names("Deployment"))) == 2
    assert len(backend.replicas()) == 2


@pytest.mark.parametrize(
    "cpu",
    [
        "1\n        securityContext: {privileged: true}",
        '500m", "limits": {"cpu": "64"',
        "2; rm -rf /",
        "${CPU}",
        "-1",
        "1e3",
        "",
        "1" * 10_000 + "x",
    ],
)
def test_a_hostile_autoscale_cpu_never_reaches_a_pod(cpu: str) -> None:
    """A revision's autoscale.cpu becomes the pod's CPU request: only a CPU quantity gets in."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        RuntimeConfig.model_validate({"autoscale": {"max_replicas": 2, "cpu": cpu}})
    (error,) = caught.value.errors()
    assert error["loc"] == ("autoscale", "cpu")
    assert error["type"] == "string_pattern_mismatch"
