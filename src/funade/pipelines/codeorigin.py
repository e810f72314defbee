"""Whose code is it: the project's (hashed by content) or an installed package's (by version).

A step's cache key hashes the code of *the project*: every module whose file is not part of the
interpreter (the standard library) or an installed distribution (``site-packages``,
``dist-packages``), wherever it lives — next to the pipeline file, elsewhere on ``sys.path``, a
notebook cell. Installed distributions are covered by their versions, except those installed
from a local path or in editable mode (a team's component library, ``pip install -e ../lib``):
their ``direct_url.json`` names a ``file://`` URL, so their modules count as the project's.
funade itself is the platform, not the project: it is covered by its version.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import os
import site
import sys
import sysconfig
from pathlib import Path

__all__ = ["is_project_file", "is_project_module", "versions"]

_SITE_NAMES = ("site-packages", "dist-packages")


@functools.cache
def _installed_roots() -> tuple[str, ...]:
    """Directories of the standard library and of installed distributions."""
    found: set[str] = set()
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(key):
            found.add(paths[key])
    found.add(os.path.dirname(os.__file__))
    with contextlib.suppress(AttributeError):  # some virtualenvs' site module lacks them
        found.update(p for p in [*site.getsitepackages(), site.getusersitepackages()] if p)
    found.update(p for p in sys.path if p and Path(p).name in _SITE_NAMES)
    roots = {os.path.join(os.path.realpath(p), "") for p in found}
    return tuple(sorted(roots, key=len, reverse=True))  # site-packages before the stdlib


@functools.cache
def _funade_root() -> str:
    return os.path.join(os.path.realpath(os.path.dirname(os.path.dirname(__file__))), "")


@functools.cache
def is_project_file(path: str) -> bool:
    """Whether the module file ``path`` is the project's code (see the module's docstring)."""
    real = os.path.realpath(path)
    if real.startswith(_funade_root()):
        return False
    for root in _installed_roots():
        if real.startswith(root):
            if Path(root.rstrip(os.sep)).name not in _SITE_NAMES:
                return False  # the standard library
            top = Path(real[len(root) :]).parts[0]
            return _is_local_distribution(top.removesuffix(".py").split(".")[0])
    return True


def is_project_module(name: str) -> bool:
    """Whether the module ``name`` (imported or not) is the project's; never imports it (not
    memoized: a module not found now may be found once ``sys.path`` changes)."""
    top = name.split(".")[0]
    if top in sys.stdlib_module_names or top in ("builtins", "funade"):
        return False
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None) if module is not None else None
    if path is None and module is not None:
        return name == "__main__"  # a notebook's or an interactive session's own code
    if path is None:
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            return False
        if spec is None:
            return False
        path = spec.origin if spec.has_location else None
        if path is None and spec.submodule_search_locations:
            path = next(iter(spec.submodule_search_locations), None)
    return path is not None and is_project_file(path)


@functools.cache
def _is_local_distribution(top: str) -> bool:
    """Whether ``top`` comes from a distribution installed from a local path or editable."""
    for dist in _distributions_of(top):
        url = _direct_url(dist).get("url", "")
        if isinstance(url, str) and url.startswith("file:"):
            return True
    return False


def _direct_url(dist: str) -> dict[str, object]:
    try:
        text = importlib.metadata.distribution(dist).read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return {}
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def versions(tops: set[str]) -> dict[str, str]:
    """Distribution name → version for the top-level modules ``tops`` (those of the standard
    library have none). A distribution installed from a VCS URL adds its commit."""
    found: dict[str, str] = {}
    for top in sorted(tops):
        if top in sys.stdlib_module_names or top in ("builtins", "__main__"):
            continue
        for dist in _distributions_of(top):
            version = _version(dist)
            if version is not None:
                found[dist] = version
    return found


@functools.cache
def _version(dist: str) -> str | None:
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
    vcs = _direct_url(dist).get("vcs_info")
    commit = vcs.get("commit_id") if isinstance(vcs, dict) else None
    return f"{version}+{commit}" if isinstance(commit, str) and commit else version


@functools.cache
def _distributions_of(top: str) -> tuple[str, ...]:
    """The distributions that provide the top-level module ``top`` (numpy → numpy, sklearn →
    scikit-learn); scanning every installed distribution only when the name is not one."""
    try:
        importlib.metadata.distribution(top)
    except importlib.metadata.PackageNotFoundError:
        return tuple(sorted({d.metadata["Name"] for d in _providers().get(top, [])}))
    return (top,)


@functools.cache
def _providers() -> dict[str, list[importlib.metadata.Distribution]]:
    """Top-level module → the distributions providing it, as ``packages_distributions()``
    finds them (a distribution's ``top_level.txt``, else the first part of each ``.py`` file
    in its ``RECORD``), reading ``RECORD`` as text and no distribution's metadata:
    ``packages_distributions()`` makes an object of every installed file and parses every
    ``METADATA``, 0.35 s with 220 distributions installed, a fifth of a ``funade pipeline
    compile`` whose steps use scikit-learn (benchmarks/kfp/RESULTS.md)."""
    found: dict[str, list[importlib.metadata.Distribution]] = {}
    for dist in importlib.metadata.distributions():
        for top in _tops(dist):
            found.setdefault(top, []).append(dist)
    return found


def _tops(dist: importlib.metadata.Distribution) -> set[str]:
    declared = (dist.read_text("top_level.txt") or "").split()
    if declared:
        return set(declared)
    record = dist.read_text("RECORD")
    if record is None:  # an egg-info install: its own file lists, as the standard library reads
        return {
            f.parts[0] if len(f.parts) > 1 else f.stem
            for f in dist.files or []
            if f.suffix == ".py"
        }
    tops = set()
    for line in record.splitlines():
        path = line.split(",", 1)[0].strip('"')
        if path.endswith(".py"):
            tops.add(path.split("/", 1)[0] if "/" in path else path[:-3])
    return tops
