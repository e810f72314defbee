"""The shapes of KFP's v2 IR that the compiler writes: its version strings, its parameter types,
its names (tasks, channels), the groups a DAG is made of (``dsl.If``, ``dsl.ParallelFor``), and
the error for what it cannot express."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from funade.errors import InvalidInputError
from funade.pipelines.spec import Condition

__all__ = [
    "ARTIFACT",
    "HEADER_TYPES",
    "SCHEMA_VERSION",
    "SDK_VERSION",
    "Channel",
    "Group",
    "KfpCompileError",
    "element_type",
    "kfp_name",
    "literal_type",
    "number",
    "parameter_type",
    "refuse",
]

SCHEMA_VERSION = "2.1.0"
SDK_VERSION = "funade-0.1.0"
ARTIFACT = {"artifactType": {"schemaTitle": "system.Artifact", "schemaVersion": "0.0.1"}}
_PARAMETER_TYPES = {
    "int": "NUMBER_INTEGER",
    "float": "NUMBER_DOUBLE",
    "str": "STRING",
    "bool": "BOOLEAN",
    "list": "LIST",
    "dict": "STRUCT",
}
HEADER_TYPES = {v: k for k, v in _PARAMETER_TYPES.items()}
"""The Python type a parameter type is written as in the YAML's header."""


class KfpCompileError(InvalidInputError):
    """A part of the pipeline that KFP cannot express; the message names the step and why."""


def refuse(where: str, reason: str, fix: str, *, value: Any = None) -> KfpCompileError:
    return KfpCompileError(f"{where}: {reason}", value=value, fix=fix)


def kfp_name(text: str) -> str:
    """A task or component name as KFP writes it: lower case, dashes."""
    return re.sub("-+", "-", re.sub("[^-0-9a-z]+", "-", text.lower())).lstrip("-").rstrip("-")


def parameter_type(text: str) -> str | None:
    """The KFP parameter type of a declared type's text (``list[float]`` → LIST), or None for
    an artifact."""
    return _PARAMETER_TYPES.get(text.split("[", 1)[0].strip())


def literal_type(value: Any) -> str | None:
    for kind, name in ((bool, "BOOLEAN"), (int, "NUMBER_INTEGER"), (float, "NUMBER_DOUBLE")):
        if isinstance(value, kind):
            return name
    if isinstance(value, str):
        return "STRING"
    if isinstance(value, list):
        return "LIST"
    if isinstance(value, dict):
        return "STRUCT"
    return None


def element_type(text: str | None) -> str:
    """The KFP type of the elements of ``list[X]`` (STRING, as KFP's loop items, if unknown)."""
    if text and "[" in text:
        inner = text.split("[", 1)[1].rsplit("]", 1)[0]
        return parameter_type(inner) or "STRING"
    return "STRING"


def number(value: float | int | str) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# A channel is what KFP calls a pipeline channel: a value a task reads from elsewhere.
# ("param", name) | ("output", node, output) | ("collect", node, output) | ("item", group)
Channel = tuple[str, ...]


@dataclass
class Group:
    name: str
    kind: str  # "root" | "condition" | "loop"
    parent: Group | None
    condition: Condition | None = None
    node: str = ""  # the fanned-out node, for a loop
    item: str = ""  # a loop over a literal list: the name of its item input
    children: list[Group] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # inputDefinitions
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # a loop's collected
    selectors: dict[str, Any] = field(default_factory=dict)  # dag.outputs
    task: dict[str, Any] = field(default_factory=dict)  # this group's task in its parent

    def ancestors(self) -> list[Group]:
        out, group = [], self.parent
        while group is not None:
            out.append(group)
            group = group.parent
        return out
