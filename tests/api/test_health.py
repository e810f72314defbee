"""The API's health routes: ok with the store up; with the store down, a short JSON 503 that
says the store cannot be reached, and nothing of the store's own error (which names the host,
the database and the user) nor the connection string."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import httpx
import pytest

from funade.api.app import create_app
from funade.artifacts import ArtifactStore
from funade.settings import Settings
from funade.store import Database, create_database
from tests.conftest import make_settings
from tests.servers import serve

PASSWORD = "hunter2-not-for-callers"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens there once it is closed


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/health"])
def test_health_with_the_store_up(app_url: str, path: str) -> None:
    answer = httpx.get(f"{app_url}{path}")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"
    assert answer.json()["database"] == "sqlite"


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/health"])
def test_health_with_the_store_down_says_so_and_nothing_of_its_error(
    tmp_path: Path, settings: Settings, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"postgresql+psycopg://funade:{PASSWORD}@127.0.0.1:{_closed_port()}/funade_db"
    down: Database = create_database(url)
    app = create_app(
        make_settings(tmp_path / "home2", url), down, ArtifactStore.from_settings(settings)
    )
    try:
        with serve(app) as base, caplog.at_level(logging.WARNING, "funade.api"):
            answer = httpx.get(f"{base}{path}", timeout=30)
    finally:
        down.dispose()
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unavailable"
    assert body["database"] == "postgresql"
    assert body["error"] == {
        "code": "store_unreachable",
        "message": "The metadata store (postgresql) cannot be reached.",
        "fix": "Check that the database is up and reachable from this server, and the "
        "server's log for the store's own error.",
    }
    for secret in (PASSWORD, "funade_db", "psycopg", "Connection refused", "127.0.0.1"):
        assert secret not in answer.text
    logged = [r.getMessage() for r in caplog.records if r.name == "funade.api"]
    assert any("the metadata store (postgresql) is unreachable" in m for m in logged), logged
