"""What `funade manifests` is asked for, checked: ``RenderOptions`` and the parsers of its
command-line forms (``--toleration``, ``--model-cache``). ``check_options`` refuses every wrong
value with the option's name, the value and the fix, before anything is read or rendered."""

from __future__ import annotations

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
)
from funade.errors import InvalidInputError
from funade.images.containerfile import IMAGE_REFERENCE

__all__ = [
    "DEFAULT_READY_TIMEOUT",
    "NAME_LIMIT",
    "ModelCache",
    "ModelVersion",
    "RenderOptions",
    "Target",
    "Toleration",
    "check_options",
    "digest_hex",
    "parse_model_cache",
    "parse_toleration",
]

DEFAULT_READY_TIMEOUT = 600.0  # RolloutOptions.ready_timeout_seconds' default

_CPU = re.compile(r"(?:[0-9]+(?:\.[0-9]{1,3})?|[0-9]+m)")
_MEMORY = re.compile(r"[0-9]+(?:Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?")
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


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
    served_name: str | None = None
    """The name the model answers to (`funade serve --name`; default: the image's, the
    model's). `funade manifests --name X` serves as X, so /v2/models/X/infer works; the
    Kubernetes backend passes the deployment's name itself."""
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


def digest_hex(digest: str) -> str:
    """The 64 hex of a ``sha256:<hex>`` package digest, or an error naming it."""
    match = _DIGEST.fullmatch(digest)
    if match is None:
        raise _bad(
            "digest",
            digest,
            "is not a package digest",
            "The registry records sha256:<64 hex>; re-register the version.",
        )
    return match.group(1)


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
        len(options.image) > 255 or not IMAGE_REFERENCE.fullmatch(options.image)
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
        check_label_name(options.deployment, option="--name", limit=NAME_LIMIT[options.target])


# The longest deployment name per target, so that every name made from it fits 63 characters:
# "<name>-r<revision>" (Deployment, Service, Knative revision), "<name>-predictor-..." (KServe),
# "rev-<n>-<name>" (Knative tag routes).
NAME_LIMIT = {Target.KUBERNETES: 52, Target.KSERVE: 45, Target.KNATIVE: 45}
