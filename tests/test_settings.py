"""Settings: environment, TOML file, precedence, clear errors, and the generated docs page."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from funade.errors import InvalidInputError
from funade.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_derive_from_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNADE_HOME", str(tmp_path))
    settings = load_settings()
    assert settings.home == tmp_path
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'funade.db'}"
    assert settings.resolved_artifacts_url == str(tmp_path / "artifacts")
    assert settings.resolved_cache_dir == tmp_path / "cache"
    assert settings.credentials_file == tmp_path / "credentials"


def test_precedence_code_over_env_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNADE_HOME", str(tmp_path))
    (tmp_path / "config.toml").write_text(
        'port = 9001\nproject = "from-file"\nallow_cidrs = ["10.0.0.0/8"]\n'
    )
    assert load_settings().port == 9001
    assert load_settings().allow_cidrs == ["10.0.0.0/8"]
    monkeypatch.setenv("FUNADE_PORT", "9002")
    assert load_settings().port == 9002
    assert load_settings(port=9003).port == 9003
    assert load_settings().project == "from-file"


def test_api_key_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNADE_API_KEY", "fnd_123456789012_secret")
    settings = load_settings()
    assert "secret" not in repr(settings)
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "fnd_123456789012_secret"


def test_bad_values_name_the_setting_and_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNADE_PORT", "70000")
    with pytest.raises(InvalidInputError, match="Setting 'port' is invalid") as info:
        load_settings()
    assert info.value.field == "port"
    assert "FUNADE_PORT" in str(info.value)


def test_unknown_setting_in_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNADE_HOME", str(tmp_path))
    (tmp_path / "config.toml").write_text("prot = 1\n")
    with pytest.raises(InvalidInputError, match="Setting 'prot' is invalid"):
        load_settings()


def test_missing_config_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNADE_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(InvalidInputError, match="not a file") as info:
        load_settings()
    assert info.value.field == "FUNADE_CONFIG"


def test_configuration_page_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_config_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_unknown_backend_is_refused_naming_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FUNADE_BACKEND", "k8s")
    with pytest.raises(InvalidInputError, match="Setting 'backend' is invalid") as info:
        load_settings()
    assert info.value.field == "backend"
    assert info.value.value == "k8s"
    assert "'local', 'podman', 'docker' or 'kubernetes'" in str(info.value)
    assert "FUNADE_BACKEND" in str(info.value)
    monkeypatch.setenv("FUNADE_BACKEND", "kubernetes")
    assert load_settings().backend == "kubernetes"
    monkeypatch.delenv("FUNADE_BACKEND")
    assert load_settings().backend == "local"
