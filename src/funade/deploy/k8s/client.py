"""A thin layer over the official Kubernetes client: what the Kubernetes backend asks of a
cluster, as plain dicts, with errors that name the setting and the fix.

- ``apply``: server-side apply (``PATCH`` with ``application/apply-patch+yaml``,
  ``fieldManager=funade``). ``force`` is off unless the caller asks: the backend forces only
  when it applies again an object that carries funade's owner labels (it is the one source of
  truth for those, as a GitOps controller is; a ``kubectl scale`` must not stop every later
  apply), never when it creates one (an object someone else made in between is a conflict, a
  ``ConflictError`` naming the fields and their manager).
- ``list`` by label selector (funade's owner labels), ``get``, ``delete`` (foreground: a
  Deployment's ReplicaSets and Pods go before it), the pods of a revision and the
  EndpointSlices of its Service, and ``watch`` (the API server's ``?watch=1`` stream of
  ADDED/MODIFIED/DELETED events from a resourceVersion) so readiness can be waited for.
- ``connect(settings)``: a kubeconfig file (``kubernetes_kubeconfig``, its context
  ``kubernetes_context``) or, without one, the in-cluster service account.

The official client is ``kubernetes`` on PyPI (``funade[kubernetes]``); it is imported only here.
Calls go through its ``ApiClient.call_api`` by path, so objects stay plain dicts, as the
planner (``plan.py``) and the renderer (``render.py``) make and read them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from funade.errors import (
    APIError,
    AuthenticationError,
    ConflictError,
    FunadeError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from funade.settings import Settings

__all__ = [
    "APPLY_CONTENT_TYPE",
    "FIELD_MANAGER",
    "KINDS",
    "Kind",
    "KubeClient",
    "Listing",
    "PodState",
    "WatchEvent",
    "connect",
    "pod_state",
    "selector",
]

Objects = list[dict[str, Any]]
Query = list[tuple[str, str]]

FIELD_MANAGER = "funade"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class Kind:
    """A kind of object and where the API server serves it."""

    api_version: str
    kind: str
    plural: str

    def path(self, namespace: str, name: str = "") -> str:
        group = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        tail = f"/{name}" if name else ""
        return f"{group}/namespaces/{namespace}/{self.plural}{tail}"


KINDS: dict[str, Kind] = {
    k.kind: k
    for k in (
        Kind("apps/v1", "Deployment", "deployments"),
        Kind("v1", "Service", "services"),
        Kind("v1", "Secret", "secrets"),
        Kind("v1", "Pod", "pods"),
        Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
        Kind("discovery.k8s.io/v1", "EndpointSlice", "endpointslices"),
    )
}
"""The kinds funade reads or writes (and so the RBAC its controller needs), by kind."""


@dataclass(frozen=True)
class Listing:
    items: list[dict[str, Any]]
    """The objects, each with its apiVersion and kind (a list's items carry neither)."""
    resource_version: str
    """The list's resourceVersion: watch from here to miss no change."""


@dataclass(frozen=True)
class WatchEvent:
    type: str
    """ADDED, MODIFIED or DELETED."""
    object: dict[str, Any]


def selector(labels: Mapping[str, str]) -> str:
    """A label selector matching every one of ``labels`` (``k=v,k2=v2``)."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


class KubeClient:
    """One namespace of a cluster, through an official ``ApiClient``; see the module."""

    def __init__(self, api: ApiClient, namespace: str, *, where: str = "the cluster") -> None:
        self.api = api
        self.namespace = namespace
        self.where = where
        """How errors name the API server (its URL and where the config came from)."""

    def apply(self, obj: Mapping[str, Any], *, force: bool = False) -> dict[str, Any]:
        """Server-side apply ``obj`` (its kind must be in ``KINDS``); the object as stored."""
        kind = _kind(obj)
        name = str(obj["metadata"]["name"])
        query = [("fieldManager", FIELD_MANAGER)] + ([("force", "true")] if force else [])
        return self._call(
            "PATCH",
            kind.path(self.namespace, name),
            query=query,
            body=dict(obj),
            content_type=APPLY_CONTENT_TYPE,
            what=f"apply {kind.kind} {name}",
        )

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """The object, or None when there is none."""
        try:
            return self._call(
                "GET", KINDS[kind].path(self.namespace, name), what=f"read {kind} {name}"
            )
        except NotFoundError:
            return None

    def list(self, kind: str, labels: Mapping[str, str]) -> Listing:
        """The objects of ``kind`` carrying every one of ``labels``."""
        info = KINDS[kind]
        body = self._call(
            "GET",
            info.path(self.namespace),
            query=[("labelSelector", selector(labels))],
            what=f"list {info.plural}",
        )
        items = [
            {"apiVersion": info.api_version, "kind": info.kind, **item}
            for item in body.get("items") or []
        ]
        return Listing(items, str((body.get("metadata") or {}).get("resourceVersion") or ""))

    def delete(self, kind: str, name: str) -> bool:
        """Delete the object (its dependents first); False when it was not there."""
        try:
            self._call(
                "DELETE",
                KINDS[kind].path(self.namespace, name),
                body={"propagationPolicy": "Foreground"},
                what=f"delete {kind} {name}",
            )
        except NotFoundError:
            return False
        return True

    def pods(self, labels: Mapping[str, str]) -> Objects:
        return self.list("Pod", labels).items

    def endpoint_slices(self, service: str) -> Objects:
        """The EndpointSlices of Service ``service`` (the ready addresses of its pods)."""
        return self.list("EndpointSlice", {"kubernetes.io/service-name": service}).items

    def watch(
        self,
        kind: str,
        labels: Mapping[str, str],
        *,
        resource_version: str,
        timeout_seconds: int,
    ) -> Iterator[WatchEvent]:
        """The changes to objects of ``kind`` with ``labels`` after ``resource_version``, until
        ``timeout_seconds`` (the server ends the stream then) or the caller stops reading."""
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        info = KINDS[kind]

        def list_call(**kwargs: Any) -> Any:
            query = [
                ("labelSelector", selector(labels)),
                ("watch", "1"),
                ("resourceVersion", str(kwargs["resource_version"])),
                ("timeoutSeconds", str(kwargs["timeout_seconds"])),
                ("allowWatchBookmarks", "false"),
            ]
            return self._raw("GET", info.path(self.namespace), query, f"watch {info.plural}")

        stream = watch.Watch().stream(
            list_call, resource_version=resource_version, timeout_seconds=timeout_seconds
        )
        try:
            for event in stream:
                yield WatchEvent(
                    str(event["type"]),
                    {"apiVersion": info.api_version, "kind": info.kind, **event["raw_object"]},
                )
        except ApiException as exc:  # an ERROR event (410 Gone: list again)
            raise _error(exc, f"watch {info.plural}", self.where) from None

    def close(self) -> None:
        self.api.close()

    # The calls -------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        query: Query | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            response = self.api.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
            )
        except ApiException as exc:
            raise _error(exc, what, self.where) from None
        except Exception as exc:  # urllib3: refused, reset, TLS, timeout
            raise _unreachable(exc, what, self.where) from None
        data: dict[str, Any] = json.loads(response.data or b"{}")
        return data

    def _raw(self, method: str, path: str, query: Query, what: str) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.call_api(
                path,
                method,
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
            )
        except ApiException as exc:
            raise _error(exc, what, self.where) from None
        except Exception as exc:
            raise _unreachable(exc, what, self.where) from None


def _kind(obj: Mapping[str, Any]) -> Kind:
    kind = KINDS.get(str(obj.get("kind")))
    if kind is None or kind.api_version != obj.get("apiVersion"):
        raise ValueError(
            f"funade does not apply {obj.get('apiVersion')}/{obj.get('kind')} objects; it "
            f"applies {', '.join(f'{k.api_version}/{k.kind}' for k in KINDS.values())}"
        )
    return kind


def _status(exc: Any) -> tuple[str, str]:
    """The ``reason`` and ``message`` of the Status an API server answered with."""
    try:
        status = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        status = {}
    if not isinstance(status, dict):
        status = {}
    return str(status.get("reason") or exc.reason or ""), str(status.get("message") or "")


def _error(exc: Any, what: str, where: str) -> FunadeError:
    """An ``ApiException`` as funade's error of the same meaning."""
    reason, message = _status(exc)
    said = f"Kubernetes refused to {what} ({exc.status} {reason}): {message or exc.reason}"
    if exc.status == 401:
        return AuthenticationError(
            f"{where} did not accept funade's credentials ({exc.status} {reason}).",
            field="kubernetes_kubeconfig",
            fix="Give the controller a valid kubeconfig (kubernetes_kubeconfig) or run it in the "
            "cluster under the ServiceAccount `funade platform manifests` writes.",
        )
    if exc.status == 403:
        return PermissionDeniedError(
            said,
            field="kubernetes_namespace",
            fix="Bind funade's ServiceAccount to the Role `funade platform manifests` writes "
            "(it may get, list, watch, patch and delete deployments, services, secrets and "
            "horizontalpodautoscalers, and read pods and endpointslices) in this namespace.",
        )
    if exc.status == 404:
        return NotFoundError(said, fix="Check kubernetes_namespace names an existing namespace.")
    if exc.status == 409:
        return ConflictError(
            said,
            field="fieldManager",
            value=FIELD_MANAGER,
            fix="Another field manager owns those fields: leave them to funade (remove them "
            "from the other manager's apply), or delete the object if it is a leftover.",
        )
    if exc.status == 410:
        return APIError(
            f"Kubernetes ended a {what}: {message or exc.reason} (410 Gone).",
            status_code=410,
            fix="List the objects again and watch from the list's resourceVersion.",
        )
    if exc.status in (400, 415, 422):
        return InvalidInputError(
            said,
            field="kubernetes",
            fix="This is a defect of funade's objects: report it with the message above.",
        )
    return APIError(
        said, status_code=int(exc.status or 0), fix=f"Check {where} is healthy, then retry."
    )


def _unreachable(exc: Exception, what: str, where: str) -> APIError:
    return APIError(
        f"Could not {what}: {where} did not answer ({type(exc).__name__}: {exc}).",
        status_code=0,
        field="kubernetes_kubeconfig",
        fix="Check the kubeconfig's server address and that the cluster is reachable.",
    )


@dataclass(frozen=True)
class PodState:
    ready: bool
    failed: str = ""
    """Why the pod cannot become ready (CrashLoopBackOff, ErrImagePull, ...); empty: it may."""


# Reasons a container waits for that it does not get over by itself.
FAILING = frozenset(
    {
        "CrashLoopBackOff",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


def pod_state(pod: Mapping[str, Any]) -> PodState:
    """A pod's readiness as the kubelet reports it (its ``Ready`` condition), and why it
    failed when it did: phase Failed, or a container waiting for a reason in ``FAILING``."""
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return PodState(False, "being deleted")
    if status.get("phase") == "Failed":
        return PodState(False, str(status.get("reason") or status.get("message") or "Failed"))
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FAILING:
            said = str(waiting.get("message") or "")
            return PodState(False, f"{waiting['reason']}: {said}" if said else waiting["reason"])
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return PodState(ready)


def connect(settings: Settings) -> KubeClient:
    """A client of the namespace ``settings`` name, configured from the kubeconfig file they
    name or, without one, from the pod's service account; errors name the setting and fix."""
    from kubernetes import client, config

    configuration = client.Configuration()
    kubeconfig = settings.kubernetes_kubeconfig
    namespace = settings.kubernetes_namespace
    if kubeconfig is not None:
        if not kubeconfig.is_file():
            raise InvalidInputError(
                f"kubernetes_kubeconfig {str(kubeconfig)!r} is not a file.",
                field="kubernetes_kubeconfig",
                value=str(kubeconfig),
                fix="Point FUNADE_KUBERNETES_KUBECONFIG at a kubeconfig (e.g. ~/.kube/config), "
                "or unset it to use the pod's service account.",
            )
        try:
            config.load_kube_config(
                config_file=str(kubeconfig),
                context=settings.kubernetes_context,
                client_configuration=configuration,
                persist_config=False,
            )
            contexts, current = config.list_kube_config_contexts(config_file=str(kubeconfig))
        except (config.ConfigException, ValueError, TypeError, KeyError) as exc:
            field = (
                "kubernetes_context" if "context" in str(exc).lower() else "kubernetes_kubeconfig"
            )
            raise InvalidInputError(
                f"The kubeconfig {str(kubeconfig)!r} cannot be used: {exc}",
                field=field,
                value=settings.kubernetes_context
                if field == "kubernetes_context"
                else str(kubeconfig),
                fix="Check the file with `kubectl --kubeconfig FILE config view`, and that "
                "kubernetes_context names one of its contexts.",
            ) from None
        chosen = next(
            (c for c in contexts if c.get("name") == settings.kubernetes_context), current
        )
        namespace = namespace or (chosen or {}).get("context", {}).get("namespace")
        where = f"the API server at {configuration.host} (from {kubeconfig})"
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException as exc:
            raise InvalidInputError(
                f"The kubernetes backend has no cluster to talk to: no kubeconfig is set and "
                f"this is not a pod with a service account ({exc}).",
                field="kubernetes_kubeconfig",
                value=None,
                fix="Set FUNADE_KUBERNETES_KUBECONFIG to a kubeconfig file, or run the "
                "controller in the cluster (`funade platform manifests`).",
            ) from None
        namespace = namespace or _pod_namespace()
        where = f"the API server at {configuration.host} (in-cluster)"
    namespace = namespace or "default"
    from funade.deploy.k8s.names import check_namespace

    check_namespace(namespace, option="kubernetes_namespace")
    return KubeClient(client.ApiClient(configuration), namespace, where=where)


def _pod_namespace() -> str | None:
    try:
        return (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip() or None
    except OSError:
        return None
