"""Models and their aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from funade import audit
from funade.api.convert import alias_out, model_out
from funade.api.deps import Reader, Registrar, State, Writer
from funade.api.params import Cursor
from funade.api.schemas import AliasIn, AliasOut, ModelIn, ModelOut, ModelPatch, Page
from funade.projects import get_project
from funade.registry import service as registry
from funade.store.schema import Alias, Model, Project

router = APIRouter(prefix="/api/v1/projects/{project}/models", tags=["models"])


def _out(session: Session, project: Project, models: list[Model]) -> list[ModelOut]:
    latest = registry.latest_version_numbers(session, models)
    out = []
    for model in models:
        aliases = {a.name: a.version.number for a in registry.list_aliases(session, model)}
        out.append(model_out(model, project, latest.get(model.id), aliases))
    return out


@router.get("", response_model=Page[ModelOut])
def list_models(
    project: str,
    state: State,
    principal: Reader,
    q: Annotated[str | None, Query(description="Only models whose name contains this.")] = None,
    archived: Annotated[
        bool | None, Query(description="true: only archived; false (default): only active.")
    ] = False,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[ModelOut]:
    principal.require("read", project)
    with state.db.read() as session:
        proj = get_project(session, project)
        rows, next_cursor = registry.list_models(
            session, proj, query=q, archived=archived, cursor=cursor, limit=limit
        )
        return Page(items=_out(session, proj, rows), next_cursor=next_cursor)


@router.post("", response_model=ModelOut, status_code=201)
def create_model(project: str, body: ModelIn, state: State, principal: Registrar) -> ModelOut:
    principal.require("read", project)  # the project first: another's key learns nothing
    principal.require_model("register", project, body.name)
    with state.db.session() as session:
        proj = get_project(session, project)
        model = registry.create_model(
            session, proj, body.name, description=body.description, tags=body.tags
        )
        audit.record(session, principal, "model.create", model.name, project=proj)
        return _out(session, proj, [model])[0]


@router.get("/{model}", response_model=ModelOut)
def get_model(project: str, model: str, state: State, principal: Reader) -> ModelOut:
    principal.require("read", project)
    with state.db.read() as session:
        proj = get_project(session, project)
        return _out(session, proj, [registry.get_model(session, proj, model)])[0]


@router.patch("/{model}", response_model=ModelOut)
def update_model(
    project: str, model: str, body: ModelPatch, state: State, principal: Writer
) -> ModelOut:
    principal.require("write", project)
    with state.db.session() as session:
        proj = get_project(session, project)
        row = registry.update_model(
            registry.get_model(session, proj, model),
            description=body.description,
            tags=body.tags,
            archived=body.archived,
        )
        changes = body.model_dump(exclude_none=True)
        audit.record(session, principal, "model.update", row.name, project=proj, **changes)
        session.flush()
        return _out(session, proj, [row])[0]


@router.delete("/{model}", status_code=204)
def delete_model(project: str, model: str, state: State, principal: Writer) -> Response:
    principal.require("write", project)
    with state.db.session() as session:
        proj = get_project(session, project)
        registry.delete_model(session, registry.get_model(session, proj, model))
        audit.record(session, principal, "model.delete", model, project=proj)
    return Response(status_code=204)


@router.get("/{model}/aliases", response_model=list[AliasOut])
def list_aliases(project: str, model: str, state: State, principal: Reader) -> list[AliasOut]:
    principal.require("read", project)
    with state.db.read() as session:
        row = registry.get_model(session, get_project(session, project), model)
        return [alias_out(a, row) for a in registry.list_aliases(session, row)]


@router.get("/{model}/aliases/{alias}", response_model=AliasOut)
def get_alias(project: str, model: str, alias: str, state: State, principal: Reader) -> AliasOut:
    principal.require("read", project)
    with state.db.read() as session:
        row = registry.get_model(session, get_project(session, project), model)
        return alias_out(registry.get_alias(session, row, alias), row)


@router.put("/{model}/aliases/{alias}", response_model=AliasOut)
def set_alias(
    project: str, model: str, alias: str, body: AliasIn, state: State, principal: Registrar
) -> AliasOut:
    principal.require_model("register", project, model)
    with state.db.session() as session:
        proj = get_project(session, project)
        row = registry.get_model(session, proj, model)
        version = registry.get_version(session, row, body.version)
        previous = session.get(Alias, (row.id, alias))
        before = previous.version.number if previous is not None else None
        result = registry.set_alias(session, row, alias, version)
        audit.record(
            session,
            principal,
            "alias.set",
            f"{model}@{alias}",
            project=proj,
            version=body.version,
            previous=before,
        )
        return alias_out(result, row)


@router.delete("/{model}/aliases/{alias}", status_code=204)
def delete_alias(
    project: str, model: str, alias: str, state: State, principal: Registrar
) -> Response:
    principal.require_model("register", project, model)
    with state.db.session() as session:
        proj = get_project(session, project)
        row = registry.get_model(session, proj, model)
        registry.delete_alias(session, row, alias)
        audit.record(session, principal, "alias.delete", f"{model}@{alias}", project=proj)
    return Response(status_code=204)
