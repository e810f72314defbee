"""Lineage: where a model came from — the git state of the code that trained it, the Python and
package versions, and digests of the data it was trained on.

Git is asked through the ``git`` command; no git, or no repository, gives ``"git": None`` and
never an error. Remote URLs lose any credentials (``https://user:token@host/x`` → ``https://host/x``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from funade.errors import InvalidInputError

KEY_PACKAGES = (
    "funade", "numpy", "pandas", "scikit-learn", "scipy", "joblib", "skops", "onnx",
    "onnxruntime", "torch", "xgboost", "lightgbm",
)  # fmt: skip
_CHUNK = 1024 * 1024


def capture_lineage(
    *, datasets: Mapping[str, object] | None = None, cwd: Path | None = None
) -> dict[str, Any]:
    """Git state, Python, platform, installed key packages and dataset digests, JSON-able.

    ``cwd`` is where to look for the repository: by default the directory of the running script
    (``__main__.__file__``), else the current directory.
    """
    lineage = {
        "git": git_state(cwd if cwd is not None else _script_dir()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(KEY_PACKAGES),
        "datasets": {name: describe_dataset(name, data) for name, data in (datasets or {}).items()},
    }
    run = pipeline_run()
    if run is not None:
        lineage["run"] = run
    return lineage


def pipeline_run() -> dict[str, Any] | None:
    """The pipeline run and step this process is (the runner sets FUNADE_RUN_*), or None."""
    run_id = os.environ.get("FUNADE_RUN_ID")
    if not run_id or not run_id.isdigit():
        return None
    try:
        inputs = json.loads(os.environ.get("FUNADE_RUN_INPUTS", "{}"))
    except ValueError:
        inputs = {}
    return {
        "id": int(run_id),
        "pipeline": os.environ.get("FUNADE_PIPELINE", ""),
        "step": os.environ.get("FUNADE_RUN_STEP", ""),
        "attempt": int(os.environ.get("FUNADE_RUN_ATTEMPT", "1") or 1),
        "inputs": inputs if isinstance(inputs, dict) else {},
    }


def _script_dir() -> Path:
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return Path(main_file).resolve().parent if main_file else Path.cwd()


def git_state(cwd: Path) -> dict[str, Any] | None:
    """Commit, branch, dirty flag (tracked files changed) and origin URL, or None outside git."""
    top = _git(cwd, "rev-parse", "--show-toplevel")
    if top is None:
        return None
    branch = _git(cwd, "symbolic-ref", "--quiet", "--short", "HEAD")
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    remotes = (_git(cwd, "remote") or "").split()
    remote = "origin" if "origin" in remotes else (remotes[0] if remotes else None)
    url = _git(cwd, "remote", "get-url", remote) if remote else None
    return {
        "commit": _git(cwd, "rev-parse", "--verify", "--quiet", "HEAD"),
        "branch": branch or None,
        "dirty": bool(status),
        "remote_url": strip_credentials(url) if url else None,
        "root": top,
    }


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def strip_credentials(url: str) -> str:
    """``url`` without a user, password or token (and without query or fragment)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url  # scp-like "git@host:org/repo.git" carries no secret
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of the distributions ``names`` (those not installed are left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def describe_dataset(name: str, data: object) -> dict[str, Any]:
    """A digest of ``data`` (array, DataFrame, Series, bytes, file or directory) and its size."""
    if isinstance(data, np.ndarray):
        return {"digest": _array_digest(data), "kind": "ndarray", "shape": list(data.shape)}
    module = type(data).__module__
    if module.startswith("pandas") and hasattr(data, "to_frame"):
        data = data.to_frame()  # a Series
    if module.startswith("pandas") and type(data).__name__ == "DataFrame":
        rows, columns = data.shape  # type: ignore[attr-defined]
        digest = _frame_digest(name, data)
        return {"digest": digest, "kind": "dataframe", "rows": rows, "columns": columns}
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        return {"digest": _sha(raw), "kind": "bytes", "size": len(raw)}
    if isinstance(data, str | os.PathLike):
        path = Path(data)
        if path.is_file():
            sha = hashlib.sha256()
            _hash_file(sha, path)
            size = path.stat().st_size
            return {"digest": f"sha256:{sha.hexdigest()}", "kind": "file", "size": size}
        if path.is_dir():
            return _directory(path)
        raise InvalidInputError(
            f"Dataset '{name}' is the path '{path}', which does not exist.",
            field=f"datasets.{name}",
            value=str(path),
            fix="Pass an existing file or directory, or the data itself.",
        )
    raise InvalidInputError(
        f"Dataset '{name}' is a {type(data).__qualname__}, which funade cannot digest.",
        field=f"datasets.{name}",
        value=type(data).__qualname__,
        fix="Pass a numpy array, a pandas DataFrame or Series, bytes, or a file or directory path.",
    )


def _sha(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _array_digest(array: np.ndarray[Any, Any]) -> str:
    digest = hashlib.sha256(f"ndarray {array.dtype.str} {list(array.shape)}\n".encode())
    if array.dtype.hasobject:  # pointers are not stable: hash each value's type and repr
        for value in array.flat:
            digest.update(f"{type(value).__name__}:{value!r}\n".encode())
    else:
        digest.update(np.ascontiguousarray(array).tobytes())
    return f"sha256:{digest.hexdigest()}"


def _frame_digest(name: str, frame: Any) -> str:
    from pandas.util import hash_pandas_object

    digest = hashlib.sha256(b"dataframe\n")
    for column, dtype in frame.dtypes.items():
        digest.update(f"{column!r}:{dtype}\n".encode())
    try:
        rows = hash_pandas_object(frame, index=True).to_numpy()
    except TypeError as exc:
        raise InvalidInputError(
            f"Dataset '{name}' has values pandas cannot hash ({exc}).",
            field=f"datasets.{name}",
            value="DataFrame",
            fix="Convert cells holding lists or dicts to strings, e.g. df.astype(str).",
        ) from None
    digest.update(np.ascontiguousarray(rows).tobytes())
    return f"sha256:{digest.hexdigest()}"


def _directory(root: Path) -> dict[str, Any]:
    digest = hashlib.sha256(b"directory\n")
    files = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file())
    size = 0
    for relative, path in files:
        stat = path.stat()
        digest.update(f"{relative}\0{stat.st_size}\0".encode())
        _hash_file(digest, path)
        size += stat.st_size
    return {
        "digest": f"sha256:{digest.hexdigest()}",
        "kind": "directory",
        "files": len(files),
        "size": size,
    }


def _hash_file(digest: Any, path: Path) -> None:
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
