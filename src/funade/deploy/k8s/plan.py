"""The Kubernetes backend's reconcile planner: wanted objects and seen objects in, actions out.

Pure: no client, no cluster, no clock. The backend renders what each revision wants (a
Deployment and a Service, and an HPA when it autoscales: plain dicts, as ``render`` makes them),
lists what the namespace holds of those kinds, asks ``plan`` what to do, and does it (server-side
apply for ``create`` and ``apply``, a delete with foreground propagation for ``delete``).

The rules:

- An object is **ours** when its labels hold every owner label (e.g.
  ``app.kubernetes.io/managed-by: funade``, and an installation's own label when one namespace
  holds several). Objects that are not ours are never changed or deleted, and neither are ours
  that another object owns (``metadata.ownerReferences``: the ReplicaSets and Pods of a
  Deployment carry its labels; the garbage collector removes them with it).
- A wanted object that is not seen is **created**; one that is seen is **applied** again when
  what we want changed, which the ``funade.dev/spec-hash`` annotation tells without comparing
  against fields the server fills in (defaults, status, managed fields): every object we send
  carries the hash of the wanted object it was made from. A seen object without the annotation
  (made by hand, or by an older funade) is applied. An unchanged one needs **nothing**.
- Ours, seen and not wanted: **deleted** (a revision that was retired, a deployment that was
  deleted while the control plane was away). One already being deleted needs nothing.
- A wanted name taken by an object that is not ours is a **conflict**: the backend reports it
  and does not take the object over (a force apply would).

Actions come in the order to carry them out: creates and applies first (so a new revision's
objects exist before an old one's go), a revision's Service before its Deployment and its
Deployment before its HPA; deletes last, in the reverse order.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "HASH_ANNOTATION",
    "Action",
    "ObjectKey",
    "Verb",
    "listed",
    "plan",
    "spec_hash",
]

HASH_ANNOTATION = "funade.dev/spec-hash"
"""The annotation holding the hash of the wanted object an applied object was made from."""

KIND_ORDER = (
    "Namespace",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Service",
    "Deployment",
    "HorizontalPodAutoscaler",
)
"""The order creates and applies go in (deletes: the reverse); other kinds come after these."""


class Verb(StrEnum):
    CREATE = "create"
    """Not there yet: apply it (server-side)."""
    APPLY = "apply"
    """There, and what we want changed (or it carries no hash): apply it again."""
    DELETE = "delete"
    """Ours, and no longer wanted."""
    NOTHING = "nothing"
    """There and unchanged, or already being deleted."""
    CONFLICT = "conflict"
    """Wanted, but an object that is not ours has its name: left alone, reported."""


@dataclass(frozen=True, order=True)
class ObjectKey:
    """Which object: its API group (not version: ``apps/v1`` and ``apps/v1beta2`` name the same
    Deployment), kind, namespace and name."""

    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


@dataclass(frozen=True)
class Action:
    verb: Verb
    key: ObjectKey
    reason: str
    body: dict[str, Any] | None = field(default=None, compare=False)
    """For ``create`` and ``apply``: the object to send, with its hash annotation."""


def spec_hash(obj: Mapping[str, Any]) -> str:
    """The hash of a wanted object as rendered (canonical JSON, without the hash annotation
    itself, so the object sent hashes as the object wanted): the same object always hashes the
    same, any change to it changes the hash."""
    body = copy.deepcopy(dict(obj))
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("annotations"), dict):
        metadata["annotations"].pop(HASH_ANNOTATION, None)
        if not metadata["annotations"]:  # stamped or not, a wanted object hashes the same
            del metadata["annotations"]
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def listed(api_version: str, kind: str, items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The items of a list call, each with its ``apiVersion`` and ``kind`` (the API server
    leaves them out of a list's items)."""
    return [{"apiVersion": api_version, "kind": kind, **dict(item)} for item in items]


