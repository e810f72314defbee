"""Artifacts: content-addressed blobs, uploaded and downloaded as streams.

A project may download a blob only after it uploaded the bytes itself (a known digest is not
proof of possession), even though blobs are stored once for all projects.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Send

from funade import audit
from funade.api.deps import Reader, State, Uploader
from funade.api.schemas import ArtifactRef
from funade.artifacts import parse_digest
from funade.errors import (
    ArtifactCorruptError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
)
from funade.projects import get_project
from funade.store.schema import Artifact

log = logging.getLogger("funade.api")

VERIFY_FIRST_BYTES = 4 * 1024 * 1024
"""Blobs up to this size are verified whole before the answer starts."""

router = APIRouter(prefix="/api/v1/projects/{project}/artifacts", tags=["artifacts"])


def _owned(state: State, project: str, digest: str) -> Artifact:
    with state.db.read() as session:
        proj = get_project(session, project)
        row = session.get(Artifact, (proj.id, digest))
    if row is None:
        raise NotFoundError(
            f"Artifact {digest} does not exist in project {project!r}.",
            field="digest",
            value=digest,
            fix="Upload it with PUT to this URL, or check the digest.",
        )
    return row


@router.head(
    "/{digest}",
    response_class=Response,
    responses={
        200: {
            "description": "The project has the blob; its size and digest are in the headers.",
            "headers": {
                "funade-digest": {"schema": {"type": "string"}},
                "content-length": {"schema": {"type": "string"}},
            },
        }
    },
)
def artifact_exists(project: str, digest: str, state: State, principal: Reader) -> Response:
    principal.require("read", project)
    row = _owned(state, project, parse_digest(digest))
    return Response(headers={"content-length": str(row.size), "funade-digest": row.digest})


@router.get("/{digest}", response_class=StreamingResponse)
def download_artifact(project: str, digest: str, state: State, principal: Reader) -> Response:
    """The blob's bytes, never a damaged blob whole with a success: one up to
    ``VERIFY_FIRST_BYTES`` is read and verified before the answer starts (damaged: a 500
    ``artifact_corrupt`` error); a larger one is verified as it streams and, damaged, its last
    chunk is never sent, so the transfer ends short of its Content-Length and breaks."""
    principal.require("read", project)
    row = _owned(state, project, parse_digest(digest))
    headers = {"content-length": str(row.size), "funade-digest": row.digest}
    if row.size <= VERIFY_FIRST_BYTES:
        body = state.artifacts.read_bytes(row.digest)  # ArtifactCorruptError: a 500
        return Response(body, media_type="application/octet-stream", headers=headers)
    return VerifiedStream(
        state.artifacts.open(row.digest, size=row.size),
        media_type="application/octet-stream",
        headers=headers,
    )


class VerifiedStream(StreamingResponse):
    """A blob's verified stream. When the blob turns out damaged, the answer has started and
    there is no status left to send: it is left incomplete (the server then closes the
    connection short of the Content-Length, which clients report as a broken transfer), and the
    damage is logged in plain words."""

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        except ArtifactCorruptError as exc:
            log.error("%s The download was broken off before its end.", exc)


@router.put(
    "/{digest}",
    response_model=ArtifactRef,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The blob's bytes; they must hash to the digest in the URL.",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_artifact(
    project: str, digest: str, request: Request, state: State, principal: Uploader
) -> ArtifactRef:
    principal.require("upload", project)
    expected = parse_digest(digest)
    limit = state.settings.max_artifact_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"The artifact is {declared} bytes; this server accepts at most {limit}.",
            field="content-length",
            value=int(declared),
            fix="Raise FUNADE_MAX_ARTIFACT_BYTES on the server, or make the model smaller.",
        )
    await run_in_threadpool(_owned_project_id, state, project)
    writer = state.artifacts.writer(expected_digest=expected, max_bytes=limit)
    try:
        async for chunk in request.stream():
            if chunk:
                await run_in_threadpool(writer.write, chunk)
        if declared is not None and declared.isdigit() and writer.bytes_written != int(declared):
            raise InvalidInputError(
                f"The upload ended after {writer.bytes_written} of {declared} bytes.",
                field="body",
                value=writer.bytes_written,
                fix="Upload the file again; the connection was cut.",
            )
        info = await run_in_threadpool(writer.commit)
    except ClientDisconnect:
        await run_in_threadpool(writer.abort)
        raise InvalidInputError(
            f"The upload of {expected} was cut off after {writer.bytes_written} bytes.",
            field="body",
            value=writer.bytes_written,
            fix="Upload the file again.",
        ) from None
    except BaseException:
        await run_in_threadpool(writer.abort)
        raise
    await run_in_threadpool(_record_upload, state, principal, project, info.digest, info.size)
    return ArtifactRef(digest=info.digest, size=info.size)


def _owned_project_id(state: State, project: str) -> int:
    with state.db.read() as session:
        return get_project(session, project).id


def _record_upload(state: State, principal: Reader, project: str, digest: str, size: int) -> None:
    with state.db.session() as session:
        proj = get_project(session, project)
        if session.get(Artifact, (proj.id, digest)) is None:
            session.add(Artifact(project_id=proj.id, digest=digest, size=size))
            audit.record(session, principal, "artifact.upload", digest, project=proj, size=size)
