"""The control plane's IP allowlist and JSON body limit."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from funade.api.app import create_app
from funade.artifacts import ArtifactStore
from funade.errors import InvalidInputError
from funade.settings import load_settings
from funade.store import Database
from tests.conftest import make_settings
from tests.servers import serve


def test_ip_allowlist_refuses_other_addresses(
    tmp_path: Path, database: Database, admin_key: str
) -> None:
    settings = make_settings(
        tmp_path / "home", str(database.engine.url), allow_cidrs=["10.0.0.0/8"]
    )
    app = create_app(settings, database, ArtifactStore.from_settings(settings))
    headers = {"authorization": f"Bearer {admin_key}"}
    with serve(app) as url:
        refused = httpx.get(f"{url}/api/v1/projects", headers=headers)
        assert refused.status_code == 403
        assert refused.json()["error"]["message"] == (
            "Address '127.0.0.1' is not allowed to use this control plane. "
            "Call from an allowed network, or add yours to FUNADE_ALLOW_CIDRS."
        )
        assert httpx.get(f"{url}/api/v1/health").status_code == 200
    allowed = make_settings(
        tmp_path / "home", str(database.engine.url), allow_cidrs=["127.0.0.0/8"]
    )
    with serve(create_app(allowed, database, ArtifactStore.from_settings(allowed))) as url:
        assert httpx.get(f"{url}/api/v1/projects", headers=headers).status_code == 200


def test_bad_cidr_setting_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNADE_ALLOW_CIDRS", '["10.0.0.0/33"]')
    with pytest.raises(InvalidInputError, match="allow_cidrs") as info:
        load_settings()
    assert "10.0.0.0/8" in str(info.value)


def test_json_body_limit(tmp_path: Path, database: Database, admin_key: str) -> None:
    settings = make_settings(tmp_path / "home", str(database.engine.url), max_json_bytes=1000)
    app = create_app(settings, database, ArtifactStore.from_settings(settings))
    headers = {"authorization": f"Bearer {admin_key}"}
    with serve(app) as url:
        big = {"name": "x", "description": "y" * 5000}
        response = httpx.post(f"{url}/api/v1/projects/default/models", json=big, headers=headers)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"

        def chunks():  # no content-length: counted as it streams
            yield b'{"name": "x", "description": "'
            yield b"y" * 5000
            yield b'"}'

        streamed = httpx.post(
            f"{url}/api/v1/projects/default/models",
            content=chunks(),
            headers={**headers, "content-type": "application/json"},
        )
        assert streamed.status_code == 413
        assert "larger than 1000 bytes" in streamed.json()["error"]["message"]
