"""The registry's rules over the store: models, immutable numbered versions, aliases.

Every function takes the caller's session; the caller owns the transaction (one per request).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from funade.errors import ConflictError, InvalidInputError, NotFoundError
from funade.limits import INT32_MAX, MAX_METRIC_KEY
from funade.names import check_alias_name, check_model_name, check_tags
from funade.pagination import check_limit, decode_cursor, page_of
from funade.store.schema import (
    Alias,
    Model,
    ModelVersion,
    Project,
    VersionMetric,
    VersionTag,
)

# Things outside the registry (deployments, later) that may hold a version: each returns a
# description of who holds it, or None. A held version cannot be deleted.
VersionHolder = Callable[[Session, ModelVersion], str | None]
_holders: list[VersionHolder] = []


def register_version_holder(holder: VersionHolder) -> None:
    if holder not in _holders:
        _holders.append(holder)


# Models ---------------------------------------------------------------------------------------


def get_model(session: Session, project: Project, name: str) -> Model:
    model = session.scalar(select(Model).where(Model.project_id == project.id, Model.name == name))
    if model is None:
        raise NotFoundError(
            f"Model {name!r} does not exist in project {project.name!r}.",
            field="model",
            value=name,
            fix="List models with `funade models list`, or register one with funade.log_model.",
        )
    return model


def create_model(
    session: Session,
    project: Project,
    name: str,
    *,
    description: str = "",
    tags: dict[str, str] | None = None,
) -> Model:
    check_model_name(name)
    if session.scalar(select(Model.id).where(Model.project_id == project.id, Model.name == name)):
        raise ConflictError(
            f"Model {name!r} already exists in project {project.name!r}.",
            field="name",
            value=name,
            fix="Register a new version of it instead, or choose another name.",
        )
    model = Model(
        project_id=project.id, name=name, description=description, tags=check_tags(tags or {})
    )
    session.add(model)
    session.flush()
    return model


def update_model(
    model: Model,
    *,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    archived: bool | None = None,
) -> Model:
    if description is not None:
        model.description = description
    if tags is not None:
        model.tags = check_tags(tags)
    if archived is not None:
        model.archived = archived
    return model


def delete_model(session: Session, model: Model) -> None:
    """Delete a model and all its versions, unless something holds one of them."""
    for version in session.scalars(select(ModelVersion).where(ModelVersion.model_id == model.id)):
        _check_not_held(session, version, ignore_aliases=True)
    session.query(Alias).filter(Alias.model_id == model.id).delete()
    for version in session.scalars(select(ModelVersion).where(ModelVersion.model_id == model.id)):
        session.delete(version)
    session.delete(model)


def list_models(
    session: Session,
    project: Project,
    *,
    query: str | None = None,
    archived: bool | None = False,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[Model], str | None]:
    check_limit(limit)
    stmt = select(Model).where(Model.project_id == project.id).order_by(Model.name).limit(limit + 1)
    if query:
        stmt = stmt.where(Model.name.contains(query, autoescape=True))
    if archived is not None:
        stmt = stmt.where(Model.archived.is_(archived))
    position = decode_cursor(cursor, {"name": str})
    if position is not None:
        stmt = stmt.where(Model.name > position["name"])
    return page_of(list(session.scalars(stmt)), limit, lambda row: {"name": row.name})


def latest_version_numbers(session: Session, models: list[Model]) -> dict[int, int]:
    if not models:
        return {}
    rows = session.execute(
        select(ModelVersion.model_id, func.max(ModelVersion.number))
        .where(ModelVersion.model_id.in_([m.id for m in models]))
        .group_by(ModelVersion.model_id)
    )
    return dict(rows.all())


# Versions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewVersion:
    """What a new version is made of; the manifest comes from the checked package."""

    artifact_digest: str
    artifact_size: int
    manifest: dict[str, Any]
    golden_examples: list[Any]
    lineage: dict[str, Any]
    params: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str]
    description: str
    runs_code: bool | None = None
    """Whether loading it runs code of its own (``flavors.loads_code``); None: not decided."""


def create_version(
    session: Session, project: Project, model_name: str, new: NewVersion, *, created_by: str | None
) -> ModelVersion:
    """Add the next numbered version of ``model_name`` (creating the model on first use)."""
    check_model_name(model_name, field="model")
    check_tags(new.tags)
    _check_metrics(new.metrics)
    model = _get_or_create_model(session, project, model_name)
    # Take the number atomically: the UPDATE locks the model row until this transaction ends.
    number = (
        session.execute(
            update(Model)
            .where(Model.id == model.id)
            .values(next_version=Model.next_version + 1)
            .returning(Model.next_version)
        ).scalar_one()
        - 1
    )
    version = ModelVersion(
        model_id=model.id,
        number=number,
        artifact_digest=new.artifact_digest,
        artifact_size=new.artifact_size,
        flavor=str(new.manifest.get("flavor", "")),
        manifest=new.manifest,
        golden_examples=new.golden_examples,
        lineage=new.lineage,
        params=new.params,
        description=new.description,
        created_by=created_by,
        runs_code=new.runs_code,
    )
    version.model = model
    version.tags = [VersionTag(key=k, value=v) for k, v in sorted(new.tags.items())]
    version.metrics = [VersionMetric(key=k, value=float(v)) for k, v in sorted(new.metrics.items())]
    session.add(version)
    session.flush()
    return version


def _get_or_create_model(session: Session, project: Project, name: str) -> Model:
    """The model, created if missing; safe when two first registrations race."""
    query = select(Model).where(Model.project_id == project.id, Model.name == name)
    model = session.scalar(query)
    if model is not None:
        return model
    try:
        with session.begin_nested():
            return create_model(session, project, name)
    except (IntegrityError, ConflictError):
        # Another transaction created it first (and has committed, or we would still wait).
        return session.scalars(query).one()


def get_version(session: Session, model: Model, number: int) -> ModelVersion:
    if not -INT32_MAX <= number <= INT32_MAX:
        raise InvalidInputError(
            f"Version number {number} is out of range.",
            field="version",
            value=str(number)[:40],
            fix=f"Version numbers go from 1 to {INT32_MAX}; list them with "
            f"`funade models versions {model.name}`.",
        )
    version = session.scalar(
        select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.number == number)
    )
    if version is None:
        latest = session.scalar(
            select(func.max(ModelVersion.number)).where(ModelVersion.model_id == model.id)
        )
        hint = f"latest is {latest}" if latest is not None else "it has no versions yet"
        raise NotFoundError(
            f"Model {model.name!r} has no version {number} ({hint}).",
            field="version",
            value=number,
            fix="List versions with `funade models versions " + model.name + "`.",
        )
    return version


def resolve_version(session: Session, model: Model, ref: str) -> ModelVersion:
    """A version by number ('3'), alias ('production') or 'latest'."""
    if ref.isascii() and ref.isdigit():  # not '²', which isdigit() too
        return get_version(session, model, int(ref))
    if ref == "latest":
        number = session.scalar(
            select(func.max(ModelVersion.number)).where(
                ModelVersion.model_id == model.id, ModelVersion.archived.is_(False)
            )
        )
        if number is None:
            raise NotFoundError(
                f"Model {model.name!r} has no unarchived version.",
                field="version",
                value=ref,
                fix="Register a version with funade.log_model, or unarchive one.",
            )
        return get_version(session, model, number)
    return get_alias(session, model, ref).version


def update_version(
    version: ModelVersion,
    *,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    archived: bool | None = None,
) -> ModelVersion:
    """Change what may change on a version: description, tags, archived. Nothing else."""
    if description is not None:
        version.description = description
    if tags is not None:
        check_tags(tags)
        version.tags = [VersionTag(key=k, value=v) for k, v in sorted(tags.items())]
    if archived is not None:
        version.archived = archived
    return version


def delete_version(session: Session, version: ModelVersion) -> None:
    _check_not_held(session, version, ignore_aliases=False)
    session.delete(version)


def _check_not_held(session: Session, version: ModelVersion, *, ignore_aliases: bool) -> None:
    label = f"{version.model.name}:{version.number}"
    if not ignore_aliases:
        names = list(session.scalars(select(Alias.name).where(Alias.version_id == version.id)))
        if names:
            raise ConflictError(
                f"Version {label} cannot be deleted: alias(es) {names} point at it.",
                field="version",
                value=version.number,
                fix=f"Move or delete the alias first (`funade models alias {version.model.name} "
                f"{names[0]} --delete`), or archive the version instead.",
            )
    for holder in _holders:
        held_by = holder(session, version)
        if held_by:
            raise ConflictError(
                f"Version {label} cannot be deleted: {held_by} uses it.",
                field="version",
                value=version.number,
                fix="Move that deployment to another version first, or archive this version.",
            )


_METRIC_FILTER = re.compile(r"([A-Za-z0-9_.:/-]{1,128})\s*(>=|<=|!=|=|>|<)\s*(-?[0-9.eE+-]+)")


def _check_metrics(metrics: dict[str, float]) -> None:
    for key, value in metrics.items():
        if not 1 <= len(key) <= MAX_METRIC_KEY:
            raise InvalidInputError(
                f"Metric name {key[:40]!r} is empty or longer than {MAX_METRIC_KEY} characters.",
                field="metrics",
                value=key[:40],
                fix=f"Name metrics with 1 to {MAX_METRIC_KEY} characters, e.g. 'auc'.",
            )
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidInputError(
                f"Metric {key!r} has the value {value!r}, which is not a number.",
                field=f"metrics.{key}",
                value=value,
                fix="Log metrics as finite numbers, e.g. {'auc': 0.91}.",
            )


def _metric_condition(expression: str) -> Any:
    match = _METRIC_FILTER.fullmatch(expression.strip())
    if match is None:
        raise InvalidInputError(
            f"Metric filter {expression!r} is not understood.",
            field="metric",
            value=expression,
            fix="Write it as <name><op><number> with op one of > >= < <= = !=, e.g. 'auc>0.8'.",
        )
    key, op, raw = match.groups()
    try:
        number = float(raw)
        if not math.isfinite(number):
            raise ValueError(raw)
    except ValueError:
        raise InvalidInputError(
            f"Metric filter {expression!r} compares with {raw!r}, which is not a number.",
            field="metric",
            value=expression,
            fix="Write it as <name><op><number>, e.g. 'auc>0.8'.",
        ) from None
    column = VersionMetric.value
    compare = {
        ">": column > number,
        ">=": column >= number,
        "<": column < number,
        "<=": column <= number,
        "=": column == number,
        "!=": column != number,
    }[op]
    return exists().where(
        VersionMetric.version_id == ModelVersion.id, VersionMetric.key == key, compare
    )


def _tag_condition(expression: str) -> Any:
    key, sep, value = expression.partition("=")
    if not sep or not key:
        raise InvalidInputError(
            f"Tag filter {expression!r} is not understood.",
            field="tag",
            value=expression,
            fix="Write it as key=value, e.g. 'branch=main'.",
        )
    return exists().where(
        and_(
            VersionTag.version_id == ModelVersion.id,
            VersionTag.key == key,
            VersionTag.value == value,
        )
    )


def list_versions(
    session: Session,
    model: Model,
    *,
    tags: list[str] | None = None,
    metrics: list[str] | None = None,
    archived: bool | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[ModelVersion], str | None]:
    """Newest first, filtered by tag (``key=value``) and metric (``auc>0.8``) expressions."""
    check_limit(limit)
    stmt = (
        select(ModelVersion)
        .where(ModelVersion.model_id == model.id)
        .order_by(ModelVersion.number.desc())
        .limit(limit + 1)
    )
    for expression in tags or []:
        stmt = stmt.where(_tag_condition(expression))
    for expression in metrics or []:
        stmt = stmt.where(_metric_condition(expression))
    if archived is not None:
        stmt = stmt.where(ModelVersion.archived.is_(archived))
    position = decode_cursor(cursor, {"number": int})
    if position is not None:
        stmt = stmt.where(ModelVersion.number < position["number"])
    return page_of(list(session.scalars(stmt)), limit, lambda row: {"number": row.number})


def aliases_by_version(session: Session, model: Model) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for alias in session.scalars(
        select(Alias).where(Alias.model_id == model.id).order_by(Alias.name)
    ):
        out.setdefault(alias.version_id, []).append(alias.name)
    return out


# Aliases --------------------------------------------------------------------------------------


def get_alias(session: Session, model: Model, name: str) -> Alias:
    alias = session.get(Alias, (model.id, name))
    if alias is None:
        known = list(session.scalars(select(Alias.name).where(Alias.model_id == model.id)))
        raise NotFoundError(
            f"Model {model.name!r} has no alias {name!r}"
            + (f" (it has {sorted(known)})." if known else " (it has none)."),
            field="alias",
            value=name,
            fix=f"Set it with `funade models alias {model.name} {name} <version>`.",
        )
    return alias


def set_alias(session: Session, model: Model, name: str, version: ModelVersion) -> Alias:
    check_alias_name(name)
    if version.archived:
        raise ConflictError(
            f"Version {model.name}:{version.number} is archived; an alias cannot point at it.",
            field="version",
            value=version.number,
            fix="Unarchive the version first, or choose another version.",
        )
    alias = session.get(Alias, (model.id, name))
    if alias is None:
        alias = Alias(model_id=model.id, name=name, version_id=version.id)
        session.add(alias)
    else:
        alias.version_id = version.id
    alias.version = version
    session.flush()
    return alias


def delete_alias(session: Session, model: Model, name: str) -> None:
    session.delete(get_alias(session, model, name))


def list_aliases(session: Session, model: Model) -> list[Alias]:
    return list(
        session.scalars(select(Alias).where(Alias.model_id == model.id).order_by(Alias.name))
    )
