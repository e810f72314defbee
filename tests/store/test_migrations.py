"""The Alembic migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from funade.store import create_database, upgrade
from funade.store.migrate import current_revision, head_revision, is_current
from funade.store.schema import Base


def test_upgrade_builds_declared_schema(database_url: str) -> None:
    db = create_database(database_url)
    assert current_revision(db) is None
    assert not is_current(db)
    upgrade(db)
    assert current_revision(db) == head_revision()
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], f"schema.py and the migrations disagree: {diff}"
    assert {"projects", "models", "model_versions", "api_keys", "audit_log"} <= set(
        inspect(db.engine).get_table_names()
    )
    db.dispose()


def test_upgrade_is_idempotent(database_url: str) -> None:
    db = create_database(database_url)
    upgrade(db)
    upgrade(db)
    assert is_current(db)
    db.dispose()


def test_upgrade_of_a_home_with_data_keeps_it(database_url: str) -> None:
    """A home an earlier version filled upgrades in place: its projects and keys stay, the
    new columns take their defaults, and the step cache (whose entries carry no provenance)
    is emptied."""
    from datetime import UTC, datetime

    from sqlalchemy import MetaData, Table, select

    from funade.store.schema import ApiKey, PipelineCacheEntry, Project

    db = create_database(database_url)
    upgrade(db, "0006")
    tables = {
        name: Table(name, MetaData(), autoload_with=db.engine)
        for name in ("projects", "api_keys", "pipeline_cache")
    }
    now = datetime.now(UTC)
    with db.engine.begin() as connection:
        [project_id] = connection.execute(
            tables["projects"].insert().values(name="default", description="", created_at=now)
        ).inserted_primary_key or [None]
        connection.execute(
            tables["api_keys"]
            .insert()
            .values(
                id="a" * 12,
                name="ci",
                scopes=["write"],
                project_id=project_id,
                secret_hash="0" * 64,
                created_at=now,
                kind="key",
                predictions=0,
            )
        )
        connection.execute(
            tables["pipeline_cache"]
            .insert()
            .values(
                project_id=project_id, key="k", outputs={}, run_id=1, instance="a", created_at=now
            )
        )
    upgrade(db)
    with db.read() as session:
        project = session.scalars(select(Project)).one()
        assert project.trust_code is False
        key = session.scalars(select(ApiKey)).one()
        assert (key.name, key.scopes, key.run_id, key.grants) == ("ci", ["write"], None, None)
        assert session.scalars(select(PipelineCacheEntry)).all() == []
    db.dispose()


def test_at_head_reads_the_revision_without_alembic(database_url: str) -> None:
    """``at_head`` (what opening a home asks, so the SDK and CLI do not import Alembic each time)
    agrees with Alembic: the head it reads from the files is Alembic's, and a store is at head
    only once upgraded to it."""
    from funade.store.migrate import at_head, known_head

    assert known_head() == head_revision()
    db = create_database(database_url)
    assert not at_head(db)  # empty: no alembic_version table
    upgrade(db, "0007")
    assert not at_head(db)
    upgrade(db)
    assert at_head(db)
    db.dispose()


def test_known_head_gives_up_on_what_it_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge revision (a tuple of parents) or two heads: None, and Alembic decides."""
    from funade.store import migrate

    versions = tmp_path / "versions"
    versions.mkdir()
    monkeypatch.setattr(migrate, "MIGRATIONS", tmp_path)
    (versions / "a.py").write_text('revision: str = "a"\ndown_revision: str | None = None\n')
    (versions / "b.py").write_text('revision: str = "b"\ndown_revision: str | None = "a"\n')
    assert migrate.known_head() == "b"
    (versions / "c.py").write_text('revision: str = "c"\ndown_revision: str | None = "a"\n')
    assert migrate.known_head() is None  # b and c: two heads
    (versions / "c.py").write_text('revision = "c"\ndown_revision = ("a", "b")\n')
    assert migrate.known_head() is None  # a merge


