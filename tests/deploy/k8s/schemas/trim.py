"""Writes the JSON schemas in this directory from the CRDs KServe, Knative and Istio publish
(their ``openAPIV3Schema``), trimmed to the fields `funade manifests` writes. Not run by the
tests; run it again when a CRD or the renderer changes:

    git clone --depth 1 https://github.com/kserve/kserve      # and knative/serving, istio/api
    python tests/deploy/k8s/schemas/trim.py kserve/config/crd/full/serving.kserve.io_\\
    inferenceservices.yaml knative-serving/config/core/300-resources/service.yaml \\
    istio-api/kubernetes/customresourcedefinitions.gen.yaml --kserve-commit ... (see --help)

Trimmed, never loosened: a kept field keeps its whole published schema (types, enums, formats,
patterns, required lists); a dropped field is refused, because every object without
``additionalProperties`` or ``x-kubernetes-preserve-unknown-fields`` is closed
(``additionalProperties: false``), which is what the API server does to an unknown field under
``kubectl apply --validate=strict``; ``apiVersion`` and ``kind`` are pinned to the CRD's. The
CEL rules (``x-kubernetes-validations``) cannot be checked by a JSON schema validator and are
kept as they are, unread.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent

# What each schema keeps: a field name → True (its whole published schema) or a dict (the
# fields kept inside it; an array's items are entered without naming them).
CONTAINER: dict[str, Any] = dict.fromkeys(
    [
        "name",
        "image",
        "args",
        "ports",
        "env",
        "resources",
        "readinessProbe",
        "livenessProbe",
        "startupProbe",
        "securityContext",
        "volumeMounts",
    ],
    True,
)
VOLUME: dict[str, Any] = dict.fromkeys(
    ["name", "emptyDir", "hostPath", "persistentVolumeClaim"], True
)
POD: dict[str, Any] = {
    "containers": CONTAINER,
    "automountServiceAccountToken": True,
    "imagePullSecrets": True,
    "nodeSelector": True,
    "tolerations": True,
    "securityContext": True,
    "volumes": VOLUME,
}
KEEP: dict[str, dict[str, Any]] = {
    "inferenceservice": {
        "spec": {
            "predictor": {
                "minReplicas": True,
                "maxReplicas": True,
                "scaleMetric": True,
                "scaleTarget": True,
                "canaryTrafficPercent": True,
                "terminationGracePeriodSeconds": True,
                **POD,
            }
        },
    },
    "knative-service": {
        "spec": {
            "template": {"metadata": True, "spec": {**POD, "securityContext": False}},
            "traffic": True,
        },
    },
    "virtualservice": {
        "spec": {"hosts": True, "gateways": True, "http": {"name": True, "route": True}},
    },
}
SOURCES = {
    "inferenceservice": ("inferenceservices.serving.kserve.io", "v1beta1", "InferenceService"),
    "knative-service": ("services.serving.knative.dev", "v1", "Service"),
    "virtualservice": ("virtualservices.networking.istio.io", "v1", "VirtualService"),
}


def trim(schema: dict[str, Any], keep: dict[str, Any] | bool, where: str) -> dict[str, Any]:
    """``schema`` with only the fields ``keep`` names, every object closed."""
    if schema.get("type") == "array":
        return {**schema, "items": trim(schema["items"], keep, f"{where}[]")}
    out = dict(schema)
    properties = schema.get("properties")
    if properties is not None:
        if keep is True:
            chosen = {name: trim(sub, True, f"{where}.{name}") for name, sub in properties.items()}
        else:
            assert isinstance(keep, dict)
            chosen = {}
            for name, inner in keep.items():
                if inner is False:
                    continue
                if name not in properties:
                    raise SystemExit(f"{where}.{name} is not in the published schema")
                chosen[name] = trim(properties[name], inner, f"{where}.{name}")
            for name in schema.get("required", []):
                if name not in chosen:
                    raise SystemExit(f"{where}.{name} is required: keep it")
        out["properties"] = chosen
        if "additionalProperties" not in schema and not schema.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    elif isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = trim(schema["additionalProperties"], True, f"{where}.*")
    return out


def crd_schema(path: Path, crd: str, version: str) -> dict[str, Any]:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("metadata", {}).get("name") == crd:
            for entry in doc["spec"]["versions"]:
                if entry["name"] == version:
                    schema: dict[str, Any] = entry["schema"]["openAPIV3Schema"]
                    group = doc["spec"]["group"]
                    return {**schema, "x-group-version": f"{group}/{version}"}
    raise SystemExit(f"{path} holds no CRD {crd} version {version}")


def write(name: str, crd_path: Path, origin: str) -> None:
    crd, version, kind = SOURCES[name]
    schema = crd_schema(crd_path, crd, version)
    group_version = schema.pop("x-group-version")
    # Istio's schemas hold spec and status only: the API server checks metadata itself.
    metadata = schema.get("properties", {}).get("metadata", {"type": "object"})
    trimmed = trim(schema, KEEP[name], kind)
    trimmed["properties"] = {
        "apiVersion": {"type": "string", "const": group_version},
        "kind": {"type": "string", "const": kind},
        "metadata": metadata,
        **trimmed["properties"],
    }
    trimmed["required"] = ["apiVersion", "kind", "metadata", "spec"]
    document = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": f"{kind} ({group_version}), trimmed to what funade manifests writes",
        "description": f"From {origin}: the CRD {crd}, version {version}, openAPIV3Schema. "
        "Written by tests/deploy/k8s/schemas/trim.py: unused fields dropped, every object "
        "closed (additionalProperties: false), apiVersion and kind pinned; nothing loosened.",
        **{key: value for key, value in trimmed.items() if key != "description"},
    }
    (HERE / f"{name}.json").write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kserve", type=Path, help="serving.kserve.io_inferenceservices.yaml")
    parser.add_argument("knative", type=Path, help="config/core/300-resources/service.yaml")
    parser.add_argument("istio", type=Path, help="kubernetes/customresourcedefinitions.gen.yaml")
    parser.add_argument("--kserve-origin", required=True, help="repository, path and commit")
    parser.add_argument("--knative-origin", required=True)
    parser.add_argument("--istio-origin", required=True)
    args = parser.parse_args()
    write("inferenceservice", args.kserve, args.kserve_origin)
    write("knative-service", args.knative, args.knative_origin)
    write("virtualservice", args.istio, args.istio_origin)


if __name__ == "__main__":
    main()
