"""The rendered objects, validated offline: Kubernetes' own objects with kubernetes-validate
(strict, Kubernetes 1.33), KServe's, Knative's and Istio's against the schemas in schemas/ (the
published CRDs' openAPIV3Schema, trimmed and closed by schemas/trim.py; each file's description
names the repository, path and commit). The pod spec inside a CRD object is also validated as a
Pod, so its containers meet Kubernetes' schema, not only the CRD's copy of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from funade.deploy.k8s.render import (
    DEFAULT_READY_TIMEOUT,
    ModelVersion,
    RenderOptions,
    Target,
    default_image,
    file_name,
    parse_model_cache,
    parse_toleration,
    render,
)
from funade.deploy.rollout import RolloutOptions

K8S = "1.33"
SCHEMAS = Path(__file__).parent / "schemas"
DIGEST = "sha256:" + "0123456789abcdef" * 4
VERSION = ModelVersion("churn", 3, DIGEST, project="fraud", flavor="sklearn", git_commit="4a1c9e0")

EVERYTHING: dict[str, Any] = {
    "namespace": "models",
    "revision": 4,
    "cpu": "2",
    "memory": "4Gi",
    "gpus": 1,
    "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
    "tolerations": [parse_toleration("nvidia.com/gpu:NoSchedule")],
    "image_pull_secrets": ["regcred"],
    "registry_url": "http://funade.funade.svc:8000",
    "model_cache": parse_model_cache("hostpath:/var/cache/funade"),
    "ready_timeout_seconds": 1500,
    "workers": 2,
    "max_batch_size": 64,
}
CASES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "everything": EVERYTHING,
    "autoscaled": {**EVERYTHING, "min_replicas": 2, "max_replicas": 8, "target_cpu": 70},
    "pvc-cache": {"model_cache": parse_model_cache("pvc:model-cache"), "image": "ghcr.io/a/b:1"},
}
CRD_CASES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "everything": EVERYTHING,
    "canary": {**EVERYTHING, "min_replicas": 0, "max_replicas": 8, "canary_weight": 10},
    "pvc-cache": {"model_cache": parse_model_cache("pvc:model-cache"), "host": "churn.example.com"},
}


def schema(name: str) -> jsonschema.Draft7Validator:
    document = json.loads((SCHEMAS / f"{name}.json").read_text())
    jsonschema.Draft7Validator.check_schema(document)
    return jsonschema.Draft7Validator(document)


def as_pod(pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod_spec}


def errors(validator: jsonschema.Draft7Validator, obj: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)
    ]


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return [o["kind"] for o in objects]


# Kubernetes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_every_kubernetes_object_validates_strictly_for_1_33(case: str) -> None:
    objects = render(VERSION, RenderOptions(**CASES[case]))
    assert kinds(objects)[:2] == ["Deployment", "Service"]
    for obj in objects:
        kubernetes_validate.validate(yaml.safe_load(yaml.safe_dump(obj)), K8S, strict=True)


def test_kubernetes_validate_refuses_what_the_api_server_would() -> None:
    """The check can fail: an unknown field, and a wrong type."""
    deployment = render(VERSION, RenderOptions())[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, K8S, strict=True)
    service = render(VERSION, RenderOptions())[1]
    service["spec"]["ports"][0]["port"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError, match="eighty"):
        kubernetes_validate.validate(service, K8S, strict=True)


def test_the_deployment_serves_the_version_as_the_issue_asks() -> None:
    deployment, service, hpa = render(
        VERSION, RenderOptions(**CASES["autoscaled"], image="ghcr.io/acme/churn:3")
    )
    meta = deployment["metadata"]
    assert meta["name"] == service["metadata"]["name"] == "churn-r4"
    assert meta["namespace"] == "models"
    labels = meta["labels"]
    assert labels["funade.dev/deployment"] == "churn"
    assert labels["funade.dev/revision"] == "4"
    assert labels["funade.dev/model"] == "churn"
    assert labels["funade.dev/version"] == "3"
    assert labels["app.kubernetes.io/managed-by"] == "funade"
    assert meta["annotations"]["funade.dev/digest"] == DIGEST
    assert meta["annotations"]["funade.dev/git-commit"] == "4a1c9e0"
    spec = deployment["spec"]
    selector = spec["selector"]["matchLabels"]
    assert selector == service["spec"]["selector"]
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()
    assert "replicas" not in spec  # the HPA's to set: an apply would reset it otherwise
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/acme/churn:3"
    assert container["args"] == ["--workers", "2", "--max-batch-size", "64"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 1500
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"memory": "4Gi", "nvidia.com/gpu": "1"},
    }
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e for e in container["env"]}
    assert env["FUNADE_REPLICA_TOKEN"] == {
        "name": "FUNADE_REPLICA_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "churn-r4-credentials", "key": "replica-token"}},
    }
    assert env["FUNADE_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "api-key"
    assert env["FUNADE_URL"]["value"] == "http://funade.funade.svc:8000"
    cache = next(v for v in pod["volumes"] if v["name"] == "model-cache")
    assert cache["hostPath"] == {"path": "/var/cache/funade", "type": "DirectoryOrCreate"}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "model-cache")
    assert mount == {
        "name": "model-cache",
        "mountPath": "/var/cache/funade",
        "subPath": "sha256-" + DIGEST.removeprefix("sha256:"),
    }
    assert hpa["spec"]["scaleTargetRef"]["name"] == "churn-r4"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70


def test_no_autoscaler_unless_asked_and_the_defaults() -> None:
    objects = render(VERSION, RenderOptions())
    assert kinds(objects) == ["Deployment", "Service"]
    (container,) = objects[0]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == default_image(VERSION) == "funade/churn:3-0123456789ab"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == DEFAULT_READY_TIMEOUT
    assert "resources" not in container
    assert "args" not in container  # the image's own `funade serve` options
    assert objects[0]["spec"]["replicas"] == 1
    assert [file_name(o) for o in objects] == ["churn-r1-deployment.yaml", "churn-r1-service.yaml"]


def test_the_default_ready_timeout_is_the_rollouts() -> None:
    assert RolloutOptions().ready_timeout_seconds == DEFAULT_READY_TIMEOUT


def test_no_token_is_ever_written() -> None:
    """The credential is only ever a reference to a Secret's key."""
    for target in Target:
        objects = render(VERSION, RenderOptions(target=target, **EVERYTHING))
        secret = {e["name"]: e for e in _all_env(objects) if e["name"].endswith(("TOKEN", "KEY"))}
        assert sorted(secret) == ["FUNADE_API_KEY", "FUNADE_REPLICA_TOKEN"], target
        for env in secret.values():
            assert "value" not in env
            assert "secretKeyRef" in env["valueFrom"]


