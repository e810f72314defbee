"""Artifacts: content-addressed blobs, uploaded and downloaded as streams.

A project may download a blob only after it uploaded the bytes itself (a known digest is not
proof of possession), even though blobs are stored once for all projects.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from funade import audit
from funade.api.deps import Reader, State, Writer
from funade.api.schemas import ArtifactRef
from funade.artifacts import parse_digest
from funade.errors import InvalidInputError, NotFoundError, PayloadTooLargeError
from funade.projects import get_project
from funade.store.schema import Artifact

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
    row = _owned(state, project, parse_digest(digest))
    return Response(headers={"content-length": str(row.size), "funade-digest": row.digest})


@router.get("/{digest}", response_class=StreamingResponse)
def download_artifact(project: str, digest: str, state: State, principal: Reader) -> Response:
    row = _owned(state, project, parse_digest(digest))
    # store.open verifies the digest as it streams; a damaged blob aborts the download and the
    # client, which verifies too, reports ArtifactCorruptError.
    return StreamingResponse(
        state.artifacts.open(row.digest),
        media_type="application/octet-stream",
        headers={"content-length": str(row.size), "funade-digest": row.digest},
    )


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
    project: str, digest: str, request: Request, state: State, principal: Writer
) -> ArtifactRef:
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
