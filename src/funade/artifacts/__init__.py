"""Content-addressed artifact storage: blobs named by sha256 digest over any fsspec filesystem.

- :mod:`~funade.artifacts.digest`: parse and compute ``sha256:<hex>`` digests.
- :mod:`~funade.artifacts.store`: :class:`ArtifactStore`, streaming, verified, deduplicated.
- :mod:`~funade.artifacts.cache`: :class:`ArtifactCache`, the node-local read-through cache.
- :mod:`~funade.artifacts.tarball`: deterministic packing and safe reading of package tars.

Each name is imported on first use (``funade.artifacts.digest`` alone does not import fsspec).
"""

from typing import TYPE_CHECKING, Any

from funade.artifacts.digest import CHUNK_SIZE, parse_digest, sha256_bytes, sha256_file

if TYPE_CHECKING:
    from funade.artifacts.cache import ArtifactCache
    from funade.artifacts.store import ArtifactStore, BlobInfo, BlobWriter
    from funade.artifacts.tarball import iter_members, pack_directory, unpack

_LAZY = {
    "ArtifactCache": "funade.artifacts.cache",
    "ArtifactStore": "funade.artifacts.store",
    "BlobInfo": "funade.artifacts.store",
    "BlobWriter": "funade.artifacts.store",
    "iter_members": "funade.artifacts.tarball",
    "pack_directory": "funade.artifacts.tarball",
    "unpack": "funade.artifacts.tarball",
}

__all__ = [
    "CHUNK_SIZE",
    "ArtifactCache",
    "ArtifactStore",
    "BlobInfo",
    "BlobWriter",
    "iter_members",
    "pack_directory",
    "parse_digest",
    "sha256_bytes",
    "sha256_file",
    "unpack",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
