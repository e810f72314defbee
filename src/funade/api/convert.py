"""Rows of the store to the API's JSON shapes."""

from __future__ import annotations

from funade.api.schemas import (
    AliasOut,
    ArtifactRef,
    AuditOut,
    KeyOut,
    ModelOut,
    ProjectOut,
    VersionOut,
)
from funade.store.schema import Alias, ApiKey, AuditEvent, Model, ModelVersion, Project


def project_out(row: Project) -> ProjectOut:
    return ProjectOut(
        name=row.name,
        description=row.description,
        created_at=row.created_at,
        trust_code=row.trust_code,
    )


def model_out(
    row: Model, project: Project, latest: int | None, aliases: dict[str, int]
) -> ModelOut:
    return ModelOut(
        project=project.name,
        name=row.name,
        description=row.description,
        tags=row.tags,
        archived=row.archived,
        latest_version=latest,
        aliases=aliases,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def version_out(
    row: ModelVersion, project: Project, aliases: list[str], *, detail: bool = False
) -> VersionOut:
    return VersionOut(
        project=project.name,
        model=row.model.name,
        version=row.number,
        artifact=ArtifactRef(digest=row.artifact_digest, size=row.artifact_size),
        flavor=row.flavor,
        signature=row.manifest.get("signature", {}),
        manifest=row.manifest,
        lineage=row.lineage,
        params=row.params,
        metrics={m.key: m.value for m in row.metrics},
        tags={t.key: t.value for t in row.tags},
        aliases=aliases,
        description=row.description,
        archived=row.archived,
        created_at=row.created_at,
        created_by=row.created_by,
        golden_examples=row.golden_examples if detail else None,
    )


def alias_out(row: Alias, model: Model) -> AliasOut:
    return AliasOut(
        model=model.name, alias=row.name, version=row.version.number, updated_at=row.updated_at
    )


def key_out(row: ApiKey) -> KeyOut:
    return KeyOut(
        id=row.id,
        name=row.name,
        project=row.project.name if row.project is not None else None,
        scopes=list(row.scopes),
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        deployment=row.deployment,
        kind=row.kind,
        allow_cidrs=row.allow_cidrs,
        predictions=row.predictions,
    )


def audit_out(row: AuditEvent, project_names: dict[int, str]) -> AuditOut:
    return AuditOut(
        id=row.id,
        at=row.at,
        project=project_names.get(row.project_id) if row.project_id is not None else None,
        actor_key_id=row.actor_key_id,
        actor_name=row.actor_name,
        action=row.action,
        target=row.target,
        details=row.details,
        client_ip=row.client_ip,
    )
