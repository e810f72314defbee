"""Where a model server gets its model: a registry reference or a local package.

Registry models come through the node's digest cache: downloaded once, verified by digest
(again, before anything is loaded), unpacked once; every file is checked against the manifest
before the flavor unpickles or loads anything. A reference is resolved by the control plane at
``FUNADE_URL`` or, without one, read from the local home's store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from funade.artifacts import CHUNK_SIZE, ArtifactCache, sha256_file
from funade.errors import InvalidInputError, ModelLoadError, NotFoundError
from funade.names import parse_model_ref
from funade.registry.manifest import MANIFEST_NAME
from funade.registry.package import load_package
from funade.serving.runtime import Loaded
from funade.settings import Settings

if TYPE_CHECKING:
    from funade.store import Database


def load_source(
    source: str, settings: Settings, *, name: str | None = None, expect_digest: str | None = None
) -> Loaded:
    """Load ``source``: a package directory, a package tar, or 'model[:n|@alias]'. With
    ``expect_digest``, a registry reference must name a version whose package has that digest (an
    image that pulls its model at start: the control plane it reaches is the one it was built
    from), checked before anything is downloaded."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / MANIFEST_NAME).is_file():
            raise InvalidInputError(
                f"Directory {str(path)!r} is not a model package (it has no {MANIFEST_NAME}).",
                field="source",
                value=source,
                fix="Point at a directory funade.log_model packed, or at a registry model "
                "such as 'churn:3'.",
            )
        return Loaded(model=load_package(path), name=name or path.name, version=None, digest=None)
    if path.is_file():
        digest = sha256_file(path)

        def read_file(_digest: str) -> Iterator[bytes]:
            with path.open("rb") as handle:
                while chunk := handle.read(CHUNK_SIZE):
                    yield chunk

        cache = ArtifactCache(settings.resolved_cache_dir, read_file)
        model = load_package(cache.unpacked(digest))
        return Loaded(model=model, name=name or path.stem, version=None, digest=digest)
    return _load_from_registry(source, settings, name=name, expect_digest=expect_digest)


def pin_source(source: str, settings: Settings) -> str:
    """``source`` with a registry reference pinned to one version ('churn@production' →
    'churn:3'); paths are left as they are."""
    if Path(source).expanduser().exists():
        return source
    model_name, ref = parse_model_ref(source)
    with _registry(settings) as registry:
        return f"{model_name}:{registry.resolve(model_name, ref)[0]}"


def _load_from_registry(
    source: str, settings: Settings, *, name: str | None, expect_digest: str | None = None
) -> Loaded:
    model_name, ref = parse_model_ref(source)
    expected = expect_digest
    with _registry(settings) as registry:
        number, digest = registry.resolve(model_name, ref)
        if expected is not None and digest != expected:
            raise InvalidInputError(
                f"{model_name}:{number} at {settings.url or settings.home} has the package "
                f"{digest}, not {expected}.",
                field="digest",
                value=digest,
                fix="Point FUNADE_URL at the control plane the image was built from (its label "
                "dev.funade.digest names the package), or build an image of this version.",
            )
        cache = ArtifactCache(settings.resolved_cache_dir, registry.open)
        cache.blob_path(digest)
        if not cache.verify(digest):
            cache.evict(digest)
            cache.blob_path(digest)
    model = load_package(cache.unpacked(digest))
    model.name, model.version = model_name, number
    return Loaded(model=model, name=name or model_name, version=str(number), digest=digest)


class _Registry(Protocol):
    def resolve(self, model: str, ref: str) -> tuple[int, str]:
        """The version number and artifact digest ``ref`` names."""
        ...

    def open(self, digest: str) -> Iterator[bytes]:
        """The artifact's bytes (verified by the cache)."""
        ...


@contextmanager
def _registry(settings: Settings) -> Iterator[_Registry]:
    """The control plane at ``FUNADE_URL``; without one, the local home's store and artifacts
    read directly (what the in-process API would read, without starting one: a second off
    every replica's start)."""
    if settings.url:
        with _RemoteRegistry(settings) as remote:
            yield remote
        return
    local = _LocalRegistry(settings)
    try:
        yield local
    finally:
        local.close()


class _RemoteRegistry:
    def __init__(self, settings: Settings) -> None:
        from funade.client import Client

        self._client = Client(settings=settings)

    def __enter__(self) -> _RemoteRegistry:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._client.close()

    def resolve(self, model: str, ref: str) -> tuple[int, str]:
        version = self._client.get_version(model, ref)
        return version.version, version.artifact.digest

    def open(self, digest: str) -> Iterator[bytes]:
        return self._client.open_artifact(digest)


