"""Content-addressed artifact storage: blobs named by sha256 digest over any fsspec filesystem.

- :mod:`~funade.artifacts.digest`: parse and compute ``sha256:<hex>`` digests.
- :mod:`~funade.artifacts.store`: :class:`ArtifactStore`, streaming, verified, deduplicated.
- :mod:`~funade.artifacts.cache`: :class:`ArtifactCache`, the node-local read-through cache.
- :mod:`~funade.artifacts.tarball`: deterministic packing and safe reading of package tars.
"""

from funade.artifacts.cache import ArtifactCache
from funade.artifacts.digest import CHUNK_SIZE, parse_digest, sha256_bytes, sha256_file
from funade.artifacts.store import ArtifactStore, BlobInfo, BlobWriter
from funade.artifacts.tarball import iter_members, pack_directory, unpack

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
