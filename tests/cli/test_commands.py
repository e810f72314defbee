"""The CLI against a real control plane: tables for people, --json for scripts, clear errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import funade
from funade.client import Client
from tests.cli.conftest import Result
from tests.models import logistic_regression, sample


@pytest.fixture
def remote(app_url: str, admin_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNADE_URL", app_url)
    monkeypatch.setenv("FUNADE_API_KEY", admin_key)


def test_models_commands(
    remote: None, admin: Client, cli: Callable[..., Result], tmp_path: Path
) -> None:
    funade.log_model(
        logistic_regression(), "churn", sample_input=sample(), client=admin, metrics={"auc": 0.9}
    )
    funade.log_model(logistic_regression(), "churn", sample_input=sample(), client=admin)
    listed = cli("models", "list")
    assert listed.code == 0, listed.err
    assert "churn" in listed.out
    as_json = json.loads(cli("models", "list", "--json").out)
    assert as_json["items"][0]["latest_version"] == 2
    assert (
        cli("models", "alias", "churn", "production", "1").out.strip()
        == "churn@production → version 1"
    )
    shown = cli("models", "show", "churn@production")
    assert "churn:1" in shown.out
    assert "sklearn" in shown.out
    versions = json.loads(cli("models", "versions", "churn", "--metric", "auc>0.5", "--json").out)
    assert [v["version"] for v in versions["items"]] == [1]
    assert cli("models", "archive", "churn:2").out.strip() == "Archived churn:2."
    assert admin.get_version("churn", 2).archived
    out = tmp_path / "churn.tar"
    downloaded = cli("models", "download", "churn@production", "-o", str(out))
    assert downloaded.code == 0, downloaded.err
    assert out.stat().st_size == admin.get_version("churn", 1).artifact.size


def test_keys_and_audit_commands(remote: None, cli: Callable[..., Result]) -> None:
    created = cli(
        "keys", "create", "ci", "--scope", "write", "--project", "default", "--expires", "30d"
    )
    assert created.code == 0, created.err
    key = created.out.strip().splitlines()[-1]
    assert key.startswith("fnd_")
    keys = json.loads(cli("keys", "list", "--json").out)
    ci = next(k for k in keys if k["name"] == "ci")
    assert ci["scopes"] == ["write"]
    assert ci["expires_at"]
    assert cli("keys", "revoke", ci["id"]).out.startswith(f"Revoked key {ci['id']}")
    audit = cli("audit", "--action", "key.")
    assert "key.revoke" in audit.out
    assert "key.create" in audit.out


def test_errors_are_one_clear_line(remote: None, cli: Callable[..., Result]) -> None:
    missing = cli("models", "show", "nope")
    assert missing.code == 2
    assert "error: Model 'nope' does not exist in project 'default'." in missing.err
    assert "Traceback" not in missing.err + missing.out
    bad = cli("keys", "create", "x", "--scope", "read", "--expires", "soon")
    assert bad.code == 2
    assert "--expires 'soon' is not a duration" in bad.err


def test_local_mode_and_db_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]
) -> None:
    monkeypatch.setenv("FUNADE_HOME", str(tmp_path / "home"))
    upgraded = cli("db", "upgrade")
    assert upgraded.code == 0, upgraded.err
    assert "Upgraded" in upgraded.out
    assert "already at schema" in cli("db", "upgrade").out
    listed = cli("projects", "list", "--json")
    assert [p["name"] for p in json.loads(listed.out)] == ["default"]
