"""A local stand-in of the Kubernetes API server, for the tests of the client and the backend.

No API server can be installed on the machines that test funade, so this one checks every
request as a real one would, for the kinds funade uses (Deployments, Services, Secrets, HPAs,
Pods, EndpointSlices), on a real HTTP server (Starlette on uvicorn, a free port, a thread):

- a bearer token (401 without the right one) and a namespace it serves (403 elsewhere, as RBAC);
- server-side apply only: ``PATCH`` with ``application/apply-patch+yaml`` (415 otherwise) and a
  ``fieldManager`` (422 without); the body's apiVersion, kind, name and namespace must match the
  URL (400), and it must validate against Kubernetes 1.33's schema as kubernetes-validate ships
  it, strict (422 naming the field: an unknown field or a wrong type);
- field ownership as SSA keeps it (``metadata.managedFields``, simplified to a set of leaf paths
  per manager; lists are atomic, as ``x-kubernetes-list-type: atomic``): an apply that sets a
  field another manager owns to another value is a 409 Conflict naming the field and the
  manager, unless ``force=true``, which takes the field over; a manager's fields it no longer
  applies are dropped;
- get (404), list with ``labelSelector`` (``k=v``, ``k!=v``, ``k``, ``!k``), delete (404;
  dependents named by ``ownerReferences`` go too), and ``?watch=1``: a stream of ADDED,
  MODIFIED and DELETED events after ``resourceVersion`` (410 Gone for one older than the history
  kept), ending after ``timeoutSeconds``;
- a Deployment controller in miniature: a Deployment's ``spec.replicas`` pods (owned by it,
  not ready), and an EndpointSlice per Service listing its ready pods. The test hooks
  ``mark_ready``, ``mark_failed`` and ``update_as`` (another field manager's write) stand in
  for the kubelet and for people.

What it does not do: admission webhooks, defaulting, ReplicaSets, scheduling, real containers,
strategic merge of lists by key, or RBAC beyond one namespace.
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import kubernetes_validate
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .apicontrollers import Controllers
from .apimachinery import (
    PLURAL,
    RESOURCES,
    SERVER_FIELDS,
    Event,
    Stored,
    build,
    invalid_metadata,
    leaves,
    matches,
    merge,
    shown,
    status,
)

K8S = "1.33"
APPLY = "application/apply-patch+yaml"


class ApiServer(Controllers):
    """The stand-in; ``with ApiServer() as server``: ``server.url``, ``server.token``."""

    def __init__(self, namespace: str = "models", *, history: int = 10_000) -> None:
        self.namespace = namespace
        self.token = secrets.token_hex(16)
        self.objects: dict[tuple[str, str, str], Stored] = {}
        self.events: list[Event] = []
        self.history = history
        self.rv = 100
        self.requests: list[tuple[str, str, str]] = []
        """(method, path and query, content type) of every request, in order."""
        self._lock = threading.Lock()
        self._changed: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # Running ----------------------------------------------------------------------------

    def __enter__(self) -> ApiServer:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        app = Starlette(
            routes=[
                Route("/api/v1/namespaces/{ns}/{plural}", self._collection, methods=["GET"]),
                Route(
                    "/api/v1/namespaces/{ns}/{plural}/{name}",
                    self._item,
                    methods=["GET", "PATCH", "DELETE", "PUT", "POST"],
                ),
                Route("/apis/{group}/{version}/namespaces/{ns}/{plural}", self._collection),
                Route(
                    "/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}",
                    self._item,
                    methods=["GET", "PATCH", "DELETE", "PUT", "POST"],
                ),
            ]
        )
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the stand-in API server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        assert self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def kubeconfig(self, *, token: str | None = None, namespace: str | None = None) -> str:
        """A kubeconfig (YAML) for this server."""
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
                "users": [{"name": "funade", "user": {"token": token or self.token}}],
                "contexts": [
                    {
                        "name": "standin",
                        "context": {
                            "cluster": "standin",
                            "user": "funade",
                            "namespace": namespace or self.namespace,
                        },
                    }
                ],
                "current-context": "standin",
            }
        )

    # Test hooks -------------------------------------------------------------------------

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            stored = self.objects.get((PLURAL[kind], self.namespace, name))
            return copy.deepcopy(stored.obj) if stored else None

    def names(self, kind: str) -> list[str]:
        with self._lock:
            return sorted(n for (p, ns, n) in self.objects if p == PLURAL[kind])

    def update_as(self, manager: str, kind: str, name: str, fields: dict[str, Any]) -> None:
        """Another field manager (``kubectl``, a person) writes ``fields`` of the object."""
        with self._lock:
            stored = self.objects[(PLURAL[kind], self.namespace, name)]
            for path, value in leaves(fields).items():
                for owner in stored.owned.values():
                    owner.pop(path, None)
                stored.owned.setdefault(manager, {})[path] = value
            self._compose(stored)
            self._record("MODIFIED", PLURAL[kind], stored.obj)
            self._after_change(PLURAL[kind], stored.obj)

    def pods_of(self, deployment: str) -> list[str]:
        with self._lock:
            return sorted(
                n
                for (p, _, n), s in self.objects.items()
                if p == "pods"
                and any(r["name"] == deployment for r in s.obj["metadata"]["ownerReferences"])
            )

    def compact(self) -> None:
        """Forget the event history (a watch from before now gets 410 Gone)."""
        with self._lock:
            self.events.clear()
            self._compacted = self.rv

    _compacted = 0

    # Handlers ---------------------------------------------------------------------------

    def _check(self, request: Request) -> JSONResponse | None:
        self.requests.append(
            (
                request.method,
                f"{request.url.path}?{request.url.query}",
                request.headers.get("content-type", ""),
            )
        )
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return status(401, "Unauthorized", "Unauthorized")
        plural = request.path_params["plural"]
        if plural not in RESOURCES:
            return status(404, "NotFound", f"the server could not find the resource {plural}")
        api_version, _ = RESOURCES[plural]
        group = request.path_params.get("group")
        asked = f"{group}/{request.path_params['version']}" if group else "v1"
        if asked != api_version:
            return status(404, "NotFound", f"the server could not find {asked} {plural}")
        if request.path_params["ns"] != self.namespace:
            return status(
                403,
                "Forbidden",
                f'{plural} is forbidden: User "funade" cannot {request.method.lower()} '
                f'resource "{plural}" in the namespace "{request.path_params["ns"]}"',
            )
        return None

    async def _collection(self, request: Request) -> Response:
        refused = self._check(request)
        if refused is not None:
            return refused
        if request.method != "GET":
            return status(405, "MethodNotAllowed", "only GET (list, watch) here")
        plural = request.path_params["plural"]
        expression = request.query_params.get("labelSelector", "")
        if request.query_params.get("watch") in ("1", "true"):
            return await self._watch(request, plural, expression)
        api_version, kind = RESOURCES[plural]
        with self._lock:
            items = [
                self._shown(s.obj)
                for (p, ns, _), s in sorted(self.objects.items())
                if p == plural and matches(s.obj["metadata"].get("labels") or {}, expression)
            ]
            rv = self.rv
        return JSONResponse(
            {
                "apiVersion": api_version,
                "kind": f"{kind}List",
                "metadata": {"resourceVersion": str(rv)},
                "items": items,
            }
        )

    async def _item(self, request: Request) -> Response:
        refused = self._check(request)
        if refused is not None:
            return refused
        plural, name = request.path_params["plural"], request.path_params["name"]
        key = (plural, self.namespace, name)
        if request.method == "GET":
            with self._lock:
                stored = self.objects.get(key)
                if stored is None:
                    return self._not_found(plural, name)
                return JSONResponse(self._shown(stored.obj, list_item=False))
        if request.method == "DELETE":
            with self._lock:
                if key not in self.objects:
                    return self._not_found(plural, name)
                self._delete(key)
            return JSONResponse({"kind": "Status", "apiVersion": "v1", "status": "Success"})
        if request.method != "PATCH":
            return status(405, "MethodNotAllowed", "funade's client only applies (PATCH)")
        return await self._apply(request, plural, name)

    def _not_found(self, plural: str, name: str) -> JSONResponse:
        group = RESOURCES[plural][0].rpartition("/")[0]
        what = f"{plural}.{group}" if group else plural
        return status(404, "NotFound", f'{what} "{name}" not found', name=name, kind=plural)

    async def _apply(self, request: Request, plural: str, name: str) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type != APPLY:
            return status(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {APPLY} (this stand-in takes server-side apply only)",
            )
        manager = request.query_params.get("fieldManager", "")
        if not manager:
            return status(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is '
                "required for apply patch",
            )
        force = request.query_params.get("force") == "true"
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            return status(400, "BadRequest", f"error decoding YAML: {exc}")
        api_version, kind = RESOURCES[plural]
        metadata = body.get("metadata") if isinstance(body, dict) else None
        if not isinstance(metadata, dict):
            return status(400, "BadRequest", "Object 'metadata' is missing")
        if body.get("apiVersion") != api_version or body.get("kind") != kind:
            return status(
                400,
                "BadRequest",
                f"the API version in the data ({body.get('apiVersion')}) and kind "
                f"({body.get('kind')}) do not match the URL's ({api_version}, {kind})",
            )
        if metadata.get("name") != name:
            return status(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        if metadata.get("namespace", self.namespace) != self.namespace:
            return status(400, "BadRequest", "the namespace of the object does not match the URL's")
        for server_field in SERVER_FIELDS:
            if server_field in metadata and server_field != "resourceVersion":
                return status(422, "Invalid", f"metadata.{server_field}: Forbidden in an apply")
        invalid = invalid_metadata(kind, metadata)
        if invalid:
            return status(422, "Invalid", f'{kind} "{name}" is invalid: {invalid}')
        try:
            kubernetes_validate.validate(body, K8S, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            return status(
                422,
                "Invalid",
                f'{kind}.{api_version.rpartition("/")[0] or "core"} "{name}" is invalid: '
                f"{path}: {exc.message}",
            )
        applied = {k: v for k, v in leaves(body).items() if k not in _IDENTITY}
        with self._lock:
            key = (plural, self.namespace, name)
            stored = self.objects.get(key)
            if stored is None:
                stored = Stored(
                    {
                        "apiVersion": api_version,
                        "kind": kind,
                        "metadata": {
                            "name": name,
                            "namespace": self.namespace,
                            "uid": str(uuid.uuid4()),
                            "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "generation": 0,
                        },
                    }
                )
                created = True
            else:
                created = False
            conflicts = [
                (other, path)
                for other, fields in stored.owned.items()
                if other != manager
                for path, value in fields.items()
                if path in applied and applied[path] != value
            ]
            if conflicts and not force:
                causes = [
                    {
                        "type": "FieldManagerConflict",
                        "message": f'conflict with "{m}"',
                        "field": shown(p),
                    }
                    for m, p in conflicts
                ]
                listed = "\n".join(f'- conflict with "{m}": {shown(p)}' for m, p in conflicts)
                return status(
                    409,
                    "Conflict",
                    f"Apply failed with {len(conflicts)} conflict"
                    f"{'s' if len(conflicts) > 1 else ''}: {listed}",
                    causes=causes,
                    name=name,
                    kind=plural,
                )
            for other, path in conflicts:  # forced: the fields change hands
                stored.owned[other].pop(path, None)
            stored.owned[manager] = applied
            before = copy.deepcopy(stored.obj)
            self._compose(stored)
            if created:
                self.objects[key] = stored
                self._record("ADDED", plural, stored.obj)
            elif stored.obj != before:
                self._record("MODIFIED", plural, stored.obj)
            self._after_change(plural, stored.obj)
            answer = self._shown(stored.obj, list_item=False)
        return JSONResponse(answer, status_code=201 if created else 200)

    async def _watch(self, request: Request, plural: str, expression: str) -> Response:
        try:
            since = int(request.query_params.get("resourceVersion") or self.rv)
            timeout = float(request.query_params.get("timeoutSeconds") or 30)
        except ValueError:
            return status(400, "BadRequest", "resourceVersion and timeoutSeconds are numbers")
        if since < self._compacted:
            gone = {
                "type": "ERROR",
                "object": {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": f"too old resource version: {since} ({self._compacted})",
                    "reason": "Expired",
                    "code": 410,
                },
            }
            return Response(json.dumps(gone) + "\n", media_type="application/json")

        async def stream() -> AsyncIterator[bytes]:
            seen = since
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for line in self._events_after(plural, expression, seen):
                    seen = max(seen, line[0])
                    yield (json.dumps(line[1]) + "\n").encode()
                await asyncio.sleep(0.02)

        return StreamingResponse(stream(), media_type="application/json")

    def _events_after(
        self, plural: str, expression: str, since: int
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        with self._lock:
            events = [e for e in self.events if e.rv > since and e.plural == plural]
        for event in events:
            labels = event.obj["metadata"].get("labels") or {}
            if event.namespace == self.namespace and matches(labels, expression):
                yield event.rv, {"type": event.type, "object": self._shown(event.obj)}

    # The store --------------------------------------------------------------------------

    def _compose(self, stored: Stored) -> None:
        """The object from its managers' fields, with its server-side metadata."""
        obj = stored.obj
        keep = {k: obj["metadata"][k] for k in ("name", "namespace", "uid", "creationTimestamp")}
        keep.update({k: obj["metadata"][k] for k in ("ownerReferences",) if k in obj["metadata"]})
        fresh: dict[str, Any] = {"apiVersion": obj["apiVersion"], "kind": obj["kind"]}
        for fields in stored.owned.values():
            merge(fresh, build(fields))
        fresh.setdefault("metadata", {}).update(keep)
        if "status" in obj:
            fresh["status"] = obj["status"]
        spec_changed = fresh.get("spec") != obj.get("spec")
        generation = int(obj["metadata"].get("generation") or 0) + (1 if spec_changed else 0)
        self.rv += 1
        fresh["metadata"]["generation"] = generation
        fresh["metadata"]["resourceVersion"] = str(self.rv)
        fresh["metadata"]["managedFields"] = [
            {
                "manager": m,
                "operation": "Apply",
                "fieldsType": "FieldsV1",
                "fieldsV1": {f"f:{shown(p)}": {} for p in sorted(f)},
            }
            for m, f in stored.owned.items()
            if f
        ]
        stored.obj = fresh

    def _record(self, type_: str, plural: str, obj: dict[str, Any]) -> None:
        rv = int(obj["metadata"].get("resourceVersion") or self.rv)
        self.events.append(Event(rv, plural, self.namespace, type_, copy.deepcopy(obj)))
        del self.events[: -self.history]

    def _shown(self, obj: dict[str, Any], *, list_item: bool = True) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        if list_item:
            out.pop("apiVersion", None)
            out.pop("kind", None)
        return out

    def _delete(self, key: tuple[str, str, str]) -> None:
        stored = self.objects.pop(key, None)
        if stored is None:
            return
        uid = stored.obj["metadata"].get("uid")
        for other_key, other in list(self.objects.items()):
            refs = other.obj["metadata"].get("ownerReferences") or []
            if any(ref.get("uid") == uid for ref in refs):
                self._delete(other_key)
        self.rv += 1
        gone = copy.deepcopy(stored.obj)
        gone["metadata"]["resourceVersion"] = str(self.rv)
        self._record("DELETED", key[0], gone)
        if key[0] in ("pods", "services"):
            self._sync_endpoints()


_IDENTITY = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}
