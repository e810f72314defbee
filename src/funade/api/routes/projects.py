"""Projects, and who the caller is."""

from __future__ import annotations

from fastapi import APIRouter

from funade import audit
from funade.api.convert import project_out
from funade.api.deps import Admin, Reader, State
from funade.api.schemas import ProjectIn, ProjectOut, ProjectPatch, WhoAmI
from funade.projects import create_project, get_project, list_projects

router = APIRouter(prefix="/api/v1", tags=["projects"])


@router.get("/whoami", response_model=WhoAmI)
def whoami(principal: Reader) -> WhoAmI:
    return WhoAmI(
        key_id=principal.key_id,
        name=principal.name,
        project=principal.project,
        scopes=sorted(principal.scopes),
        client_ip=principal.client_ip,
    )


@router.get("/projects", response_model=list[ProjectOut])
def projects(state: State, principal: Reader) -> list[ProjectOut]:
    with state.db.read() as session:
        return [project_out(p) for p in list_projects(session, principal)]


@router.post("/projects", response_model=ProjectOut, status_code=201)
def new_project(body: ProjectIn, state: State, principal: Admin) -> ProjectOut:
    principal.require("admin")
    with state.db.session() as session:
        project = create_project(session, body.name, body.description)
        audit.record(session, principal, "project.create", project.name, project=project)
        return project_out(project)


@router.get("/projects/{project}", response_model=ProjectOut)
def one_project(project: str, state: State, principal: Reader) -> ProjectOut:
    principal.require("read", project)
    with state.db.read() as session:
        return project_out(get_project(session, project))


@router.patch("/projects/{project}", response_model=ProjectOut)
def update_project(project: str, body: ProjectPatch, state: State, principal: Admin) -> ProjectOut:
    """Change a project's description, or whether it trusts code (``trust_code``: its write
    keys may then deploy models whose loading runs code, and schedule pipelines)."""
    principal.require("admin", project)
    changes = body.model_dump(exclude_none=True)
    with state.db.session() as session:
        row = get_project(session, project)
        for name, value in changes.items():
            setattr(row, name, value)
        audit.record(session, principal, "project.update", row.name, project=row, **changes)
        return project_out(row)
