"""The Kubernetes backend: each revision is a Deployment and a Service (and an HPA when the
pods' settings ask for autoscaling) in one namespace, applied server-side as ``funade``.

What maps to what:

- **A revision** (``ReplicaSpec.key``) is ``<name>-r<revision>``: a Secret (its credentials), a
  Service, a Deployment and maybe an HPA, rendered by ``funade.deploy.k8s.render`` as `funade
  manifests` renders them, reconciled by the pure planner (``funade.deploy.k8s.plan``) and
  applied through ``funade.deploy.k8s.client``. ``<name>`` is the deployment's name (with its
  project's before it, outside ``default``) made a Kubernetes name.
- **A replica** the controller starts is a slot of its revision: the Deployment's
  ``spec.replicas`` is the number of slots, their ids are in its annotation
  ``funade.dev/replicas`` (so a restarted control plane finds them), and each slot's state is
  read from the revision's pods (kept by a watch, ``funade.deploy.k8s.podwatch``, not listed
  on every pass): as many slots are READY as pods are ready (the oldest slots
  first), then one FAILED per pod that cannot start (CrashLoopBackOff, ErrImagePull, ...), the
  rest STARTING. Kubernetes, not funade, chooses which pod goes when a slot is stopped (a
  ReplicaSet removes not-ready pods first).
- **A replica's URL is its revision's Service** (``http://<name>-r<n>.<namespace>.svc``),
  not pod addresses from EndpointSlices: the Service routes only to ready pods and follows
  pod restarts and the HPA's extra pods without the gateway knowing any of them, and the
  gateway's table stays one row per slot, as with the other backends. The cost: the gateway
  balances connections between slots and kube-proxy balances them between pods, per connection.
- **Credentials**: the Secret ``<name>-r<n>-credentials`` holds the replica token (what the
  gateway presents to the pods) and a key the pods may pull their model version with, read-only
  in the revision's project and expiring (``funade.deploy.k8s.credentials``), which this backend
  renews once half its life has passed and revokes when the revision stops. Never an admin key,
  the database's URL or the artifact store's credentials.
- **stop** removes a slot; the last one's stop deletes the revision's objects and revokes its key.
- **stop_all** (a graceful stop of the control plane) deletes nothing: the Deployments keep
  serving through the gateways, which run apart from the control plane, and a control plane that
  starts again adopts them (the revisions' specs are in the Deployments' annotations). Delete a
  deployment through funade to take its objects down.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from funade.deploy.backends.base import Replica, ReplicaSpec, ReplicaState
from funade.deploy.k8s.client import KubeClient, pod_state
from funade.deploy.k8s.credentials import IssuedKey, ReplicaKeys
from funade.deploy.k8s.names import object_name
from funade.deploy.k8s.options import NAME_LIMIT, ModelVersion, RenderOptions, Target
from funade.deploy.k8s.plan import Verb, plan
from funade.deploy.k8s.podsettings import pod_options
from funade.deploy.k8s.podwatch import PodWatch
from funade.deploy.k8s.render import SECRET_API_KEY, SECRET_TOKEN_KEY, render
from funade.errors import ConflictError, InvalidInputError
from funade.images.containerfile import default_tag
from funade.sandbox.env import forbidden_names

if TYPE_CHECKING:
    from funade.deploy.backends import BackendContext
    from funade.settings import Settings

__all__ = ["OWNER", "VERBS", "KubernetesBackend", "create_backend"]

OWNER = {"app.kubernetes.io/managed-by": "funade"}
SLOTS_ANNOTATION = "funade.dev/replicas"
SPEC_ANNOTATION = "funade.dev/replica-spec"
STARTED_ANNOTATION = "funade.dev/started-at"
KEY_ID_ANNOTATION = "funade.dev/key-id"
KEY_EXPIRES_ANNOTATION = "funade.dev/key-expires"
KINDS = ("Secret", "Service", "Deployment", "HorizontalPodAutoscaler")
_WRITES = ("get", "list", "create", "patch", "delete")
VERBS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(KINDS, _WRITES),
    "Pod": ("list", "watch"),
}
"""Every API verb this backend uses, by kind: what its ServiceAccount's Role grants (`funade
platform manifests`), and no more. ``create`` is for a server-side apply that creates (the API
server checks it on top of ``patch``); ``get`` finds a name held by an object without funade's
labels; pods are only listed and watched (readiness), never changed."""


@dataclass
class _Revision:
    spec: ReplicaSpec
    name: str
    """``<name>-r<n>``: its Deployment's and Service's name."""
    slots: list[str] = field(default_factory=list)
    started: dict[str, float] = field(default_factory=dict)
    token: str = ""
    key: IssuedKey | None = None


class KubernetesBackend:
    """Revisions as Deployments and Services; see the module's docstring."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        keys: ReplicaKeys,
        api_url: Callable[[], str] = lambda: "",
        images: str = "funade",
        runtime_image: str | None = None,
        pods: Mapping[str, Any] | None = None,
        key_hours: float = 24.0,
        clock: Callable[[], float] = time.time,
        watch: PodWatch | None = None,
    ) -> None:
        self.kube = kube
        self.keys = keys
        self.api_url = api_url
        self.images = images
        self.runtime_image = runtime_image
        self.pods = pod_options(pods or {})
        self.key_hours = key_hours
        self.clock = clock
        self.watch = watch
        """Pods from a watch (``funade.deploy.k8s.podwatch``); None: listed on every pass."""
        self._revisions: dict[str, _Revision] = {}
        self._adopted = False
        self._lock = threading.RLock()

    # The interface --------------------------------------------------------------------------

    def start(self, spec: ReplicaSpec) -> Replica:
        with self._lock:
            self._adopt()
            revision = self._revisions.get(spec.key)
            if revision is None:
                revision = _Revision(spec, self._revision_name(spec))
                revision.token = secrets.token_urlsafe(32)
                revision.key = self._issue(spec)
            slot = f"{revision.name}-{secrets.token_hex(3)}"
            revision.slots.append(slot)
            revision.started[slot] = self.clock()
            try:
                self._reconcile(revision)
            except Exception as exc:  # nothing started: a new revision's key goes too
                revision.slots.remove(slot)
                if not revision.slots and revision.key is not None:
                    self.keys.revoke(revision.key.key_id)
                if not isinstance(exc, ConflictError | InvalidInputError):
                    raise  # the cluster is away: the controller's next pass tries again
                return Replica(slot, spec, "", ReplicaState.FAILED, self.clock(), exc.message)
            self._revisions[spec.key] = revision
            return Replica(
                slot,
                spec,
                self._url(revision),
                ReplicaState.STARTING,
                revision.started[slot],
                token=revision.token,
            )

    def replicas(self) -> list[Replica]:
        with self._lock:
            self._adopt()
            self._renew()
            pods: dict[str, list[dict[str, Any]]] = {}
            seen = self.watch.pods() if self.watch is not None else None
            for pod in seen if seen is not None else self.kube.pods(OWNER):
                instance = (pod["metadata"].get("labels") or {}).get("app.kubernetes.io/instance")
                pods.setdefault(str(instance), []).append(pod)
            out: list[Replica] = []
            for revision in self._revisions.values():
                out += self._observe(revision, pods.get(revision.name, []))
            return out

    def stop(self, replica_id: str, *, grace_seconds: float = 30.0) -> None:
        """Remove the slot; the revision's last slot takes its objects and key with it. The
        pods drain for their own ``terminationGracePeriodSeconds`` (30 s), not ``grace``."""
        with self._lock:
            self._adopt()
            revision = next((r for r in self._revisions.values() if replica_id in r.slots), None)
            if revision is None:
                return
            revision.slots.remove(replica_id)
            revision.started.pop(replica_id, None)
            if revision.slots:
                self._reconcile(revision)
                return
            for kind in reversed(KINDS):
                for obj in self.kube.list(kind, self._labels(revision)).items:
                    if not obj["metadata"].get("ownerReferences"):
                        self.kube.delete(kind, obj["metadata"]["name"])
            if revision.key is not None:
                self.keys.revoke(revision.key.key_id)
            del self._revisions[revision.spec.key]

    def stop_all(self, *, grace_seconds: float = 30.0) -> None:
        """Nothing is deleted: the revisions keep serving, and the next control plane adopts
        them (see the module's docstring)."""

    def close(self) -> None:
        if self.watch is not None:
            self.watch.stop()
        self.kube.close()
        self.keys.close()

    # Keys -----------------------------------------------------------------------------------

    def renew_keys(self) -> list[str]:
        """Renew every revision's key past half its life: the new key into its Secret, then
        the old one revoked. Returns the revisions renewed."""
        with self._lock:
            self._adopt()
            return self._renew()

    def _renew(self) -> list[str]:
        renewed = []
        half = self.key_hours * 3600 / 2
        for revision in self._revisions.values():
            key = revision.key
            if (
                key is not None
                and key.expires_at.replace(tzinfo=UTC).timestamp() - self.clock() > half
            ):
                continue
            revision.key = self._issue(revision.spec)
            self._reconcile(revision)
            if key is not None:
                self.keys.revoke(key.key_id)
            renewed.append(revision.spec.key)
        return renewed

    def _issue(self, spec: ReplicaSpec) -> IssuedKey:
        expires = datetime.fromtimestamp(self.clock() + self.key_hours * 3600, UTC)
        return self.keys.issue(spec.project, spec.key, expires)

    # Objects --------------------------------------------------------------------------------

    def _revision_name(self, spec: ReplicaSpec) -> str:
        base = spec.deployment if spec.project == "default" else f"{spec.project}.{spec.deployment}"
        return f"{object_name(base, limit=NAME_LIMIT[Target.KUBERNETES])}-r{spec.revision}"

    def _labels(self, revision: _Revision) -> dict[str, str]:
        name, _, number = revision.name.rpartition("-r")
        return {**OWNER, "funade.dev/deployment": name, "funade.dev/revision": number}

    def _url(self, revision: _Revision) -> str:
        return f"http://{revision.name}.{self.kube.namespace}.svc"

    def _wanted(self, revision: _Revision) -> list[dict[str, Any]]:
        spec = revision.spec
        model = spec.source.rpartition(":")[0]
        version = ModelVersion(model, int(spec.version), spec.digest, project=spec.project)
        options = RenderOptions(
            deployment=revision.name.rpartition("-r")[0],
            revision=spec.revision,
            namespace=self.kube.namespace,
            image=self.runtime_image
            or default_tag(model, version.version, spec.digest, repository=self.images),
            replicas=len(revision.slots),
            registry_url=self.api_url() or None,
            **self._pods(spec),
        )
        if options.max_replicas is not None:  # the HPA's floor is the slots the controller wants
            floor = max(1, len(revision.slots))
            options = _with(
                options, min_replicas=floor, max_replicas=max(floor, options.max_replicas)
            )
        objects = render(version, options)
        if self.runtime_image:  # the runtime image is told which version to serve
            container = objects[0]["spec"]["template"]["spec"]["containers"][0]
            container["args"] = [spec.source, "--digest", spec.digest, *container.get("args", [])]
        deployment = objects[0]
        deployment["metadata"]["annotations"].update(
            {
                SLOTS_ANNOTATION: ",".join(revision.slots),
                STARTED_ANNOTATION: json.dumps(revision.started, sort_keys=True),
                SPEC_ANNOTATION: spec.model_dump_json(),
            }
        )
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        container["args"] = [
            *container.get("args", []),
            *spec.runtime.serve_arguments(),
            "--name",
            spec.deployment,
        ]
        ours = {e["name"] for e in container["env"]} | {"FUNADE_MODEL_DIGEST"}
        refused = set(forbidden_names(spec.runtime.env))  # a revision from an earlier version
        container["env"] += [
            {"name": k, "value": v}
            for k, v in sorted(spec.runtime.env.items())
            if k not in ours and k not in refused
        ]
        container["env"].append({"name": "FUNADE_MODEL_DIGEST", "value": spec.digest})
        return [self._secret(revision, deployment["metadata"]), *objects]

    def _pods(self, spec: ReplicaSpec) -> dict[str, Any]:
        """The platform's ``kubernetes_pods`` with what the revision asks over them: the
        startupProbe's allowance (its rollout's ready timeout) and autoscaling."""
        pods = dict(self.pods)
        if spec.ready_timeout_seconds is not None:
            pods["ready_timeout_seconds"] = spec.ready_timeout_seconds
        autoscale = spec.runtime.autoscale
        if autoscale is None:
            return pods
        pods.update(max_replicas=autoscale.max_replicas, target_cpu=autoscale.target_cpu)
        pods["cpu"] = autoscale.cpu or pods.get("cpu")
        if pods["cpu"] is None:
            raise InvalidInputError(
                f"Revision {spec.revision} of {spec.deployment} asks for autoscaling, but its "
                "pods have no CPU request for the autoscaler to measure against.",
                field="runtime.autoscale.cpu",
                value=None,
                fix='Give the revision runtime.autoscale.cpu (e.g. "1"), or give every pod one '
                "with the kubernetes_pods setting's cpu.",
            )
        return pods

    def _secret(self, revision: _Revision, metadata: Mapping[str, Any]) -> dict[str, Any]:
        key = revision.key
        data = {SECRET_TOKEN_KEY: revision.token, SECRET_API_KEY: key.text if key else ""}
        revision_only = (SLOTS_ANNOTATION, STARTED_ANNOTATION, SPEC_ANNOTATION)
        annotations = {k: v for k, v in metadata["annotations"].items() if k not in revision_only}
        if key is not None:
            annotations[KEY_ID_ANNOTATION] = key.key_id
            annotations[KEY_EXPIRES_ANNOTATION] = key.expires_at.isoformat()
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": f"{revision.name}-credentials",
                "namespace": self.kube.namespace,
                "labels": dict(metadata["labels"]),
                "annotations": annotations,
            },
            "type": "Opaque",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }

    def _reconcile(self, revision: _Revision) -> None:
        """Apply what the revision wants, delete what it no longer does (its HPA)."""
        labels = self._labels(revision)
        wanted = self._wanted(revision)
        seen = [obj for kind in KINDS for obj in self.kube.list(kind, labels).items]
        listed = {(o["kind"], o["metadata"]["name"]) for o in seen}
        for obj in wanted:  # a name taken by an object without our labels is seen too
            if (obj["kind"], obj["metadata"]["name"]) not in listed:
                there = self.kube.get(obj["kind"], obj["metadata"]["name"])
                seen += [{"apiVersion": obj["apiVersion"], **there}] if there else []
        for action in plan(wanted, seen, owner=OWNER, namespace=self.kube.namespace):
            if action.verb is Verb.CONFLICT:
                raise ConflictError(action.reason, field="name", value=action.key.name)
            if action.verb is Verb.CREATE and action.body is not None:
                self.kube.apply(action.body)  # never forced: a stranger's object is a conflict
            elif action.verb is Verb.APPLY and action.body is not None:
                self.kube.apply(action.body, force=True)  # ours: funade is its source of truth
            elif action.verb is Verb.DELETE:
                self.kube.delete(action.key.kind, action.key.name)

    # Observing ------------------------------------------------------------------------------

    def _observe(self, revision: _Revision, pods: list[dict[str, Any]]) -> list[Replica]:
        states = [pod_state(p) for p in pods]
        ready = sum(1 for s in states if s.ready)
        failed = [s.failed for s in states if s.failed and s.failed != "being deleted"]
        out = []
        for slot in sorted(revision.slots, key=lambda s: revision.started.get(s, 0.0)):
            if ready > 0:
                ready -= 1
                state, detail = ReplicaState.READY, ""
            elif failed:
                state, detail = ReplicaState.FAILED, failed.pop(0)
            else:
                state, detail = ReplicaState.STARTING, ""
            out.append(
                Replica(
                    slot,
                    revision.spec,
                    self._url(revision),
                    state,
                    revision.started.get(slot, 0.0),
                    detail,
                    revision.token,
                )
            )
        return out

    def _adopt(self) -> None:
        """Once: take up the revisions a previous control plane left running."""
        if self._adopted:
            return
        secrets_by_name = {s["metadata"]["name"]: s for s in self.kube.list("Secret", OWNER).items}
        for deployment in self.kube.list("Deployment", OWNER).items:
            annotations = deployment["metadata"].get("annotations") or {}
            if SPEC_ANNOTATION not in annotations:
                continue  # not one of this backend's (rendered by `funade manifests`)
            spec = ReplicaSpec.model_validate_json(annotations[SPEC_ANNOTATION])
            name = deployment["metadata"]["name"]
            revision = _Revision(spec, name)
            revision.slots = [s for s in annotations.get(SLOTS_ANNOTATION, "").split(",") if s]
            revision.started = {
                k: float(v)
                for k, v in json.loads(annotations.get(STARTED_ANNOTATION) or "{}").items()
            }
            secret = secrets_by_name.get(f"{name}-credentials")
            if secret is not None:
                revision.token, revision.key = _read_secret(secret)
            self._revisions[spec.key] = revision
        self._adopted = True


def _read_secret(secret: Mapping[str, Any]) -> tuple[str, IssuedKey | None]:
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    annotations = secret["metadata"].get("annotations") or {}
    key = None
    if data.get(SECRET_API_KEY) and KEY_ID_ANNOTATION in annotations:
        key = IssuedKey(
            data[SECRET_API_KEY],
            annotations[KEY_ID_ANNOTATION],
            datetime.fromisoformat(annotations[KEY_EXPIRES_ANNOTATION]),
        )
    return data.get(SECRET_TOKEN_KEY, ""), key


def _with(options: RenderOptions, **changes: Any) -> RenderOptions:
    from dataclasses import replace

    return replace(options, **changes)


def create_backend(settings: Settings, context: BackendContext) -> KubernetesBackend:
    """The Kubernetes backend the settings describe (``funade.deploy.backends.make_backend``
    calls this for ``backend = "kubernetes"``): their cluster and namespace, and revisions'
    keys in their store."""
    from funade.bootstrap import open_database
    from funade.deploy.k8s.client import connect
    from funade.deploy.k8s.credentials import StoreKeys

    kube = connect(settings)
    advertised = settings.kubernetes_api_url
    watch = PodWatch(kube, OWNER)
    backend = KubernetesBackend(
        kube,
        keys=StoreKeys(open_database(settings, migrate=False), owned=True),
        api_url=(lambda: advertised) if advertised else context.api_url,
        images=settings.kubernetes_images,
        runtime_image=settings.kubernetes_runtime_image,
        pods=settings.kubernetes_pods,
        key_hours=settings.kubernetes_key_hours,
        watch=watch,
    )
    watch.start()  # once the settings were accepted: nothing to let go of when they were not
    return backend
