"""Helpers for the registry tests: read a package directory as the tar reader would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from funade.registry.package import HEAD_BYTES, MANIFEST_NAME, file_digest


def members(directory: Path) -> Iterator[tuple[str, bytes]]:
    """``(path, first 64 KiB)`` per file, the manifest whole, like the server's tar reader."""
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            name = path.relative_to(directory).as_posix()
            data = path.read_bytes()
            yield name, data if name == MANIFEST_NAME else data[:HEAD_BYTES]


def read_manifest_json(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / MANIFEST_NAME).read_text())
    return data


def write_manifest_json(directory: Path, manifest: dict[str, Any]) -> None:
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))


def rewrite_file(directory: Path, name: str, data: bytes) -> None:
    """Replace a file and update the manifest to match: a package that is consistent but bad."""
    (directory / name).write_bytes(data)
    manifest = read_manifest_json(directory)
    manifest["files"][name] = {"size": len(data), "sha256": file_digest(directory / name)}
    write_manifest_json(directory, manifest)
