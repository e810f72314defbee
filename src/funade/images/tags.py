"""Image names: the tag of a version's image and of the runtime image, the check of a name
given (``--tag``, ``--base``, a cluster's image), and the base image a version gets by default."""

from __future__ import annotations

import hashlib
import re

from funade.errors import InvalidInputError
from funade.names import check_model_name

__all__ = [
    "DEFAULT_PYTHON",
    "IMAGE_REFERENCE",
    "base_for",
    "check_base",
    "check_tag",
    "checked_digest",
    "default_tag",
    "digest_hex",
    "runtime_tag",
]

DEFAULT_PYTHON = "3.11"
"""The Python of the default base image when the version recorded none funade runs on."""
IMAGE_REFERENCE = re.compile(  # as podman and docker take it: [registry[:port]/]path[:tag][@digest]
    r"(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[0-9]{1,5})?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)
_PYTHON = re.compile(r"(3)\.([0-9]{1,2})(?:\.[0-9]+.*)?")


def default_tag(model: str, version: int, digest: str, *, repository: str = "funade") -> str:
    """The tag `funade build` gives the image of one version: ``<repository>/<name>:<version>-
    <first 12 hex of the digest>``, e.g. ``funade/churn:3-1a2b3c4d5e6f``.

    ``<name>`` is the model's name in lowercase with every run of other characters than
    ``a-z0-9`` made one ``-``; when that changed the name (``Churn``, ``churn_v2``), the first 8
    hex of the name's sha256 are appended, so two models never share a repository
    (``funade/churn-4a1c9e0b:3-...``). The same version always gets the same tag; a tag names
    exactly one package. ``repository`` is a registry path such as ``ghcr.io/acme/models``.
    """
    check_model_name(model, field="model")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInputError(
            f"Version {version!r} is not a version number.",
            field="version",
            value=version,
            fix="Pass the version's number, e.g. 3.",
        )
    name = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    if name != model:
        name = f"{name}-{hashlib.sha256(model.encode()).hexdigest()[:8]}"
    tag = f"{repository.rstrip('/')}/{name}:{version}-{digest_hex(digest)[:12]}"
    return check_tag(tag, option="repository")


def runtime_tag(funade_version: str, *, repository: str = "funade") -> str:
    """The tag of the runtime image: ``<repository>/runtime:<funade version>``."""
    return check_tag(f"{repository.rstrip('/')}/runtime:{funade_version}", option="repository")


def check_tag(tag: str, *, option: str = "--tag") -> str:
    """``tag`` if it is an image reference (``[registry/]path[:tag]``), else an error naming
    ``option``."""
    if not isinstance(tag, str) or len(tag) > 255 or not IMAGE_REFERENCE.fullmatch(tag):
        raise InvalidInputError(
            f"{option} {tag!r} is not an image name.",
            field=option,
            value=tag,
            fix="Use lowercase letters, digits, '.', '_', '-' and '/' with an optional "
            "':tag' of letters, digits, '_', '.' and '-', e.g. "
            "registry.example.com/team/churn:3.",
        )
    return tag


def check_base(base: str) -> str:
    """``base`` if it is an image reference ``FROM`` can take, else an error naming --base."""
    return check_tag(base, option="--base")


def base_for(python_version: str | None) -> str:
    """The default base image: ``python:<major.minor>-slim`` of the Python the version was saved
    with when funade runs on it (3.11 or later), else ``python:3.11-slim``."""
    match = _PYTHON.fullmatch(python_version or "")
    if match is None or int(match.group(2)) < 11:
        return f"python:{DEFAULT_PYTHON}-slim"
    return f"python:{match.group(1)}.{match.group(2)}-slim"


def checked_digest(digest: str) -> str:
    from funade.artifacts.digest import parse_digest

    return parse_digest(digest, field="artifact.digest")


def digest_hex(digest: str) -> str:
    return checked_digest(digest).removeprefix("sha256:")
