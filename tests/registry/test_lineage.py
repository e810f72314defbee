"""Lineage: git state of the training code, environment, and dataset digests."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from funade.errors import InvalidInputError
from funade.registry.lineage import capture_lineage, describe_dataset, strip_credentials

GIT = [
    "git",
    "-c",
    "user.name=Test",
    "-c",
    "user.email=test@example.com",
    "-c",
    "commit.gpgsign=false",
]


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run([*GIT, *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "--quiet", "--initial-branch=feature/churn")
    (root / "train.py").write_text("print('train')\n")
    git(root, "add", "train.py")
    git(root, "commit", "--quiet", "-m", "first")
    git(
        root, "remote", "add", "origin", "https://alice:ghp_secret@github.example.com/org/churn.git"
    )
    return root


def test_git_state_of_a_repository(repo: Path) -> None:
    lineage = capture_lineage(cwd=repo / ".")
    state = lineage["git"]
    assert state["commit"] == git(repo, "rev-parse", "HEAD")
    assert len(state["commit"]) == 40
    assert state["branch"] == "feature/churn"
    assert state["dirty"] is False
    assert state["remote_url"] == "https://github.example.com/org/churn.git"
    assert "ghp_secret" not in str(lineage)


def test_editing_a_tracked_file_makes_it_dirty(repo: Path) -> None:
    (repo / "train.py").write_text("print('changed')\n")
    assert capture_lineage(cwd=repo)["git"]["dirty"] is True


def test_subdirectory_and_detached_head(repo: Path) -> None:
    (repo / "src").mkdir()
    git(repo, "checkout", "--quiet", "--detach")
    state = capture_lineage(cwd=repo / "src")["git"]
    assert state["branch"] is None
    assert state["commit"] == git(repo, "rev-parse", "HEAD")


def test_outside_a_repository_git_is_none(tmp_path: Path) -> None:
    assert capture_lineage(cwd=tmp_path)["git"] is None


def test_without_git_installed_git_is_none(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(repo))  # no git executable there
    assert capture_lineage(cwd=repo)["git"] is None


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("https://user:token@host/x", "https://host/x"),
        ("https://token@host:8443/x.git?private_token=1", "https://host:8443/x.git"),
        ("ssh://git@host/org/x.git", "ssh://host/org/x.git"),
        ("git@github.com:org/x.git", "git@github.com:org/x.git"),
        ("https://host/x", "https://host/x"),
    ],
)
def test_strip_credentials(url: str, clean: str) -> None:
    assert strip_credentials(url) == clean


def test_environment_is_recorded(tmp_path: Path) -> None:
    lineage = capture_lineage(cwd=tmp_path)
    assert lineage["python"] == platform.python_version()
    assert lineage["platform"]
    assert lineage["packages"]["numpy"] == np.__version__
    assert "scikit-learn" in lineage["packages"]
    assert "not-installed-package" not in lineage["packages"]
    assert lineage["datasets"] == {}


def test_array_digest_is_stable_and_sensitive() -> None:
    x = np.arange(12, dtype=np.float64).reshape(3, 4)
    first = describe_dataset("x", x)
    assert first == describe_dataset("x", x.copy())
    assert first["kind"] == "ndarray"
    assert first["shape"] == [3, 4]
    assert first["digest"].startswith("sha256:")
    changed = x.copy()
    changed[0, 0] = -1
    assert describe_dataset("x", changed)["digest"] != first["digest"]
    assert describe_dataset("x", x.reshape(4, 3))["digest"] != first["digest"]
    assert describe_dataset("x", x.astype(np.float32))["digest"] != first["digest"]
    assert describe_dataset("x", np.asfortranarray(x))["digest"] == first["digest"]


def test_object_array_digest_is_stable() -> None:
    a = np.array(["a", "b", None], dtype=object)
    assert describe_dataset("a", a) == describe_dataset(
        "a", np.array(["a", "b", None], dtype=object)
    )
    assert describe_dataset("a", a)["digest"] != describe_dataset("a", a[::-1].copy())["digest"]


def test_dataframe_digest_is_stable_and_sensitive() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    first = describe_dataset("train", frame)
    assert first == describe_dataset("train", frame.copy())
    assert first["kind"] == "dataframe"
    assert (first["rows"], first["columns"]) == (3, 2)
    assert describe_dataset("train", frame.rename(columns={"a": "c"}))["digest"] != first["digest"]
    assert describe_dataset("train", frame.astype({"a": "float64"}))["digest"] != first["digest"]
    changed = frame.copy()
    changed.loc[1, "b"] = "w"
    assert describe_dataset("train", changed)["digest"] != first["digest"]
    assert describe_dataset("s", frame["a"])["kind"] == "dataframe"


def test_file_directory_and_bytes_digests(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "part").mkdir(parents=True)
    (data / "a.csv").write_text("1,2\n")
    (data / "part" / "b.csv").write_text("3,4\n")
    file = describe_dataset("a", data / "a.csv")
    assert file["kind"] == "file"
    assert file["size"] == 4
    assert file == describe_dataset("a", str(data / "a.csv"))
    assert file["digest"] == describe_dataset("b", b"1,2\n")["digest"]
    first = describe_dataset("dir", data)
    assert first["kind"] == "directory"
    assert (first["files"], first["size"]) == (2, 8)
    assert describe_dataset("dir", data) == first
    (data / "part" / "b.csv").rename(data / "part" / "c.csv")
    assert describe_dataset("dir", data)["digest"] != first["digest"]


def test_capture_lineage_with_datasets(tmp_path: Path) -> None:
    lineage = capture_lineage(datasets={"train": np.zeros(3)}, cwd=tmp_path)
    assert lineage["datasets"]["train"]["kind"] == "ndarray"


def test_unsupported_dataset_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        capture_lineage(datasets={"train": [1, 2, 3]}, cwd=tmp_path)
    assert info.value.field == "datasets.train"
    assert "list" in str(info.value)
    assert "numpy array" in str(info.value)
    with pytest.raises(InvalidInputError) as info:
        describe_dataset("raw", tmp_path / "missing.csv")
    assert info.value.field == "datasets.raw"
    assert "does not exist" in str(info.value)


def test_default_cwd_is_the_running_scripts_directory() -> None:
    lineage = capture_lineage()  # under pytest, __main__ is pytest's; any answer is fine
    assert set(lineage) == {"git", "python", "platform", "packages", "datasets"}
