"""A backend for tests that plays the objects `funade manifests --target kubernetes` rendered
with `podman kube play`, standing in for a cluster's kubelet and Service on one machine.

What it does, per revision (``<deployment>-r<revision>``, the files the command wrote):

- the credential Secret: podman 4.3's `kube play` of a ``kind: Secret`` stores it as YAML and
  then cannot read it back for a ``secretKeyRef`` ("is not valid JSON"), so the Secret the
  Deployment names is made with `podman secret create`, in the form podman reads (a JSON map of
  key to base64 value), holding a replica token made here;
- the Deployment and the Service, played as rendered but for one change: the container's port
  gets ``hostIP: 127.0.0.1`` and a free ``hostPort``. Podman 4.3 publishes every container port
  on all addresses at its own number unless ``hostPort`` says otherwise (8080 would be taken by
  the second pod), and a pod here has no address the gateway could reach but a published port.
  Podman plays a Deployment as one pod (``<name>-pod-0``) and ignores the Service;
- readiness: podman runs no readinessProbe (it turns the livenessProbe into a HEALTHCHECK that
  nothing schedules without systemd), so this backend asks the pod's ``/v2/health/ready`` on
  every pass, as the kubelet's readinessProbe would, and reads an exited container as a crash;
- stop: `podman kube down` of what it played, and the Secret removed.

One replica per revision (a played Deployment is one pod); the URL is the pod's published port,
where on a cluster it is the revision's Service.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from funade.deploy.backends.base import Replica, ReplicaSpec, ReplicaState
from tests.images.podman import PODMAN


def podman(
    *args: str, check: bool = True, input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run podman (as tests/images/podman.py's ``podman`` does, with standard input)."""
    assert PODMAN is not None
    done = subprocess.run(
        [PODMAN, *args], input=input, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done


@dataclass
class Played:
    spec: ReplicaSpec
    pod: str
    played: Path
    secret: str
    url: str
    token: str
    started_at: float


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def credential_secret(deployment: dict[str, Any]) -> str:
    """The Secret the rendered pod reads its replica token from."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    for env in container["env"]:
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if env["name"] == "FUNADE_REPLICA_TOKEN" and ref:
            return str(ref["name"])
    raise AssertionError(f"the rendered container reads no FUNADE_REPLICA_TOKEN: {container}")


class PlayedPods:
    """See the module's docstring. ``rendered``: the directory `funade manifests -o` wrote."""

    def __init__(self, rendered: Path, work: Path) -> None:
        self.rendered = rendered
        self.work = work
        self.podman = podman
        self.played: dict[str, Played] = {}

    def start(self, spec: ReplicaSpec) -> Replica:
        name = f"{spec.deployment}-r{spec.revision}"
        deployment = yaml.safe_load((self.rendered / f"{name}-deployment.yaml").read_text())
        service = yaml.safe_load((self.rendered / f"{name}-service.yaml").read_text())
        token = secrets.token_urlsafe(32)
        secret = credential_secret(deployment)
        self.podman("secret", "rm", secret, check=False)
        data = {"replica-token": base64.b64encode(token.encode()).decode()}
        self.podman("secret", "create", secret, "-", input=json.dumps(data))
        port = free_port()
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        (published,) = container["ports"]
        published.update(hostIP="127.0.0.1", hostPort=port)
        played = self.work / f"{name}.yaml"
        played.write_text(yaml.safe_dump_all([deployment, service]))
        self.podman("kube", "play", str(played))
        replica = Played(
            spec,
            f"{name}-pod-0",
            played,
            secret,
            f"http://127.0.0.1:{port}",
            token,
            time.time(),
        )
        self.played[replica.pod] = replica
        return self._replica(replica, ReplicaState.STARTING)

    def replicas(self) -> list[Replica]:
        out = []
        for played in list(self.played.values()):
            try:
                ready = httpx.get(f"{played.url}/v2/health/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                ready = False
            if ready:
                out.append(self._replica(played, ReplicaState.READY))
                continue
            state = self.podman(
                "container",
                "inspect",
                "--format",
                "{{.State.Status}}",
                f"{played.pod}-{self.container(played)}",
                check=False,
            ).stdout.strip()
            if state in ("exited", "stopped", ""):
                out.append(self._replica(played, ReplicaState.EXITED, f"container {state}"))
            else:
                out.append(self._replica(played, ReplicaState.STARTING))
        return out

    def stop(self, replica_id: str, *, grace_seconds: float = 30.0) -> None:
        played = self.played.pop(replica_id, None)
        if played is not None:
            self.podman("kube", "down", str(played.played), check=False)
            self.podman("secret", "rm", played.secret, check=False)

    def stop_all(self, *, grace_seconds: float = 30.0) -> None:
        for pod in list(self.played):
            self.stop(pod, grace_seconds=grace_seconds)

    def close(self) -> None:
        pass

    @staticmethod
    def container(played: Played) -> str:
        deployment = next(yaml.safe_load_all(played.played.read_text()))
        return str(deployment["spec"]["template"]["spec"]["containers"][0]["name"])

    def _replica(self, played: Played, state: ReplicaState, detail: str = "") -> Replica:
        return Replica(
            played.pod,
            played.spec,
            played.url,
            state,
            played.started_at,
            detail,
            played.token,
        )
