"""Stores on real filesystems: a local directory, fsspec's in-memory fs and S3 (moto's server).

``store_case`` is parametrized over all three so behavioural tests run against each; the S3 case
carries the ``s3`` marker. Each case also exposes the raw fsspec filesystem and root, opened
independently of the store, so tests can look at (and damage) what was written.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import fsspec
import pytest
from moto.server import ThreadedMotoServer

from funade.artifacts import ArtifactStore
from funade.artifacts.digest import digest_hex

S3_CREDENTIALS = {"key": "testing", "secret": "testing"}


@dataclass(frozen=True)
class StoreCase:
    """A store plus an independent view of the filesystem under it."""

    store: ArtifactStore
    options: dict[str, Any] | None
    fs: Any
    root: str

    def files(self, area: str = "") -> list[str]:
        """Paths of the files under ``<root>/<area>`` (``blobs``, ``uploads``, or everything)."""
        base = f"{self.root}/{area}".rstrip("/")
        self.fs.invalidate_cache()
        if not self.fs.exists(base):
            return []
        return sorted(self.fs.find(base))

    def blob_path(self, digest: str) -> str:
        hex_ = digest_hex(digest)
        return f"{self.root}/blobs/sha256/{hex_[:2]}/{hex_}"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[tuple[str, str]]:
    """An S3 API on 127.0.0.1 (moto, threaded server on a free port) with one bucket."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    bucket = "funade-artifacts"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_CREDENTIALS["key"],
        aws_secret_access_key=S3_CREDENTIALS["secret"],
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    yield endpoint, bucket
    server.stop()


def s3_options(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {
        "endpoint_url": endpoint,
        **S3_CREDENTIALS,
        "client_kwargs": {"region_name": "us-east-1"},
        **extra,
    }


@pytest.fixture
def s3_store(moto_server: tuple[str, str]) -> ArtifactStore:
    """A store on the moto bucket, under a prefix of its own so tests do not see each other."""
    endpoint, bucket = moto_server
    return ArtifactStore(f"s3://{bucket}/artifacts/{uuid.uuid4().hex}", s3_options(endpoint))


@pytest.fixture
def local_store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(str(tmp_path / "store"))


@pytest.fixture(params=["local", "memory", pytest.param("s3", marks=pytest.mark.s3)])
def store_case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreCase]:
    if request.param == "local":
        root = str(tmp_path / "store")
        yield StoreCase(ArtifactStore(root), None, fsspec.filesystem("file"), root)
    elif request.param == "memory":
        root = f"/funade-{uuid.uuid4().hex}"
        fs = fsspec.filesystem("memory")
        yield StoreCase(ArtifactStore(f"memory://{root}"), None, fs, root)
        if fs.exists(root):
            fs.rm(root, recursive=True)
    else:
        store: ArtifactStore = request.getfixturevalue("s3_store")
        endpoint, _bucket = request.getfixturevalue("moto_server")
        options = s3_options(endpoint)
        fs, root = fsspec.core.url_to_fs(store.url, **options)
        yield StoreCase(store, options, fs, root)


@pytest.fixture
def store(store_case: StoreCase) -> ArtifactStore:
    return store_case.store