def test_rollouts_are_numbered_per_deployment_on_upgrade(database_url: str) -> None:
    """0011 numbers the rollouts of a home with data 1, 2, … within each deployment, in the
    order they were made (their global ids interleave), and new ones go on from there."""
    from datetime import UTC, datetime

    from sqlalchemy import MetaData, Table, select

    from funade.store.schema import Rollout

    db = create_database(database_url)
    upgrade(db, "0010")
    meta = MetaData()
    tables = {
        name: Table(name, meta, autoload_with=db.engine)
        for name in ("projects", "models", "deployments", "rollouts")
    }
    now = datetime.now(UTC)
    with db.engine.begin() as connection:
        [project_id] = connection.execute(
            tables["projects"].insert().values(name="default", description="", created_at=now)
        ).inserted_primary_key or [None]
        [model_id] = connection.execute(
            tables["models"]
            .insert()
            .values(
                project_id=project_id,
                name="calc",
                description="",
                tags={},
                archived=False,
                next_version=1,
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key or [None]
        ids = {}
        for name in ("cancer", "churn"):
            [ids[name]] = connection.execute(
                tables["deployments"]
                .insert()
                .values(
                    project_id=project_id,
                    name=name,
                    model_id=model_id,
                    description="",
                    traffic={},
                    policy={},
                    state="active",
                    next_revision=3,
                    generation=1,
                    created_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key or [None]
        for name in ("churn", "cancer", "churn", "cancer", "cancer"):
            connection.execute(
                tables["rollouts"]
                .insert()
                .values(
                    deployment_id=ids[name],
                    revision=1,
                    strategy="direct",
                    options={},
                    state="succeeded",
                    step=0,
                    reason="",
                    history=[],
                    created_at=now,
                    updated_at=now,
                )
            )
    upgrade(db)
    with db.read() as session:
        rows = session.execute(select(Rollout.id, Rollout.deployment_id, Rollout.number)).all()
    numbers = {(deployment, number): rid for rid, deployment, number in rows}
    assert sorted(numbers) == sorted(
        [(ids["churn"], n) for n in (1, 2)] + [(ids["cancer"], n) for n in (1, 2, 3)]
    )
    assert numbers[(ids["churn"], 1)] < numbers[(ids["cancer"], 1)] < numbers[(ids["churn"], 2)]
    db.dispose()


def test_remote_schedules_go_up_and_down(database_url: str) -> None:
    """0012 adds the record of remote schedules to a home with data and takes it away again,
    leaving 0011's schema (and its rows) as they were."""
    from datetime import UTC, datetime

    from alembic import command
    from sqlalchemy import MetaData, Table, select
    from sqlalchemy.exc import IntegrityError

    from funade.store.migrate import _config

    db = create_database(database_url)
    upgrade(db, "0011")
    projects = Table("projects", MetaData(), autoload_with=db.engine)
    now = datetime.now(UTC)
    with db.engine.begin() as connection:
        [project_id] = connection.execute(
            projects.insert().values(name="default", description="", created_at=now)
        ).inserted_primary_key or [None]
    upgrade(db, "0012")
    assert current_revision(db) == "0012"
    schedules = Table("remote_schedules", MetaData(), autoload_with=db.engine)
    row = {
        "project_id": project_id,
        "target": "kubeflow",
        "engine_id": "rr-1",
        "console": "",
        "cron": "0 3 * * *",
        "pipeline": "flow",
        "source": "",
        "created_at": now,
        "ended_reason": "",
    }
    with db.engine.begin() as connection:
        connection.execute(schedules.insert().values(**row))
        # one record per schedule of an engine
        with pytest.raises(IntegrityError), connection.begin_nested():
            connection.execute(schedules.insert().values(**row))
        assert connection.execute(select(schedules.c.engine_id)).scalars().all() == ["rr-1"]
    config = _config(db)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0011")
    assert current_revision(db) == "0011"
    assert "remote_schedules" not in inspect(db.engine).get_table_names()
    with db.engine.connect() as connection:
        assert connection.execute(select(projects.c.name)).scalars().all() == ["default"]
    upgrade(db)
    assert is_current(db)
    assert "remote_schedules" in inspect(db.engine).get_table_names()
    db.dispose()
