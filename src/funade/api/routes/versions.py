"""Model versions: register (from an uploaded package), read, list, annotate, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from funade import audit
from funade.api.convert import version_out
from funade.api.deps import Reader, Registrar, State, Writer
from funade.api.params import Cursor, VersionNumber, VersionRef
from funade.api.schemas import Page, VersionIn, VersionOut, VersionPatch
from funade.artifacts import iter_members, parse_digest
from funade.errors import NotFoundError
from funade.projects import get_project
from funade.registry import service as registry
from funade.store.schema import Artifact

router = APIRouter(prefix="/api/v1/projects/{project}/models/{model}/versions", tags=["versions"])

# How much of each file in a package the registry reads to check it (nothing is executed):
# the manifest whole (a wide table's signature can be large), the head of every other file.
CHECK_BYTES = 1024 * 1024


@router.post("", response_model=VersionOut, status_code=201)
def create_version(
    project: str, model: str, body: VersionIn, state: State, principal: Registrar
) -> VersionOut:
    principal.require_model("register", project, model)
    digest = parse_digest(body.artifact, field="artifact")
    with state.db.read() as session:
        proj = get_project(session, project)
        artifact = session.get(Artifact, (proj.id, digest))
        if artifact is None:
            raise NotFoundError(
                f"Artifact {digest} was not uploaded to project {project!r}.",
                field="artifact",
                value=digest,
                fix="Upload the package first (PUT /api/v1/projects/{project}/artifacts/{digest}).",
            )
        size = artifact.size
    # numpy, pydantic models and every flavor: imported on the first registration, not at start.
    from funade.registry.flavors import loads_code
    from funade.registry.package import check_package_members

    # Read the package outside any transaction: it may be large, and nothing is stored yet.
    manifest = check_package_members(
        iter_members(state.artifacts.open(digest), max_member_bytes=CHECK_BYTES)
    )
    new = registry.NewVersion(
        artifact_digest=digest,
        artifact_size=size,
        manifest=manifest.model_dump(mode="json"),
        golden_examples=body.golden_examples,
        lineage=body.lineage,
        params=body.params,
        metrics=body.metrics,
        tags=body.tags,
        description=body.description,
        # Decided now, outside any transaction, not when it is deployed: for a skops package
        # it imports scikit-learn, a second or more of a cold control plane's deploy call.
        runs_code=loads_code(manifest.model_dump(mode="json")),
    )
    with state.db.session() as session:
        proj = get_project(session, project)
        version = registry.create_version(session, proj, model, new, created_by=principal.key_id)
        audit.record(
            session,
            principal,
            "version.create",
            f"{model}:{version.number}",
            project=proj,
            artifact=digest,
            flavor=version.flavor,
        )
        return version_out(version, proj, [], detail=True)


@router.get("", response_model=Page[VersionOut])
def list_versions(
    project: str,
    model: str,
    state: State,
    principal: Reader,
    tag: Annotated[list[str] | None, Query(description="key=value; repeat to AND.")] = None,
    metric: Annotated[list[str] | None, Query(description="e.g. auc>0.8; repeat to AND.")] = None,
    archived: bool | None = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[VersionOut]:
    principal.require("read", project)
    with state.db.read() as session:
        proj = get_project(session, project)
        row = registry.get_model(session, proj, model)
        rows, next_cursor = registry.list_versions(
            session, row, tags=tag, metrics=metric, archived=archived, cursor=cursor, limit=limit
        )
        aliases = registry.aliases_by_version(session, row)
        items = [version_out(v, proj, aliases.get(v.id, [])) for v in rows]
        return Page(items=items, next_cursor=next_cursor)


@router.get("/{ref}", response_model=VersionOut)
def get_version(
    project: str, model: str, ref: VersionRef, state: State, principal: Reader
) -> VersionOut:
    """``ref`` is a version number, an alias, or ``latest``."""
    principal.require("read", project)
    with state.db.read() as session:
        proj = get_project(session, project)
        row = registry.get_model(session, proj, model)
        version = registry.resolve_version(session, row, ref)
        aliases = registry.aliases_by_version(session, row).get(version.id, [])
        return version_out(version, proj, aliases, detail=True)


@router.patch("/{number}", response_model=VersionOut)
def update_version(
    project: str,
    model: str,
    number: VersionNumber,
    body: VersionPatch,
    state: State,
    principal: Writer,
) -> VersionOut:
    principal.require("write", project)
    with state.db.session() as session:
        proj = get_project(session, project)
        row = registry.get_model(session, proj, model)
        version = registry.update_version(
            registry.get_version(session, row, number),
            description=body.description,
            tags=body.tags,
            archived=body.archived,
        )
        changes = body.model_dump(exclude_none=True)
        audit.record(
            session, principal, "version.update", f"{model}:{number}", project=proj, **changes
        )
        session.flush()
        aliases = registry.aliases_by_version(session, row).get(version.id, [])
        return version_out(version, proj, aliases, detail=True)


@router.delete("/{number}", status_code=204)
def delete_version(
    project: str, model: str, number: VersionNumber, state: State, principal: Writer
) -> Response:
    principal.require("write", project)
    with state.db.session() as session:
        proj = get_project(session, project)
        row = registry.get_model(session, proj, model)
        registry.delete_version(session, registry.get_version(session, row, number))
        audit.record(session, principal, "version.delete", f"{model}:{number}", project=proj)
    return Response(status_code=204)
