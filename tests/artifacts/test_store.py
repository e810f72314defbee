"""ArtifactStore behaviour, run against a local directory, fsspec memory and S3 (moto)."""

from __future__ import annotations

import hashlib
import os
import resource
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from funade.artifacts import CHUNK_SIZE, ArtifactStore, BlobInfo, sha256_bytes
from funade.errors import (
    ArtifactCorruptError,
    DigestMismatchError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
)
from funade.settings import Settings

from .conftest import StoreCase

DATA = b"model weights " * 1000
MISSING = "sha256:" + "0" * 64


def test_put_bytes_round_trip(store_case: StoreCase) -> None:
    store = store_case.store
    info = store.put_bytes(DATA)
    assert info == BlobInfo(digest=sha256_bytes(DATA), size=len(DATA))
    assert store.exists(info.digest)
    assert store.size(info.digest) == len(DATA)
    assert store.read_bytes(info.digest) == DATA
    assert store_case.files("blobs") == [store_case.blob_path(info.digest)]
    assert store_case.files("uploads") == []


def test_writer_streams_chunks_and_open_yields_chunks(store: ArtifactStore) -> None:
    with store.writer() as writer:
        for start in range(0, len(DATA), 1000):
            writer.write(DATA[start : start + 1000])
        assert writer.bytes_written == len(DATA)
        info = writer.commit()
    chunks = list(store.open(info.digest, chunk_size=4096))
    assert b"".join(chunks) == DATA
    assert max(len(chunk) for chunk in chunks) <= 4096


def test_empty_blob(store: ArtifactStore) -> None:
    info = store.writer().commit()
    assert info == BlobInfo(digest=sha256_bytes(b""), size=0)
    assert store.exists(info.digest)
    assert store.read_bytes(info.digest) == b""


