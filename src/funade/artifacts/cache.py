"""The node-local read-through cache: blobs by digest on local disk, fetched once, verified.

Layout under the cache directory::

    blobs/<64 hex>          verified copies of blobs
    unpacked/<64 hex>/      package tars extracted once, for model servers to load from
    locks/<64 hex>.lock     one lock file per digest (``fcntl.flock``), never removed

Every entry appears by an atomic rename of a finished, verified temporary, so readers never see
a partial file, and concurrent callers (threads or processes) for one digest fetch it only once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from funade.artifacts.digest import (
    EMPTY_DIGEST,
    digest_hex,
    format_digest,
    parse_digest,
    sha256_file,
)
from funade.errors import ArtifactCorruptError

__all__ = ["ArtifactCache"]


class ArtifactCache:
    """Blobs cached in ``directory``; ``fetch(digest)`` yields a blob's bytes on a miss."""

    def __init__(self, directory: Path, fetch: Callable[[str], Iterable[bytes]]) -> None:
        self._directory = directory
        self._fetch = fetch

    @property
    def directory(self) -> Path:
        return self._directory

    def blob_path(self, digest: str) -> Path:
        """The local path of the blob, fetching and verifying it first if it is not cached."""
        digest = parse_digest(digest)
        path = self._blob(digest)
        if not self._has_blob(digest):
            with self._lock(digest):
                self._ensure_blob(digest)
        return path

    def adopt(self, digest: str, path: Path) -> Path:
        """Move ``path``, a local file already known to hash to ``digest``, into the cache
        (made on this machine, so it need not be fetched again); returns the cached path."""
        digest = parse_digest(digest)
        target = self._blob(digest)
        if self._has_blob(digest):
            path.unlink(missing_ok=True)
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o644)
        os.replace(path, target)
        return target

    def unpacked(self, digest: str) -> Path:
        """The directory the blob (a package tar) is extracted into, extracting it once."""
        digest = parse_digest(digest)
        target = self._directory / "unpacked" / digest_hex(digest)
        if target.is_dir():
            return target
        with self._lock(digest):
            if target.is_dir():
                return target
            self._ensure_blob(digest)
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
            try:
                from funade.artifacts.tarball import unpack  # (imports fsspec)

                unpack(self._blob(digest), staging)
                staging.chmod(0o755)  # mkdtemp makes it private; model servers may run as others
                staging.rename(target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return target

    def contains(self, digest: str) -> bool:
        """Whether the blob is cached (does not fetch, does not rehash)."""
        return self._has_blob(parse_digest(digest))

    def verify(self, digest: str) -> bool:
        """Rehash the cached blob: True if it is present and intact."""
        digest = parse_digest(digest)
        try:
            return sha256_file(self._blob(digest)) == digest
        except FileNotFoundError:
            return False

    def evict(self, digest: str) -> None:
        """Remove the blob and its unpacked directory, if there."""
        digest = parse_digest(digest)
        unpacked = self._directory / "unpacked" / digest_hex(digest)
        with self._lock(digest):
            with contextlib.suppress(FileNotFoundError):
                self._blob(digest).unlink()
            doomed = unpacked.with_name(f".{unpacked.name}.evicted-{uuid.uuid4().hex}")
            with contextlib.suppress(FileNotFoundError):
                unpacked.rename(doomed)  # disappears at once; deleting the tree takes longer
                shutil.rmtree(doomed)

    def size_bytes(self) -> int:
        """Bytes used by the cache on disk (blobs, unpacked trees, unfinished downloads)."""
        total = 0
        for root, _dirs, files in os.walk(self._directory):
            for name in files:
                with contextlib.suppress(FileNotFoundError):
                    total += os.lstat(os.path.join(root, name)).st_size
        return total

    # Internals --------------------------------------------------------------------------------

    def _blob(self, digest: str) -> Path:
        return self._directory / "blobs" / digest_hex(digest)

    def _has_blob(self, digest: str) -> bool:
        try:
            size = self._blob(digest).stat().st_size
        except FileNotFoundError:
            return False
        return size > 0 or digest == EMPTY_DIGEST  # an empty file for a non-empty blob: refetch

    def _ensure_blob(self, digest: str) -> None:
        """Fetch the blob into place unless it is there. Call with the digest's lock held."""
        if self._has_blob(digest):
            return
        path = self._blob(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            hasher = hashlib.sha256()
            with os.fdopen(fd, "wb") as file:
                os.fchmod(file.fileno(), 0o644)  # mkstemp makes it private
                for chunk in self._fetch(digest):
                    file.write(chunk)
                    hasher.update(chunk)
                file.flush()
                os.fsync(file.fileno())
            actual = format_digest(hasher)
            if actual != digest:
                raise ArtifactCorruptError(
                    f"The bytes fetched for {digest} hash to {actual}; the download was damaged "
                    "and nothing was cached.",
                    field="digest",
                    value=digest,
                    fix="Retry; if it happens again the stored copy is damaged: restore it from "
                    "a backup or re-register the model.",
                )
            os.replace(temp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise

    @contextlib.contextmanager
    def _lock(self, digest: str) -> Iterator[None]:
        """Exclusive per-digest lock across threads and processes (each call opens its own fd)."""
        locks = self._directory / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(locks / f"{digest_hex(digest)}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock
