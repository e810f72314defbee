"""What a revision asks of its pods over the platform's ``kubernetes_pods``: the startupProbe's
allowance from its rollout's ready timeout (filled into the ReplicaSpec by the controller), and
autoscaling from its runtime; against the stand-in API server (apiserver.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from funade.deploy.backends import ReplicaSpec, ReplicaState, RuntimeConfig
from funade.deploy.backends.base import Autoscale
from tests.deploy.conftest import Plane, calc, plane  # noqa: F401 - the control plane fixtures
from tests.serving.models import Arithmetic

from .test_backend import SPEC, Cluster, cluster  # noqa: F401 - the stand-in's fixture


def _startup(kube: Cluster, name: str = "churn-r3") -> tuple[int, int]:
    deployment = kube.server.get("Deployment", name)
    assert deployment is not None
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container["startupProbe"]["failureThreshold"], deployment["spec"][
        "progressDeadlineSeconds"
    ]


def _autoscaled(**autoscale: Any) -> ReplicaSpec:
    return SPEC.model_copy(update={"runtime": RuntimeConfig(autoscale=Autoscale(**autoscale))})


@pytest.mark.parametrize(
    ("pods", "ready_timeout", "expected"),
    [
        ({}, None, (60, 660)),  # neither says: a rollout's default, 10 minutes
        ({"ready_timeout_seconds": 300}, None, (30, 360)),  # a spec from before: the platform's
        ({"ready_timeout_seconds": 300}, 1200.0, (120, 1260)),  # the revision's rollout wins
    ],
)
def test_the_startup_probe_allows_the_revisions_ready_timeout(
    cluster: Cluster,  # noqa: F811
    pods: dict[str, Any],
    ready_timeout: float | None,
    expected: tuple[int, int],
) -> None:
    backend = cluster.backend(pods=pods)
    backend.start(SPEC.model_copy(update={"ready_timeout_seconds": ready_timeout}))
    assert _startup(cluster) == expected
    backend.close()


def test_a_revision_that_asks_for_autoscaling_gets_an_hpa(cluster: Cluster) -> None:  # noqa: F811
    backend = cluster.backend(pods={"cpu": "1"})
    backend.start(_autoscaled(max_replicas=4, target_cpu=70))
    backend.start(_autoscaled(max_replicas=4, target_cpu=70))
    hpa = cluster.server.get("HorizontalPodAutoscaler", "churn-r3")
    assert hpa is not None
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["target"]["averageUtilization"] == 70
    deployment = cluster.server.get("Deployment", "churn-r3")
    assert deployment is not None
    assert "replicas" not in deployment["spec"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"] == "1"
    backend.close()


def test_a_revisions_cpu_request_and_a_ceiling_below_its_slots(cluster: Cluster) -> None:  # noqa: F811
    backend = cluster.backend()  # no kubernetes_pods.cpu: the revision's own
    backend.start(_autoscaled(max_replicas=1, cpu="500m"))
    backend.start(_autoscaled(max_replicas=1, cpu="500m"))
    hpa = cluster.server.get("HorizontalPodAutoscaler", "churn-r3")
    assert hpa is not None
    # Two slots wanted by the controller: the HPA may not hold fewer (Kubernetes refuses a
    # maxReplicas below minReplicas).
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 2)
    deployment = cluster.server.get("Deployment", "churn-r3")
    assert deployment is not None
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"] == "500m"
    backend.close()


def test_autoscaling_without_a_cpu_request_is_a_failed_start_naming_the_field(
    cluster: Cluster,  # noqa: F811
) -> None:
    backend = cluster.backend()
    replica = backend.start(_autoscaled(max_replicas=3))
    assert replica.state is ReplicaState.FAILED
    assert replica.detail.startswith("Revision 3 of churn asks for autoscaling, but its pods")
    assert cluster.server.names("Deployment") == []
    assert cluster.server.names("Secret") == []
    assert backend.replicas() == []
    backend.close()


@pytest.mark.parametrize(
    ("autoscale", "field"),
    [
        ({"max_replicas": 0}, "max_replicas"),
        ({"max_replicas": 3, "target_cpu": 101}, "target_cpu"),
        ({"max_replicas": 3, "cpu": "lots"}, "cpu"),
        ({"max_replicas": 3, "min_replicas": 2}, "min_replicas"),
    ],
)
def test_a_wrong_autoscale_is_refused_naming_the_field(
    autoscale: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        RuntimeConfig.model_validate({"autoscale": autoscale})
    (error,) = caught.value.errors()
    assert error["loc"] == ("autoscale", field)


def test_the_api_refuses_a_wrong_autoscale_with_a_422(calc: Plane) -> None:  # noqa: F811
    response = httpx.patch(
        f"{calc.url}/api/v1/deployments/calc",
        json={"runtime": {"autoscale": {"max_replicas": 3, "cpu": "2 cores"}}},
        headers={"authorization": calc.client._http.headers["authorization"]},
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["field"], error["value"]) == ("runtime.autoscale.cpu", "2 cores")
    assert error["message"].startswith("'runtime.autoscale.cpu' is invalid: String should match")


def test_the_controller_gives_each_revision_its_rollouts_ready_timeout(
    calc: Plane,  # noqa: F811
) -> None:
    calc.log(Arithmetic())
    calc.client.update_deployment(
        "calc",
        version="2",
        rollout={"strategy": "bluegreen", "ready_timeout_seconds": 1200, "warm_seconds": 60},
    )
    calc.wait_rollout("calc", ("succeeded",))
    backend = calc.controller.reconciler.backend
    timeouts = {r.spec.revision: r.spec.ready_timeout_seconds for r in backend.replicas()}
    assert timeouts == {1: 600.0, 2: 1200.0}  # revision 1 kept warm, from its own rollout
