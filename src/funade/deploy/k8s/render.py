"""The Kubernetes objects that serve one model version, rendered without a cluster.

Pure: a model version (``ModelVersion``, what the registry records) and ``RenderOptions`` in, a
list of plain ``dict`` objects out, ready for ``yaml.safe_dump`` or server-side apply. Nothing
is read, fetched or applied here; ``funade manifests`` reads the version through the client and
writes the files.

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

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from funade.deploy.k8s.names import (
    check_label_key,
    check_label_name,
    check_label_value,
    check_namespace,
    check_subdomain,
    label_value,
    object_name,
)
from funade.errors import InvalidInputError

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

# The image's conventions, as `funade build` writes them (src/funade/images/containerfile.py on
# the `build` branch). TODO(funade build): import PORT, UID, CACHE_DIR and default_tag from
# funade.images.containerfile once it is merged, and drop these copies.
PORT = 8080
UID = 10001
CACHE_DIR = "/var/cache/funade"
HOME_DIR = "/home/funade"
DEFAULT_READY_TIMEOUT = 600.0  # RolloutOptions.ready_timeout_seconds' default
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
MANAGER = "funade"

# The keys of the credential Secret (names of keys, not secrets).
SECRET_TOKEN_KEY = "replica-token"  # noqa: S105
SECRET_API_KEY = "api-key"  # noqa: S105
KSERVE_CONTAINER = "kserve-container"
# Knative and KServe need the port named h2c or http1; a plain Deployment calls it http.
KNATIVE_PORT_NAME = "http1"

_CPU = re.compile(r"(?:[0-9]+(?:\.[0-9]{1,3})?|[0-9]+m)")
_MEMORY = re.compile(r"[0-9]+(?:Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?")
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
# An image reference as podman and docker take it: [registry[:port]/]path[:tag][@digest].
# TODO(funade build): funade.images.containerfile.check_tag, once it is on main.
_IMAGE = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[0-9]{1,5})?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_PERIOD_SECONDS = 10  # the startupProbe's period: failureThreshold = ready timeout / period


class Target(StrEnum):
    KUBERNETES = "kubernetes"
    KSERVE = "kserve"
    KNATIVE = "knative"


@dataclass(frozen=True)
class ModelVersion:
    """What the registry records about the version served (from ``VersionOut``)."""

    model: str
    version: int
    digest: str
    project: str = "default"
    flavor: str = ""
    git_commit: str = ""


@dataclass(frozen=True)
class Toleration:
    key: str
    effect: str
    value: str | None = None

    def to_dict(self) -> dict[str, str]:
        if self.value is None:
            return {"key": self.key, "operator": "Exists", "effect": self.effect}
        return {"key": self.key, "operator": "Equal", "value": self.value, "effect": self.effect}


@dataclass(frozen=True)
class ModelCache:
    """A node's (hostPath) or a shared claim's (PVC) cache; each pod mounts the directory of its
    version's digest only."""

    kind: str  # "hostpath" or "pvc"
    location: str  # a directory on the node, or a PersistentVolumeClaim's name


@dataclass(frozen=True)
class RenderOptions:
    target: Target = Target.KUBERNETES
    deployment: str | None = None
    """The deployment's name (default: derived from the model's)."""
    revision: int = 1
    namespace: str | None = None
    image: str | None = None
    replicas: int = 1
    min_replicas: int | None = None
    max_replicas: int | None = None
    target_cpu: int | None = None
    """Average CPU utilisation (percent of the request) the autoscaler aims at."""
    cpu: str | None = None
    memory: str | None = None
    gpus: int = 0
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Toleration] = ()
    image_pull_secrets: Sequence[str] = ()
    credential_secret: str | None = None
    """The Secret holding ``replica-token`` (and ``api-key``); default ``<name>-credentials``."""
    registry_url: str | None = None
    """For an image that fetches its model (`funade build --fetch`): the control plane's URL."""
    model_cache: ModelCache | None = None
    ready_timeout_seconds: float = DEFAULT_READY_TIMEOUT
    canary_weight: int | None = None
    stable_revision: int | None = None
    host: str | None = None
    """The VirtualService's host (knative; default the Service's cluster-local name)."""
    istio_gateway: str = "mesh"
    workers: int | None = None
    """Worker processes per replica (appended to the image's `funade serve` as --workers)."""
    max_batch_size: int | None = None
    """Most rows per model call (--max-batch-size)."""


def _bad(option: str, value: Any, message: str, fix: str) -> InvalidInputError:
    return InvalidInputError(f"{option} {value!r} {message}.", field=option, value=value, fix=fix)


