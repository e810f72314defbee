"""Shared fixtures: a funade home in a temp dir, the store on SQLite and PostgreSQL, a real
control-plane server on a free port, and clients with keys of each scope."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from funade.api.app import create_app
from funade.artifacts import ArtifactStore
from funade.bootstrap import bootstrap
from funade.client import Client
from funade.settings import Settings
from funade.store import Database, create_database, upgrade
from tests.servers import serve

POSTGRES_URL = os.environ.get(
    "FUNADE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_reachable() -> str | None:
    try:
        import psycopg

        url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, connect_timeout=3):
            return None
    except Exception as exc:
        return str(exc)


PODMAN_LOCK = Path(tempfile.gettempdir()) / "funade-tests-podman.lock"
"""Held by whichever worker (or other run of the suite on this machine) is running a test module
that uses the real podman."""

_podman_modules: set[str] = set()
_podman_lock: list[Any] = []  # the open lock file while this process holds it


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Note the test modules that run the real podman (a test with the ``podman_ready``
    fixture: it builds, runs or removes images)."""
    _podman_modules.update(_module(i) for i in items if "podman_ready" in _fixtures(i))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """One podman test module at a time on this machine: a worker takes an exclusive lock before
    the first test of such a module and lets it go after the module's last test and its module
    fixtures' teardown (the suite runs with ``--dist loadscope``: a module's tests on one worker,
    in order). A ``podman rmi`` during another test's build deletes the untagged intermediate
    images the build is matching as its cache, and the build silently makes new layers (which
    made test_podman_build.py's layer-reuse check fail in CI); two builds at once may also share
    cache entries a later build takes. (``--dist loadgroup`` would do this per worker, but
    pytest-xdist 3.8 cannot group under pytest 9's node ids.)"""
    module = _module(item)
    if module in _podman_modules and not _podman_lock:
        handle = PODMAN_LOCK.open("a")
        fcntl.flock(handle, fcntl.LOCK_EX)
        _podman_lock.append(handle)
    try:
        return (yield)
    finally:
        if _podman_lock and (nextitem is None or _module(nextitem) != module):
            handle = _podman_lock.pop()
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def _fixtures(item: pytest.Item) -> list[str]:
    return list(getattr(item, "fixturenames", ()))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The request counts the reliability scenarios attach to their reports (tests/reliability/;
    here, because with pytest-xdist only the root conftest is loaded where the summary prints)."""
    lines = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        for name, value in getattr(report, "user_properties", ())
        if name == "reliability"
    ]
    if lines:
        terminalreporter.section("reliability: requests under load")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def sandboxes() -> Iterator[Path]:
    """Where tests' sandboxes go: a directory other users can reach (pytest's own temp
    directory is private to root), so projects' processes run as their own users in tests as
    they do under `funade up` as root."""
    base = Path(tempfile.mkdtemp(prefix="funade-test-sandboxes-"))
    base.chmod(0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def public_dir(sandboxes: Path) -> Path:
    """A directory every user can read (pytest's temp directories are private to root): for
    pipeline files the control plane starts, which run as their project's user."""
    path = sandboxes / f"public-{uuid.uuid4().hex[:12]}"
    path.mkdir(mode=0o755)
    path.chmod(0o755)
    return path


@pytest.fixture(autouse=True)
def _quiet_httpx() -> Iterator[None]:
    """httpx logs each request at INFO. When a library in the test process raises the root
    logger to INFO with a handler on stdout (kfp.local does while it runs a pipeline), those
    lines land in what an in-process `funade ... --json` printed; they are not funade's."""
    logger = logging.getLogger("httpx")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandboxes: Path) -> None:
    """Tests never see the developer's FUNADE_* settings or home."""
    for name in list(os.environ):
        if name.startswith("FUNADE_") and name != "FUNADE_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("FUNADE_HOME", str(tmp_path / "default-home"))
    monkeypatch.setenv("FUNADE_SANDBOX_DIR", str(sandboxes / uuid.uuid4().hex[:12]))


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    problem = _postgres_reachable()
    if problem is not None and os.environ.get("CI"):
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is not reachable in CI: {problem}")
    return problem is None


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The store's URL: a fresh SQLite file, or a fresh schema in the PostgreSQL test database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'funade.db'}"
        return
    if not request.getfixturevalue("postgres_available"):
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    raw = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(raw, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(raw, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'funade.db'}"


def make_settings(home: Path, database_url: str, **extra: object) -> Settings:
    return Settings(home=home, database_url=database_url, **extra)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    """Settings over a temp home on SQLite (most API tests need one store, not both)."""
    return make_settings(tmp_path / "home", sqlite_url)


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    db = create_database(settings.resolved_database_url)
    upgrade(db)
    yield db
    db.dispose()


@pytest.fixture
def admin_key(settings: Settings, database: Database) -> str:
    return bootstrap(settings, database).admin_key


@pytest.fixture
def app_url(settings: Settings, database: Database, admin_key: str) -> Iterator[str]:
    """A real control plane on a free port."""
    app = create_app(settings, database, ArtifactStore.from_settings(settings))
    with serve(app) as url:
        yield url


@pytest.fixture
def admin(app_url: str, admin_key: str, settings: Settings) -> Iterator[Client]:
    with Client(url=app_url, api_key=admin_key, settings=settings) as client:
        yield client


@pytest.fixture
def key_for(admin: Client, app_url: str, settings: Settings) -> Iterator[object]:
    """``key_for(scopes, project=...)`` → a Client authenticated with a new key."""
    made: list[Client] = []

    def factory(scopes: list[str], project: str | None = "default") -> Client:
        new = admin.create_key(f"test-{'-'.join(scopes)}", scopes, project=project)
        client = Client(url=app_url, api_key=new.key, project=project, settings=settings)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    """Runs the real `funade` entry point in-process and captures what it prints."""
    from funade.cli import main

    def run(*args: str) -> Result:
        monkeypatch.setattr(sys, "argv", ["funade", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Result(code=code, out=captured.out, err=captured.err)

    return run
