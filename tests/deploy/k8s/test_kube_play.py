"""The rendered Kubernetes objects run: `funade build` makes a version's image (with podman, on
the base image scripts/podman-setup makes; the builder's layer cache makes it seconds when the
same wheel and pins were built before), `funade manifests --target kubernetes` renders its
Deployment and Service, `podman kube play` starts the pod from them, funade's controller rolls
the deployment out to it (verification included) and a real funade gateway routes predictions to
it with the replica token the pod read from its Secret.

What of the cluster path this is and is not (tests/deploy/k8s/kubeplay.py says it in full):
the image, the Deployment's pod template (command, env by secretKeyRef, uid 10001, read-only
root filesystem, emptyDirs, dropped capabilities) and `funade serve` in it are real; the
Service, kube-proxy, the probes and the Kubernetes backend's API calls are not (podman ignores
the Service and readiness/startup probes, and the backend here is kubeplay.PlayedPods, which
plays the files and reads readiness itself; the backend's API calls are tested against the
stand-in API server in test_backend.py). The gateway reaches the pod at a published loopback
port where on a cluster it reaches the revision's Service.

Skipped only where podman is not installed; elsewhere a missing base image fails naming
scripts/podman-setup (the fixtures of tests/images/podman.py)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

import funade
from funade.api.app import create_app
from funade.artifacts import ArtifactStore
from funade.client import Client
from funade.deploy.controller import start_controller
from funade.gateway.app import Gateway
from funade.settings import Settings
from funade.store import Database
from tests.conftest import Result
from tests.deploy.conftest import Plane
from tests.deploy.k8s.kubeplay import PlayedPods, podman
from tests.images.podman import (  # noqa: F401 - fixtures
    BASE,
    needs_podman,
    podman_ready_fixture,
    remove_image,
    wheel_fixture,
)
from tests.servers import serve

pytestmark = [
    needs_podman,
    pytest.mark.slow,
    # A first build installs funade's and scikit-learn's packages from PyPI (30 to 45 s here).
    pytest.mark.timeout(900),
]


class Cluster(Plane):
    """A control plane whose controller runs revisions with ``PlayedPods``, and a gateway."""

    def __init__(self, plane: Plane, gateway: str, pods: PlayedPods, images: list[str]) -> None:
        super().__init__(plane.url, plane.client, plane.controller, plane.home)
        self.gateway = gateway
        self.pods = pods
        self.images = images
        """Tags the test made, removed at the end (their layers stay: the next run's cache)."""


@pytest.fixture
def cluster(
    settings: Settings,
    database: Database,
    admin_key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Cluster]:
    (tmp_path / "rendered").mkdir()
    (tmp_path / "played").mkdir()
    pods = PlayedPods(tmp_path / "rendered", tmp_path / "played")
    controller, stop = start_controller(database, pods, interval=0.2, grace_seconds=5)
    app = create_app(settings, database, ArtifactStore.from_settings(settings), controller=True)
    gateway = Gateway(database, refresh_seconds=0.1, stats_seconds=0.2)
    images: list[str] = []
    try:
        with (
            serve(app) as url,
            serve(gateway) as gateway_url,
            Client(url=url, api_key=admin_key, settings=settings) as client,
        ):
            monkeypatch.setenv("FUNADE_URL", url)
            monkeypatch.setenv("FUNADE_API_KEY", admin_key)
            plane = Plane(url, client, controller, settings.home)
            yield Cluster(plane, gateway_url, pods, images)
    finally:
        stop()
        pods.stop_all()
        remove_image(*images)


def _fit() -> tuple[Any, np.ndarray]:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(n_samples=60, n_features=4, n_informative=2, random_state=0)
    return LogisticRegression().fit(x, y), x


def _timed(what: str, started: float, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\n[kube play timing] {what}: {time.monotonic() - started:.1f} s")


def test_a_played_deployment_serves_predictions_through_the_gateway(
    podman_ready: None,
    wheel: Path,
    cluster: Cluster,
    cli: Callable[..., Result],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    model, x = _fit()
    # A model of its own per run, so that pods and Secrets of runs side by side never meet (the
    # image serves the model under its name, which the deployment's must be: the gateway calls
    # /v2/models/<deployment>). Its package, so its image's layers, are the same every run.
    name = f"iris-{secrets.token_hex(3)}"
    funade.log_model(model, name, sample_input=x[:2], client=cluster.client, progress=False)
    version = cluster.client.get_version(name, "1")

    # The image, tagged as `funade manifests` expects it (funade/<model>:1-<12 hex of digest>).
    started = time.monotonic()
    built = cli("build", f"{name}:1", "--base", BASE, "--funade-wheel", str(wheel))
    _timed(f"funade build {name}:1", started, capsys)
    assert built.code == 0, built.err
    tag = f"funade/{name}:1-{version.artifact.digest.removeprefix('sha256:')[:12]}"
    cluster.images.append(tag)
    assert f"Built {tag} ({name}:1) with podman." in built.out

    rendered = tmp_path / "rendered"
    made = cli("manifests", f"{name}:1", "--target", "kubernetes", "-o", str(rendered))
    assert made.code == 0, made.err
    assert sorted(p.name for p in rendered.iterdir()) == [
        f"{name}-r1-deployment.yaml",
        f"{name}-r1-service.yaml",
    ]
    deployment = yaml.safe_load((rendered / f"{name}-r1-deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == tag  # the rendered default is the image `funade build` made

    # The controller starts revision 1 as the played pod, verifies it and routes to it.
    started = time.monotonic()
    cluster.client.create_deployment(name)
    rollout = cluster.wait_rollout(name, ("succeeded", "failed"))
    _timed("create_deployment to a succeeded rollout (kube play, ready, verified)", started, capsys)
    assert rollout.state == "succeeded", rollout.reason
    (played,) = cluster.pods.played.values()
    assert played.pod == f"{name}-r1-pod-0"

    (spec,) = version.signature["inputs"]
    rows = {"name": spec["name"], "datatype": "FP64", "shape": [2, 4], "data": x[:2].tolist()}
    body = {"inputs": [rows]}
    key = {"authorization": f"Bearer {cluster.client._http.headers['authorization'][7:]}"}
    answer = _through_gateway(f"{cluster.gateway}/v2/models/{name}/infer", body, key)
    assert answer.headers["funade-revision"] == "1"
    assert answer.headers["funade-model-version"] == f"{name}:1"
    outputs = {output["name"]: output["data"] for output in answer.json()["outputs"]}
    assert outputs["predict"] == model.predict(x[:2]).tolist()

    # The pod took its token from the Secret by reference: without it the pod refuses a caller.
    direct = httpx.post(f"{played.url}/v2/models/{name}/infer", json=body, timeout=10)
    assert direct.status_code == 401, direct.text
    with_token = httpx.post(
        f"{played.url}/v2/models/{name}/infer",
        json=body,
        headers={"authorization": f"Bearer {played.token}"},
        timeout=10,
    )
    assert with_token.status_code == 200, with_token.text
    # What podman keeps of the rendered securityContext: uid 10001, a read-only root filesystem
    # with the emptyDirs writable, no capabilities.
    box = f"{played.pod}-model"
    assert podman("exec", box, "id", "-u").stdout.strip() == "10001"
    assert podman("exec", box, "touch", "/tmp/ok", "/home/funade/ok").returncode == 0
    refused = podman("exec", box, "touch", "/opt/nope", check=False)
    assert "Read-only file system" in refused.stderr
    caps = podman("exec", box, "grep", "CapEff", "/proc/self/status").stdout.split()[-1]
    assert int(caps, 16) == 0

    # Deleting the deployment takes the pod down (`podman kube down`) and its Secret with it.
    cluster.client.delete_deployment(name)
    deadline = time.monotonic() + 60
    while podman("pod", "exists", played.pod, check=False).returncode == 0:
        assert time.monotonic() < deadline, f"{played.pod} still runs after the delete"
        time.sleep(0.2)
    assert podman("secret", "inspect", played.secret, check=False).returncode != 0


def _through_gateway(url: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    """The first answer of the gateway that is not a 404/503 of a table not yet refreshed."""
    deadline = time.monotonic() + 20
    while True:
        answer = httpx.post(url, json=body, headers=headers, timeout=10)
        if answer.status_code not in (404, 503) or time.monotonic() > deadline:
            assert answer.status_code == 200, answer.text
            return answer
        time.sleep(0.1)
