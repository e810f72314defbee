from __future__ import annotations

import io
import multiprocessing
import os
import tarfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from funade.artifacts import ArtifactCache, ArtifactStore, pack_directory, sha256_bytes
from funade.errors import ArtifactCorruptError, InvalidArtifactError, InvalidInputError

DATA = os.urandom(3 * 1024 * 1024 + 17)


class CountingFetch:
    """A real fetch (``store.open``) that counts its calls."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, digest: str) -> Iterator[bytes]:
        with self._lock:
            self.calls.append(digest)
        return self.store.open(digest)


@pytest.fixture
def fetch(local_store: ArtifactStore) -> CountingFetch:
    return CountingFetch(local_store)


@pytest.fixture
def cache(tmp_path: Path, fetch: CountingFetch) -> ArtifactCache:
    return ArtifactCache(tmp_path / "cache", fetch)


def _leftovers(directory: Path) -> list[str]:
    """Everything in the cache except lock files."""
    return sorted(
        str(path.relative_to(directory))
        for path in directory.rglob("*")
        if path.parent.name != "locks" and path.name != "locks"
    )


def test_read_through_fetches_once(cache: ArtifactCache, fetch: CountingFetch) -> None:
    digest = fetch.store.put_bytes(DATA).digest
    assert not cache.contains(digest)
    path = cache.blob_path(digest)
    assert path == cache.directory / "blobs" / digest.removeprefix("sha256:")
    assert path.read_bytes() == DATA
    assert cache.blob_path(digest.upper()) == path
    assert fetch.calls == [digest]
    assert cache.contains(digest)
    assert cache.verify(digest)
    assert cache.size_bytes() == len(DATA)


def test_creating_a_cache_touches_nothing(tmp_path: Path, fetch: CountingFetch) -> None:
    cache = ArtifactCache(tmp_path / "cache", fetch)
    assert not cache.contains(sha256_bytes(DATA))
    assert cache.size_bytes() == 0
    assert not (tmp_path / "cache").exists()


def test_a_corrupt_download_leaves_nothing_behind(tmp_path: Path) -> None:
    digest = sha256_bytes(DATA)
    damaged = DATA[:-1] + b"!"

    def fetch(_digest: str) -> Iterable[bytes]:
        return [damaged[: 1 << 20], damaged[1 << 20 :]]

    cache = ArtifactCache(tmp_path / "cache", fetch)
    with pytest.raises(ArtifactCorruptError) as caught:
        cache.blob_path(digest)
    assert digest in caught.value.message
    assert sha256_bytes(damaged) in caught.value.message
    assert "nothing was cached" in caught.value.message
    assert caught.value.field == "digest"
    assert _leftovers(tmp_path / "cache") == ["blobs"]
    assert not cache.contains(digest)


def test_a_damaged_store_blob_is_not_cached(
    cache: ArtifactCache, fetch: CountingFetch, tmp_path: Path
) -> None:
    digest = fetch.store.put_bytes(DATA).digest
    hex_ = digest.removeprefix("sha256:")
    stored = tmp_path / "store" / "blobs" / "sha256" / hex_[:2] / hex_
    stored.write_bytes(DATA[:-1] + b"?")
    with pytest.raises(ArtifactCorruptError, match="Restore it from a backup"):
        cache.blob_path(digest)
    assert _leftovers(cache.directory) == ["blobs"]


def test_a_failing_fetch_leaves_nothing_behind(cache: ArtifactCache) -> None:
    from funade.errors import NotFoundError

    with pytest.raises(NotFoundError, match="does not exist"):
        cache.blob_path("sha256:" + "1" * 64)
    assert _leftovers(cache.directory) == ["blobs"]


def test_invalid_digests_are_refused(cache: ArtifactCache) -> None:
    for call in (cache.blob_path, cache.unpacked, cache.contains, cache.verify, cache.evict):
        with pytest.raises(InvalidInputError, match="is not a digest"):
            call("sha256:../../etc/passwd")


def test_empty_blobs_are_cached(cache: ArtifactCache, fetch: CountingFetch) -> None:
    digest = fetch.store.put_bytes(b"").digest
    assert cache.blob_path(digest).read_bytes() == b""
    cache.blob_path(digest)
    assert fetch.calls == [digest]


def test_verify_rehashes_and_evict_removes(cache: ArtifactCache, fetch: CountingFetch) -> None:
    digest = fetch.store.put_bytes(DATA).digest
    path = cache.blob_path(digest)
    path.chmod(0o644)
    path.write_bytes(DATA[:-1] + b"\x00")
    assert cache.contains(digest)  # presence is cheap to check ...
    assert not cache.verify(digest)  # ... integrity takes a rehash
    cache.evict(digest)
    assert not cache.contains(digest)
    assert not cache.verify(digest)
    cache.evict(digest)  # absent: fine
    assert cache.blob_path(digest).read_bytes() == DATA
    assert len(fetch.calls) == 2


def test_unpacked_extracts_once(cache: ArtifactCache, fetch: CountingFetch, tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "weights").mkdir(parents=True)
    (model / "MLmodel").write_text("flavor: onnx\n")
    (model / "weights" / "model.onnx").write_bytes(DATA)
    package = pack_directory(model, tmp_path / "model.tar")
    digest = fetch.store.put_file(tmp_path / "model.tar", expected_digest=package.digest).digest

    directory = cache.unpacked(digest)
    assert directory == cache.directory / "unpacked" / digest.removeprefix("sha256:")
    assert (directory / "MLmodel").read_text() == "flavor: onnx\n"
    assert (directory / "weights" / "model.onnx").read_bytes() == DATA
    assert cache.unpacked(digest) == directory
    assert fetch.calls == [digest]
    hex_ = digest.removeprefix("sha256:")
    assert [p for p in _leftovers(cache.directory) if p.count("/") <= 1] == [
        "blobs",
        f"blobs/{hex_}",
        "unpacked",
        f"unpacked/{hex_}",
    ]
    assert cache.size_bytes() == package.size + len(DATA) + len("flavor: onnx\n")

    cache.evict(digest)
    assert not directory.exists()
    assert _leftovers(cache.directory) == ["blobs", "unpacked"]


def test_unpacked_refuses_unsafe_packages_and_leaves_no_partial_tree(
    cache: ArtifactCache, fetch: CountingFetch
) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        good = tarfile.TarInfo("good.txt")
        good.size = 4
        tar.addfile(good, io.BytesIO(b"good"))
        tar.addfile(tarfile.TarInfo("../escape.txt"), io.BytesIO(b""))
    digest = fetch.store.put_bytes(buffer.getvalue()).digest
    with pytest.raises(InvalidArtifactError, match=r"'\.\./escape\.txt' has a '\.\.' component"):
        cache.unpacked(digest)
    hex_ = digest.removeprefix("sha256:")
    assert _leftovers(cache.directory) == ["blobs", f"blobs/{hex_}", "unpacked"]


def test_concurrent_callers_in_threads_fetch_once(
    cache: ArtifactCache, fetch: CountingFetch
) -> None:
    digest = fetch.store.put_bytes(DATA).digest
    barrier = threading.Barrier(8)
    paths: list[Path] = []
    errors: list[BaseException] = []

    def load() -> None:
        try:
            barrier.wait(timeout=30)
            paths.append(cache.blob_path(digest))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(set(paths)) == 1
    assert len(paths) == 8
    assert paths[0].read_bytes() == DATA
    assert fetch.calls == [digest]


def _fetch_logged(store_url: str, log: str, digest: str) -> Iterator[bytes]:
    with open(log, "a") as file:
        file.write(f"{os.getpid()}\n")
    yield from ArtifactStore(store_url).open(digest)


def _load_in_process(cache_dir: str, store_url: str, log: str, digest: str) -> str:
    def fetch(wanted: str) -> Iterator[bytes]:
        return _fetch_logged(store_url, log, wanted)

    return str(ArtifactCache(Path(cache_dir), fetch).blob_path(digest))


@pytest.mark.slow
def test_concurrent_callers_in_processes_fetch_once(
    local_store: ArtifactStore, tmp_path: Path
) -> None:
    digest = local_store.put_bytes(DATA).digest
    log = tmp_path / "fetches.log"
    log.touch()
    args = (str(tmp_path / "cache"), local_store.url, str(log), digest)
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        paths = pool.starmap(_load_in_process, [args] * 6)
    assert len(set(paths)) == 1
    assert Path(paths[0]).read_bytes() == DATA
    assert len(log.read_text().splitlines()) == 1
