"""The python_class flavor: any object whose class defines ``load(self, path)`` and
``predict(self, inputs)`` (and optionally ``save(self, path)``).

The source of the module that defines the class is captured into the package (``code/``); the
object's state goes into ``data/``, written by its ``save`` and/or copied from the ``artifacts``
option. Loading executes the captured source as a fresh module, creates the class with no
arguments and calls ``load(data_dir)``. A class defined in a script (``__main__``) is captured
without the script's top-level statements (only imports, definitions and literal constants are
kept, on their original lines), so loading the model never re-runs the training script.
``predict`` receives the input in the form the sample was given (array, DataFrame or dict).

The capture and loading of a class's source (``write_class_source``, ``load_class``,
``check_class_source``, ``source_requirements``) are shared with flavors that rebuild a user's
class from its source, such as torch's state dicts.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import inspect
import shutil
import sys
import types
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from funade.errors import InvalidArtifactError, InvalidInputError, ModelLoadError
from funade.registry.flavors.base import (
    LoadedModel,
    PackageFile,
    check_options,
    load_failure,
    missing_file,
    parse_metadata,
)
from funade.registry.manifest import REBUILD
from funade.registry.signature import Signature, inputs_from_tensors
from funade.registry.tensors import Tensors, as_tensors

DATA_DIR = "data"
OPTIONS = {"artifacts": "files or directories copied into the model's data directory, by name"}
_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class ClassSource(BaseModel):
    """Where a package holds the source of a user's class, and what the class is called."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(pattern=r"^code/[A-Za-z0-9_]+\.py$")
    module: str
    package: str | None = None
    class_name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class PyClassMetadata(ClassSource):
    """What ``PyClassFlavor.save`` records in ``funade.json``."""


class PyClassModel:
    """The user's object answering tensors."""

    def __init__(self, obj: Any, signature: Signature | None) -> None:
        self._obj = obj
        self._signature = signature

    @property
    def native(self) -> object:
        return self._obj

    def predict(
        self, inputs: Mapping[str, npt.NDArray[Any]], outputs: Collection[str] | None = None
    ) -> Tensors:
        signature = self._signature
        given = inputs_from_tensors(inputs, signature) if signature else next(iter(inputs.values()))
        fmt, outputs = as_tensors(self._obj.predict(given), field="output")
        if fmt == "tensor":
            name = "predict"
            if signature is not None and len(signature.outputs) == 1:
                name = signature.outputs[0].name
            return {name: outputs.popitem()[1]}
        return outputs


