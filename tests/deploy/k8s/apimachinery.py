"""The stand-in API server's machinery (apiserver.py): the kinds it serves, Status answers,
field paths as server-side apply tracks ownership, and label selectors."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse

# plural -> (apiVersion, kind)
RESOURCES: dict[str, tuple[str, str]] = {
    "deployments": ("apps/v1", "Deployment"),
    "services": ("v1", "Service"),
    "secrets": ("v1", "Secret"),
    "pods": ("v1", "Pod"),
    "horizontalpodautoscalers": ("autoscaling/v2", "HorizontalPodAutoscaler"),
    "endpointslices": ("discovery.k8s.io/v1", "EndpointSlice"),
}
PLURAL = {kind: plural for plural, (_, kind) in RESOURCES.items()}
SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields")


@dataclass
class Stored:
    obj: dict[str, Any]
    owned: dict[str, dict[tuple[str, ...], Any]] = field(default_factory=dict)
    """Field manager -> the leaf paths it owns and their values (('spec', 'replicas'): 2)."""


@dataclass
class Event:
    rv: int
    plural: str
    namespace: str
    type: str
    obj: dict[str, Any]


def status(code: int, reason: str, message: str, **details: Any) -> JSONResponse:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=code)


Path = tuple[str, ...]


def leaves(value: Any, prefix: Path = ()) -> dict[Path, Any]:
    """Leaf paths of an applied object as SSA tracks ownership (maps by key, lists atomic)."""
    if isinstance(value, dict) and value:
        out: dict[Path, Any] = {}
        for key, item in value.items():
            out.update(leaves(item, (*prefix, key)))
        return out
    return {prefix: value}


def shown(path: Path) -> str:
    """A path as the API server prints it in a conflict: ``.spec.replicas``."""
    return "".join(f".{part}" for part in path)


def build(paths: dict[Path, Any]) -> dict[str, Any]:
    """An object from leaf paths (the inverse of ``leaves``)."""
    out: dict[str, Any] = {}
    for path, value in paths.items():
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = copy.deepcopy(value)
    return out


def merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def matches(labels: dict[str, str], expression: str) -> bool:
    for term in filter(None, (t.strip() for t in expression.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key.rstrip("=")) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


# The API server's name rules (k8s.io/apimachinery/pkg/util/validation), written out here rather
# than taken from funade's own names.py, so funade's names are checked against the rules, not
# against themselves.
DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


def invalid_metadata(kind: str, metadata: dict[str, Any]) -> str:
    """Why the API server would refuse the object's name or labels; empty: it would not."""
    name = str(metadata.get("name") or "")
    if kind == "Service":  # Services' names are DNS-1035 labels (they become DNS names)
        if not DNS1035.fullmatch(name) or len(name) > 63:
            return (
                f"metadata.name: Invalid value: {name!r}: a DNS-1035 label must consist of lower "
                "case alphanumeric characters or '-', start with an alphabetic character, and "
                "end with an alphanumeric character (at most 63)"
            )
    elif not DNS1123_SUBDOMAIN.fullmatch(name) or len(name) > 253:
        return f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain"
    for key, value in (metadata.get("labels") or {}).items():
        prefix, _, label = str(key).rpartition("/")
        if (
            not LABEL_NAME.fullmatch(label)
            or len(label) > 63
            or (prefix and not DNS1123_SUBDOMAIN.fullmatch(prefix))
        ):
            return f"metadata.labels: Invalid value: {key!r}: a qualified name"
        if not LABEL_VALUE.fullmatch(str(value)) or len(str(value)) > 63:
            return f"metadata.labels: Invalid value: {value!r}: a valid label value (at most 63)"
    return ""