def _all_env(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("env"), list):
            yield from node["env"]
        for value in node.values():
            yield from _all_env(value)
    elif isinstance(node, list):
        for value in node:
            yield from _all_env(value)


# KServe, Knative, Istio --------------------------------------------------------------------------


@pytest.mark.parametrize("case", CRD_CASES)
def test_the_inference_service_validates_against_kserves_crd(case: str) -> None:
    (isvc,) = render(VERSION, RenderOptions(target=Target.KSERVE, **CRD_CASES[case]))
    assert errors(schema("inferenceservice"), isvc) == []
    predictor = dict(isvc["spec"]["predictor"])
    for key in ("minReplicas", "maxReplicas", "canaryTrafficPercent", "scaleMetric", "scaleTarget"):
        predictor.pop(key, None)
    kubernetes_validate.validate(as_pod(predictor), K8S, strict=True)


def test_the_inference_service_is_a_v2_custom_predictor() -> None:
    (isvc,) = render(VERSION, RenderOptions(target=Target.KSERVE, **CRD_CASES["canary"]))
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert isvc["metadata"]["name"] == "churn"
    predictor = isvc["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (0, 8)
    (container,) = predictor["containers"]
    # KServe's custom predictor: the container it serves is named kserve-container, and it
    # reads the protocol version from PROTOCOL (pkg/apis/serving/v1beta1/predictor_custom.go).
    assert container["name"] == "kserve-container"
    assert {"name": "PROTOCOL", "value": "v2"} in container["env"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["ports"] == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]


@pytest.mark.parametrize("case", CRD_CASES)
def test_knative_and_istio_objects_validate_against_their_crds(case: str) -> None:
    options = dict(CRD_CASES[case])
    if "canary_weight" in options:
        options["stable_revision"] = 3
    service, virtual = render(VERSION, RenderOptions(target=Target.KNATIVE, **options))
    assert errors(schema("knative-service"), service) == []
    assert errors(schema("virtualservice"), virtual) == []
    kubernetes_validate.validate(as_pod(service["spec"]["template"]["spec"]), K8S, strict=True)


def test_knative_splits_the_canary_by_traffic_tags_and_istio_weights() -> None:
    options = RenderOptions(
        target=Target.KNATIVE, namespace="models", revision=4, canary_weight=10, stable_revision=3
    )
    service, virtual = render(VERSION, options)
    assert service["spec"]["template"]["metadata"]["name"] == "churn-r4"
    assert service["spec"]["traffic"] == [
        {"revisionName": "churn-r3", "percent": 90, "tag": "rev-3", "latestRevision": False},
        {"revisionName": "churn-r4", "percent": 10, "tag": "rev-4", "latestRevision": False},
    ]
    assert virtual["apiVersion"] == "networking.istio.io/v1"
    assert virtual["spec"]["hosts"] == ["churn.models.svc.cluster.local"]
    (route,) = virtual["spec"]["http"]
    assert [(r["destination"]["host"], r["weight"]) for r in route["route"]] == [
        ("rev-3-churn.models.svc.cluster.local", 90),
        ("rev-4-churn.models.svc.cluster.local", 10),
    ]


def test_the_crd_schemas_refuse_a_wrong_field() -> None:
    """Trimmed and closed: a misspelt field, a field funade never writes, or a wrong type fails."""
    (isvc,) = render(VERSION, RenderOptions(target=Target.KSERVE))
    isvc["spec"]["predictor"]["containers"][0]["imagee"] = "x"
    assert any("imagee" in e for e in errors(schema("inferenceservice"), isvc))
    service, virtual = render(VERSION, RenderOptions(target=Target.KNATIVE))
    service["spec"]["traffic"][0]["percent"] = "ninety"
    assert any("traffic.0.percent" in e for e in errors(schema("knative-service"), service))
    virtual["spec"]["http"][0]["route"][0]["destination"].pop("host")
    assert any("'host' is a required" in e for e in errors(schema("virtualservice"), virtual))
    virtual["apiVersion"] = "networking.istio.io/v1alpha1"
    assert any("apiVersion" in e for e in errors(schema("virtualservice"), virtual))


@pytest.mark.parametrize("name", ["inferenceservice", "knative-service", "virtualservice"])
def test_each_schema_says_where_it_came_from(name: str) -> None:
    description = json.loads((SCHEMAS / f"{name}.json").read_text())["description"]
    assert "github.com/" in description
    assert " at commit " in description
