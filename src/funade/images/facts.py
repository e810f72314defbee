"""What a version's image is made from (``VersionFacts``: a version record as the control plane
answers it, or what the package itself says), each part checked against the shape it must have
before it is written into a Containerfile: the framework versions the model was saved with, the
git commit and remote of its lineage, whether it takes images; ``bad_record`` refuses the rest,
naming it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from funade.errors import InvalidInputError

__all__ = [
    "CONTROL",
    "VERSION_TEXT",
    "VersionFacts",
    "bad_record",
    "git_commit",
    "git_remote",
    "lineage_str",
    "pinned_requirements",
    "takes_images",
]

# A distribution name (PEP 508) and a version as pip writes it (PEP 440, local versions too):
# no spaces, quotes, ';', '@' or newlines, so a line of requirements.txt holds one pin.
DISTRIBUTION = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9])?")
VERSION_TEXT = re.compile(r"[0-9][A-Za-z0-9.+!_-]{0,63}")
_COMMIT = re.compile(r"[0-9a-f]{7,64}")
CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
"""Control characters: a newline in a Containerfile would start an instruction."""


class _Artifact(Protocol):
    @property
    def digest(self) -> str: ...
    @property
    def size(self) -> int: ...


class VersionFacts(Protocol):
    """What an image of a version is made from: a version record as the control plane answers
    it (``funade.api.schemas.VersionOut``), or one read from the package itself
    (``funade.images.ondemand``)."""

    @property
    def project(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def artifact(self) -> _Artifact: ...
    @property
    def flavor(self) -> str: ...
    @property
    def signature(self) -> dict[str, Any]: ...
    @property
    def manifest(self) -> dict[str, Any]: ...
    @property
    def lineage(self) -> dict[str, Any]: ...


def pinned_requirements(version: VersionFacts) -> dict[str, str]:
    """The framework versions the version was saved with (its manifest's ``requirements``:
    distribution → version), checked; funade itself is left out (the image gets the funade
    that builds it). Empty when none were recorded."""
    recorded = version.manifest.get("requirements")
    if recorded is None:
        return {}
    if not isinstance(recorded, Mapping):
        raise bad_record("manifest.requirements", recorded, "is not a mapping")
    pins: dict[str, str] = {}
    for name, pinned in recorded.items():
        where = f"manifest.requirements.{name}"
        if not isinstance(name, str) or not DISTRIBUTION.fullmatch(name):
            raise bad_record(where, name, "is not a distribution name")
        if not isinstance(pinned, str) or not VERSION_TEXT.fullmatch(pinned):
            raise bad_record(where, pinned, "is not a version")
        if name.lower() != "funade":
            pins[name] = pinned
    return dict(sorted(pins.items(), key=lambda item: item[0].lower()))


def takes_images(signature: Mapping[str, Any]) -> bool:
    inputs = signature.get("inputs") if isinstance(signature, Mapping) else None
    return any(isinstance(spec, Mapping) and spec.get("image") is not None for spec in inputs or [])


def lineage_str(lineage: Mapping[str, Any], key: str) -> str | None:
    value = lineage.get(key) if isinstance(lineage, Mapping) else None
    return value if isinstance(value, str) else None


def git_of(lineage: Mapping[str, Any]) -> Mapping[str, Any]:
    git = lineage.get("git") if isinstance(lineage, Mapping) else None
    return git if isinstance(git, Mapping) else {}


def git_commit(lineage: Mapping[str, Any]) -> str | None:
    commit = git_of(lineage).get("commit")
    if commit is None or commit == "":
        return None
    if not isinstance(commit, str) or not _COMMIT.fullmatch(commit):
        raise bad_record("lineage.git.commit", commit, "is not a git commit id")
    return commit


def git_remote(lineage: Mapping[str, Any]) -> str | None:
    remote = git_of(lineage).get("remote_url")
    if not isinstance(remote, str) or not remote or len(remote) > 512 or CONTROL.search(remote):
        return None  # the source label is a courtesy: an odd URL is left out, not an error
    return remote


def bad_record(where: str, value: object, problem: str) -> InvalidInputError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:80] + "..."
    return InvalidInputError(
        f"The version's {where} {shown} {problem}; funade will not write it into a Containerfile.",
        field=where,
        value=value,
        fix="Re-register the model with funade.log_model from a clean environment, or build "
        "the image by hand (docs/containers.md).",
    )
