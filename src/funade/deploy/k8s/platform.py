"""funade itself on a cluster, rendered without one (`funade platform manifests -o DIR`).

Pure: ``PlatformOptions`` in, plain dicts out. What it makes:

- **The control plane** (``funade-control-plane``): `funade up`, which is the API, the
  deployment controller and the scheduler in one process, with ``backend = "kubernetes"``,
  after an init container that runs `funade db upgrade` (it migrates only SQLite itself).
  ``replicas: 1`` and ``strategy: Recreate``: two copies would be two controllers reconciling
  the same store and namespace, which funade cannot do safely yet; Recreate stops the old pod
  before the new one starts, so even a rollout never runs two. The revisions it made keep
  serving while it restarts (the backend's ``stop_all`` deletes nothing; the new pod adopts).
- **The gateway** (``funade-gateway``): `funade gateway`, several replicas (default 3) behind
  one Service. Each reads the routing table from the store; rate limits are kept per gateway
  process, so a limit of N requests a second lets through up to N per gateway replica.
- **Settings as Secrets**: the PostgreSQL URL (``funade-database``) and the artifact store's
  URL and options (``funade-artifacts``), read by reference; the Secrets are written apart, with
  placeholders (``REPLACE-ME``), to fill in and apply once, never real values.
- **A ServiceAccount with the least RBAC** the controller needs: a Role in the models' namespace
  granting exactly ``funade.deploy.backends.kubernetes.VERBS``; the gateway's ServiceAccount
  has no token at all.
- **An Ingress** for the API and the gateway (a host each), and ``trusted_proxies`` set to the
  Ingress controller's addresses, so the client's address is read from ``X-Forwarded-For``
  only when the Ingress sent it.

Every pod runs as uid 10001, non-root, with a read-only root filesystem and no capabilities.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from funade.deploy.k8s.names import check_label_name, check_namespace, check_subdomain
from funade.deploy.k8s.podsettings import pod_options
from funade.errors import InvalidInputError
from funade.images.containerfile import IMAGE_REFERENCE, UID

__all__ = ["API_PORT", "GATEWAY_PORT", "PlatformOptions", "check_platform", "render_platform"]

API_PORT = 8470
GATEWAY_PORT = 8480
HOME = "/var/lib/funade"
PLACEHOLDER = "REPLACE-ME"
CONTROLLER = "funade-controller"
CONTROL_PLANE = "funade-control-plane"
GATEWAY = "funade-gateway"
DATABASE_SECRET = "funade-database"  # noqa: S105 (a Secret's name)
ARTIFACTS_SECRET = "funade-artifacts"  # noqa: S105 (a Secret's name)


@dataclass(frozen=True)
class PlatformOptions:
    image: str
    """An image with ``funade[postgres,s3,kubernetes]`` installed (docs/kubernetes.md)."""
    namespace: str = "funade"
    models_namespace: str | None = None
    """Where revisions run (default: ``namespace``)."""
    gateway_replicas: int = 3
    api_host: str = "funade.example.com"
    gateway_host: str = "models.example.com"
    ingress_class: str | None = None
    tls_secret: str | None = None
    trusted_proxies: Sequence[str] = ("10.0.0.0/8",)
    """The Ingress controller's addresses (its pods' network)."""
    images: str = "funade"
    """Where `funade build --push` puts the models' images (``kubernetes_images``)."""
    pods: dict[str, Any] = field(default_factory=dict)
    """``kubernetes_pods`` for the revisions."""


def check_platform(options: PlatformOptions) -> None:
    """Every option's value, refused with its name before anything is rendered."""
    check_namespace(options.namespace)
    if options.models_namespace is not None:
        check_namespace(options.models_namespace, option="--models-namespace")
    if len(options.image) > 255 or not IMAGE_REFERENCE.fullmatch(options.image):
        raise InvalidInputError(
            f"--image {options.image!r} is not an image name.",
            field="--image",
            value=options.image,
            fix="Write [REGISTRY/]PATH[:TAG][@sha256:DIGEST] in lowercase, e.g. "
            "'ghcr.io/acme/funade:0.1.0'.",
        )
    if not 1 <= options.gateway_replicas <= 100:
        raise InvalidInputError(
            f"--gateway-replicas {options.gateway_replicas} is out of range.",
            field="--gateway-replicas",
            value=options.gateway_replicas,
            fix="Give 1-100 (2 or more keep the gateway up while a node drains).",
        )
    for option, host in (
        ("--api-host", options.api_host),
        ("--gateway-host", options.gateway_host),
    ):
        check_subdomain(host, option=option, what="host name", example="funade.example.com")
    if options.api_host == options.gateway_host:
        raise InvalidInputError(
            f"--api-host and --gateway-host are both {options.api_host!r}.",
            field="--gateway-host",
            value=options.gateway_host,
            fix="Give the gateway a host of its own, e.g. 'models.example.com'.",
        )
    if options.ingress_class is not None:
        check_label_name(options.ingress_class, option="--ingress-class")
    if options.tls_secret is not None:
        check_subdomain(options.tls_secret, option="--tls-secret", what="Secret name")
    pod_options(options.pods)
    import ipaddress

    for proxy in options.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise InvalidInputError(
                f"--trusted-proxy {proxy!r} is not an IP network.",
                field="--trusted-proxy",
                value=proxy,
                fix="Give the Ingress controller's pod network, e.g. '10.0.0.0/8'.",
            ) from None


