"""The git state lineage records: commit, branch, dirty flag with a digest of the changes
(untracked files git does not ignore included), the remote without credentials; and
``--require-clean``'s refusal. Real repositories made with git in temp folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from funade.errors import ConflictError
from funade.registry.gitstate import CHANGED_SHOWN, check_clean, git_state, strip_credentials
from tests.registry.test_lineage import git

AS_ANOTHER_USER = ["setpriv", "--reuid=54321", "--regid=54321", "--clear-groups"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "--quiet", "--initial-branch=main")
    (root / "train.py").write_text("print('train')\n")
    (root / ".gitignore").write_text("data/\n*.log\n")
    git(root, "add", "train.py", ".gitignore")
    git(root, "commit", "--quiet", "-m", "first")
    return root


def state(path: Path) -> dict[str, object]:
    found = git_state(path)
    assert found is not None
    return found


def test_a_clean_tree(repo: Path) -> None:
    (repo / "data").mkdir()
    (repo / "data" / "big.csv").write_text("1,2\n")  # ignored: not a change
    (repo / "run.log").write_text("ignored too\n")
    found = state(repo)
    assert found["commit"] == git(repo, "rev-parse", "HEAD")
    assert (found["branch"], found["dirty"], found["diff_digest"]) == ("main", False, None)
    assert (found["changed"], found["changed_count"]) == ([], 0)
    assert found["root"] == str(repo)
    assert found["remote_url"] is None


def test_each_kind_of_change_makes_the_tree_dirty_with_its_own_digest(repo: Path) -> None:
    digests = set()
    (repo / "train.py").write_text("print('edited')\n")  # unstaged
    edited = state(repo)
    assert (edited["dirty"], edited["changed"]) == (True, ["train.py"])
    digests.add(edited["diff_digest"])
    git(repo, "add", "train.py")  # staged: the same difference from HEAD
    assert state(repo)["diff_digest"] == edited["diff_digest"]
    (repo / "helper.py").write_text("X = 1\n")  # untracked, not ignored
    untracked = state(repo)
    assert untracked["changed"] == ["train.py", "helper.py"]
    digests.add(untracked["diff_digest"])
    (repo / "helper.py").write_text("X = 2\n")  # same name, other contents
    digests.add(state(repo)["diff_digest"])
    (repo / "helper.py").write_text("X = 1\n")
    assert state(repo)["diff_digest"] == untracked["diff_digest"]  # stable
    (repo / "data").mkdir()
    (repo / "data" / "new.csv").write_text("ignored\n")
    assert state(repo)["diff_digest"] == untracked["diff_digest"]  # ignored files do not count
    (repo / "bin.dat").write_bytes(bytes(range(256)))  # binary contents count too
    digests.add(state(repo)["diff_digest"])
    assert len(digests) == 4
    assert all(str(d).startswith("sha256:") for d in digests)


def test_a_deleted_file_and_a_repository_without_commits(repo: Path, tmp_path: Path) -> None:
    (repo / "train.py").unlink()
    deleted = state(repo)
    assert (deleted["dirty"], deleted["changed"]) == (True, ["train.py"])
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    git(fresh, "init", "--quiet")
    (fresh / "a.py").write_text("a\n")
    unborn = state(fresh)
    assert (unborn["commit"], unborn["dirty"], unborn["changed"]) == (None, True, ["a.py"])
    assert str(unborn["diff_digest"]).startswith("sha256:")


def test_many_changes_are_listed_in_part_and_counted(repo: Path) -> None:
    for i in range(CHANGED_SHOWN + 5):
        (repo / f"f{i:02}.py").write_text(f"{i}\n")
    found = state(repo)
    assert found["changed_count"] == CHANGED_SHOWN + 5
    assert len(found["changed"]) == CHANGED_SHOWN  # type: ignore[arg-type]


def test_the_remote_is_recorded_without_credentials(repo: Path) -> None:
    git(repo, "remote", "add", "upstream", "https://bob:pw@git.example.com/up/x.git")
    assert state(repo)["remote_url"] == "https://git.example.com/up/x.git"  # the only remote
    git(repo, "remote", "add", "origin", "https://alice:ghp_secret@github.example.com/org/x.git")
    found = state(repo)
    assert found["remote_url"] == "https://github.example.com/org/x.git"  # origin first
    assert "ghp_secret" not in str(found)
    assert "pw" not in str(found["remote_url"])


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("https://user:token@host/org/x.git", "https://host/org/x.git"),
        ("https://x-access-token:ghs_abc@github.com/org/x", "https://github.com/org/x"),
        ("https://ghp_token@github.com/org/x.git", "https://github.com/org/x.git"),
        ("http://user:p%40ss@host:8080/x", "http://host:8080/x"),
        ("https://user:p@ss@host/x", "https://host/x"),
        ("ssh://git:secret@host:2222/org/x.git", "ssh://host:2222/org/x.git"),
        (
            "git+https://oauth2:glpat-xyz@gitlab.example.com/g/x.git",
            "git+https://gitlab.example.com/g/x.git",
        ),
        ("https://host/x.git?private_token=abc#frag", "https://host/x.git"),
        ("https://u:p@[2001:db8::1]:8443/x", "https://[2001:db8::1]:8443/x"),
        ("oauth2:glpat-xyz@gitlab.example.com:g/x.git", "gitlab.example.com:g/x.git"),
        ("git@github.com:org/x.git", "git@github.com:org/x.git"),
        ("/srv/git/x.git", "/srv/git/x.git"),
        ("file:///srv/git/x.git", "file:///srv/git/x.git"),
    ],
)
def test_strip_credentials_from_every_form_of_url(url: str, clean: str) -> None:
    assert strip_credentials(url) == clean


def test_require_clean_refuses_a_dirty_tree_naming_a_few_files(repo: Path) -> None:
    check_clean(state(repo), where="pipeline 'p'", folder=repo)  # clean: no error
    for name in ("a.py", "b.py", "c.py", "d.py", "e.py"):
        (repo / name).write_text("x\n")
    with pytest.raises(ConflictError) as info:
        check_clean(state(repo), where="pipeline 'p'", folder=repo)
    message = str(info.value)
    assert message == (
        f"pipeline 'p': the git tree at {repo} has uncommitted changes (a.py, b.py, c.py and 2 "
        "more), and --require-clean runs only committed code. Commit them (or `git stash "
        "--include-untracked`, or list generated files in .gitignore), then run again."
    )
    assert "\n" not in message
    assert info.value.field == "require_clean"
    assert info.value.value == ["a.py", "b.py", "c.py", "d.py", "e.py"]


def test_require_clean_refuses_code_outside_git(tmp_path: Path) -> None:
    assert git_state(tmp_path) is None
    with pytest.raises(ConflictError, match="needs the code in a git repository") as info:
        check_clean(None, where="pipeline 'p'", folder=tmp_path)
    assert info.value.value == str(tmp_path)


def test_a_repository_of_another_user_is_read_and_nothing_in_it_runs(public_dir: Path) -> None:
    """Runs the control plane starts run as their project's user, in the project's checkout
    owned by someone else: git's ownership check is waived for these reads, and what the
    repository's config would run (an fsmonitor hook, an external diff) does not run."""
    repo = public_dir / "project"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    (repo / "train.py").write_text("print('train')\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "--quiet", "-m", "first")
    marker = public_dir / "ran"
    hook = public_dir / "hook.sh"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    git(repo, "config", "core.fsmonitor", str(hook))
    git(repo, "config", "diff.external", str(hook))
    (repo / "train.py").write_text("print('edited')\n")
    found = state(repo)
    assert found["dirty"] is True
    assert not marker.exists()
    if os.geteuid() != 0:
        pytest.skip("reading it as another user needs root")
    code = (
        "import json, sys; from pathlib import Path; from funade.registry.gitstate import "
        "git_state; print(json.dumps(git_state(Path(sys.argv[1]))))"
    )
    done = subprocess.run(
        [*AS_ANOTHER_USER, sys.executable, "-c", code, str(repo)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HOME": "/nonexistent"},
    )
    assert json.loads(done.stdout) == found
    assert not marker.exists()
