"""How each step's container runs on KFP: its command (``funade pipeline step`` with KFP's
executor input), its image, environment and resources, and the Kubernetes platform spec of its
executor (its timeout, its secrets as Kubernetes Secrets, a schedule's mounted Secret)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from funade.pipelines.kfpir.ir import number, refuse
from funade.pipelines.kfpir.schedule import ScheduleInputs
from funade.pipelines.spec import NodeSpec

__all__ = ["Containers", "SecretsHook", "resources"]

SecretsHook = Callable[[str, Mapping[str, str]], list[dict[str, str]]]
"""How an engine without Kubernetes Secrets passes a step's secrets (``vertexrefs``): given
where (for errors) and the step's secrets, the container's env entries (references only)."""

_RESOURCE_KEYS = ("cpu", "memory", "cpu_request", "memory_request", "gpu", "accelerator")
_CPU = re.compile(r"([0-9]*[.])?[0-9]+m?$")
_MEMORY = re.compile(r"^[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?$")
_MEMORY_UNITS = {
    "E": 10**18, "Ei": 2**60, "P": 10**15, "Pi": 2**50, "T": 10**12, "Ti": 2**40,
    "G": 10**9, "Gi": 2**30, "M": 10**6, "Mi": 2**20, "K": 10**3, "Ki": 2**10, "": 1,
}  # fmt: skip
_SECRET = re.compile(r"^k8s:([a-z0-9]([-a-z0-9.]*[a-z0-9])?)/([-._a-zA-Z0-9]+)$")


@dataclass(frozen=True)
class Containers:
    """The executors of one compiled pipeline. ``step_env`` and ``step_secrets`` are added to
    every step's (what `funade pipeline submit` adds: the run's ids, its token's secret)."""

    image: str
    target: str
    step_env: Mapping[str, str] = field(default_factory=dict)
    step_secrets: Mapping[str, str] = field(default_factory=dict)
    secrets_hook: SecretsHook | None = None
    schedule: ScheduleInputs = field(default_factory=ScheduleInputs)

    def container(self, node: NodeSpec, where: str) -> dict[str, Any]:
        args = [
            "--executor-input",
            "{{$}}",
            "--pipeline",
            self.target,
            "--step",
            node.id,
            "--function",
            node.function,
            "--code-digest",
            node.code_digest,
        ]
        if node.options.cache_version:
            args += ["--cache-version", node.options.cache_version]
        args += self.schedule.args()
        container: dict[str, Any] = {
            "args": args,
            "command": ["funade", "pipeline", "step"],
            "image": self.image,
        }
        env = [{"name": k, "value": v} for k, v in {**node.options.env, **self.step_env}.items()]
        if self.secrets_hook is not None:  # an engine without Kubernetes Secrets (Vertex)
            env += self.secrets_hook(where, self.secrets(node))
        if env:
            container["env"] = env
        amounts = resources(node.options.resources, where)
        if amounts:
            container["resources"] = amounts
        return container

    def platform(self, node: NodeSpec, where: str) -> dict[str, Any]:
        """The executor's Kubernetes platform config (empty: none)."""
        config: dict[str, Any] = {}
        if node.options.timeout is not None:
            config["activeDeadlineSeconds"] = str(max(1, round(node.options.timeout)))
        by_secret: dict[str, list[dict[str, str]]] = {}
        secrets = self.secrets(node) if self.secrets_hook is None else {}
        for env_name, reference in secrets.items():
            match = _SECRET.match(reference)
            if not match:
                raise refuse(
                    where,
                    f"secret {env_name} = {reference!r} is read from the machine that runs "
                    "the step, which on KFP is a pod with nothing of yours in it.",
                    f"Give it as a Kubernetes Secret, k8s:SECRET_NAME/KEY, in the config of "
                    f"the environment you compile for (steps: {{{node.id}: {{secrets: "
                    f"{{{env_name}: 'k8s:my-secret/{env_name.lower()}'}}}}}}).",
                    value=reference,
                )
            by_secret.setdefault(match.group(1), []).append(
                {"envVar": env_name, "secretKey": match.group(3)}
            )
        if by_secret:
            config["secretAsEnv"] = [
                {
                    "keyToEnv": keys,
                    "optional": False,
                    "secretName": secret,
                    "secretNameParameter": {"runtimeValue": {"constant": secret}},
                }
                for secret, keys in by_secret.items()
            ]
        volumes = self.schedule.volumes()
        if volumes:
            config["secretAsVolume"] = volumes
        return config

    def secrets(self, node: NodeSpec) -> dict[str, str]:
        return {**node.options.secrets, **self.step_secrets}


def resources(given: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A step's ``resources`` as KFP's container resources; refused, naming the step, when an
    amount is not one."""
    unknown = sorted(set(given) - set(_RESOURCE_KEYS))
    if unknown:
        raise refuse(
            where,
            f"resource {unknown[0]!r} has no KFP form.",
            f"Use {', '.join(_RESOURCE_KEYS)}.",
            value=unknown[0],
        )
    out: dict[str, Any] = {}
    for key, field_name in (("cpu", "Limit"), ("cpu_request", "Request")):
        if key in given:
            text = number(given[key])
            if not _CPU.match(text):
                raise refuse(
                    where,
                    f"resource {key} = {given[key]!r} is not a CPU amount.",
                    "Write a number of cores (2, 0.5) or millicores ('500m').",
                    value=given[key],
                )
            out[f"cpu{field_name}"] = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
            out[f"resourceCpu{field_name}"] = text
    for key, field_name in (("memory", "Limit"), ("memory_request", "Request")):
        if key in given:
            text = str(given[key])
            match = _MEMORY.match(text)
            if not match:
                raise refuse(
                    where,
                    f"resource {key} = {given[key]!r} is not a memory amount.",
                    "Write bytes with a unit, e.g. '4Gi' or '512M'.",
                    value=given[key],
                )
            unit = match.group(1) or ""
            out[f"memory{field_name}"] = (
                float(text[: len(text) - len(unit)]) * _MEMORY_UNITS[unit] / 10**9
            )
            out[f"resourceMemory{field_name}"] = text
    if "accelerator" in given and "gpu" not in given:
        raise refuse(
            where,
            f"resource accelerator = {given['accelerator']!r} is given without a count.",
            "Add gpu: 1 (the number of accelerators).",
        )
    if "gpu" in given:
        count = given["gpu"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise refuse(
                where,
                f"resource gpu = {count!r} is not a whole number of accelerators.",
                "Write gpu: 1 (and accelerator: the type, default nvidia.com/gpu).",
                value=count,
            )
        kind = str(given.get("accelerator", "nvidia.com/gpu"))
        out["accelerator"] = {
            "count": str(count),
            "resourceCount": str(count),
            "resourceType": kind,
            "type": kind,
        }
    return out
