"""SQLite runs in WAL mode with foreign keys; writers queue instead of failing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from funade.errors import InvalidInputError
from funade.projects import create_project, get_project
from funade.store import create_database, upgrade


def test_sqlite_uses_wal_and_foreign_keys(tmp_path: Path) -> None:
    db = create_database(f"sqlite:///{tmp_path / 'nested' / 'f.db'}")
    with db.read() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
    db.dispose()


def test_bad_database_url_names_the_fix() -> None:
    with pytest.raises(InvalidInputError) as info:
        create_database("not a url")
    assert info.value.field == "database_url"
    assert "postgresql+psycopg://" in str(info.value)


def test_concurrent_writers_do_not_fail(database_url: str) -> None:
    db = create_database(database_url)
    upgrade(db)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for j in range(5):
                with db.session() as session:
                    create_project(session, f"p{i}-{j}")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.read() as session:
        assert get_project(session, "p5-4").name == "p5-4"
    db.dispose()


def test_on_commit_tells_watchers_of_their_tables_after_commit_only(tmp_path: Path) -> None:
    db = create_database(f"sqlite:///{tmp_path / 'f.db'}")
    upgrade(db)
    calls: list[str] = []
    remove = db.on_commit({"projects"}, lambda: calls.append("projects"))
    db.on_commit({"models"}, lambda: calls.append("models"))
    with db.session() as session:
        create_project(session, "alpha")
    assert calls == ["projects"]
    with db.read() as session:
        get_project(session, "alpha")

    def written_then_rolled_back() -> None:
        with db.session() as session:
            create_project(session, "beta")
            session.flush()
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        written_then_rolled_back()
    assert calls == ["projects"]  # a rollback tells nobody
    remove()
    with db.session() as session:
        create_project(session, "gamma")
    assert calls == ["projects"]
    db.dispose()