class PyClassFlavor:
    """Saves a Python object together with the source of its class."""

    name: ClassVar[str] = "python_class"
    extra: ClassVar[str] = ""

    def matches(self, model: object) -> bool:
        cls = type(model)
        return not isinstance(model, type) and all(
            callable(getattr(cls, m, None)) for m in ("load", "predict")
        )

    def save(self, model: object, path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        check_options(options, OPTIONS, flavor=self.name)
        cls = type(model)
        if "." in cls.__qualname__ or not self.matches(model):
            raise InvalidInputError(
                f"{cls.__qualname__} cannot be saved as a python_class model.",
                field="model",
                value=cls.__qualname__,
                fix="Define the class at the top level of a module, with methods load(self, path) "
                "and predict(self, inputs).",
            )
        source = write_class_source(cls, path)
        data = path / DATA_DIR
        data.mkdir()
        _copy_artifacts(options.get("artifacts") or {}, data)
        if callable(getattr(model, "save", None)):
            model.save(data)  # type: ignore[attr-defined]
        return source.model_dump()

    def requirements(self, path: Path, metadata: Mapping[str, Any]) -> list[str]:
        meta = parse_metadata(PyClassMetadata, metadata, flavor=self.name)
        return sorted({*source_requirements(path, meta), "numpy"})

    def load(
        self, path: Path, metadata: Mapping[str, Any], signature: Signature | None
    ) -> PyClassModel:
        meta = parse_metadata(PyClassMetadata, metadata, flavor=self.name)
        cls = load_class(path, meta, flavor=self.name)
        try:
            obj = cls()
        except Exception as exc:
            fix = f"Make {meta.class_name}() work with no arguments; load state in load(path)."
            raise load_failure(self.name, meta.source, exc, fix) from exc
        try:
            obj.load(path / DATA_DIR)
        except Exception as exc:
            fix = f"Make {meta.class_name}.load(path) read what save(path) or artifacts wrote."
            raise load_failure(self.name, f"{DATA_DIR}/", exc, fix) from exc
        return PyClassModel(obj, signature)

    def declared_signature(self, model: LoadedModel) -> Signature | None:
        return None

    def wrap(
        self, model: object, metadata: Mapping[str, Any], signature: Signature | None
    ) -> PyClassModel:
        return PyClassModel(model, signature)

    def runs_code(self, metadata: Mapping[str, Any]) -> bool:
        """Loading runs the captured source of the user's class."""
        return True

    def check_files(self, files: Mapping[str, PackageFile], metadata: Mapping[str, Any]) -> None:
        meta = parse_metadata(PyClassMetadata, metadata, flavor=self.name, on_server=True)
        check_class_source(files, meta, flavor=self.name)


def write_class_source(cls: type, path: Path) -> ClassSource:
    """Write the source of the module defining ``cls`` into ``path/code/``; say where it is."""
    module_name = "main" if cls.__module__ == "__main__" else cls.__module__.replace(".", "_")
    source_file = f"code/{module_name}.py"
    (path / "code").mkdir()
    (path / source_file).write_text(capture_source(cls), encoding="utf-8")
    package = getattr(sys.modules.get(cls.__module__), "__package__", None)
    return ClassSource.model_construct(  # validated where it is read back, as before
        source=source_file,
        module=cls.__module__,
        package=package or None,
        class_name=cls.__qualname__,
    )


def load_class(path: Path, meta: ClassSource, *, flavor: str) -> type:
    """The class ``meta`` names, from the source captured in the package at ``path``."""
    module = import_source(path / meta.source, meta, flavor=flavor)
    cls = getattr(module, meta.class_name, None)
    if not isinstance(cls, type):
        raise ModelLoadError(
            f"'{meta.source}' defines no class {meta.class_name}.",
            field="flavor_metadata.class_name",
            value=meta.class_name,
            fix=REBUILD,
        )
    return cls


def source_requirements(path: Path, meta: ClassSource) -> list[str]:
    """The installed distributions that the captured source imports (the standard library
    left out)."""
    tree = ast.parse((path / meta.source).read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    dists = importlib.metadata.packages_distributions()
    return sorted({d for r in roots - set(sys.stdlib_module_names) for d in dists.get(r, [])})


def check_class_source(files: Mapping[str, PackageFile], meta: ClassSource, *, flavor: str) -> None:
    """Refuse captured source that is missing, does not compile or lacks the class; the server
    only parses it, nothing is executed."""
    file = files.get(meta.source)
    if file is None:
        raise missing_file(meta.source, flavor)
    try:
        text = file.head.decode("utf-8", errors="strict" if file.complete else "ignore")
        if file.complete:  # compile() parses; nothing is executed
            tree = ast.parse(text, meta.source)
            classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
            if meta.class_name not in classes:
                raise ValueError(f"it defines no top-level class {meta.class_name}")
            compile(tree, meta.source, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, MemoryError) as exc:
        raise InvalidArtifactError(
            f"'{meta.source}' is not valid Python source: {type(exc).__name__}: {exc}",
            field="artifact",
            value=meta.source,
            fix=REBUILD,
        ) from None


def capture_source(cls: type) -> str:
    module = sys.modules.get(cls.__module__)
    try:
        source = inspect.getsource(module) if module is not None else None
    except (OSError, TypeError):
        source = None
    if source is None:
        raise InvalidInputError(
            f"Cannot read the source of module '{cls.__module__}' that defines {cls.__qualname__}.",
            field="model",
            value=cls.__qualname__,
            fix="Define the class in a .py file (not typed into an interactive session).",
        )
    if cls.__module__ == "__main__":
        source = _definitions_only(source)
    return source


def _definitions_only(source: str) -> str:
    """A script's imports, definitions and literal constants, other lines blanked."""
    lines = source.splitlines(keepends=True)
    keep = [False] * len(lines)
    for node in ast.parse(source).body:
        if isinstance(node, _KEPT) or _is_constant(node):
            decorators = getattr(node, "decorator_list", [])
            start = min([node.lineno] + [d.lineno for d in decorators])
            for i in range(start - 1, node.end_lineno or node.lineno):
                keep[i] = True
    return "".join(line if kept else "\n" for line, kept in zip(lines, keep, strict=True))


def _is_constant(node: ast.stmt) -> bool:
    """A docstring, or ``NAME = <literal>`` (also annotated)."""
    if isinstance(node, ast.Expr):
        return isinstance(node.value, ast.Constant)
    if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
        value: ast.expr | None = node.value
    elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        value = node.value
    else:
        return False
    if value is None:
        return True
    try:
        ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return False
    return True


def _copy_artifacts(artifacts: Mapping[str, Any], data: Path) -> None:
    for key, source in artifacts.items():
        if not isinstance(key, str) or not key or key in (".", "..") or "/" in key or "\\" in key:
            raise InvalidInputError(
                f"Artifact name {key!r} is not a plain file name.",
                field=f"options.artifacts.{key}",
                value=key,
                fix="Name each artifact like a file, e.g. {'weights.bin': '/path/to/weights.bin'}.",
            )
        src = Path(source)
        if src.is_dir():
            shutil.copytree(src, data / key)
        elif src.is_file():
            shutil.copy2(src, data / key)
        else:
            raise InvalidInputError(
                f"Artifact '{key}' points at '{src}', which does not exist.",
                field=f"options.artifacts.{key}",
                value=str(src),
                fix="Pass the path of an existing file or directory.",
            )


def import_source(file: Path, meta: ClassSource, *, flavor: str) -> types.ModuleType:
    """Execute captured source as a module named after its digest (same source, same module)."""
    source = file.read_bytes()
    name = f"funade_model_{hashlib.sha256(source).hexdigest()[:16]}"
    if name in sys.modules:
        return sys.modules[name]
    module = types.ModuleType(name)
    module.__file__ = str(file)
    module.__package__ = meta.package
    sys.modules[name] = module
    try:
        code = compile(source, str(file), "exec", dont_inherit=True)
        exec(code, module.__dict__)  # noqa: S102 - loading a python_class model runs its code
    except Exception as exc:
        del sys.modules[name]
        fix = "Install what the module imports where the model is loaded (see 'requirements')."
        raise load_failure(flavor, meta.source, exc, fix) from exc
    return module