def plan(
    wanted: Iterable[Mapping[str, Any]],
    seen: Iterable[Mapping[str, Any]],
    *,
    owner: Mapping[str, str],
    namespace: str = "",
) -> list[Action]:
    """What to do to bring the seen objects to the wanted ones; see the module's docstring.
    ``owner``: the labels that make an object ours (every wanted object must carry them);
    ``namespace``: where objects without one live. Raises ValueError for a wanted object that
    is malformed, lacks an owner label or is wanted twice, and for an empty ``owner``."""
    if not owner:
        raise ValueError(
            "owner is empty: every object would count as funade's; give the labels that mark "
            "funade's objects, e.g. {'app.kubernetes.io/managed-by': 'funade'}"
        )
    wants: dict[ObjectKey, dict[str, Any]] = {}
    for obj in wanted:
        key = _key(obj, namespace, "a wanted object")
        missing = {k: v for k, v in owner.items() if _labels(obj).get(k) != v}
        if missing:
            name, value = next(iter(missing.items()))
            raise ValueError(
                f"wanted {key} lacks the owner label {name}={value}: it could never be found "
                "again to be deleted; add the owner labels to its metadata.labels"
            )
        if key in wants:
            raise ValueError(f"{key} is wanted twice; each object must be wanted once")
        wants[key] = dict(obj)
    sees: dict[ObjectKey, Mapping[str, Any]] = {}
    for obj in seen:
        sees[_key(obj, namespace, "a seen object")] = obj

    actions: list[Action] = []
    for key, obj in wants.items():
        digest = spec_hash(obj)
        body = _stamped(obj, digest)
        there = sees.get(key)
        if there is None:
            actions.append(Action(Verb.CREATE, key, "wanted, not there", body))
        elif not _ours(there, owner):
            actions.append(
                Action(
                    Verb.CONFLICT,
                    key,
                    f"{key} exists and is not funade's (it lacks the owner labels); rename the "
                    "deployment, or delete that object if it is a leftover",
                )
            )
        elif _deleting(there):
            # Applying now would race the delete; the next pass creates it once it is gone.
            actions.append(Action(Verb.NOTHING, key, "being deleted; created again after"))
        elif _annotations(there).get(HASH_ANNOTATION) == digest:
            actions.append(Action(Verb.NOTHING, key, "unchanged"))
        elif HASH_ANNOTATION not in _annotations(there):
            actions.append(Action(Verb.APPLY, key, "there without a spec hash", body))
        else:
            actions.append(Action(Verb.APPLY, key, "changed", body))
    for key, there in sees.items():
        if key in wants or not _ours(there, owner) or _owned(there):
            continue  # not ours to delete (another object's, or not funade's at all)
        if _deleting(there):
            actions.append(Action(Verb.NOTHING, key, "already being deleted"))
        else:
            actions.append(Action(Verb.DELETE, key, "funade's, no longer wanted"))
    return sorted(actions, key=_order)


def _order(action: Action) -> tuple[int, int, ObjectKey]:
    rank = KIND_ORDER.index(action.key.kind) if action.key.kind in KIND_ORDER else len(KIND_ORDER)
    if action.verb is Verb.DELETE:
        return (1, -rank, action.key)
    return (0, rank, action.key)


def _key(obj: Mapping[str, Any], namespace: str, what: str) -> ObjectKey:
    metadata = _metadata(obj)
    api_version, kind, name = obj.get("apiVersion"), obj.get("kind"), metadata.get("name")
    if not (isinstance(api_version, str) and api_version):
        raise ValueError(_incomplete(what, "apiVersion", obj))
    if not (isinstance(kind, str) and kind):
        raise ValueError(_incomplete(what, "kind", obj))
    if not (isinstance(name, str) and name):
        raise ValueError(_incomplete(what, "metadata.name", obj))
    group = api_version.rpartition("/")[0]
    return ObjectKey(group, kind, str(metadata.get("namespace") or namespace), name)


def _incomplete(what: str, missing: str, obj: Mapping[str, Any]) -> str:
    return (
        f"{what} has no {missing} ({str(dict(obj))[:200]}); objects need apiVersion, kind and "
        "metadata.name (a list call's items: pass them through listed())"
    )


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    labels = _metadata(obj).get("labels")
    return labels if isinstance(labels, Mapping) else {}  # malformed: no labels, not ours


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    annotations = _metadata(obj).get("annotations")
    return annotations if isinstance(annotations, Mapping) else {}


def _ours(obj: Mapping[str, Any], owner: Mapping[str, str]) -> bool:
    labels = _labels(obj)
    return all(labels.get(k) == v for k, v in owner.items())


def _owned(obj: Mapping[str, Any]) -> bool:
    return bool(_metadata(obj).get("ownerReferences"))


def _deleting(obj: Mapping[str, Any]) -> bool:
    return bool(_metadata(obj).get("deletionTimestamp"))


def _stamped(obj: Mapping[str, Any], digest: str) -> dict[str, Any]:
    body = copy.deepcopy(dict(obj))
    metadata = body.setdefault("metadata", {})
    metadata["annotations"] = {**_annotations(obj), HASH_ANNOTATION: digest}
    return body
