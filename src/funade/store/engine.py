"""Engines and sessions over SQLite (WAL, the default) or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from funade.errors import InvalidInputError


class Database:
    """An Engine and the session factory over it. Creating one does no I/O."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Writers take SQLite's write lock when they begin (BEGIN IMMEDIATE), so two writers
        # queue on the busy timeout instead of failing when a read lock cannot be upgraded.
        self._writes = sessionmaker(
            engine.execution_options(funade_write=True), expire_on_commit=False
        )
        self._reads = sessionmaker(engine, expire_on_commit=False)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read-write session in one transaction: committed on success, rolled back on error."""
        with self._writes.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session (on SQLite it does not take the write lock)."""
        with self._reads.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def create_database(url: str, **engine_options: Any) -> Database:
    """A Database for ``url``; SQLite gets WAL, a busy timeout and enforced foreign keys."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidInputError(
            f"database_url {url!r} is not a database URL.",
            field="database_url",
            value=url,
            fix="Use e.g. 'sqlite:////path/funade.db' or 'postgresql+psycopg://user@host/db'.",
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30}, **engine_options)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine_options.setdefault("pool_pre_ping", True)
        engine = create_engine(parsed, **engine_options)
    return Database(engine)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get("funade_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
