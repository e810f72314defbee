"""The controllers of the stand-in API server, in miniature (a mixin of ``ApiServer``): a
Deployment's pods, an EndpointSlice per Service, and the kubelet's reports a test makes."""

from __future__ import annotations

import copy
import secrets
import threading
import time
import uuid
from typing import Any

from .apimachinery import Event, Stored, is_ready


class Controllers:
    """What Kubernetes' controllers and kubelets would do to the stand-in's objects."""

    namespace: str
    objects: dict[tuple[str, str, str], Stored]
    events: list[Event]
    rv: int
    _lock: threading.Lock

    def _record(self, type_: str, plural: str, obj: dict[str, Any]) -> None:
        raise NotImplementedError

    def _delete(self, key: tuple[str, str, str]) -> None:
        raise NotImplementedError

    def mark_ready(self, pod: str, ready: bool = True) -> None:
        """The kubelet's report: the pod runs and its readiness probe passes (or fails)."""
        self._set_pod_status(
            pod,
            {
                "phase": "Running",
                "podIP": f"10.0.0.{abs(hash(pod)) % 250 + 2}",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                "containerStatuses": [
                    {"name": "model", "ready": ready, "state": {"running": {}}, "restartCount": 0}
                ],
            },
        )

    def mark_failed(self, pod: str, reason: str, message: str = "") -> None:
        """The kubelet's report: a container waits for ``reason`` (CrashLoopBackOff, ...)."""
        self._set_pod_status(
            pod,
            {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [
                    {
                        "name": "model",
                        "ready": False,
                        "state": {"waiting": {"reason": reason, "message": message}},
                        "restartCount": 5,
                    }
                ],
            },
        )

    # The controllers in miniature -------------------------------------------------------

    def _after_change(self, plural: str, obj: dict[str, Any]) -> None:
        if plural == "deployments":
            self._scale(obj)
        if plural in ("pods", "services", "deployments"):
            self._sync_endpoints()

    def _scale(self, deployment: dict[str, Any]) -> None:
        name = deployment["metadata"]["name"]
        uid = deployment["metadata"]["uid"]
        spec = deployment.get("spec") or {}
        want = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        pods = sorted(
            (k, s)
            for k, s in self.objects.items()
            if k[0] == "pods"
            and any(r.get("uid") == uid for r in s.obj["metadata"].get("ownerReferences") or [])
        )
        # Scale down: not-ready pods first, as a ReplicaSet does.
        pods.sort(key=lambda item: is_ready(item[1].obj))
        for key, _ in pods[: max(0, len(pods) - want)]:
            self._delete(key)
        for _ in range(want - len(pods)):
            pod_name = f"{name}-{secrets.token_hex(4)}-{secrets.token_hex(2)}"
            self.rv += 1
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "namespace": self.namespace,
                    "uid": str(uuid.uuid4()),
                    "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                    "resourceVersion": str(self.rv),
                    "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "ownerReferences": [
                        {"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": uid}
                    ],
                },
                "spec": copy.deepcopy(template.get("spec") or {}),
                "status": {"phase": "Pending"},
            }
            self.objects[("pods", self.namespace, pod_name)] = Stored(pod)
            self._record("ADDED", "pods", pod)

    def _set_pod_status(self, pod: str, pod_status: dict[str, Any]) -> None:
        with self._lock:
            stored = self.objects[("pods", self.namespace, pod)]
            self.rv += 1
            stored.obj["status"] = pod_status
            stored.obj["metadata"]["resourceVersion"] = str(self.rv)
            self._record("MODIFIED", "pods", stored.obj)
            self._sync_endpoints()

    def _sync_endpoints(self) -> None:
        """One EndpointSlice per Service, listing the pods its selector picks."""
        services = [s.obj for (p, _, _), s in self.objects.items() if p == "services"]
        wanted: dict[str, dict[str, Any]] = {}
        for service in services:
            name = service["metadata"]["name"]
            chosen = (service.get("spec") or {}).get("selector") or {}
            endpoints = [
                {
                    "addresses": [s.obj["status"].get("podIP", "")],
                    "conditions": {"ready": is_ready(s.obj)},
                    "targetRef": {"kind": "Pod", "name": n},
                }
                for (p, _, n), s in sorted(self.objects.items())
                if p == "pods"
                and chosen
                and all(
                    (s.obj["metadata"].get("labels") or {}).get(k) == v for k, v in chosen.items()
                )
                and s.obj["status"].get("podIP")
            ]
            wanted[f"{name}-slice"] = {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-slice",
                    "namespace": self.namespace,
                    "labels": {"kubernetes.io/service-name": name},
                    "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
                },
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            }
        for key in [k for k in self.objects if k[0] == "endpointslices"]:
            if key[2] not in wanted:
                self._delete(key)
        for slice_name, body in wanted.items():
            key = ("endpointslices", self.namespace, slice_name)
            there = self.objects.get(key)
            if there is not None and there.obj["endpoints"] == body["endpoints"]:
                continue
            self.rv += 1
            body["metadata"]["resourceVersion"] = str(self.rv)
            self.objects[key] = Stored(body)
            self._record("ADDED" if there is None else "MODIFIED", "endpointslices", body)
