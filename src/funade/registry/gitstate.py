"""The git state of a project's code: commit, branch, whether the tree is dirty (with a digest of
what differs from the commit), and the remote without credentials.

Git is asked through the ``git`` command, read-only: no git, or no repository, gives ``None`` and
never an error. The repository may belong to another user (a run the control plane starts runs
as its project's user), so ``safe.directory`` is waived for these reads; the code in it is about
to run as that user anyway. Nothing the repository's config names runs: no fsmonitor, external
diff, text conversion or pager, and no lock is taken (``GIT_OPTIONAL_LOCKS=0``).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from funade.errors import ConflictError

__all__ = ["check_clean", "git_state", "strip_credentials"]

_CONFIG = (
    "--no-pager",
    "-c", "safe.directory=*",
    "-c", "core.fsmonitor=false",
    "-c", "core.quotePath=false",
    "-c", "diff.noprefix=false",
    "-c", "diff.mnemonicPrefix=false",
)  # fmt: skip
_DIFF = (
    "diff", "--binary", "--no-ext-diff", "--no-textconv", "--no-color", "--no-renames",
    "--src-prefix=a/", "--dst-prefix=b/", "--diff-algorithm=myers",
)  # fmt: skip
CHANGED_SHOWN = 20
"""How many changed paths the state lists (``changed_count`` says how many there are)."""
_CHUNK = 1024 * 1024


def git_state(cwd: Path) -> dict[str, Any] | None:
    """The state of the repository holding ``cwd``, or None outside git:

    ``commit`` (None before the first commit), ``branch`` (None when detached), ``dirty`` (a
    tracked file changed, staged or not, or a file git does not ignore is untracked),
    ``diff_digest`` (of ``git diff HEAD`` and the untracked files' paths and contents; None when
    clean), ``changed`` (the first changed paths) and ``changed_count``, ``remote_url``
    (``origin``'s, else the first remote's, without credentials) and ``root`` (the top folder).
    """
    top_text = _git(cwd, "rev-parse", "--show-toplevel")
    if top_text is None:
        return None
    top = Path(top_text)
    commit = _git(top, "rev-parse", "--verify", "--quiet", "HEAD")
    changed, untracked = _changes(top)
    remotes = (_git(top, "remote") or "").split()
    remote = "origin" if "origin" in remotes else (remotes[0] if remotes else None)
    url = _git(top, "remote", "get-url", remote) if remote else None
    return {
        "commit": commit,
        "branch": _git(top, "symbolic-ref", "--quiet", "--short", "HEAD") or None,
        "dirty": bool(changed),
        "diff_digest": _diff_digest(top, commit, untracked) if changed else None,
        "changed": changed[:CHANGED_SHOWN],
        "changed_count": len(changed),
        "remote_url": strip_credentials(url) if url else None,
        "root": top_text,
    }


def check_clean(git: Mapping[str, Any] | None, *, where: str, folder: Path) -> None:
    """Refuse (``--require-clean``) code outside git, or in a tree with uncommitted changes."""
    if git is None:
        raise ConflictError(
            f"{where}: --require-clean needs the code in a git repository, and {folder} is "
            "not in one.",
            field="require_clean",
            value=str(folder),
            fix="Run it from a git checkout (git init; git add; git commit), or leave out "
            "--require-clean.",
        )
    if git.get("commit") is None or git.get("dirty"):
        changed = [str(p) for p in git.get("changed") or []]
        count = int(git.get("changed_count") or len(changed))
        shown = ", ".join(changed[:3]) + (f" and {count - 3} more" if count > 3 else "")
        what = f"uncommitted changes ({shown})" if changed else "no commit yet"
        raise ConflictError(
            f"{where}: the git tree at {git.get('root')} has {what}, and --require-clean "
            "runs only committed code.",
            field="require_clean",
            value=changed,
            fix="Commit them (or `git stash --include-untracked`, or list generated files in "
            ".gitignore), then run again.",
        )


def _changes(top: Path) -> tuple[list[str], list[str]]:
    """Every changed path (tracked changes, then untracked files git does not ignore), and the
    untracked ones alone."""
    status = _git_bytes(top, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    if status is None:
        return [], []
    changed: list[str] = []
    untracked: list[str] = []
    entries = status.decode(errors="surrogateescape").split("\0")
    index = 0
    while index < len(entries):
        entry = entries[index]
        index += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if code[0] in "RC":
            index += 1  # the path it was renamed or copied from follows
        if code == "??":
            untracked.append(path)
        changed.append(path)
    return changed, sorted(untracked)


def _diff_digest(top: Path, commit: str | None, untracked: list[str]) -> str:
    """sha256 of the diff of the work tree against ``commit`` (binary-safe), then of each
    untracked file's path and bytes, in path order."""
    base = commit or _git(top, "hash-object", "-t", "tree", "/dev/null") or "HEAD"
    digest = hashlib.sha256(b"funade git diff v1\n")
    _git_bytes(top, *_DIFF, base, "--", into=digest)
    for relative in untracked:
        path = top / relative
        digest.update(b"\0untracked\0" + os.fsencode(relative) + b"\0")
        try:
            if path.is_symlink():
                digest.update(b"link\0" + os.fsencode(os.readlink(path)))
            elif path.is_file():
                with path.open("rb") as stream:
                    while chunk := stream.read(_CHUNK):
                        digest.update(chunk)
        except OSError as exc:  # unreadable: its name and the reason still count
            digest.update(f"unreadable: {exc.strerror}".encode())
    return f"sha256:{digest.hexdigest()}"


def _environment() -> dict[str, str]:
    return {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_OPTIONAL_LOCKS": "0",
        "LC_ALL": "C",
    }


def _git(cwd: Path, *args: str) -> str | None:
    out = _git_bytes(cwd, *args)
    return out.decode(errors="replace").strip() if out is not None else None


def _git_bytes(cwd: Path, *args: str, into: Any = None) -> bytes | None:
    """``git args`` in ``cwd``: its output (or, with ``into``, fed to that hash), None if it
    failed or git is missing."""
    try:
        process = subprocess.Popen(
            ["git", *_CONFIG, *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_environment(),
        )
    except OSError:
        return None
    assert process.stdout is not None
    chunks: list[bytes] = []
    with process:
        while chunk := process.stdout.read(_CHUNK):
            if into is not None:
                into.update(chunk)
            else:
                chunks.append(chunk)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            return None
    return b"".join(chunks) if code == 0 else None


_SCP = re.compile(r"(?P<user>[^@/]+)@(?P<host>[^:/]+):(?P<path>.*)")


def strip_credentials(url: str) -> str:
    """``url`` without a password or token: ``https://user:token@host/x`` → ``https://host/x``
    (any scheme; the query and fragment, where tokens also travel, go too). An scp-like
    ``git@host:org/x.git`` keeps its user name unless it carries a password
    (``user:token@host:x`` → ``host:x``)."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme and parts.netloc:
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    scp = _SCP.fullmatch(url)
    if scp is not None and ":" in scp["user"]:
        return f"{scp['host']}:{scp['path']}"
    return url
