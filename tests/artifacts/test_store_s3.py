"""What only S3 shows: multipart streaming, abandoned uploads, caches, credentials.

The behaviour shared with other filesystems is tested in ``test_store.py`` (its ``s3`` cases).
"""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import fsspec
import pytest

from funade.artifacts import CHUNK_SIZE, ArtifactStore, sha256_bytes
from funade.errors import PayloadTooLargeError

from .conftest import S3_CREDENTIALS, s3_options

pytestmark = pytest.mark.s3

PART = 5 * 1024 * 1024  # S3's smallest multipart part


@pytest.fixture
def s3_client(moto_server: tuple[str, str]) -> Any:
    endpoint, _bucket = moto_server
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_CREDENTIALS["key"],
        aws_secret_access_key=S3_CREDENTIALS["secret"],
        region_name="us-east-1",
    )


@pytest.fixture
def prefix() -> str:
    return f"artifacts/{uuid.uuid4().hex}"


@pytest.fixture
def small_part_store(moto_server: tuple[str, str], prefix: str) -> ArtifactStore:
    """A store whose uploads switch to multipart after 5 MiB instead of s3fs's 50 MiB."""
    endpoint, bucket = moto_server
    return ArtifactStore(f"s3://{bucket}/{prefix}", s3_options(endpoint, default_block_size=PART))


def _keys(client: Any, bucket: str, prefix: str) -> list[str]:
    listing = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def _pending_uploads(client: Any, bucket: str, prefix: str) -> list[str]:
    listing = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [upload["Key"] for upload in listing.get("Uploads", [])]


def test_large_uploads_stream_as_multipart_and_land_under_their_digest(
    small_part_store: ArtifactStore, s3_client: Any, moto_server: tuple[str, str], prefix: str
) -> None:
    _endpoint, bucket = moto_server
    chunk = bytes(range(256)) * (CHUNK_SIZE // 256)
    with small_part_store.writer() as writer:
        for _ in range(12):
            writer.write(chunk)
        # Parts went out while writing: the bytes are not held in memory until commit.
        pending = _pending_uploads(s3_client, bucket, prefix)
        assert len(pending) == 1
        assert pending[0].startswith(f"{prefix}/uploads/")
        info = writer.commit()
    assert info.digest == sha256_bytes(chunk * 12)
    hex_ = info.digest.removeprefix("sha256:")
    assert _keys(s3_client, bucket, prefix) == [f"{prefix}/blobs/sha256/{hex_[:2]}/{hex_}"]
    assert _pending_uploads(s3_client, bucket, prefix) == []
    assert small_part_store.read_bytes(info.digest) == chunk * 12


def test_aborting_a_multipart_upload_leaves_nothing(
    small_part_store: ArtifactStore, s3_client: Any, moto_server: tuple[str, str], prefix: str
) -> None:
    _endpoint, bucket = moto_server
    with small_part_store.writer() as writer:
        for _ in range(7):
            writer.write(b"x" * CHUNK_SIZE)
        assert len(_pending_uploads(s3_client, bucket, prefix)) == 1
    assert _pending_uploads(s3_client, bucket, prefix) == []
    assert _keys(s3_client, bucket, prefix) == []


def test_exceeding_max_bytes_mid_multipart_leaves_nothing(
    small_part_store: ArtifactStore, s3_client: Any, moto_server: tuple[str, str], prefix: str
) -> None:
    _endpoint, bucket = moto_server
    writer = small_part_store.writer(max_bytes=6 * CHUNK_SIZE)
    for _ in range(6):
        writer.write(b"x" * CHUNK_SIZE)
    assert len(_pending_uploads(s3_client, bucket, prefix)) == 1
    with pytest.raises(PayloadTooLargeError, match=f"limit of {6 * CHUNK_SIZE} bytes"):
        writer.write(b"x")
    assert _pending_uploads(s3_client, bucket, prefix) == []
    assert _keys(s3_client, bucket, prefix) == []


def test_exists_is_not_fooled_by_s3fs_listing_cache(
    s3_store: ArtifactStore, s3_client: Any, moto_server: tuple[str, str]
) -> None:
    """Another process writes or deletes a blob behind our back (here: plain boto3)."""
    endpoint, bucket = moto_server
    data = b"uploaded elsewhere"
    digest = sha256_bytes(data)
    hex_ = digest.removeprefix("sha256:")
    # A blob of ours in the same directory, so that directory's listing can be cached.
    neighbour = next(
        candidate
        for candidate in (f"neighbour {n}".encode() for n in range(100_000))
        if sha256_bytes(candidate).removeprefix("sha256:")[:2] == hex_[:2]
    )
    s3_store.put_bytes(neighbour)
    # fsspec hands out one s3fs instance per set of options: this is the store's filesystem.
    fs, root = fsspec.core.url_to_fs(s3_store.url, **s3_options(endpoint))
    directory = f"{root}/blobs/sha256/{hex_[:2]}"
    key = f"{directory}/{hex_}".removeprefix(f"{bucket}/")

    fs.ls(directory)  # cached listing: neighbour only
    s3_client.put_object(Bucket=bucket, Key=key, Body=data)
    assert s3_store.exists(digest)
    assert s3_store.size(digest) == len(data)
    assert s3_store.read_bytes(digest) == data

    fs.ls(directory)  # cached listing: neighbour and the blob
    s3_client.delete_object(Bucket=bucket, Key=key)
    assert not s3_store.exists(digest)


def test_repr_never_shows_credentials(s3_store: ArtifactStore) -> None:
    assert S3_CREDENTIALS["secret"] not in repr(s3_store)
    assert repr(s3_store) == f"ArtifactStore({s3_store.url!r})"
