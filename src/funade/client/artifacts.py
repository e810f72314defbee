"""The artifact store: blobs by digest, streamed both ways and checked."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from funade.api.schemas import (
    ArtifactRef,
)
from funade.artifacts.digest import sha256_file
from funade.client.base import CHUNK, ClientBase
from funade.client.responses import is_missing, raise_for_error
from funade.errors import ArtifactCorruptError

__all__ = ["ArtifactsAPI", "Progress"]

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes in all) as a transfer goes on."""


class ArtifactsAPI(ClientBase):
    """The client's calls of artifacts (mixed into ``funade.client.Client``)."""

    def artifact_exists(self, digest: str, *, project: str | None = None) -> bool:
        """Whether the project holds ``digest``; an unknown project is an error, not False."""
        url = f"{self._p(project)}/artifacts/{digest}"
        response = self._http.head(url)
        if is_missing(response, "digest"):
            return False
        if response.status_code >= 400:  # a HEAD answer has no body to say why: ask again
            with self._http.stream("GET", url) as full:
                raise_for_error(full)
        return True

    def upload_artifact(
        self,
        path: Path,
        *,
        digest: str | None = None,
        progress: Progress | None = None,
        project: str | None = None,
    ) -> ArtifactRef:
        """Stream ``path`` to the artifact store (skipped if the project already has it)."""
        digest = digest or sha256_file(path)
        size = path.stat().st_size
        if self.artifact_exists(digest, project=project):
            if progress is not None:
                progress(size, size)
            return ArtifactRef(digest=digest, size=size)

        def chunks() -> Iterator[bytes]:
            done = 0
            with path.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    done += len(chunk)
                    yield chunk
                    if progress is not None:
                        progress(done, size)

        response = self._request(
            "PUT",
            f"{self._p(project)}/artifacts/{digest}",
            content=chunks(),
            headers={"content-length": str(size), "content-type": "application/octet-stream"},
        )
        return ArtifactRef.model_validate(response.json())

    def download_artifact(
        self,
        digest: str,
        dest: Path,
        *,
        progress: Progress | None = None,
        project: str | None = None,
    ) -> Path:
        """Stream an artifact to ``dest``, verifying its digest; nothing is left on mismatch."""
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            with (
                self._http.stream("GET", f"{self._p(project)}/artifacts/{digest}") as response,
                tmp.open("wb") as handle,
            ):
                raise_for_error(response)
                total = int(response.headers.get("content-length", 0))
                hasher = hashlib.sha256()
                done = 0
                for chunk in response.iter_bytes(CHUNK):
                    hasher.update(chunk)
                    handle.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
            actual = f"sha256:{hasher.hexdigest()}"
            if actual != digest:
                raise ArtifactCorruptError(
                    f"Artifact {digest} arrived with digest {actual}.",
                    field="digest",
                    value=actual,
                    fix="Download it again; if this repeats, the stored copy is damaged.",
                )
            os.replace(tmp, dest)
        except httpx.HTTPError as exc:
            raise _cut_off(digest, exc) from exc
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def open_artifact(self, digest: str, *, project: str | None = None) -> Iterator[bytes]:
        """The artifact's bytes as a stream (the caller verifies, e.g. ArtifactCache does); a
        transfer cut off (the server breaks off a damaged blob's) is ArtifactCorruptError."""
        with self._http.stream("GET", f"{self._p(project)}/artifacts/{digest}") as response:
            raise_for_error(response)
            try:
                yield from response.iter_bytes(CHUNK)
            except httpx.HTTPError as exc:
                raise _cut_off(digest, exc) from exc


def _cut_off(digest: str, exc: httpx.HTTPError) -> ArtifactCorruptError:
    return ArtifactCorruptError(
        f"The download of {digest} was cut off: {exc}.",
        field="digest",
        value=digest,
        fix="Download it again; if this repeats, the stored copy may be damaged.",
    )
