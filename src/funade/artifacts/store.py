"""The artifact store: immutable blobs named by their sha256 digest, on any fsspec filesystem.

Layout under the store's root (a local directory, ``s3://bucket/prefix``, ``memory://...``)::

    blobs/sha256/<first 2 hex>/<64 hex>    committed blobs, never modified once in place
    uploads/<uuid>                         uploads in flight, moved into blobs/ on commit

Writes stream through a :class:`BlobWriter` (constant memory; a multipart upload on S3) that
hashes as it goes and only moves the bytes under their digest once they are complete and match.
Reads (:meth:`ArtifactStore.open`) hash again, so a blob damaged at rest is reported as
:class:`~funade.errors.ArtifactCorruptError` instead of being served: the stream holds its last
chunk back until the whole blob has been verified, so a reader of a damaged blob never gets all
of its bytes (a download over HTTP ends short, which every client sees as a broken transfer).

An upload cut off by a crash leaves its file under ``uploads/``; :meth:`ArtifactStore.
clean_uploads` removes those not written to for ``ABANDONED_SECONDS`` (the control plane calls
it when it starts, and writers at most once per ``SWEEP_SECONDS``, an hour).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractBufferedFile

from funade.artifacts.digest import CHUNK_SIZE, digest_hex, format_digest, parse_digest
from funade.errors import (
    ArtifactCorruptError,
    DigestMismatchError,
    NotFoundError,
    PayloadTooLargeError,
)

if TYPE_CHECKING:
    from funade.settings import Settings

__all__ = ["ABANDONED_SECONDS", "ArtifactStore", "BlobInfo", "BlobWriter"]

log = logging.getLogger("funade.artifacts")

ABANDONED_SECONDS = 3600.0
"""A partial upload not written to for this long is abandoned (its writer crashed or hung)."""
SWEEP_SECONDS = 3600.0


@dataclass(frozen=True)
class BlobInfo:
    """A committed blob: its digest and its size in bytes."""

    digest: str
    size: int


class ArtifactStore:
    """Content-addressed blobs under ``url``; ``options`` are fsspec storage options."""

    def __init__(
        self,
        url: str,
        options: Mapping[str, Any] | None = None,
        *,
        sweep_seconds: float = SWEEP_SECONDS,
    ) -> None:
        self._url = url
        self.sweep_seconds = sweep_seconds
        """How often writers look for abandoned uploads, at most."""
        self._fs, root = fsspec.core.url_to_fs(url, **dict(options or {}))
        self._root = str(root).rstrip("/")
        self._local = isinstance(self._fs, LocalFileSystem)
        self._swept = time.monotonic()
        self._sweeping = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ArtifactStore:
        """The store ``settings`` point at (``artifacts_url`` and ``artifacts_options``)."""
        return cls(settings.resolved_artifacts_url, settings.artifacts_options)

    @property
    def url(self) -> str:
        return self._url

    def __repr__(self) -> str:  # options may hold secrets: never show them
        return f"ArtifactStore({self._url!r})"

    # Reading -------------------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        path = self._blob_path(parse_digest(digest))
        self._fs.invalidate_cache(path)
        return bool(self._fs.exists(path))

    def size(self, digest: str) -> int:
        digest = parse_digest(digest)
        path = self._blob_path(digest)
        self._fs.invalidate_cache(path)
        try:
            return int(self._fs.info(path)["size"])
        except FileNotFoundError:
            raise self._not_found(digest) from None

    def open(
        self, digest: str, *, size: int | None = None, chunk_size: int = CHUNK_SIZE
    ) -> Iterator[bytes]:
        """Stream the blob in chunks; raise ``ArtifactCorruptError`` if it is damaged, before
        the last chunk is given (so a damaged blob is never read whole). With ``size`` (the
        size recorded for it), a blob that turns out longer fails as soon as it passes that.

        ``NotFoundError`` is raised by this call, before any iteration, if the blob is absent.
        """
        digest = parse_digest(digest)
        if not self.exists(digest):
            raise self._not_found(digest)
        return self._stream(digest, chunk_size, size)

    def read_bytes(self, digest: str) -> bytes:
        """The whole blob, verified. For small blobs; use :meth:`open` for large ones."""
        return b"".join(self.open(digest))

    def _stream(self, digest: str, chunk_size: int, size: int | None) -> Iterator[bytes]:
        hasher = hashlib.sha256()
        try:
            file = self._fs.open(self._blob_path(digest), "rb")
        except FileNotFoundError:  # deleted between the check in open() and now
            raise self._not_found(digest) from None
        held = b""  # the chunk read last, given only once the next is read (or all verified)
        read = 0
        with file:
            while chunk := file.read(chunk_size):
                read += len(chunk)
                if size is not None and read > size:
                    raise self._corrupt(digest, f"it has more than the {size} bytes recorded")
                hasher.update(chunk)
                if held:
                    yield held
                held = chunk
        actual = format_digest(hasher)
        if actual != digest:
            raise self._corrupt(digest, f"its bytes hash to {actual}")
        if held:
            yield held

    def _corrupt(self, digest: str, why: str) -> ArtifactCorruptError:
        return ArtifactCorruptError(
            f"Stored blob {digest} is damaged: {why}. "
            f"The copy in the artifact store at {self._url} no longer matches its digest.",
            field="digest",
            value=digest,
            fix="Restore it from a backup or re-register the model.",
        )

    # Writing -------------------------------------------------------------------------------

    def writer(
        self, *, expected_digest: str | None = None, max_bytes: int | None = None
    ) -> BlobWriter:
        """A writer for one new blob. Nothing touches storage until the first write/commit."""
        expected = None if expected_digest is None else parse_digest(expected_digest)
        return BlobWriter(self, expected_digest=expected, max_bytes=max_bytes)

    def put_file(self, path: Path, *, expected_digest: str | None = None) -> BlobInfo:
        with self.writer(expected_digest=expected_digest) as writer, path.open("rb") as file:
            while chunk := file.read(CHUNK_SIZE):
                writer.write(chunk)
            return writer.commit()

    def put_bytes(self, data: bytes) -> BlobInfo:
        with self.writer() as writer:
            writer.write(data)
            return writer.commit()

    def clean_uploads(self, older_than: float = ABANDONED_SECONDS) -> int:
        """Remove partial uploads not written to for ``older_than`` seconds (left by a crash);
        return how many. An upload in flight writes all the time, so it is never one of them.
        (On S3 an unfinished multipart upload is not an object: a bucket lifecycle rule
        removes those.)"""
        self._swept = time.monotonic()
        base = f"{self._root}/uploads"
        self._fs.invalidate_cache(base)
        try:
            entries = self._fs.ls(base, detail=True)
        except FileNotFoundError:
            return 0
        cutoff = time.time() - older_than
        removed = 0
        for entry in entries:
            modified = _modified(entry)
            if entry.get("type") != "file" or modified is None or modified > cutoff:
                continue
            with contextlib.suppress(FileNotFoundError):
                self._fs.rm_file(entry["name"])
                removed += 1
        if removed:
            self._fs.invalidate_cache(base)
            log.warning("removed %d abandoned partial upload(s) from %s", removed, self._url)
        return removed

    def _sweep_now_and_then(self) -> None:
        """``clean_uploads`` at most once per ``SWEEP_SECONDS`` (writers call it); a failure
        is logged, never raised (the upload goes on)."""
        if time.monotonic() - self._swept < self.sweep_seconds:
            return
        if not self._sweeping.acquire(blocking=False):
            return
        try:
            self.clean_uploads()
        except Exception as exc:
            log.warning("abandoned uploads not cleaned from %s: %s", self._url, exc)
        finally:
            self._sweeping.release()

    def delete(self, digest: str) -> None:
        """Remove the blob; no error if it is not there."""
        path = self._blob_path(parse_digest(digest))
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm_file(path)
        self._fs.invalidate_cache(path)

    # Internals shared with BlobWriter --------------------------------------------------------

    def _blob_path(self, digest: str) -> str:
        hex_ = digest_hex(digest)
        return f"{self._root}/blobs/sha256/{hex_[:2]}/{hex_}"

    def _stored_size(self, digest: str) -> int | None:
        try:
            return self.size(digest)
        except NotFoundError:
            return None

    def _new_upload_path(self) -> str:
        return f"{self._root}/uploads/{uuid.uuid4().hex}"

    def _not_found(self, digest: str) -> NotFoundError:
        return NotFoundError(
            f"Artifact {digest} does not exist in the artifact store at {self._url}.",
            field="digest",
            value=digest,
            fix="Check the digest; upload the artifact first if it was never stored.",
        )


class BlobWriter:
    """One upload: ``write`` chunks, then ``commit``; or ``abort`` (also a context manager).

    Bytes stream to ``uploads/<uuid>`` while being hashed, so memory stays constant whatever the
    size. Writers are independent: any number may upload the same content concurrently.
    """

    def __init__(
        self, store: ArtifactStore, *, expected_digest: str | None, max_bytes: int | None
    ) -> None:
        self._store = store
        self._expected = expected_digest
        self._max_bytes = max_bytes
        self._hasher = hashlib.sha256()
        self._written = 0
        self._upload_path = store._new_upload_path()
        self._sink: Any = None  # opened on first use: creating a writer has no side effects
        self._state = "open"
        self._info: BlobInfo | None = None

    @property
    def bytes_written(self) -> int:
        return self._written

    def write(self, chunk: bytes) -> None:
        self._check_open("write")
        if self._max_bytes is not None and self._written + len(chunk) > self._max_bytes:
            self.abort()
            raise PayloadTooLargeError(
                f"The artifact is larger than the limit of {self._max_bytes} bytes.",
                field="max_artifact_bytes",
                value=self._max_bytes,
                fix="Upload a smaller artifact, or raise the server's limit "
                "(setting `max_artifact_bytes`, env FUNADE_MAX_ARTIFACT_BYTES).",
            )
        self._open_sink().write(chunk)
        self._hasher.update(chunk)
        self._written += len(chunk)

    def commit(self) -> BlobInfo:
        """Put the bytes in place under their digest (idempotent) and describe the blob."""
        if self._info is not None:
            return self._info
        self._check_open("commit")
        info = BlobInfo(digest=format_digest(self._hasher), size=self._written)
        if self._expected is not None and info.digest != self._expected:
            self.abort()
            raise DigestMismatchError(
                f"The uploaded bytes hash to {info.digest}, not to the announced digest "
                f"{self._expected} ({info.size} bytes received).",
                field="digest",
                value=self._expected,
                fix="Re-send the file; it may have been truncated or changed in transit.",
            )
        if self._store._stored_size(info.digest) == info.size:
            self.abort()  # the same content is already stored: nothing to move
        else:  # absent, or a truncated copy that these bytes repair
            self._move_into_place(info.digest)
        self._state = "committed"
        self._info = info
        return info

    def abort(self) -> None:
        """Drop the partial upload. Safe to call any number of times."""
        if self._state != "open":
            return
        self._state = "aborted"
        fs = self._store._fs
        if self._sink is not None:
            if isinstance(self._sink, AbstractBufferedFile):
                # Abandon an unfinished remote upload (on S3: abort the multipart upload)
                # rather than completing it; marked closed, fsspec will not finish it later.
                self._sink.discard()
                self._sink.closed = True
            else:
                self._sink.close()
            self._sink = None
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(self._upload_path)
        fs.invalidate_cache(self._upload_path)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._state == "open":
            self.abort()

    def _check_open(self, action: str) -> None:
        if self._state != "open":
            raise ValueError(f"Cannot {action}: this BlobWriter was already {self._state}.")

    def _open_sink(self) -> Any:
        if self._sink is None:
            self._store._sweep_now_and_then()
            if self._store._local:
                os.makedirs(os.path.dirname(self._upload_path), exist_ok=True)
                self._sink = open(self._upload_path, "wb")  # noqa: SIM115 - closed in commit/abort
            else:
                self._sink = self._store._fs.open(self._upload_path, "wb")
        return self._sink

    def _move_into_place(self, digest: str) -> None:
        final = self._store._blob_path(digest)
        sink, self._sink = self._open_sink(), None  # opens one for an empty blob
        if self._store._local:
            sink.flush()
            os.fsync(sink.fileno())
            sink.close()
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.replace(self._upload_path, final)  # atomic; a racing identical upload is harmless
        else:
            fs = self._store._fs
            sink.close()  # completes the (multipart) upload
            fs.mv(self._upload_path, final)
            fs.invalidate_cache(final)


def _modified(entry: Mapping[str, Any]) -> float | None:
    """An ``ls`` entry's last change as a Unix time (local ``mtime``, S3 ``LastModified``,
    memory ``created``), or None if the filesystem does not say."""
    for key in ("mtime", "LastModified", "last_modified", "created"):
        value = entry.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
    return None
