"""Projects: namespaces that isolate models, keys, deployments and runs from each other."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from funade.auth.principal import Principal
from funade.errors import ConflictError, NotFoundError
from funade.names import check_project_name
from funade.store.schema import Project

DEFAULT_PROJECT = "default"


def get_project(session: Session, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        raise NotFoundError(
            f"Project {name!r} does not exist.",
            field="project",
            value=name,
            fix="Check the name with `funade projects list`.",
        )
    return project


def create_project(session: Session, name: str, description: str = "") -> Project:
    check_project_name(name, field="name")
    if session.scalar(select(Project.id).where(Project.name == name)) is not None:
        raise ConflictError(
            f"Project {name!r} already exists.",
            field="name",
            value=name,
            fix="Choose another name, or use the existing project.",
        )
    project = Project(name=name, description=description)
    session.add(project)
    session.flush()
    return project


def ensure_project(session: Session, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name))
    return project if project is not None else create_project(session, name)


def list_projects(session: Session, principal: Principal) -> list[Project]:
    query = select(Project).order_by(Project.name)
    if principal.project is not None:
        query = query.where(Project.name == principal.project)
    return list(session.scalars(query))
