"""funade.log_model / funade.load_model, in-process (no FUNADE_URL) and over HTTP."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest

import funade
from funade import sdk
from funade.client import Client
from funade.errors import InvalidNameError, NotFoundError
from funade.settings import load_settings
from tests.models import logistic_regression, sample


@pytest.fixture
def local_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("FUNADE_HOME", str(home))
    yield home
    sdk._close_default()


def test_in_process_round_trip(local_home: Path) -> None:
    model = logistic_regression()
    version = funade.log_model(
        model,
        "churn",
        sample_input=sample(),
        params={"C": 1.0},
        metrics={"auc": 0.9},
        alias="production",
    )
    assert version.version == 1
    assert version.aliases == ["production"]
    # The in-process API made a home: database, artifacts and an admin key only we can read.
    assert (local_home / "funade.db").is_file()
    credentials = local_home / "credentials"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    loaded = funade.load_model("churn@production")
    assert (loaded.name, loaded.version) == ("churn", 1)
    np.testing.assert_array_equal(loaded.predict(sample()), model.predict(sample()))
    assert funade.load_model("churn:1").version == 1
    assert funade.load_model("churn").version == 1


def test_load_uses_the_digest_cache(local_home: Path) -> None:
    version = funade.log_model(logistic_regression(), "churn", sample_input=sample())
    funade.load_model("churn")
    digest = version.artifact.digest
    assert (local_home / "cache" / "blobs" / digest[7:]).is_file()


def test_lineage_is_captured_from_the_callers_repository(
    local_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (
        ["init", "-q", "-b", "feature-x"],
        ["config", "user.email", "t@example.com"],
        ["config", "user.name", "t"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True)
    (repo / "train.py").write_text("print('train')\n")
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=repo, check=True)
    monkeypatch.chdir(repo)
    monkeypatch.setattr("__main__.__file__", str(repo / "train.py"), raising=False)
    version = funade.log_model(
        logistic_regression(), "churn", sample_input=sample(), datasets={"train": sample()}
    )
    git = version.lineage["git"]
    assert git["branch"] == "feature-x"
    assert len(git["commit"]) == 40
    assert git["dirty"] is False
    assert version.lineage["datasets"]["train"]["digest"].startswith("sha256:")
    assert "scikit-learn" in version.lineage["packages"]


def test_over_http_when_funade_url_is_set(
    app_url: str, admin_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNADE_URL", app_url)
    monkeypatch.setenv("FUNADE_API_KEY", admin_key)
    with Client() as client:
        assert not client.is_local
        assert client.url == app_url
        version = funade.log_model(
            logistic_regression(), "churn", sample_input=sample(), client=client
        )
        assert version.version == 1
        loaded = funade.load_model(
            "churn", client=client, cache_dir=Path(load_settings().home) / "c"
        )
        assert loaded.version == 1


def test_bad_refs_and_names(local_home: Path) -> None:
    with pytest.raises(InvalidNameError, match="not a version number") as info:
        funade.load_model("churn:abc")
    assert info.value.field == "ref"
    with pytest.raises(InvalidNameError, match="not allowed"):
        funade.log_model(logistic_regression(), "../x", sample_input=sample())
    with pytest.raises(NotFoundError, match="Model 'nope' does not exist"):
        funade.load_model("nope")


def test_public_surface_is_curated() -> None:
    assert set(funade.__all__) == {
        "APIError",
        "ArtifactCorruptError",
        "AuthenticationError",
        "Client",
        "ConflictError",
        "DigestMismatchError",
        "FunadeError",
        "ImageInput",
        "InvalidArtifactError",
        "InvalidInputError",
        "InvalidNameError",
        "ModelLoadError",
        "NotFoundError",
        "PayloadTooLargeError",
        "PermissionDeniedError",
        "UnknownFlavorError",
        "__version__",
        "deploy",
        "load_model",
        "log_model",
        "pipeline",
        "resume_run",
        "run_pipeline",
        "step",
        "when",
    }
    for name in funade.__all__:
        assert hasattr(funade, name), name
