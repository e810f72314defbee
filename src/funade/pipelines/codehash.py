"""What a step's cache key knows about its code: a digest of the source, and package versions.

The digest covers the step function's source with decorators, comments and formatting removed
(``ast.unparse``), plus the source of the functions and classes of the same module that it
refers to, transitively: fixing a helper invalidates the steps that use it, reformatting a file
or changing a step's retries does not. The package versions are those of the distributions the
code imports (``import sklearn`` in the body, or a module-level ``np`` it uses), so upgrading a
dependency is not a stale cache hit.
"""

from __future__ import annotations

import ast
import dis
import functools
import hashlib
import importlib.metadata
import inspect
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["code_digest", "imported_packages"]

_MAX_HELPERS = 200


def code_digest(fn: Callable[..., Any]) -> str:
    """``sha256:<hex>`` of the normalized source of ``fn`` and the same-module code it uses."""
    hasher = hashlib.sha256()
    for name, source in sorted(_sources(fn).items()):
        hasher.update(f"{name}\0{source}\0".encode())
    return f"sha256:{hasher.hexdigest()}"


def imported_packages(fn: Callable[..., Any]) -> dict[str, str]:
    """Distribution name → version, for every third-party package ``fn``'s code imports."""
    tops: set[str] = set()
    for code_fn in _same_module_code(fn):
        glob = getattr(code_fn, "__globals__", None) or vars(sys.modules[code_fn.__module__])
        for code in _code_objects(code_fn):
            tops |= _imported_tops(code, glob)
    found: dict[str, str] = {}
    for top in sorted(tops):
        if top in sys.stdlib_module_names or top not in sys.modules:
            continue
        for dist in _distributions_of(top):
            version = _version(dist)
            if version is not None:
                found[dist] = version
    return found


@functools.cache
def _distributions_of(top: str) -> tuple[str, ...]:
    """The distributions that provide the top-level module ``top`` (numpy → numpy, sklearn →
    scikit-learn); scanning every installed distribution only when the name is not one."""
    try:
        importlib.metadata.distribution(top)
    except importlib.metadata.PackageNotFoundError:
        return tuple(_distributions().get(top, []))
    return (top,)


@functools.cache
def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return {k: sorted(set(v)) for k, v in importlib.metadata.packages_distributions().items()}


def _normalized_source(obj: Any) -> str:
    try:
        source = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        return code.co_code.hex() if code is not None else repr(obj)
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            node.decorator_list = []
    return ast.unparse(tree)


def _sources(fn: Callable[..., Any]) -> dict[str, str]:
    return {f"{o.__module__}.{o.__qualname__}": _normalized_source(o) for o in _same_module(fn)}


def _same_module_code(fn: Callable[..., Any]) -> Iterator[Any]:
    for obj in _same_module(fn):
        if isinstance(obj, type):
            yield from (v for v in vars(obj).values() if isinstance(v, types.FunctionType))
        else:
            yield obj


def _same_module(fn: Callable[..., Any]) -> list[Any]:
    """``fn`` and the functions and classes of its module it refers to, transitively."""
    fn = inspect.unwrap(fn)
    module = fn.__module__
    seen: dict[int, Any] = {id(fn): fn}
    todo: list[Any] = [fn]
    while todo and len(seen) < _MAX_HELPERS:
        current = todo.pop()
        functions = (
            [v for v in vars(current).values() if isinstance(v, types.FunctionType)]
            if isinstance(current, type)
            else [current]
        )
        for function in functions:
            glob = getattr(function, "__globals__", {})
            for code in _code_objects(function):
                for name in code.co_names:
                    obj = _unwrap_step(glob.get(name))
                    if (
                        (isinstance(obj, (types.FunctionType, type)))
                        and getattr(obj, "__module__", None) == module
                        and id(obj) not in seen
                    ):
                        seen[id(obj)] = obj
                        todo.append(obj)
    return list(seen.values())


def _unwrap_step(obj: Any) -> Any:
    inner = getattr(obj, "fn", None)
    return inner if isinstance(inner, types.FunctionType) else obj


def _code_objects(fn: Any) -> Iterator[types.CodeType]:
    code = getattr(fn, "__code__", None)
    if code is None:
        return
    todo = [code]
    while todo:
        current = todo.pop()
        yield current
        todo.extend(c for c in current.co_consts if isinstance(c, types.CodeType))


def _imported_tops(code: types.CodeType, glob: dict[str, Any]) -> set[str]:
    tops: set[str] = set()
    for instruction in dis.get_instructions(code):
        if instruction.opname == "IMPORT_NAME" and isinstance(instruction.argval, str):
            tops.add(instruction.argval.split(".")[0])
    for name in code.co_names:
        obj = glob.get(name)
        if isinstance(obj, types.ModuleType):
            tops.add(obj.__name__.split(".")[0])
        elif obj is not None and hasattr(obj, "__module__"):
            owner = getattr(obj, "__module__", None)
            if isinstance(owner, str):
                tops.add(owner.split(".")[0])
    return tops
