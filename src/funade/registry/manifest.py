"""``funade.json``: the manifest of a model package — its flavor, signature, and every file's
size and sha256 — and how it is read, by a replica from disk or by the server from a tar.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from funade.registry.signature import Signature

MANIFEST_NAME = "funade.json"
FORMAT_VERSION = 1
REBUILD = "Rebuild the package with funade.log_model (or registry.build_package)."


class FileEntry(BaseModel):
    """One file of a package."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    """The digest of the file's bytes, ``"sha256:<hex>"``."""


class Manifest(BaseModel):
    """``funade.json``: what a package holds and how to load it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = FORMAT_VERSION
    flavor: str
    flavor_metadata: dict[str, Any]
    signature: Signature
    files: dict[str, FileEntry]
    """Path in the package (POSIX, relative) → size and digest; the manifest itself excluded."""
    python_version: str
    requirements: dict[str, str]
    """Distribution → the version the model was saved with."""

    @field_validator("files")
    @classmethod
    def _safe_paths(cls, files: dict[str, FileEntry]) -> dict[str, FileEntry]:
        for name in files:
            if member_path(name) is None or name == MANIFEST_NAME:
                raise ValueError(f"'{name}' is not a plain relative path inside the package")
        return files


class ManifestProblem(Exception):
    """What is wrong with a manifest, as a sentence; callers raise their own error class."""

    def __init__(self, message: str, fix: str = REBUILD) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


def parse_manifest(data: bytes) -> Manifest:
    """The manifest in ``data``: ``ManifestProblem`` if it is not valid JSON of a known format,
    ``UnknownFlavorError`` (before anything else is checked) if it names an unknown flavor."""
    from funade.registry.flavors import get_flavor  # lazy: flavors import this module

    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ManifestProblem(f"{MANIFEST_NAME} is not valid JSON ({exc}).") from None
    version = raw.get("format_version", FORMAT_VERSION) if isinstance(raw, dict) else None
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ManifestProblem(
            f"{MANIFEST_NAME} has format_version {version}; this funade reads {FORMAT_VERSION}.",
            fix="Upgrade funade where the package is read.",
        )
    if isinstance(raw, dict) and isinstance(raw.get("flavor"), str):
        get_flavor(raw["flavor"])
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        detail = f"{where}: {first['msg']}" if where else str(first["msg"])
        raise ManifestProblem(f"{MANIFEST_NAME} is invalid: {detail}.") from None


def member_path(name: str) -> str | None:
    """``name`` as a plain relative POSIX path (a leading ``./`` dropped), or None if it is
    empty, absolute, has ``..``, backslashes or empty parts."""
    clean = name[2:] if name.startswith("./") else name
    path = PurePosixPath(clean)
    if not clean or "\\" in clean or path.is_absolute() or ".." in path.parts:
        return None
    return clean if clean == str(path) else None


def file_digest(path: Path) -> str:
    """``"sha256:<hex>"`` of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def bytes_digest(data: bytes) -> str:
    """``"sha256:<hex>"`` of ``data``."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"
