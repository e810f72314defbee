"""The text of code that a cache key hashes: normalized so that only what runs counts.

A code object is hashed by its bytecode, constants and names: not its line numbers or file
name, so comments, blank lines and moving code within a file change nothing, and not its
docstring (a first constant no instruction loads). A class is hashed by its syntax tree without
docstrings (``ast.dump`` holds no comments, formatting or positions): its decorators, bases,
fields and methods, as the source that was compiled says.
"""

from __future__ import annotations

import ast
import copy
import dis
import hashlib
import inspect
import types
from collections.abc import Iterator
from typing import Any

from funade.pipelines import codefresh

__all__ = ["class_tree", "code_digest"]


def code_digest(code: types.CodeType, memo: dict[int, str]) -> str:
    """Bytecode, constants and names, without line numbers, file name or docstring.
    ``memo`` (id of a code object → digest) must keep its code objects alive."""
    known = memo.get(id(code))
    if known is not None:
        return known
    hasher = hashlib.sha256()
    for part in (
        code.co_name,
        code.co_qualname,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
    ):
        hasher.update(f"{part!r}\0".encode())
    hasher.update(code.co_code)
    hasher.update(code.co_exceptiontable)
    loaded = {i.arg for i in dis.get_instructions(code) if i.opcode in dis.hasconst}
    for i, const in enumerate(code.co_consts):
        if i == 0 and i not in loaded:  # the docstring's place (None when there is none)
            text = "<docstring or none>"
        elif isinstance(const, types.CodeType):
            text = code_digest(const, memo)
        else:
            text = _constant(const)
        hasher.update(f"\0{text}".encode())
    memo[id(code)] = digest = hasher.hexdigest()
    return digest


def class_tree(
    cls: type, module: types.ModuleType | None, trees: dict[str, ast.Module | None]
) -> ast.ClassDef | None:
    """The class's syntax tree without docstrings, from the source its module was compiled
    from; None for a class defined in a function (the values it closes over are not in its
    source) or whose source cannot be found. ``trees`` memoizes parsed modules."""
    if "<locals>" in cls.__qualname__:
        return None
    tree = _module_tree(module, trees) if module is not None else None
    found = _find_class(tree, cls.__qualname__.split(".")) if tree is not None else None
    if found is None:
        try:
            parsed = ast.parse(_dedent(inspect.getsource(cls)))
        except (OSError, TypeError, SyntaxError):
            return None
        found = next((n for n in parsed.body if isinstance(n, ast.ClassDef)), None)
        if found is None:
            return None
    return _without_docstrings(copy.deepcopy(found))


def _module_tree(
    module: types.ModuleType, trees: dict[str, ast.Module | None]
) -> ast.Module | None:
    source = codefresh.source_of(vars(module))
    path = getattr(module, "__file__", None)
    if source is None and isinstance(path, str) and path.endswith(".py"):
        try:
            with open(path, "rb") as f:
                source = f.read()
        except OSError:
            return None
    if source is None:
        return None
    key = hashlib.sha256(source).hexdigest()
    if key not in trees:
        try:
            trees[key] = ast.parse(source)
        except SyntaxError:
            trees[key] = None
    return trees[key]


def _constant(value: Any) -> str:
    """A code object's constant (immutable literals), the same in every process."""
    if isinstance(value, frozenset):
        return "frozenset{" + ",".join(sorted(_constant(v) for v in value)) + "}"
    if isinstance(value, tuple):
        return "(" + ",".join(_constant(v) for v in value) + ")"
    return f"{type(value).__name__}:{value!r}"


def _find_class(tree: ast.Module, parts: list[str]) -> ast.ClassDef | None:
    """The last definition of the class ``a.b.<locals>.C`` in a module's syntax tree."""
    scopes: list[ast.AST] = [tree]
    found: ast.AST | None = None
    for i, part in enumerate(parts):
        if part == "<locals>":
            continue
        wanted = ast.ClassDef if i == len(parts) - 1 else ast.ClassDef | ast.FunctionDef
        candidates = [n for scope in scopes for n in _definitions(scope, part, wanted)]
        if not candidates:
            return None
        found = candidates[-1]
        scopes = [found]
    return found if isinstance(found, ast.ClassDef) else None


def _definitions(scope: ast.AST, name: str, wanted: Any) -> Iterator[ast.AST]:
    """Definitions named ``name`` directly in ``scope``'s body (also under if/try/with)."""
    for child in ast.iter_child_nodes(scope):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            if isinstance(child, wanted) and getattr(child, "name", None) == name:
                yield child
            continue
        if isinstance(child, ast.stmt):
            yield from _definitions(child, name, wanted)


def _without_docstrings(node: ast.ClassDef) -> ast.ClassDef:
    for inner in ast.walk(node):
        if isinstance(inner, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = inner.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                inner.body = body[1:] or [ast.Pass()]
    return ast.fix_missing_locations(node)


def _dedent(source: str) -> str:
    lines = source.splitlines()
    indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
    return "\n".join(x[indent:] for x in lines)
