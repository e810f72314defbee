"""Engines and sessions over SQLite (WAL, the default) or PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from itertools import chain
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
        self._watchers: list[tuple[frozenset[str], Callable[[], None]]] = []
        self._watch_lock = threading.Lock()
        event.listen(self._writes, "after_flush", _note_tables)
        event.listen(self._writes, "after_commit", self._committed)
        event.listen(self._writes, "after_soft_rollback", _forget_tables)

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

    def on_commit(
        self, tables: Collection[str], callback: Callable[[], None]
    ) -> Callable[[], None]:
        """Call ``callback`` (in the committing thread, so it must be quick) after a write
        session of *this* Database commits ORM changes (rows added, changed or deleted through
        the session's objects) to one of ``tables``; returns a function that stops it.

        What it does not see: other processes and other Database objects over the same store,
        and Core ``update()``/``delete()`` statements; a watcher that must not miss a change
        also reads the store now and then."""
        watcher = (frozenset(tables), callback)
        with self._watch_lock:
            self._watchers.append(watcher)

        def remove() -> None:
            with self._watch_lock:
                if watcher in self._watchers:
                    self._watchers.remove(watcher)

        return remove

    def _committed(self, session: Session) -> None:
        tables = session.info.pop(_TABLES, None)
        if not tables:
            return
        with self._watch_lock:
            due = [callback for watched, callback in self._watchers if watched & tables]
        for callback in due:
            callback()


_TABLES = "funade_changed_tables"


def _note_tables(session: Session, _flush_context: Any) -> None:
    """Remember which tables this flush wrote (``new``/``dirty``/``deleted`` still hold the
    flushed objects here), for the commit's watchers."""
    changed = {
        table.name
        for obj in chain(session.new, session.dirty, session.deleted)
        if (table := getattr(obj, "__table__", None)) is not None
    }
    if changed:
        session.info.setdefault(_TABLES, set()).update(changed)


def _forget_tables(session: Session, _previous: Any) -> None:
    session.info.pop(_TABLES, None)


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