def render_platform(options: PlatformOptions) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The objects to apply, in order, and the Secrets to fill in and apply first."""
    check_platform(options)
    platform = _Platform(options)
    return platform.objects(), platform.secrets()


class _Platform:
    def __init__(self, options: PlatformOptions) -> None:
        self.options = options
        self.namespace = options.namespace
        self.models = options.models_namespace or options.namespace

    def meta(self, name: str, component: str, namespace: str | None = None) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": namespace or self.namespace,
            "labels": {
                "app.kubernetes.io/name": "funade",
                "app.kubernetes.io/instance": name,
                "app.kubernetes.io/component": component,
                "app.kubernetes.io/part-of": "funade",
            },
        }

    def objects(self) -> list[dict[str, Any]]:
        return [
            self.service_account(CONTROLLER, token=True),
            self.service_account(GATEWAY, token=False),
            self.role(),
            self.role_binding(),
            self.service(CONTROL_PLANE, "control-plane", API_PORT),
            self.service(GATEWAY, "gateway", GATEWAY_PORT),
            self.control_plane(),
            self.gateway(),
            self.ingress(),
        ]

    def secrets(self) -> list[dict[str, Any]]:
        def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
            return {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": self.meta(name, "settings"),
                "type": "Opaque",
                "stringData": data,
            }

        return [
            secret(
                DATABASE_SECRET,
                {"url": f"postgresql+psycopg://funade:{PLACEHOLDER}@{PLACEHOLDER}:5432/funade"},
            ),
            secret(
                ARTIFACTS_SECRET,
                {
                    "url": f"s3://{PLACEHOLDER}/funade",
                    "options": json.dumps({"key": PLACEHOLDER, "secret": PLACEHOLDER}),
                },
            ),
        ]

    # RBAC -----------------------------------------------------------------------------------

    def service_account(self, name: str, *, token: bool) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": self.meta(name, "controller" if token else "gateway"),
            "automountServiceAccountToken": token,
        }

    def role(self) -> dict[str, Any]:
        from funade.deploy.backends.kubernetes import VERBS
        from funade.deploy.k8s.client import KINDS

        rules = []
        for kind, verbs in VERBS.items():
            info = KINDS[kind]
            group = info.api_version.rpartition("/")[0]
            rules.append({"apiGroups": [group], "resources": [info.plural], "verbs": list(verbs)})
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": self.meta(CONTROLLER, "controller", self.models),
            "rules": rules,
        }

    def role_binding(self) -> dict[str, Any]:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": self.meta(CONTROLLER, "controller", self.models),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": CONTROLLER,
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": CONTROLLER, "namespace": self.namespace}
            ],
        }

    # Workloads ------------------------------------------------------------------------------

    def service(self, name: str, component: str, port: int) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.meta(name, component),
            "spec": {
                "type": "ClusterIP",
                "selector": {"app.kubernetes.io/instance": name},
                "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
            },
        }

    def settings_env(self, *, artifacts: bool) -> list[dict[str, Any]]:
        def secret(name: str, secret: str, key: str) -> dict[str, Any]:
            return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}

        env = [
            {"name": "HOME", "value": HOME},
            {"name": "FUNADE_HOME", "value": HOME},
            secret("FUNADE_DATABASE_URL", DATABASE_SECRET, "url"),
            {
                "name": "FUNADE_TRUSTED_PROXIES",
                "value": json.dumps(list(self.options.trusted_proxies)),
            },
        ]
        if artifacts:
            env += [
                secret("FUNADE_ARTIFACTS_URL", ARTIFACTS_SECRET, "url"),
                secret("FUNADE_ARTIFACTS_OPTIONS", ARTIFACTS_SECRET, "options"),
            ]
        return env

    def pod(self, name: str, account: str, container: dict[str, Any]) -> dict[str, Any]:
        return {
            "metadata": {"labels": self.meta(name, container["name"])["labels"]},
            "spec": {
                "serviceAccountName": account,
                "automountServiceAccountToken": account == CONTROLLER,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": UID,
                    "runAsGroup": UID,
                    "fsGroup": UID,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [container],
                "volumes": [{"name": "home", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
            },
        }

    def container(
        self,
        name: str,
        args: list[str],
        port: int,
        env: list[dict[str, Any]],
        probes: dict[str, str],
    ) -> dict[str, Any]:
        def probe(path: str, period: int) -> dict[str, Any]:
            return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period}

        return {
            "name": name,
            "image": self.options.image,
            "command": ["funade"],
            "args": args,
            "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
            "env": env,
            "readinessProbe": probe(probes["ready"], 5),
            "livenessProbe": probe(probes["live"], 10),
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [
                {"name": "home", "mountPath": HOME},
                {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (the pod's own emptyDir)
            ],
        }

    def control_plane(self) -> dict[str, Any]:
        api_url = f"http://{CONTROL_PLANE}.{self.namespace}.svc:{API_PORT}"
        env = [
            *self.settings_env(artifacts=True),
            {"name": "FUNADE_ISOLATION", "value": "none"},  # the pods are the boundary
            {"name": "FUNADE_BACKEND", "value": "kubernetes"},
            {"name": "FUNADE_KUBERNETES_NAMESPACE", "value": self.models},
            {"name": "FUNADE_KUBERNETES_API_URL", "value": api_url},
            {"name": "FUNADE_KUBERNETES_IMAGES", "value": self.options.images},
        ]
        if self.options.pods:
            env.append({"name": "FUNADE_KUBERNETES_PODS", "value": json.dumps(self.options.pods)})
        container = self.container(
            "control-plane",
            ["up", "--host", "0.0.0.0", "--port", str(API_PORT)],  # noqa: S104 (in its pod)
            API_PORT,
            env,
            {"ready": "/healthz", "live": "/healthz"},
        )
        template = self.pod(CONTROL_PLANE, CONTROLLER, container)
        # `funade up` migrates only SQLite: PostgreSQL's schema is brought up to date first.
        migrate = {
            k: v
            for k, v in container.items()
            if k not in ("ports", "readinessProbe", "livenessProbe")
        }
        template["spec"]["initContainers"] = [
            {**migrate, "name": "migrate", "args": ["db", "upgrade"]}
        ]
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self.meta(CONTROL_PLANE, "control-plane"),
            "spec": {
                # One controller over one store: see the module's docstring.
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": {"app.kubernetes.io/instance": CONTROL_PLANE}},
                "template": template,
            },
        }

    def gateway(self) -> dict[str, Any]:
        container = self.container(
            "gateway",
            ["gateway", "--host", "0.0.0.0", "--port", str(GATEWAY_PORT)],  # noqa: S104
            GATEWAY_PORT,
            self.settings_env(artifacts=False),
            {"ready": "/v2/health/ready", "live": "/v2/health/live"},
        )
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self.meta(GATEWAY, "gateway"),
            "spec": {
                "replicas": self.options.gateway_replicas,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
                },
                "selector": {"matchLabels": {"app.kubernetes.io/instance": GATEWAY}},
                "template": self.pod(GATEWAY, GATEWAY, container),
            },
        }

    def ingress(self) -> dict[str, Any]:
        def rule(host: str, service: str, port: int) -> dict[str, Any]:
            backend = {"service": {"name": service, "port": {"number": port}}}
            return {
                "host": host,
                "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
            }

        spec: dict[str, Any] = {
            "rules": [
                rule(self.options.api_host, CONTROL_PLANE, API_PORT),
                rule(self.options.gateway_host, GATEWAY, GATEWAY_PORT),
            ]
        }
        if self.options.ingress_class is not None:
            spec["ingressClassName"] = self.options.ingress_class
        if self.options.tls_secret is not None:
            spec["tls"] = [
                {
                    "hosts": [self.options.api_host, self.options.gateway_host],
                    "secretName": self.options.tls_secret,
                }
            ]
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": self.meta("funade", "ingress"),
            "spec": spec,
        }
