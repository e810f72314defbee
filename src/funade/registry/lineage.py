"""Lineage: where a model came from — the git state of the code that trained it, the Python and
package versions, and digests of the data it was trained on; and, for a pipeline run, the same
for each of its attempts.

Git is asked through the ``git`` command (``registry.gitstate``); no git, or no repository,
gives ``"git": None`` and never an error. Remote URLs lose any credentials
(``https://user:token@host/x`` → ``https://host/x``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from funade.errors import InvalidInputError
from funade.registry.gitstate import git_state, strip_credentials

__all__ = [
    "attempt_lineage",
    "capture_lineage",
    "code_lineage",
    "describe_dataset",
    "git_state",
    "package_versions",
    "pipeline_run",
    "strip_credentials",
]

KEY_PACKAGES = (
    "funade", "numpy", "pandas", "scikit-learn", "scipy", "joblib", "skops", "onnx",
    "onnxruntime", "torch", "xgboost", "lightgbm",
)  # fmt: skip
_CHUNK = 1024 * 1024


def capture_lineage(
    *, datasets: Mapping[str, object] | None = None, cwd: Path | None = None
) -> dict[str, Any]:
    """Git state, Python, platform, installed key packages and dataset digests, JSON-able.

    ``cwd`` is where to look for the repository. By default: in a pipeline step, the project's
    repository as the runner recorded it for the run's attempt (the pipeline's file is in it);
    else the directory of the running script (``__main__.__file__``), else the current one
    (a notebook's).
    """
    git: dict[str, Any] | None
    if cwd is not None:
        git = git_state(cwd)
    else:
        found, git = _step_git()
        if not found:
            git = git_state(_script_dir())
    lineage = {
        "git": git,
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


_ATTEMPT_KEYS = ("git", "python", "platform", "packages")


def code_lineage(folder: Path) -> dict[str, Any]:
    """What a pipeline run records of the code it runs: the git state of the repository holding
    ``folder`` (the pipeline's file's), Python, platform and the key packages."""
    return {
        "git": git_state(folder),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(KEY_PACKAGES),
    }


def attempt_lineage(
    previous: Mapping[str, Any], current: Mapping[str, Any], attempt: int
) -> dict[str, Any]:
    """A run's lineage once its attempt ``attempt`` captured ``current`` (``code_lineage``):
    the top-level fields are the newest attempt's, and ``attempts`` lists every attempt's own,
    so a step's record (its ``run_attempt``) finds the commit it ran with."""
    history = [
        dict(entry)
        for entry in previous.get("attempts") or []
        if isinstance(entry, dict) and entry.get("attempt") != attempt
    ]
    if not history and attempt > 1 and previous.get("git") is not None:
        # A run recorded before attempts had lineage of their own: its fields are attempt 1's.
        history = [{"attempt": 1, **{k: previous[k] for k in _ATTEMPT_KEYS if k in previous}}]
    entry = {"attempt": attempt, **{k: current.get(k) for k in _ATTEMPT_KEYS}}
    history.append(entry)
    history.sort(key=lambda e: int(e.get("attempt") or 0))
    return {**dict(current), "attempt": attempt, "attempts": history}


def _script_dir() -> Path:
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return Path(main_file).resolve().parent if main_file else Path.cwd()


def _step_git() -> tuple[bool, dict[str, Any] | None]:
    """In a pipeline step: the git state of the run's attempt the runner passes
    (``FUNADE_RUN_GIT``), else that of the folder of the pipeline's file (``FUNADE_RUN_SOURCE``,
    the run's ``path/train.py:training``); ``(False, None)`` when neither tells."""
    passed = os.environ.get("FUNADE_RUN_GIT")
    if passed is not None:
        try:
            state = json.loads(passed)
        except ValueError:
            state = None
        if state is None or isinstance(state, dict):
            return True, state
    source = os.environ.get("FUNADE_RUN_SOURCE", "")
    file = source.rpartition(":")[0] if not source.endswith(".py") else source
    if file.endswith(".py") and Path(file).parent.is_dir():
        return True, git_state(Path(file).parent)
    return False, None


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
