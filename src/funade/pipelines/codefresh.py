"""The project's modules as they are on disk: compiled from source, and known when they change.

A cache key hashes the code a step runs, and the step process imports that code anew from
disk. Two things could make the hashed code differ from what runs:

- A ``.pyc`` that Python believes fresh: it checks only the source's modification time, to the
  second, and its size, so a file rewritten within the same second at the same size (``FACTOR =
  2`` → ``3``, a quick revert) is served from its stale ``.pyc``. :func:`install` makes every
  project module (``codeorigin``) compile from its source instead, and records the digest of
  the source it compiled on the module (``__funade_source__``).
- A module imported earlier in a long-lived process (a notebook, a test session) and edited
  since. :func:`stale` tells, for a module's globals, whether its file still holds the source it
  was compiled from (for a module imported before :func:`install`, whether the file changed
  after that); such code is never cached. :func:`forget_changed` drops such modules from
  ``sys.modules`` before a pipeline file is loaded anew, so that it imports them afresh.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
import threading
import time
import types
from collections.abc import Mapping
from typing import Any

from funade.pipelines.codeorigin import is_project_file

__all__ = ["MARK", "forget_changed", "install", "record", "source_of", "stale"]

MARK = "__funade_source__"
"""A module global: ``(path, sha256 of the source it was compiled from, loaded by path)``."""

_lock = threading.Lock()
_installed_at: float | None = None
_texts: dict[str, bytes] = {}
"""Source digest → the source compiled (what a class's source is read from)."""


def record(path: str, data: bytes, *, by_path: bool = False) -> tuple[str, str, bool]:
    """Remember the source ``data`` of ``path`` as compiled now; the value of :data:`MARK`.
    ``by_path``: loaded from its path (a pipeline file), not found by its name."""
    digest = hashlib.sha256(data).hexdigest()
    _texts.setdefault(digest, data)
    return path, digest, by_path


def source_of(namespace: Mapping[str, Any]) -> bytes | None:
    """The source a module was compiled from, if it was compiled by this module."""
    mark = namespace.get(MARK)
    if isinstance(mark, tuple) and len(mark) == 3:
        return _texts.get(mark[1])
    return None


class _SourceLoader(importlib.machinery.SourceFileLoader):
    """A project module compiled from its source, never from a ``.pyc``; others as usual."""

    def exec_module(self, module: Any) -> None:
        path = self.get_filename(module.__name__)
        if not is_project_file(path):
            super().exec_module(module)
            return
        data = self.get_data(path)
        module.__dict__[MARK] = record(path, data)
        code = self.source_to_code(data, path)
        exec(code, module.__dict__)  # noqa: S102 - what `import` does, without the .pyc

    def get_code(self, fullname: str) -> Any:
        path = self.get_filename(fullname)
        if not is_project_file(path):
            return super().get_code(fullname)
        return self.source_to_code(self.get_data(path), path)


def install() -> None:
    """From now on, the project's modules are imported from their source (idempotent)."""
    global _installed_at
    with _lock:
        if _installed_at is not None:
            return
        loaders: list[tuple[type[Any], list[str]]] = [
            (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
            (_SourceLoader, importlib.machinery.SOURCE_SUFFIXES),
            (importlib.machinery.SourcelessFileLoader, importlib.machinery.BYTECODE_SUFFIXES),
        ]
        hook = importlib.machinery.FileFinder.path_hook(*loaders)
        at = next(
            (i for i, h in enumerate(sys.path_hooks) if "FileFinder" in getattr(h, "__name__", "")),
            len(sys.path_hooks),
        )
        sys.path_hooks.insert(at, hook)
        for entry, finder in list(sys.path_importer_cache.items()):
            if isinstance(finder, importlib.machinery.FileFinder):
                del sys.path_importer_cache[entry]
        _installed_at = time.time()


def _digest_now(path: str, memo: dict[str, str | None] | None) -> str | None:
    if memo is not None and path in memo:
        return memo[path]
    try:
        with open(path, "rb") as f:
            digest: str | None = hashlib.sha256(f.read()).hexdigest()
    except OSError:
        digest = None
    if memo is not None:
        memo[path] = digest
    return digest


def stale(namespace: Mapping[str, Any], memo: dict[str, str | None] | None = None) -> str:
    """Why the module whose globals are ``namespace`` may not be what its file holds now
    (``""`` when it is): it was edited, or its name now finds another file."""
    path = namespace.get("__file__")
    mark = namespace.get(MARK)
    name = namespace.get("__name__")
    if isinstance(mark, tuple) and len(mark) == 3:
        path = mark[0]
        if _digest_now(path, memo) != mark[1]:
            return f"{path} changed after this process imported it"
        if mark[2]:
            return ""  # a pipeline file, loaded by its path: the step processes do the same
    elif isinstance(path, str) and _installed_at is not None:
        try:
            changed = os.stat(path).st_mtime > _installed_at
        except OSError:
            changed = True
        if changed:
            return f"{path} changed after this process imported it"
    if isinstance(path, str) and isinstance(name, str) and "." not in name:
        found = _finds(name)
        if found is not None and os.path.realpath(found) != os.path.realpath(path):
            return f"the module {name} is now {found}, not {path} as imported in this process"
    return ""


def _finds(name: str) -> str | None:
    """The file ``import name`` would load in a fresh process with this ``sys.path``."""
    if name == "__main__":
        return None
    try:
        spec = importlib.machinery.PathFinder.find_spec(name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None and spec.has_location else None


def forget_changed() -> None:
    """Drop from ``sys.modules`` the project modules compiled here that changed since (or whose
    name now finds another file), and those holding something of theirs (``from helpers import
    scale``), so that the next imports read them afresh."""
    memo: dict[str, str | None] = {}
    ours = {
        name: module
        for name, module in list(sys.modules.items())
        if isinstance(getattr(module, "__dict__", None), dict) and MARK in module.__dict__
    }
    gone = {name for name, module in ours.items() if stale(module.__dict__, memo)}
    while gone:
        more = {
            name
            for name, module in ours.items()
            if name not in gone and any(_of(v) in gone for v in list(vars(module).values()))
        }
        if not more:
            break
        gone |= more
    for name in gone:
        sys.modules.pop(name, None)


def _of(value: Any) -> object:
    """The module ``value`` comes from: itself for a module, else its or its type's module."""
    if isinstance(value, types.ModuleType):
        return value.__name__
    try:
        return getattr(value, "__module__", None) or getattr(type(value), "__module__", None)
    except Exception:  # a proxy whose attributes do work: it holds nothing of a module's
        return None
