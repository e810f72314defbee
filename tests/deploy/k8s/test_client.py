"""The thin client layer against the stand-in API server (apiserver.py, a real HTTP server that
checks requests as Kubernetes does): server-side apply with funade's field manager, conflicts,
lists by owner labels, deletes, pods, EndpointSlices and watches; every error it turns into
funade's, with the setting and the fix; and the stand-in's own checks, so a client that sent
something else would fail here."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from funade.deploy.k8s.client import (
    APPLY_CONTENT_TYPE,
    KubeClient,
    PodState,
    connect,
    pod_state,
)
from funade.deploy.k8s.render import ModelVersion, RenderOptions, render
from funade.errors import (
    APIError,
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    InvalidNameError,
    PermissionDeniedError,
)
from funade.settings import Settings

from .apiserver import ApiServer

DIGEST = "sha256:" + "0123456789abcdef" * 4
VERSION = ModelVersion("churn", 3, DIGEST, project="fraud")
OWNER = {"app.kubernetes.io/managed-by": "funade"}


@pytest.fixture
def server() -> Iterator[ApiServer]:
    with ApiServer() as running:
        yield running


def settings_for(tmp_path: Path, text: str, **extra: Any) -> Settings:
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    return Settings(home=tmp_path / "home", kubernetes_kubeconfig=path, **extra)


@pytest.fixture
def kube(server: ApiServer, tmp_path: Path) -> Iterator[KubeClient]:
    client = connect(settings_for(tmp_path, server.kubeconfig()))
    yield client
    client.close()


def objects(revision: int = 3, **options: Any) -> list[dict[str, Any]]:
    return render(VERSION, RenderOptions(revision=revision, namespace="models", **options))


# Apply ----------------------------------------------------------------------------------------


def test_apply_is_server_side_apply_as_funade(kube: KubeClient, server: ApiServer) -> None:
    deployment, service = objects()
    stored = kube.apply(service)
    kube.apply(deployment)
    assert stored["metadata"]["uid"]
    assert [m["manager"] for m in stored["metadata"]["managedFields"]] == ["funade"]
    method, target, content_type = server.requests[-1]
    assert method == "PATCH"
    assert target == "/apis/apps/v1/namespaces/models/deployments/churn-r3?fieldManager=funade"
    assert content_type == APPLY_CONTENT_TYPE
    assert kube.namespace == "models"  # the kubeconfig context's
    assert server.names("Deployment") == ["churn-r3"]
    assert len(server.pods_of("churn-r3")) == 1


def test_apply_again_unchanged_changes_nothing_and_a_change_is_a_new_generation(
    kube: KubeClient,
) -> None:
    deployment = objects()[0]
    first = kube.apply(deployment)
    again = kube.apply(deployment)
    assert again["metadata"]["generation"] == first["metadata"]["generation"]
    deployment["spec"]["replicas"] = 3
    changed = kube.apply(deployment)
    assert changed["metadata"]["generation"] == first["metadata"]["generation"] + 1
    assert changed["spec"]["replicas"] == 3


def test_an_object_the_schema_refuses_is_an_invalid_input_naming_the_field(
    kube: KubeClient,
) -> None:
    deployment = objects()[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(InvalidInputError, match="readinesProbe") as caught:
        kube.apply(deployment)
    assert caught.value.field == "kubernetes"
    assert "422 Invalid" in caught.value.message


def test_a_field_another_manager_owns_is_a_conflict_unless_forced(
    kube: KubeClient, server: ApiServer
) -> None:
    deployment = objects()[0]
    kube.apply(deployment)
    server.update_as("kubectl", "Deployment", "churn-r3", {"spec": {"replicas": 5}})
    with pytest.raises(ConflictError, match=r'conflict with "kubectl": \.spec\.replicas') as caught:
        kube.apply(deployment)
    assert caught.value.field == "fieldManager"
    assert "Another field manager owns those fields" in str(caught.value)
    assert server.get("Deployment", "churn-r3")["spec"]["replicas"] == 5  # type: ignore[index]
    forced = kube.apply(deployment, force=True)
    assert forced["spec"]["replicas"] == 1
    assert server.requests[-1][1].endswith("fieldManager=funade&force=true")
    kube.apply(deployment)  # funade owns the field now: no conflict


def test_only_the_kinds_funade_uses_are_applied(kube: KubeClient) -> None:
    with pytest.raises(ValueError, match="does not apply v1/ConfigMap objects"):
        kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})


# Read and delete ------------------------------------------------------------------------------


def test_list_by_owner_labels_get_and_delete(kube: KubeClient, server: ApiServer) -> None:
    for obj in objects(3) + objects(4):
        kube.apply(obj)
    theirs = objects(5)[1]
    theirs["metadata"]["labels"] = {"app": "not-funade"}
    kube.apply(theirs)
    listing = kube.list("Service", OWNER)
    assert [o["metadata"]["name"] for o in listing.items] == ["churn-r3", "churn-r4"]
    assert {o["kind"] for o in listing.items} == {"Service"}  # put back on list items
    assert int(listing.resource_version) > 0
    revision4 = kube.list("Deployment", {**OWNER, "funade.dev/revision": "4"}).items
    assert [o["metadata"]["name"] for o in revision4] == ["churn-r4"]
    assert kube.get("Deployment", "churn-r9") is None
    assert kube.get("Service", "churn-r3")["spec"]["type"] == "ClusterIP"  # type: ignore[index]
    assert kube.delete("Deployment", "churn-r3") is True
    assert kube.delete("Deployment", "churn-r3") is False
    assert server.pods_of("churn-r3") == []  # its pods went with it
    assert server.names("Deployment") == ["churn-r4"]


def test_pods_their_readiness_and_the_services_endpoint_slices(
    kube: KubeClient, server: ApiServer
) -> None:
    for obj in objects(replicas=2):
        kube.apply(obj)
    ready, crashing = server.pods_of("churn-r3")
    selector = {"funade.dev/deployment": "churn", "funade.dev/revision": "3"}
    assert [pod_state(p).ready for p in kube.pods(selector)] == [False, False]
    server.mark_ready(ready)
    server.mark_failed(crashing, "CrashLoopBackOff", "back-off 5m0s restarting failed container")
    states = {p["metadata"]["name"]: pod_state(p) for p in kube.pods(selector)}
    assert states[ready] == PodState(ready=True)
    assert not states[crashing].ready
    assert states[crashing].failed == (
        "CrashLoopBackOff: back-off 5m0s restarting failed container"
    )
    (slice_,) = kube.endpoint_slices("churn-r3")
    assert [e["conditions"]["ready"] for e in slice_["endpoints"]] == [True]
    assert slice_["endpoints"][0]["targetRef"]["name"] == ready


def test_pod_state_reads_failed_phases_and_deletions() -> None:
    assert pod_state({"status": {"phase": "Failed", "reason": "Evicted"}}).failed == "Evicted"
    assert pod_state({"metadata": {"deletionTimestamp": "x"}}).failed == "being deleted"
    waiting = {"state": {"waiting": {"reason": "ContainerCreating"}}}
    assert pod_state({"status": {"containerStatuses": [waiting]}}) == pod_state({})


# Watch ----------------------------------------------------------------------------------------


def test_watch_streams_the_changes_after_a_list(kube: KubeClient, server: ApiServer) -> None:
    kube.apply(objects()[0])
    selector = {"funade.dev/revision": "3"}
    listing = kube.list("Pod", selector)
    (pod,) = server.pods_of("churn-r3")
    server.mark_ready(pod)
    seen = []
    for event in kube.watch(
        "Pod", selector, resource_version=listing.resource_version, timeout_seconds=5
    ):
        seen.append((event.type, event.object["metadata"]["name"], pod_state(event.object).ready))
        if pod_state(event.object).ready:
            break
    assert seen == [("MODIFIED", pod, True)]
    deleted = []
    after = kube.list("Pod", selector).resource_version
    kube.delete("Deployment", "churn-r3")
    for event in kube.watch("Pod", selector, resource_version=after, timeout_seconds=5):
        deleted.append(event.type)
        break
    assert deleted == ["DELETED"]


def test_a_watch_from_a_forgotten_version_is_gone(kube: KubeClient, server: ApiServer) -> None:
    kube.apply(objects()[0])
    server.compact()
    with pytest.raises(APIError, match="410 Gone") as caught:
        list(kube.watch("Pod", {}, resource_version="1", timeout_seconds=1))
    assert "List the objects again" in str(caught.value)


def test_a_watch_ends_after_its_timeout(kube: KubeClient) -> None:
    listing = kube.list("Pod", {})
    assert (
        list(kube.watch("Pod", {}, resource_version=listing.resource_version, timeout_seconds=1))
        == []
    )


# Errors ---------------------------------------------------------------------------------------


def test_a_wrong_token_is_an_authentication_error_naming_the_kubeconfig(
    server: ApiServer, tmp_path: Path
) -> None:
    client = connect(settings_for(tmp_path, server.kubeconfig(token="wrong")))
    with pytest.raises(AuthenticationError, match="did not accept funade's credentials") as caught:
        client.list("Deployment", OWNER)
    assert caught.value.field == "kubernetes_kubeconfig"
    assert server.url in str(caught.value)


def test_a_namespace_without_rights_is_permission_denied_naming_the_role(
    server: ApiServer, tmp_path: Path
) -> None:
    client = connect(settings_for(tmp_path, server.kubeconfig(), kubernetes_namespace="elsewhere"))
    assert client.namespace == "elsewhere"  # the setting wins over the context
    with pytest.raises(PermissionDeniedError, match="403 Forbidden") as caught:
        client.apply(objects()[1])
    assert caught.value.field == "kubernetes_namespace"
    assert "funade platform manifests" in str(caught.value)


def test_an_api_server_that_does_not_answer(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    text = ApiServer().kubeconfig().replace('"server": ""', f'"server": "http://127.0.0.1:{port}"')
    client = connect(settings_for(tmp_path, text))
    client.api.configuration.retries = 0
    with pytest.raises(APIError, match="did not answer") as caught:
        client.get("Deployment", "churn-r3")
    assert caught.value.field == "kubernetes_kubeconfig"


def test_a_kubeconfig_that_is_not_a_file(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, kubernetes_kubeconfig=tmp_path / "nope")
    with pytest.raises(InvalidInputError, match="is not a file") as caught:
        connect(settings)
    assert caught.value.field == "kubernetes_kubeconfig"
    assert caught.value.value == str(tmp_path / "nope")


def test_an_unknown_context(server: ApiServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, server.kubeconfig(), kubernetes_context="prod")
    with pytest.raises(InvalidInputError, match="cannot be used") as caught:
        connect(settings)
    assert caught.value.field == "kubernetes_context"
    assert caught.value.value == "prod"


def test_no_kubeconfig_outside_a_pod(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no kubeconfig is set") as caught:
        connect(Settings(home=tmp_path))
    assert caught.value.field == "kubernetes_kubeconfig"
    assert "FUNADE_KUBERNETES_KUBECONFIG" in str(caught.value)


def test_a_namespace_that_is_not_a_name(server: ApiServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, server.kubeconfig(), kubernetes_namespace="Models!")
    with pytest.raises(InvalidNameError, match="not a valid Kubernetes namespace") as caught:
        connect(settings)
    assert caught.value.field == "kubernetes_namespace"


# The stand-in refuses what a real API server refuses ------------------------------------------


def test_the_stand_in_refuses_requests_a_real_server_would(server: ApiServer) -> None:
    deployment = objects()[0]
    url = f"{server.url}/apis/apps/v1/namespaces/models/deployments/churn-r3"
    auth = {"authorization": f"Bearer {server.token}"}
    with httpx.Client() as http:
        merge = http.patch(
            url,
            params={"fieldManager": "funade"},
            json=deployment,
            headers={**auth, "content-type": "application/merge-patch+json"},
        )
        assert (merge.status_code, merge.json()["reason"]) == (415, "UnsupportedMediaType")
        apply = {**auth, "content-type": APPLY_CONTENT_TYPE}
        unmanaged = http.patch(url, json=deployment, headers=apply)
        assert unmanaged.status_code == 422
        assert "fieldManager: Required value" in unmanaged.json()["message"]
        renamed = http.patch(
            url.replace("churn-r3", "other"),
            params={"fieldManager": "f"},
            json=deployment,
            headers=apply,
        )
        assert (renamed.status_code, renamed.json()["reason"]) == (400, "BadRequest")
        wrong_group = http.get(
            f"{server.url}/apis/apps/v2/namespaces/models/deployments", headers=auth
        )
        assert wrong_group.status_code == 404
        missing = http.get(url, headers=auth)
        assert missing.json()["message"] == 'deployments.apps "churn-r3" not found'


def test_the_stand_in_refuses_names_and_labels_kubernetes_refuses(kube: KubeClient) -> None:
    service = objects()[1]
    bad_name = {**service, "metadata": {**service["metadata"], "name": "9-lives"}}
    with pytest.raises(InvalidInputError, match="a DNS-1035 label"):
        kube.apply(bad_name)
    bad_label = {**service, "metadata": {**service["metadata"], "labels": {"app": "a b"}}}
    with pytest.raises(InvalidInputError, match="a valid label value"):
        kube.apply(bad_label)
