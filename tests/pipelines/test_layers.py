"""``pipelines/`` sits below the API, its client and the SDK: it owns its shapes
(``pipelines/schemas.py``) and names what it asks of the control plane
(``pipelines/reporting.py``). Read from the source with ``ast``, so an import hidden under
``if TYPE_CHECKING:`` or ``try:`` counts as much as any other."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import funade.pipelines

PACKAGE = Path(funade.pipelines.__file__).parent
ABOVE = ("funade.api", "funade.client", "funade.sdk", "funade.cli", "funade.ui")

LATE = {("runs.py", "funade.sdk")}
"""Imports of a package above, made inside a function, and why: ``runs._control`` makes the
SDK's default client when a run is started without one (``funade.run_pipeline(pipeline)``)."""


def _imports(node: ast.AST, *, in_function: bool = False) -> Iterator[tuple[str, bool]]:
    """Every module ``node`` imports, and whether inside a function body (run only when the
    function is called); class bodies and ``if``/``try`` blocks run on import."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import):
            yield from ((alias.name, in_function) for alias in child.names)
        elif isinstance(child, ast.ImportFrom):
            if child.level == 0 and child.module:
                yield child.module, in_function
                yield from ((f"{child.module}.{a.name}", in_function) for a in child.names)
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _imports(child, in_function=True)
        else:
            yield from _imports(child, in_function=in_function)


def _above(module: str) -> str | None:
    return next((p for p in ABOVE if module == p or module.startswith(p + ".")), None)


def test_no_module_of_pipelines_imports_a_package_above_it() -> None:
    files = sorted(PACKAGE.glob("*.py"))
    assert len(files) > 20  # the package, not an empty folder
    eager, late = [], set()
    for path in files:
        for module, in_function in _imports(ast.parse(path.read_text(), str(path))):
            package = _above(module)
            if package is None:
                continue
            if in_function:
                late.add((path.name, package))
            else:
                eager.append(f"{path.name}: {module}")
    assert eager == []
    assert late <= LATE, f"new imports from above in functions, say why in LATE: {late - LATE}"


def test_the_check_sees_every_kind_of_import() -> None:
    source = """
import funade.client
from funade.api import schemas
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from funade.sdk import default_client
class A:
    from funade.ui import web
def f():
    from funade.cli import app
"""
    found = {(m, f) for m, f in _imports(ast.parse(source)) if _above(m)}
    assert ("funade.client", False) in found
    assert ("funade.api", False) in found
    assert ("funade.sdk", False) in found
    assert ("funade.ui", False) in found
    assert ("funade.cli", True) in found
