"""The registry's rules in the store itself, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from funade.errors import ConflictError, InvalidInputError, NotFoundError
from funade.projects import create_project, get_project
from funade.registry import service as registry
from funade.store import Database, create_database, upgrade
from funade.store.schema import ModelVersion


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = create_database(database_url)
    upgrade(database)
    with database.session() as session:
        create_project(session, "default")
        create_project(session, "other")
    yield database
    database.dispose()


def _new(**overrides: object) -> registry.NewVersion:
    values: dict[str, object] = {
        "artifact_digest": "sha256:" + "a" * 64,
        "artifact_size": 10,
        "manifest": {"flavor": "sklearn", "signature": {}},
        "golden_examples": [],
        "lineage": {},
        "params": {},
        "metrics": {},
        "tags": {},
        "description": "",
    }
    values.update(overrides)
    return registry.NewVersion(**values)  # type: ignore[arg-type]


def _add(
    session: Session, name: str = "churn", project: str = "default", **kw: object
) -> ModelVersion:
    return registry.create_version(
        session, get_project(session, project), name, _new(**kw), created_by=None
    )


def test_numbers_are_per_model_and_per_project(db: Database) -> None:
    with db.session() as session:
        assert [_add(session).number for _ in range(3)] == [1, 2, 3]
        assert _add(session, "fraud").number == 1
        assert _add(session, project="other").number == 1
    with db.read() as session:
        other = registry.get_model(session, get_project(session, "other"), "churn")
        rows, _ = registry.list_versions(session, other)
        assert [v.number for v in rows] == [1]


def test_concurrent_registrations_get_distinct_numbers(db: Database) -> None:
    numbers: list[int] = []
    errors: list[BaseException] = []

    def register() -> None:
        try:
            for _ in range(5):
                with db.session() as session:
                    numbers.append(_add(session).number)
        except BaseException as exc:  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(numbers) == list(range(1, 21))


def test_failed_transaction_leaves_nothing(db: Database) -> None:
    with db.session() as session:
        _add(session)
    with pytest.raises(InvalidInputError, match="not a number"), db.session() as session:
        _add(session, metrics={"auc": "high"})
    with db.read() as session:
        model = registry.get_model(session, get_project(session, "default"), "churn")
        assert [v.number for v in registry.list_versions(session, model)[0]] == [1]


def test_a_held_version_cannot_be_deleted(db: Database) -> None:
    def deployment_holds(session: Session, version: ModelVersion) -> str | None:
        return "deployment 'churn-api'" if version.number == 1 else None

    registry.register_version_holder(deployment_holds)
    try:
        with db.session() as session:
            _add(session)
            _add(session)
        with db.session() as session:
            model = registry.get_model(session, get_project(session, "default"), "churn")
            first = registry.get_version(session, model, 1)
            with pytest.raises(ConflictError, match="deployment 'churn-api' uses it"):
                registry.delete_version(session, first)
            with pytest.raises(ConflictError, match="churn-api"):
                registry.delete_model(session, model)
        with db.session() as session:
            model = registry.get_model(session, get_project(session, "default"), "churn")
            registry.delete_version(session, registry.get_version(session, model, 2))
    finally:
        registry._holders.remove(deployment_holds)


def test_delete_model_removes_versions_and_aliases(db: Database) -> None:
    with db.session() as session:
        version = _add(session, tags={"a": "b"}, metrics={"auc": 1.0})
        registry.set_alias(session, version.model, "production", version)
    with db.session() as session:
        registry.delete_model(
            session, registry.get_model(session, get_project(session, "default"), "churn")
        )
    with pytest.raises(NotFoundError, match="does not exist"), db.read() as session:
        registry.get_model(session, get_project(session, "default"), "churn")


def test_filters_and_pages(db: Database) -> None:
    with db.session() as session:
        for i in range(12):
            _add(session, metrics={"auc": i / 10}, tags={"branch": "main" if i % 3 == 0 else "dev"})
    with db.read() as session:
        model = registry.get_model(session, get_project(session, "default"), "churn")
        seen: list[int] = []
        cursor = None
        while True:
            rows, cursor = registry.list_versions(session, model, limit=5, cursor=cursor)
            seen.extend(v.number for v in rows)
            if cursor is None:
                break
        assert seen == list(range(12, 0, -1))
        rows, _ = registry.list_versions(
            session, model, metrics=["auc>0.5", "auc<=1.0"], tags=["branch=main"]
        )
        assert [v.number for v in rows] == [10, 7]
        assert registry.resolve_version(session, model, "latest").number == 12
