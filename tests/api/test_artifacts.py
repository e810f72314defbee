"""Artifacts over HTTP: streamed both ways, verified by digest, isolated per project."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from funade.api.app import create_app
from funade.artifacts import ArtifactStore
from funade.client import Client
from funade.errors import (
    ArtifactCorruptError,
    DigestMismatchError,
    NotFoundError,
    PayloadTooLargeError,
)
from funade.settings import Settings
from funade.store import Database
from tests.conftest import make_settings
from tests.servers import serve


def _file(tmp_path: Path, size: int = 3 * 1024 * 1024 + 17) -> tuple[Path, str]:
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(size))
    return path, "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_upload_download_round_trip_with_progress(admin: Client, tmp_path: Path) -> None:
    path, digest = _file(tmp_path)
    seen: list[tuple[int, int]] = []
    ref = admin.upload_artifact(path, progress=lambda done, total: seen.append((done, total)))
    assert ref.digest == digest
    assert seen[-1] == (path.stat().st_size, path.stat().st_size)
    assert admin.artifact_exists(digest)
    out = admin.download_artifact(digest, tmp_path / "out.bin")
    assert out.read_bytes() == path.read_bytes()
    assert [e.action for e in admin.audit(action="artifact.").items] == ["artifact.upload"]


def test_digest_mismatch_is_refused_and_nothing_stored(admin: Client, tmp_path: Path) -> None:
    path, _ = _file(tmp_path, 1000)
    wrong = "sha256:" + "1" * 64
    with pytest.raises(DigestMismatchError, match="sha256:1111") as info:
        admin.upload_artifact(path, digest=wrong)
    assert info.value.field == "digest"
    assert not admin.artifact_exists(wrong)


def test_oversize_upload_is_refused(tmp_path: Path, database: Database, admin_key: str) -> None:
    settings = make_settings(tmp_path / "home", str(database.engine.url), max_artifact_bytes=1024)
    app = create_app(settings, database, ArtifactStore.from_settings(settings))
    path, digest = _file(tmp_path, 4096)
    with serve(app) as url, Client(url=url, api_key=admin_key, settings=settings) as client:
        with pytest.raises(PayloadTooLargeError, match="at most 1024") as info:
            client.upload_artifact(path)
        assert info.value.field == "content-length"
        assert not client.artifact_exists(digest)


def test_truncated_upload_leaves_nothing(
    app_url: str, admin_key: str, admin: Client, settings: Settings
) -> None:
    data = os.urandom(200_000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    target = urlparse(app_url)
    request = (
        f"PUT /api/v1/projects/default/artifacts/{digest} HTTP/1.1\r\n"
        f"Host: {target.netloc}\r\nAuthorization: Bearer {admin_key}\r\n"
        f"Content-Length: {len(data)}\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode()
    with socket.create_connection((target.hostname, target.port)) as sock:
        sock.sendall(request + data[:50_000])
        sock.shutdown(socket.SHUT_WR)
        sock.recv(65536)
    assert not admin.artifact_exists(digest)
    store = ArtifactStore.from_settings(settings)
    assert not store.exists(digest)
    uploads = Path(settings.resolved_artifacts_url) / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_other_projects_cannot_read_by_digest(
    admin: Client, key_for: Callable[..., Client], tmp_path: Path
) -> None:
    admin.create_project("b")
    path, digest = _file(tmp_path, 5000)
    admin.upload_artifact(path)
    b_writer = key_for(["write"], project="b")
    assert not b_writer.artifact_exists(digest)
    with pytest.raises(NotFoundError, match="does not exist in project 'b'"):
        b_writer.download_artifact(digest, tmp_path / "stolen.bin")
    assert not (tmp_path / "stolen.bin").exists()
    # Uploading the bytes is proof of possession: then project b may read them.
    b_writer.upload_artifact(path)
    assert (
        b_writer.download_artifact(digest, tmp_path / "mine.bin").read_bytes() == path.read_bytes()
    )


def test_corrupt_stored_blob_is_detected_on_download(
    admin: Client, settings: Settings, tmp_path: Path
) -> None:
    path, digest = _file(tmp_path, 300_000)
    admin.upload_artifact(path)
    stored = Path(settings.resolved_artifacts_url) / "blobs" / "sha256" / digest[7:9] / digest[7:]
    data = bytearray(stored.read_bytes())
    data[1000] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(ArtifactCorruptError):
        admin.download_artifact(digest, tmp_path / "bad.bin")
    assert not (tmp_path / "bad.bin").exists()


def test_bad_digest_in_url_is_a_4xx(app_url: str, admin_key: str) -> None:
    response = httpx.get(
        f"{app_url}/api/v1/projects/default/artifacts/sha256:..%2F..%2Fetc",
        headers={"authorization": f"Bearer {admin_key}"},
    )
    assert response.status_code in (404, 422)
    assert "error" in response.json()


def test_an_unknown_project_is_an_error_not_a_missing_artifact(
    admin: Client, app_url: str, admin_key: str
) -> None:
    digest = "sha256:" + "0" * 64
    assert not admin.artifact_exists(digest)
    with pytest.raises(NotFoundError, match="Project 'nope' does not exist") as info:
        admin.artifact_exists(digest, project="nope")
    assert info.value.field == "project"
    head = httpx.head(
        f"{app_url}/api/v1/projects/nope/artifacts/{digest}",
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert (head.status_code, head.headers["funade-error-field"]) == (404, "project")
    missing = httpx.head(
        f"{app_url}/api/v1/projects/default/artifacts/{digest}",
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert (missing.status_code, missing.headers["funade-error-field"]) == (404, "digest")