def parse_toleration(text: str) -> Toleration:
    """``key[=value]:Effect`` (as ``kubectl taint`` writes a taint) → a Toleration."""
    head, colon, effect = text.rpartition(":")
    key, equals, value = head.partition("=")
    if not colon or effect not in _EFFECTS or not key:
        raise _bad(
            "--toleration",
            text,
            "is not a toleration",
            f"Write KEY[=VALUE]:EFFECT with EFFECT one of {', '.join(_EFFECTS)}, e.g. "
            "'nvidia.com/gpu:NoSchedule'.",
        )
    check_label_key(key, option="--toleration")
    if equals:
        check_label_value(value, option="--toleration")
    return Toleration(key, effect, value if equals else None)


def parse_model_cache(text: str) -> ModelCache:
    """``hostpath:/var/cache/funade`` or ``pvc:CLAIM`` → a ModelCache."""
    kind, _, location = text.partition(":")
    if kind == "hostpath" and _host_dir(location):
        return ModelCache("hostpath", location.rstrip("/"))
    if kind == "pvc" and location:
        check_subdomain(location, option="--model-cache", what="claim name", example="models")
        return ModelCache("pvc", location)
    raise _bad(
        "--model-cache",
        text,
        "is not a model cache",
        "Write hostpath:/ABSOLUTE/DIR (a directory of its own on each node: letters, digits and "
        "'._-/', no '..', not / or a system directory) or pvc:CLAIM (a PersistentVolumeClaim), "
        "e.g. 'hostpath:/var/cache/funade'.",
    )


# Directories of the node a cache must not be (or be inside): the node's own files.
_SYSTEM_DIRS = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var/lib/kubelet",
    "/var/run",
)


def _host_dir(path: str) -> bool:
    if not re.fullmatch(r"/[A-Za-z0-9._/-]*", path) or ".." in path.split("/"):
        return False
    path = path.rstrip("/")
    return bool(path) and not any(path == d or path.startswith(f"{d}/") for d in _SYSTEM_DIRS)


def _hex(digest: str) -> str:
    match = _DIGEST.fullmatch(digest)
    if match is None:
        raise _bad(
            "digest",
            digest,
            "is not a package digest",
            "The registry records sha256:<64 hex>; re-register the version.",
        )
    return match.group(1)


def default_image(version: ModelVersion, *, repository: str = "funade") -> str:
    """The tag `funade build` gives the image of ``version``: ``funade/<name>:<version>-<first
    12 hex of the digest>``, the name lowercased with runs of other characters than ``a-z0-9``
    made ``-`` and, when that changed it, 8 hex of the name's sha256 appended.

    TODO(funade build): use funade.images.containerfile.default_tag once it is on main."""
    name = re.sub(r"[^a-z0-9]+", "-", version.model.lower()).strip("-")
    if name != version.model:
        name = f"{name}-{hashlib.sha256(version.model.encode()).hexdigest()[:8]}"
    return f"{repository}/{name}:{version.version}-{_hex(version.digest)[:12]}"


