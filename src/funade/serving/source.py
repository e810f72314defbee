"""Where a model server gets its model: a registry reference or a local package.

Registry models come through the node's digest cache: downloaded once, verified by digest
(again, before anything is loaded), unpacked once; every file is checked against the manifest
before the flavor unpickles or loads anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from funade.artifacts import CHUNK_SIZE, ArtifactCache, sha256_file
from funade.errors import InvalidInputError
from funade.names import parse_model_ref
from funade.registry.manifest import MANIFEST_NAME
from funade.registry.package import load_package
from funade.serving.runtime import Loaded
from funade.settings import Settings


def load_source(source: str, settings: Settings, *, name: str | None = None) -> Loaded:
    """Load ``source``: a package directory, a package tar, or 'model[:n|@alias]'."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / MANIFEST_NAME).is_file():
            raise InvalidInputError(
                f"Directory {str(path)!r} is not a model package (it has no {MANIFEST_NAME}).",
                field="source",
                value=source,
                fix="Point at a directory funade.log_model packed, or at a registry model "
                "such as 'churn:3'.",
            )
        return Loaded(model=load_package(path), name=name or path.name, version=None, digest=None)
    if path.is_file():
        digest = sha256_file(path)

        def read_file(_digest: str) -> Iterator[bytes]:
            with path.open("rb") as handle:
                while chunk := handle.read(CHUNK_SIZE):
                    yield chunk

        cache = ArtifactCache(settings.resolved_cache_dir, read_file)
        model = load_package(cache.unpacked(digest))
        return Loaded(model=model, name=name or path.stem, version=None, digest=digest)
    return _load_from_registry(source, settings, name=name)


def pin_source(source: str, settings: Settings) -> str:
    """``source`` with a registry reference pinned to one version ('churn@production' →
    'churn:3'); paths are left as they are."""
    if Path(source).expanduser().exists():
        return source
    from funade.client import Client

    model_name, ref = parse_model_ref(source)
    with Client(settings=settings) as client:
        return f"{model_name}:{client.get_version(model_name, ref).version}"


def _load_from_registry(source: str, settings: Settings, *, name: str | None) -> Loaded:
    from funade.client import Client

    model_name, ref = parse_model_ref(source)
    with Client(settings=settings) as client:
        version = client.get_version(model_name, ref)
        digest = version.artifact.digest
        cache = ArtifactCache(settings.resolved_cache_dir, client.open_artifact)
        cache.blob_path(digest)
        if not cache.verify(digest):
            cache.evict(digest)
            cache.blob_path(digest)
        model = load_package(cache.unpacked(digest))
    model.name, model.version = model_name, version.version
    return Loaded(model=model, name=name or model_name, version=str(version.version), digest=digest)
