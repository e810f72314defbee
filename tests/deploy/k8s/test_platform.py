"""`funade platform manifests`: funade itself for a cluster, validated offline with
kubernetes-validate (strict, Kubernetes 1.33), and its RBAC checked against what the
Kubernetes backend really asks of the API server (the stand-in records every request)."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from funade.bootstrap import bootstrap, open_database
from funade.deploy.backends import ReplicaSpec
from funade.deploy.backends.kubernetes import OWNER, VERBS, KubernetesBackend
from funade.deploy.k8s.client import connect
from funade.deploy.k8s.credentials import StoreKeys
from funade.deploy.k8s.platform import PlatformOptions, render_platform
from funade.deploy.k8s.podwatch import PodWatch
from funade.errors import InvalidInputError
from funade.settings import Settings
from tests.conftest import Result

from .apiserver import ApiServer

K8S = "1.33"
IMAGE = "ghcr.io/acme/funade:0.1.0"
EVERYTHING = PlatformOptions(
    image=IMAGE,
    namespace="platform",
    models_namespace="models",
    gateway_replicas=4,
    ingress_class="nginx",
    tls_secret="funade-tls",
    trusted_proxies=("10.8.0.0/14", "10.12.0.0/16"),
    images="ghcr.io/acme/models",
    pods={"cpu": "2", "tolerations": ["nvidia.com/gpu:NoSchedule"], "max_replicas": 8},
)


def by_name(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("options", [PlatformOptions(image=IMAGE), EVERYTHING])
def test_every_object_validates_strictly_for_1_33(options: PlatformOptions) -> None:
    objects, secrets = render_platform(options)
    assert [o["kind"] for o in objects] == [
        "ServiceAccount",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Service",
        "Service",
        "Deployment",
        "Deployment",
        "Ingress",
    ]
    for obj in objects + secrets:
        kubernetes_validate.validate(yaml.safe_load(yaml.safe_dump(obj)), K8S, strict=True)


def test_one_controller_and_several_gateways_behind_the_ingress() -> None:
    objects = by_name(render_platform(EVERYTHING)[0])
    control = objects["Deployment/funade-control-plane"]
    assert control["spec"]["replicas"] == 1
    assert control["spec"]["strategy"] == {"type": "Recreate"}
    (migrate,) = control["spec"]["template"]["spec"]["initContainers"]
    assert migrate["args"] == ["db", "upgrade"]  # PostgreSQL's schema before `funade up`
    assert migrate["env"] == control["spec"]["template"]["spec"]["containers"][0]["env"]
    gateway = objects["Deployment/funade-gateway"]
    assert gateway["spec"]["replicas"] == 4
    env = env_of(control)
    assert env["FUNADE_BACKEND"] == "kubernetes"
    assert env["FUNADE_KUBERNETES_NAMESPACE"] == "models"
    assert env["FUNADE_KUBERNETES_API_URL"] == "http://funade-control-plane.platform.svc:8470"
    assert env["FUNADE_KUBERNETES_IMAGES"] == "ghcr.io/acme/models"
    assert json.loads(env["FUNADE_KUBERNETES_PODS"])["max_replicas"] == 8
    for deployment in (control, gateway):
        proxies = json.loads(env_of(deployment)["FUNADE_TRUSTED_PROXIES"])
        assert proxies == ["10.8.0.0/14", "10.12.0.0/16"]  # the Ingress's, and only them
        assert env_of(deployment)["FUNADE_DATABASE_URL"] == {
            "secretKeyRef": {"name": "funade-database", "key": "url"}
        }
    assert "FUNADE_ARTIFACTS_URL" not in env_of(gateway)  # it reads no artifacts
    ingress = objects["Ingress/funade"]["spec"]
    assert [r["host"] for r in ingress["rules"]] == ["funade.example.com", "models.example.com"]
    backends = [r["http"]["paths"][0]["backend"]["service"]["name"] for r in ingress["rules"]]
    assert backends == ["funade-control-plane", "funade-gateway"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["tls"][0]["secretName"] == "funade-tls"


def test_no_real_setting_is_written_and_secrets_hold_placeholders() -> None:
    objects, secrets = render_platform(EVERYTHING)
    text = json.dumps(objects)
    assert "postgresql" not in text
    assert "s3://" not in text
    assert [s["metadata"]["name"] for s in secrets] == ["funade-database", "funade-artifacts"]
    for secret in secrets:
        for value in secret["stringData"].values():
            assert "REPLACE-ME" in value


def test_the_role_grants_what_the_backend_uses_in_the_models_namespace_only() -> None:
    objects = by_name(render_platform(EVERYTHING)[0])
    role = objects["Role/funade-controller"]
    assert role["metadata"]["namespace"] == "models"
    granted = {
        (verb, resource)
        for rule in role["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert "*" not in json.dumps(role["rules"])
    assert {("list", "pods"), ("watch", "pods")} <= granted
    assert not any(
        resource == "pods" and verb not in ("list", "watch") for verb, resource in granted
    )
    assert not any(o["kind"].startswith("Cluster") for o in objects.values())
    binding = objects["RoleBinding/funade-controller"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "funade-controller", "namespace": "platform"}
    ]
    gateway_pod = objects["Deployment/funade-gateway"]["spec"]["template"]["spec"]
    assert gateway_pod["serviceAccountName"] == "funade-gateway"
    assert gateway_pod["automountServiceAccountToken"] is False
    assert objects["ServiceAccount/funade-gateway"]["automountServiceAccountToken"] is False


def test_the_backend_uses_exactly_what_the_role_grants(tmp_path: Path) -> None:
    """Least privilege, measured: every request of a revision's whole life (start, observe,
    scale, renew the key, stop) against the stand-in, as RBAC verbs, is what the Role grants."""
    with ApiServer() as server:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(server.kubeconfig())
        settings = Settings(home=tmp_path / "home", kubernetes_kubeconfig=kubeconfig)
        db = open_database(settings, migrate=True)
        bootstrap(settings, db)
        kube = connect(settings)
        watch = PodWatch(kube, OWNER, timeout_seconds=1)
        backend = KubernetesBackend(
            kube, keys=StoreKeys(db), pods={"cpu": "1", "max_replicas": 3}, key_hours=1, watch=watch
        )
        watch.start()
        spec = ReplicaSpec(
            deployment="churn", revision=1, source="churn:1", digest="sha256:" + "a" * 64
        )
        first = backend.start(spec)
        second = backend.start(spec)
        backend.replicas()
        deadline = time.monotonic() + 10
        while not any("watch=1" in target for _, target, _ in server.requests):
            assert time.monotonic() < deadline, "the pods were never watched"
            time.sleep(0.05)
        backend.clock = lambda: 10**10
        backend.renew_keys()
        backend.stop(second.id)
        backend.stop(first.id)
        backend.close()
        db.dispose()
    used: set[tuple[str, str]] = set()
    for method, target, _ in server.requests:
        path, _, query = target.partition("?")
        parts = path.strip("/").split("/")
        named = parts[-2] != "namespaces" and len(parts) % 2 == (0 if parts[0] == "api" else 1)
        resource = parts[-2] if named else parts[-1]
        verb = {
            "PATCH": "patch",
            "DELETE": "delete",
            "GET": "get" if named else ("watch" if "watch=1" in query else "list"),
        }[method]
        used.add((verb, resource))
        if verb == "patch":
            used.add(("create", resource))  # an apply that creates is checked as create too
    plural = {"Secret": "secrets", "Service": "services", "Deployment": "deployments"}
    plural |= {"HorizontalPodAutoscaler": "horizontalpodautoscalers", "Pod": "pods"}
    granted = {(verb, plural[kind]) for kind, verbs in VERBS.items() for verb in verbs}
    assert used == granted


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"gateway_replicas": 0}, "--gateway-replicas", "out of range"),
        ({"image": "Not An Image"}, "--image", "is not an image name"),
        ({"namespace": "Funade"}, "--namespace", "not a valid Kubernetes namespace"),
        ({"gateway_host": "funade.example.com"}, "--gateway-host", "are both"),
        ({"api_host": "a host"}, "--api-host", "is not a valid Kubernetes host name"),
        ({"trusted_proxies": ("the ingress",)}, "--trusted-proxy", "is not an IP network"),
        ({"pods": {"cpu": "lots"}}, "kubernetes_pods.cpu", "is not a CPU quantity"),
    ],
)
def test_wrong_options_are_refused_naming_them(
    change: dict[str, Any], field: str, message: str
) -> None:
    options = PlatformOptions(**{"image": IMAGE, **change})
    with pytest.raises(InvalidInputError, match=message) as caught:
        render_platform(options)
    assert caught.value.field == field


# The command ----------------------------------------------------------------------------------


def test_the_command_writes_one_file_per_object_and_secrets_apart(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    out = tmp_path / "k8s"
    done = cli("platform", "manifests", "-o", str(out), "--image", IMAGE, "-n", "platform")
    assert done.code == 0, done.err
    names = sorted(p.name for p in out.iterdir())
    assert "funade-control-plane-deployment.yaml" in names
    assert "funade-controller-role.yaml" in names
    assert "secrets" in names
    secret = out / "secrets" / "funade-database-secret.yaml"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert "Secret: fill in REPLACE-ME, apply once" in done.out
    for path in out.glob("*.yaml"):
        kubernetes_validate.validate(yaml.safe_load(path.read_text()), K8S, strict=True)
    secret.write_text(secret.read_text().replace("REPLACE-ME", "filled"))
    again = cli("platform", "manifests", "-o", str(out), "--image", IMAGE)
    assert again.code == 0
    assert f"Kept {secret} (it exists)." in again.out
    assert "filled" in secret.read_text()  # never replaced by placeholders


def test_the_command_refuses_a_wrong_option_before_writing(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    out = tmp_path / "k8s"
    done = cli("platform", "manifests", "-o", str(out), "--trusted-proxy", "ingress")
    assert done.code == 2
    assert "--trusted-proxy 'ingress' is not an IP network" in done.err
    assert not out.exists()
    (tmp_path / "file").write_text("")
    done = cli("platform", "manifests", "-o", str(tmp_path / "file"))
    assert done.code == 2
    assert "is a file, not a directory" in done.err