def check_options(options: RenderOptions) -> None:
    """Every option's value, refused with the option's name before anything is rendered (the
    CLI calls it before it reads the version)."""
    if options.revision < 1:
        raise _bad("--revision", options.revision, "is not a revision number", "Give 1 or more.")
    if options.replicas < 0:
        raise _bad("--replicas", options.replicas, "is negative", "Give 0 or more replicas.")
    if options.workers is not None and not 1 <= options.workers <= 64:
        raise _bad("--workers", options.workers, "is out of range", "Give 1-64 workers.")
    if options.max_batch_size is not None and options.max_batch_size < 1:
        raise _bad("--max-batch-size", options.max_batch_size, "is below 1", "Give 1 or more.")
    if options.gpus < 0:
        raise _bad("--gpus", options.gpus, "is negative", "Give 0 or more GPUs per replica.")
    if options.cpu is not None and not _CPU.fullmatch(options.cpu):
        raise _bad(
            "--cpu",
            options.cpu,
            "is not a CPU quantity",
            "Write cores or millicores: 2, 0.5, 500m.",
        )
    if options.memory is not None and not _MEMORY.fullmatch(options.memory):
        raise _bad(
            "--memory",
            options.memory,
            "is not a memory quantity",
            "Write bytes with a unit: 512Mi, 4Gi, 16G.",
        )
    if not 0 < options.ready_timeout_seconds <= 86_400:
        raise _bad(
            "--ready-timeout",
            options.ready_timeout_seconds,
            "is out of range",
            "Give the time a replica may take to load its model, 1s to 24h, e.g. '10m'.",
        )
    low, high = options.min_replicas, options.max_replicas
    if low is not None and low < (0 if options.target is not Target.KUBERNETES else 1):
        raise _bad("--min-replicas", low, "is too small", "Give 1 or more (0: knative, kserve).")
    if high is not None and high < max(1, low or 1):
        raise _bad(
            "--max-replicas", high, "is below --min-replicas", "Give at least --min-replicas."
        )
    if options.target_cpu is not None and not 1 <= options.target_cpu <= 100:
        raise _bad("--target-cpu", options.target_cpu, "is not a percentage", "Give 1-100.")
    autoscaled = low is not None or high is not None or options.target_cpu is not None
    if options.target is Target.KUBERNETES and autoscaled:
        if high is None:
            raise _bad(
                "--max-replicas",
                None,
                "is missing",
                "An autoscaled Deployment needs --max-replicas, e.g. --max-replicas 10.",
            )
        if options.cpu is None:
            raise _bad(
                "--cpu",
                None,
                "is missing",
                "The autoscaler measures CPU against the request: give --cpu, e.g. --cpu 2.",
            )
    if options.canary_weight is not None:
        if options.target is Target.KUBERNETES:
            raise _bad(
                "--canary-weight",
                options.canary_weight,
                "applies to --target knative or kserve",
                "With --target kubernetes, funade's gateway splits traffic between revisions: "
                "use `funade deploy --strategy canary`.",
            )
        if not 0 <= options.canary_weight <= 100:
            raise _bad("--canary-weight", options.canary_weight, "is not a percentage", "0-100.")
    if options.stable_revision is not None:
        if options.target is not Target.KNATIVE:
            raise _bad(
                "--stable-revision",
                options.stable_revision,
                "applies to --target knative",
                "KServe keeps the previous revision itself; drop --stable-revision.",
            )
        if options.canary_weight is None or not 1 <= options.stable_revision < options.revision:
            raise _bad(
                "--stable-revision",
                options.stable_revision,
                "needs --canary-weight and a revision below --revision",
                f"Give the revision serving now (1-{options.revision - 1}) and --canary-weight.",
            )
    elif options.canary_weight is not None and options.target is Target.KNATIVE:
        raise _bad(
            "--canary-weight",
            options.canary_weight,
            "needs --stable-revision",
            "Name the revision that keeps the rest of the traffic, e.g. --stable-revision 2.",
        )
    if options.namespace is not None:
        check_namespace(options.namespace)
    if options.image is not None and (
        len(options.image) > 255 or not _IMAGE.fullmatch(options.image)
    ):
        raise _bad(
            "--image",
            options.image,
            "is not an image name",
            "Write [REGISTRY/]PATH[:TAG][@sha256:DIGEST] in lowercase, e.g. "
            "'ghcr.io/acme/churn:3'.",
        )
    for key, value in options.node_selector.items():
        check_label_key(key, option="--node-selector")
        check_label_value(value, option="--node-selector")
    for secret in options.image_pull_secrets:
        check_subdomain(secret, option="--image-pull-secret", what="Secret name")
    if options.credential_secret is not None:
        check_subdomain(
            options.credential_secret,
            option="--credential-secret",
            what="Secret name",
            example="churn-credentials",
        )
    if options.registry_url is not None and not re.fullmatch(
        r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]*)?", options.registry_url
    ):
        raise _bad(
            "--registry-url",
            options.registry_url,
            "is not a control plane URL",
            "Give http(s)://HOST[:PORT], e.g. 'http://funade.funade.svc:8000'.",
        )
    if options.host is not None and not re.fullmatch(
        r"(?:\*\.)?[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?", options.host
    ):
        raise _bad("--host", options.host, "is not a host name", "e.g. 'churn.example.com'.")
    if not re.fullmatch(r"(?:[a-z0-9-]+/)?[a-z0-9][-a-z0-9]*", options.istio_gateway):
        raise _bad(
            "--istio-gateway",
            options.istio_gateway,
            "is not a gateway",
            "Give 'mesh' or NAMESPACE/NAME, e.g. 'istio-system/ingressgateway'.",
        )
    if options.deployment is not None:
        check_label_name(options.deployment, option="--name", limit=_NAME_LIMIT[options.target])


# The longest deployment name per target, so that every name made from it fits 63 characters:
# "<name>-r<revision>" (Deployment, Service, Knative revision), "<name>-predictor-..." (KServe),
# "rev-<n>-<name>" (Knative tag routes).
_NAME_LIMIT = {Target.KUBERNETES: 52, Target.KSERVE: 45, Target.KNATIVE: 45}


def _deployment_name(version: ModelVersion, options: RenderOptions) -> str:
    limit = _NAME_LIMIT[options.target]
    if options.deployment is not None:
        return check_label_name(options.deployment, option="--name", limit=limit)
    return object_name(version.model, limit=limit)


def render(version: ModelVersion, options: RenderOptions) -> list[dict[str, Any]]:
    """The objects that serve ``version`` on ``options.target``, in apply order."""
    check_options(options)
    _hex(version.digest)
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
        self.digest_hex = _hex(version.digest)
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
        replicas = options.min_replicas if options.min_replicas is not None else options.replicas
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
                "replicas": replicas,
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