def test_put_file_with_expected_digest(store: ArtifactStore, tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(DATA)
    info = store.put_file(path, expected_digest=sha256_bytes(DATA).upper())
    assert info.digest == sha256_bytes(DATA)
    assert store.read_bytes(info.digest) == DATA


def test_identical_content_is_stored_once(store_case: StoreCase) -> None:
    first = store_case.store.put_bytes(DATA)
    second = store_case.store.put_bytes(DATA)
    assert first == second
    assert store_case.files("blobs") == [store_case.blob_path(first.digest)]
    assert store_case.files("uploads") == []


def test_expected_digest_mismatch_leaves_nothing_behind(store_case: StoreCase) -> None:
    wrong = sha256_bytes(b"something else")
    writer = store_case.store.writer(expected_digest=wrong)
    writer.write(DATA)
    with pytest.raises(DigestMismatchError) as caught:
        writer.commit()
    error = caught.value
    assert error.field == "digest"
    assert error.value == wrong
    assert wrong in error.message
    assert sha256_bytes(DATA) in error.message
    assert str(error).endswith(
        "Re-send the file; it may have been truncated or changed in transit."
    )
    assert store_case.files() == []
    with pytest.raises(ValueError, match="already aborted"):
        writer.commit()


def test_writer_rejects_a_malformed_expected_digest_before_any_io(store_case: StoreCase) -> None:
    with pytest.raises(InvalidInputError, match=r"'sha256:abc' is not a digest"):
        store_case.store.writer(expected_digest="sha256:abc")
    assert store_case.files() == []


def test_max_bytes_exceeded_aborts_and_names_the_limit(store_case: StoreCase) -> None:
    writer = store_case.store.writer(max_bytes=1500)
    writer.write(b"x" * 1000)
    with pytest.raises(PayloadTooLargeError) as caught:
        writer.write(b"x" * 1000)
    assert caught.value.message == "The artifact is larger than the limit of 1500 bytes."
    assert caught.value.value == 1500
    assert "max_artifact_bytes" in str(caught.value)
    assert store_case.files() == []
    with pytest.raises(ValueError, match="already aborted"):
        writer.write(b"x")


def test_max_bytes_is_inclusive(store: ArtifactStore) -> None:
    with store.writer(max_bytes=len(DATA)) as writer:
        writer.write(DATA)
        assert writer.commit().size == len(DATA)


def test_writer_context_aborts_without_commit_or_on_error(store_case: StoreCase) -> None:
    with store_case.store.writer() as writer:
        writer.write(DATA)

    def fail_midway() -> None:
        with store_case.store.writer() as writer:
            writer.write(DATA)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_midway()
    assert store_case.files() == []
    assert not store_case.store.exists(sha256_bytes(DATA))


def test_abort_is_idempotent_and_commit_is_repeatable(store_case: StoreCase) -> None:
    writer = store_case.store.writer()
    writer.write(DATA)
    writer.abort()
    writer.abort()
    other = store_case.store.writer()
    other.write(DATA)
    assert other.commit() == other.commit()
    other.abort()  # after a commit: nothing to undo
    assert store_case.store.read_bytes(sha256_bytes(DATA)) == DATA


def test_a_damaged_blob_is_reported_when_read(store_case: StoreCase) -> None:
    info = store_case.store.put_bytes(DATA)
    path = store_case.blob_path(info.digest)
    damaged = bytearray(store_case.fs.cat_file(path))
    damaged[len(damaged) // 2] ^= 0x01
    store_case.fs.pipe_file(path, bytes(damaged))
    with pytest.raises(ArtifactCorruptError) as caught:
        for _chunk in store_case.store.open(info.digest):
            pass
    error = caught.value
    assert info.digest in error.message
    assert sha256_bytes(bytes(damaged)) in error.message
    assert "damaged" in error.message
    assert "restore it from a backup or re-register the model" in str(error).lower()
    with pytest.raises(ArtifactCorruptError):
        store_case.store.read_bytes(info.digest)


def test_missing_blobs_raise_not_found_naming_the_digest(store: ArtifactStore) -> None:
    assert not store.exists(MISSING)
    with pytest.raises(NotFoundError, match=f"Artifact {MISSING} does not exist"):
        store.open(MISSING)  # raised by the call itself, before iterating
    with pytest.raises(NotFoundError, match=MISSING) as caught:
        store.size(MISSING)
    assert caught.value.field == "digest"
    with pytest.raises(NotFoundError, match=MISSING):
        store.read_bytes(MISSING)


def test_delete_removes_and_tolerates_absent_blobs(store_case: StoreCase) -> None:
    info = store_case.store.put_bytes(DATA)
    store_case.store.delete(info.digest)
    assert not store_case.store.exists(info.digest)
    assert store_case.files("blobs") == []
    store_case.store.delete(info.digest)
    store_case.store.delete(MISSING)


def test_a_second_store_on_the_same_url_sees_writes_and_deletes(store_case: StoreCase) -> None:
    first = store_case.store
    second = ArtifactStore(first.url, store_case.options)
    assert not second.exists(sha256_bytes(DATA))
    info = first.put_bytes(DATA)
    assert second.exists(info.digest)
    first.delete(info.digest)
    assert not second.exists(info.digest)


def test_digests_are_validated_on_every_entry_point(store: ArtifactStore) -> None:
    for call in (store.exists, store.size, store.open, store.delete, store.read_bytes):
        with pytest.raises(InvalidInputError, match="is not a digest"):
            call("../../etc/passwd")


def test_concurrent_writers_of_the_same_content_all_succeed(store_case: StoreCase) -> None:
    barrier = threading.Barrier(8)
    results: list[BlobInfo] = []
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            with store_case.store.writer() as writer:
                barrier.wait(timeout=30)
                for start in range(0, len(DATA), 997):
                    writer.write(DATA[start : start + 997])
                results.append(writer.commit())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=upload) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert results == [BlobInfo(sha256_bytes(DATA), len(DATA))] * 8
    assert store_case.files("blobs") == [store_case.blob_path(results[0].digest)]
    assert store_case.files("uploads") == []
    assert store_case.store.read_bytes(results[0].digest) == DATA


def test_creating_a_store_and_a_writer_touches_nothing(tmp_path: Path) -> None:
    root = tmp_path / "not-yet"
    store = ArtifactStore(str(root))
    store.writer(expected_digest=sha256_bytes(DATA), max_bytes=10)
    assert not store.exists(sha256_bytes(DATA))
    assert not root.exists()
    assert store.url == str(root)
    assert repr(store) == f"ArtifactStore({str(root)!r})"


def test_file_urls_and_atomic_local_layout(tmp_path: Path) -> None:
    store = ArtifactStore(f"file://{tmp_path}/store")
    info = store.put_bytes(DATA)
    hex_ = info.digest.removeprefix("sha256:")
    assert (tmp_path / "store" / "blobs" / "sha256" / hex_[:2] / hex_).read_bytes() == DATA
    assert list((tmp_path / "store" / "uploads").iterdir()) == []


def test_from_settings_uses_the_configured_url_and_options(tmp_path: Path) -> None:
    default = ArtifactStore.from_settings(Settings(home=tmp_path))
    assert default.url == str(tmp_path / "artifacts")
    explicit = ArtifactStore.from_settings(
        Settings(home=tmp_path, artifacts_url="memory://funade-settings", artifacts_options={})
    )
    assert explicit.url == "memory://funade-settings"


@pytest.mark.slow
def test_large_blobs_stream_in_constant_memory(local_store: ArtifactStore) -> None:
    chunk = os.urandom(CHUNK_SIZE)
    count = 200
    expected = hashlib.sha256()
    for _ in range(count):
        expected.update(chunk)
    started = time.monotonic()
    max_rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    try:
        with local_store.writer() as writer:
            for _ in range(count):
                writer.write(chunk)
            info = writer.commit()
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read = 0
        for piece in local_store.open(info.digest):
            read += len(piece)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info == BlobInfo("sha256:" + expected.hexdigest(), count * CHUNK_SIZE)
    assert read == count * CHUNK_SIZE
    # 200 MiB went through each way; Python-side memory stayed within a few chunks ...
    assert write_peak < 8 * CHUNK_SIZE, write_peak
    assert read_peak < 8 * CHUNK_SIZE, read_peak
    # ... and so did the process's peak (it can only under-report, never flake upwards).
    max_rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - max_rss_before
    assert max_rss_growth * 1024 < 32 * CHUNK_SIZE, max_rss_growth
    assert time.monotonic() - started < 30


def test_uploading_again_repairs_a_truncated_copy(store_case: StoreCase) -> None:
    info = store_case.store.put_bytes(DATA)
    store_case.fs.pipe_file(store_case.blob_path(info.digest), DATA[:100])
    assert store_case.store.put_bytes(DATA) == info
    assert store_case.store.read_bytes(info.digest) == DATA