class _LocalRegistry:
    """The local home's store and artifacts, read directly.

    A SQLite store is asked first with one query of the standard library's ``sqlite3``
    (``_resolve_in_sqlite``): importing SQLAlchemy and the store's schema for that one read
    takes 0.3 s of a model server's cold start. A reference it does not find, another
    database, or a schema it cannot read goes through the store as the API reads it, which
    gives the errors."""

    def __init__(self, settings: Settings) -> None:
        from funade.artifacts import ArtifactStore

        url = settings.resolved_database_url
        self._sqlite_file = _sqlite_file(url)
        if self._sqlite_file is not None and not self._sqlite_file.is_file():
            raise NotFoundError(
                f"There is no registry at {settings.home} yet ({self._sqlite_file} does not "
                "exist).",
                field="source",
                value=str(settings.home),
                fix="Register a model with funade.log_model (or `funade up --demo`), set "
                "FUNADE_HOME to the home that has it, or FUNADE_URL to its control plane.",
            )
        self._settings = settings
        self._url = url
        self._db: Database | None = None
        self._artifacts = ArtifactStore.from_settings(settings)

    def resolve(self, model: str, ref: str) -> tuple[int, str]:
        if self._sqlite_file is not None:
            found = _resolve_in_sqlite(self._sqlite_file, self._settings.project, model, ref)
            if found is not None:
                return found
        return self._resolve_in_store(model, ref)

    def _resolve_in_store(self, model: str, ref: str) -> tuple[int, str]:
        from sqlalchemy.exc import SQLAlchemyError

        from funade.projects import get_project
        from funade.registry import service
        from funade.store import create_database

        self._db = self._db or create_database(self._url)
        try:
            with self._db.read() as session:
                project = get_project(session, self._settings.project)
                version = service.resolve_version(
                    session, service.get_model(session, project, model), ref
                )
                return version.number, version.artifact_digest
        except SQLAlchemyError as exc:
            raise ModelLoadError(
                f"The store at {self._db.url} could not be read: {type(exc).__name__}.",
                field="database_url",
                value=self._db.url,
                fix="Run `funade db upgrade` if funade was upgraded, or set FUNADE_URL to the "
                "control plane to serve from.",
            ) from None

    def open(self, digest: str) -> Iterator[bytes]:
        return self._artifacts.open(digest)

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()


def _sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///`` store URL (None: another database, or options)."""
    if not url.startswith("sqlite:///") or "?" in url or url.endswith(":memory:"):
        return None
    return Path(url.removeprefix("sqlite:///"))


_BY_NUMBER = """
    SELECT v.number, v.artifact_digest FROM model_versions v
    JOIN models m ON m.id = v.model_id JOIN projects p ON p.id = m.project_id
    WHERE p.name = ? AND m.name = ? AND v.number = ?"""
_LATEST = """
    SELECT v.number, v.artifact_digest FROM model_versions v
    JOIN models m ON m.id = v.model_id JOIN projects p ON p.id = m.project_id
    WHERE p.name = ? AND m.name = ? AND NOT v.archived ORDER BY v.number DESC LIMIT 1"""
_BY_ALIAS = """
    SELECT v.number, v.artifact_digest FROM aliases a
    JOIN model_versions v ON v.id = a.version_id
    JOIN models m ON m.id = a.model_id JOIN projects p ON p.id = m.project_id
    WHERE p.name = ? AND m.name = ? AND a.name = ?"""


def _resolve_in_sqlite(file: Path, project: str, model: str, ref: str) -> tuple[int, str] | None:
    """What ``registry.service.resolve_version`` answers for ``model``/``ref`` in ``project``
    (a number, 'latest' or an alias), read from the SQLite file without SQLAlchemy; None if it
    finds nothing or cannot read the file (the caller then asks the store, for its error)."""
    args: tuple[object, ...]
    if ref.isdigit():
        query, args = _BY_NUMBER, (project, model, int(ref))
    elif ref == "latest":
        query, args = _LATEST, (project, model)
    else:
        query, args = _BY_ALIAS, (project, model, ref)
    try:
        with closing(
            sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        ) as connection:
            row = connection.execute(query, args).fetchone()
    except sqlite3.Error:
        return None
    if row is None or type(row[0]) is not int or type(row[1]) is not str:
        return None
    return row[0], row[1]
