"""The Kubernetes objects that serve one model version, rendered without a cluster.

Pure: a model version (``ModelVersion``, what the registry records) and ``RenderOptions``
(options.py, which checks them) in, a list of plain ``dict`` objects out, ready for
``yaml.safe_dump`` or server-side apply. Nothing is read, fetched or applied here; ``funade
manifests`` reads the version through the client and writes the files.

Three targets (``Target``):

- ``kubernetes``: a Deployment and a Service named ``<deployment>-r<revision>`` (one per
  revision, as the Kubernetes backend reconciles them), and a HorizontalPodAutoscaler when
  autoscaling is asked for.
- ``kserve``: an InferenceService (``serving.kserve.io/v1beta1``) whose predictor is the same
  container, named ``kserve-container`` with ``PROTOCOL=v2`` (KServe's custom predictor reads
  the protocol version from that variable), and ``canaryTrafficPercent`` for a canary.
- ``knative``: a Knative Service (``serving.knative.dev/v1``) whose template is revision
  ``<deployment>-r<revision>``, with a traffic tag ``rev-<n>`` per revision, and an Istio
  VirtualService (``networking.istio.io/v1``) splitting weights between the tags' hosts.

Every pod: a non-root user (uid 10001, as `funade build`'s image), a read-only root filesystem
with an ``emptyDir`` for ``/tmp`` and the home, no service-account token, every capability
dropped; readiness on ``/v2/health/ready``, liveness on ``/v2/health/live`` and a startupProbe
that allows ``ready_timeout_seconds`` for the model to load. The replica's credential (the
bearer token callers present, ``FUNADE_REPLICA_TOKEN``) and, for an image that fetches its
model, the control plane's API key come from a Secret by reference; no token is ever written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from funade.deploy.k8s.names import check_label_name, label_value, object_name
from funade.deploy.k8s.options import (
    DEFAULT_READY_TIMEOUT,
    NAME_LIMIT,
    ModelCache,
    ModelVersion,
    RenderOptions,
    Target,
    Toleration,
    check_options,
    digest_hex,
    parse_model_cache,
    parse_toleration,
)
from funade.images.containerfile import CACHE_DIR, PORT, UID, default_tag

__all__ = [
    "CACHE_DIR",
    "DEFAULT_READY_TIMEOUT",
    "PORT",
    "UID",
    "ModelCache",
    "ModelVersion",
    "RenderOptions",
    "Target",
    "Toleration",
    "check_options",
    "default_image",
    "file_name",
    "parse_model_cache",
    "parse_toleration",
    "render",
]

HOME_DIR = "/home/funade"
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
MANAGER = "funade"

# The keys of the credential Secret (names of keys, not secrets).
SECRET_TOKEN_KEY = "replica-token"  # noqa: S105
SECRET_API_KEY = "api-key"  # noqa: S105
KSERVE_CONTAINER = "kserve-container"
# Knative and KServe need the port named h2c or http1; a plain Deployment calls it http.
KNATIVE_PORT_NAME = "http1"
_PERIOD_SECONDS = 10  # the startupProbe's period: failureThreshold = ready timeout / period


def default_image(version: ModelVersion, *, repository: str = "funade") -> str:
    """The tag `funade build` gives the image of ``version`` (``images.containerfile``)."""
    return default_tag(version.model, version.version, version.digest, repository=repository)


def _deployment_name(version: ModelVersion, options: RenderOptions) -> str:
    limit = NAME_LIMIT[options.target]
    if options.deployment is not None:
        return check_label_name(options.deployment, option="--name", limit=limit)
    return object_name(version.model, limit=limit)


def render(version: ModelVersion, options: RenderOptions) -> list[dict[str, Any]]:
    """The objects that serve ``version`` on ``options.target``, in apply order."""
    check_options(options)
    digest_hex(version.digest)
    name = _deployment_name(version, options)
    pod = _Pod(version, options, name)
    if options.target is Target.KSERVE:
        return [pod.inference_service()]
    if options.target is Target.KNATIVE:
        return [pod.knative_service(), pod.virtual_service()]
    objects = [pod.deployment(), pod.service()]
    if options.max_replicas is not None:
        objects.append(pod.autoscaler())
    return objects


def file_name(obj: Mapping[str, Any]) -> str:
    """``<name>-<kind>.yaml``: one file per object, so revisions rendered into one directory
    sit side by side."""
    return f"{obj['metadata']['name']}-{str(obj['kind']).lower()}.yaml"


class _Pod:
    """The pieces every target shares: labels, the container, the pod's settings."""

    def __init__(self, version: ModelVersion, options: RenderOptions, name: str) -> None:
        self.version = version
        self.options = options
        self.name = name
        self.revision_name = f"{name}-r{options.revision}"
        self.digest_hex = digest_hex(version.digest)
        self.secret = options.credential_secret or f"{self.revision_name}-credentials"

    # Metadata ----------------------------------------------------------------------------

    def selector(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/instance": self.revision_name,
            "funade.dev/deployment": self.name,
            "funade.dev/revision": str(self.options.revision),
        }

    def labels(self) -> dict[str, str]:
        version = self.version
        return {
            "app.kubernetes.io/name": label_value(version.model),
            **self.selector(),
            "app.kubernetes.io/version": str(version.version),
            "app.kubernetes.io/component": "model-server",
            "app.kubernetes.io/part-of": self.name,
            "app.kubernetes.io/managed-by": MANAGER,
            "funade.dev/project": label_value(version.project),
            "funade.dev/model": label_value(version.model),
            "funade.dev/version": str(version.version),
            "funade.dev/digest": self.digest_hex[:12],  # the full digest: the annotation
        }

    def annotations(self) -> dict[str, str]:
        version = self.version
        out = {
            "funade.dev/model": version.model,
            "funade.dev/source": f"{version.model}:{version.version}",
            "funade.dev/digest": version.digest,
            "funade.dev/project": version.project,
        }
        if version.flavor:
            out["funade.dev/flavor"] = version.flavor
        if version.git_commit:
            out["funade.dev/git-commit"] = version.git_commit
        return out

    def metadata(self, name: str, **extra: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name}
        if self.options.namespace is not None:
            meta["namespace"] = self.options.namespace
        meta["labels"] = self.labels()
        meta["annotations"] = self.annotations()
        meta.update(extra)
        return meta

    # The container -----------------------------------------------------------------------

    def probes(self, port: str | int) -> dict[str, Any]:
        def probe(path: str, period: int, failures: int, timeout: int = 5) -> dict[str, Any]:
            return {
                "httpGet": {"path": path, "port": port},
                "periodSeconds": period,
                "timeoutSeconds": timeout,
                "failureThreshold": failures,
            }

        startup = math.ceil(self.options.ready_timeout_seconds / _PERIOD_SECONDS)
        return {
            "readinessProbe": probe(READY_PATH, 5, 3),
            "livenessProbe": probe(LIVE_PATH, 10, 3),
            # Until the model has loaded (up to ready_timeout_seconds) liveness is not checked:
            # a 25 GB model that takes nine minutes is not restarted at minute one.
            "startupProbe": probe(READY_PATH, _PERIOD_SECONDS, max(1, startup)),
        }

    def env(self) -> list[dict[str, Any]]:
        env: list[dict[str, Any]] = [
            {"name": "FUNADE_PROJECT", "value": self.version.project},
            _secret_env("FUNADE_REPLICA_TOKEN", self.secret, SECRET_TOKEN_KEY),
        ]
        if self.options.registry_url is not None:
            env += [
                {"name": "FUNADE_URL", "value": self.options.registry_url},
                _secret_env("FUNADE_API_KEY", self.secret, SECRET_API_KEY),
            ]
        if self.options.target is Target.KSERVE:
            env.append({"name": "PROTOCOL", "value": "v2"})
        return env

    def resources(self) -> dict[str, Any]:
        requests: dict[str, str] = {}
        limits: dict[str, str] = {}
        if self.options.cpu is not None:
            requests["cpu"] = self.options.cpu
        if self.options.memory is not None:
            requests["memory"] = limits["memory"] = self.options.memory
        if self.options.gpus:
            limits["nvidia.com/gpu"] = str(self.options.gpus)
        out: dict[str, Any] = {}
        if requests:
            out["requests"] = requests
        if limits:
            out["limits"] = limits
        return out

    def container(self, name: str, *, port_name: str, probe_port: str | int) -> dict[str, Any]:
        mounts = [
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (the pod's own emptyDir)
            {"name": "home", "mountPath": HOME_DIR},
        ]
        if self.options.model_cache is not None:
            mounts.append(
                {
                    "name": "model-cache",
                    "mountPath": CACHE_DIR,
                    "subPath": f"sha256-{self.digest_hex}",
                }
            )
        container: dict[str, Any] = {
            "name": name,
            "image": self.options.image or default_image(self.version),
            "ports": [{"name": port_name, "containerPort": PORT, "protocol": "TCP"}],
            "env": self.env(),
            **self.probes(probe_port),
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": UID,
                "runAsGroup": UID,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "volumeMounts": mounts,
        }
        args = self.args()
        if args:  # after the image's ENTRYPOINT, `funade serve <package> --host ... --port 8080`
            container["args"] = args
        resources = self.resources()
        if resources:
            container["resources"] = resources
        return container

    def args(self) -> list[str]:
        args = []
        if self.options.workers is not None:
            args += ["--workers", str(self.options.workers)]
        if self.options.max_batch_size is not None:
            args += ["--max-batch-size", str(self.options.max_batch_size)]
        if self.options.served_name is not None:
            args += ["--name", self.options.served_name]
        return args

    def volumes(self) -> list[dict[str, Any]]:
        volumes: list[dict[str, Any]] = [
            {"name": "tmp", "emptyDir": {}},
            {"name": "home", "emptyDir": {}},
        ]
        cache = self.options.model_cache
        if cache is not None and cache.kind == "hostpath":
            volumes.append(
                {
                    "name": "model-cache",
                    "hostPath": {"path": cache.location, "type": "DirectoryOrCreate"},
                }
            )
        elif cache is not None:
            volumes.append(
                {"name": "model-cache", "persistentVolumeClaim": {"claimName": cache.location}}
            )
        return volumes

    def pod_settings(self) -> dict[str, Any]:
        """What the pod spec carries besides its containers (shared by every target)."""
        spec: dict[str, Any] = {"automountServiceAccountToken": False}
        if self.options.image_pull_secrets:
            spec["imagePullSecrets"] = [{"name": s} for s in self.options.image_pull_secrets]
        if self.options.node_selector:
            spec["nodeSelector"] = dict(self.options.node_selector)
        if self.options.tolerations:
            spec["tolerations"] = [t.to_dict() for t in self.options.tolerations]
        spec["securityContext"] = {"runAsNonRoot": True, "fsGroup": UID}
        spec["volumes"] = self.volumes()
        return spec

    # Targets -----------------------------------------------------------------------------

    def deployment(self) -> dict[str, Any]:
        options = self.options
        # With an autoscaler, the HPA owns the count: a `replicas` here would reset it to the
        # minimum on every apply (Kubernetes' advice for HPA targets).
        replicas = {} if options.max_replicas is not None else {"replicas": options.replicas}
        template_spec = {
            "containers": [self.container("model", port_name="http", probe_port="http")],
            "terminationGracePeriodSeconds": 30,
            **self.pod_settings(),
        }
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self.metadata(self.revision_name),
            "spec": {
                **replicas,
                "selector": {"matchLabels": self.selector()},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
                },
                "progressDeadlineSeconds": math.ceil(options.ready_timeout_seconds) + 60,
                "template": {
                    "metadata": {"labels": self.labels(), "annotations": self.annotations()},
                    "spec": template_spec,
                },
            },
        }

    def service(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.metadata(self.revision_name),
            "spec": {
                "type": "ClusterIP",
                "selector": self.selector(),
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            },
        }

    def autoscaler(self) -> dict[str, Any]:
        options = self.options
        return {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": self.metadata(self.revision_name),
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": self.revision_name,
                },
                "minReplicas": options.min_replicas or options.replicas or 1,
                "maxReplicas": options.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {
                                "type": "Utilization",
                                "averageUtilization": options.target_cpu or 80,
                            },
                        },
                    }
                ],
            },
        }

    def inference_service(self) -> dict[str, Any]:
        options = self.options
        predictor: dict[str, Any] = {
            "minReplicas": (
                options.min_replicas if options.min_replicas is not None else options.replicas
            ),
        }
        if options.max_replicas is not None:
            predictor["maxReplicas"] = options.max_replicas
        if options.target_cpu is not None:
            predictor["scaleMetric"] = "cpu"
            predictor["scaleTarget"] = options.target_cpu
        if options.canary_weight is not None:
            predictor["canaryTrafficPercent"] = options.canary_weight
        # KServe reads the probes' port from the container's one port; naming it is refused
        # by Knative underneath, so the probes give the number.
        predictor["containers"] = [
            self.container(KSERVE_CONTAINER, port_name=KNATIVE_PORT_NAME, probe_port=PORT)
        ]
        predictor.update(self.pod_settings())
        predictor["terminationGracePeriodSeconds"] = 30
        return {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": self.metadata(self.name),
            "spec": {"predictor": predictor},
        }

    def knative_service(self) -> dict[str, Any]:
        options = self.options
        scale: dict[str, str] = {
            "autoscaling.knative.dev/min-scale": str(
                options.min_replicas if options.min_replicas is not None else options.replicas
            )
        }
        if options.max_replicas is not None:
            scale["autoscaling.knative.dev/max-scale"] = str(options.max_replicas)
        if options.target_cpu is not None:
            scale["autoscaling.knative.dev/class"] = "hpa.autoscaling.knative.dev"
            scale["autoscaling.knative.dev/metric"] = "cpu"
            scale["autoscaling.knative.dev/target"] = str(options.target_cpu)
        container = self.container("model", port_name=KNATIVE_PORT_NAME, probe_port=PORT)
        spec = {"containers": [container], **self.pod_settings()}
        spec.pop("securityContext")  # Knative accepts a pod securityContext only behind a flag
        return {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": self.metadata(self.name),
            "spec": {
                "template": {
                    "metadata": {
                        "name": self.revision_name,
                        "labels": self.labels(),
                        "annotations": {**self.annotations(), **scale},
                    },
                    "spec": spec,
                },
                "traffic": [
                    {
                        "revisionName": f"{self.name}-r{revision}",
                        "percent": percent,
                        "tag": f"rev-{revision}",
                        "latestRevision": False,
                    }
                    for revision, percent in self.weights()
                ],
            },
        }

    def weights(self) -> list[tuple[int, int]]:
        """(revision, percent) pairs: the stable one and the canary, or the new one alone."""
        options = self.options
        if options.stable_revision is None or options.canary_weight is None:
            return [(options.revision, 100)]
        return [
            (options.stable_revision, 100 - options.canary_weight),
            (options.revision, options.canary_weight),
        ]

    def virtual_service(self) -> dict[str, Any]:
        namespace = self.options.namespace or "default"
        local = f"{self.name}.{namespace}.svc.cluster.local"
        return {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": self.metadata(self.name),
            "spec": {
                "hosts": [self.options.host or local],
                "gateways": [self.options.istio_gateway],
                "http": [
                    {
                        "name": "revisions",
                        "route": [
                            {
                                # Knative's route of a traffic tag: rev-<n>-<service>.<namespace>
                                "destination": {
                                    "host": f"rev-{revision}-{local}",
                                    "port": {"number": 80},
                                },
                                "weight": percent,
                            }
                            for revision, percent in self.weights()
                        ],
                    }
                ],
            },
        }


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
