"""Reading a function's, class's or module's code: the names it reads, the values behind them,
and what of those a cache key hashes (see ``codehash``).

:meth:`Reader.walk` follows a code object's instructions: global names (``FACTOR``), attribute
chains through the project's modules (``helpers.scale``, ``pkg.sub.scale``), imports in the body
(``from helpers import scale``, ``import helpers``) and the local names they bind, and a project
module used as a value (counted whole). :meth:`Reader.token` turns each value read into text:
plain data by value (``codevalues``), the project's functions, classes and modules by name (and
followed: ``reaches``), third-party code by its name (its distribution's version is added by
``codehash``), and anything else as a reason the step cannot be cached.
"""

from __future__ import annotations

import builtins
import dataclasses
import dis
import enum
import functools
import hashlib
import importlib
import importlib.util
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from funade.pipelines.codevalues import atom, type_name

__all__ = ["UNBOUND", "Facts", "Owner", "Reader", "Whole"]


class _Unbound:
    def __repr__(self) -> str:
        return "<unbound>"


UNBOUND = _Unbound()
_MISSING = object()
_DEPTH = 64
_LONG = 4096
_GLOBAL_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"})
_OTHER_LOADS = frozenset({"LOAD_DEREF", "LOAD_CLASSDEREF", "LOAD_FROM_DICT_OR_DEREF"})
_ATTRIBUTES = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_NEUTRAL = frozenset({"EXTENDED_ARG", "NOP", "CACHE"})
_CONSTANTS = frozenset({"LOAD_CONST", "LOAD_SMALL_INT"})


@dataclass(frozen=True)
class Whole:
    """A project module used as a value: all of it counts."""

    module: types.ModuleType


@dataclass
class Facts:
    label: str
    digest: str
    reaches: list[Any] = field(default_factory=list)
    tops: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


class Owner(Protocol):
    """What a reader asks of the walk it is part of (``codehash``'s session)."""

    def is_project_module(self, name: str) -> bool: ...
    def is_project_function(self, fn: types.FunctionType) -> bool: ...
    def is_project_class(self, cls: type) -> bool: ...
    def staleness(self, namespace: Mapping[str, Any]) -> str: ...


class Reader:
    """What one function, class or module reads, and the facts that follow from it."""

    def __init__(
        self, session: Owner, label: str, namespace: Mapping[str, Any], *, whole: bool = True
    ) -> None:
        self.session = session
        self.label = label
        self.namespace = namespace
        self.whole = whole
        """Whether a project module among the values read counts whole (not for the globals of
        a module counted whole: its own functions are followed instead)."""
        self.reads: dict[str, Any] = {}
        self.through: dict[int, types.ModuleType] = {}
        """The project modules whose names it reads (each must still be what its file holds)."""
        self.locals: dict[str, types.ModuleType] = {}
        """Local names bound to project modules by imports in the code's body."""
        self.reaches: list[Any] = []
        self.tops: set[str] = set()
        self.problems: list[str] = []

    # Reading code -------------------------------------------------------------------------

    def walk(self, code: types.CodeType) -> None:
        todo = [code]
        while todo:
            current = todo.pop(0)  # outer code first: its imports bind names inner code uses
            self._instructions(current)
            todo += [c for c in current.co_consts if isinstance(c, types.CodeType)]

    def _instructions(self, code: types.CodeType) -> None:
        chain: tuple[types.ModuleType, str] | None = None
        constants: list[Any] = []
        imported: tuple[str, Any, types.ModuleType | None] | None = None
        bound: types.ModuleType | None = None
        for instruction in dis.get_instructions(code):
            op = instruction.opname
            if op in _NEUTRAL:
                continue
            if chain is not None and op in _ATTRIBUTES:
                chain = self._attribute(*chain, instruction.argval)
                continue
            if chain is not None:
                self.reads[chain[1]] = Whole(chain[0])  # a module used as a value
                chain = None
            if op in _GLOBAL_LOADS:
                chain = self._global(instruction.argval)
            elif op.startswith("LOAD_FAST") or op in _OTHER_LOADS:
                names = instruction.argval
                for name in names if isinstance(names, tuple) else (names,):
                    if chain is not None:
                        self.reads[chain[1]] = Whole(chain[0])
                    module = self.locals.get(name)
                    chain = (module, module.__name__) if module is not None else None
            elif op in _CONSTANTS:
                constants = [*constants[-1:], instruction.argval]
            elif op == "IMPORT_NAME":
                imported, bound = self._import(instruction.argval, constants)
            elif op == "IMPORT_FROM" and imported is not None:
                bound = self._import_from(imported, instruction.argval)
            elif op == "IMPORT_STAR" and imported is not None and imported[2] is not None:
                self.reads[imported[0]] = Whole(imported[2])
            elif op.startswith("STORE_") and bound is not None:
                names = instruction.argval
                self.locals[names[0] if isinstance(names, tuple) else names] = bound
                bound = None
        if chain is not None:
            self.reads[chain[1]] = Whole(chain[0])

    def _global(self, name: str) -> tuple[types.ModuleType, str] | None:
        value = self.namespace.get(name, _MISSING)
        if value is _MISSING:
            table = self.namespace.get("__builtins__", builtins)
            table = vars(table) if isinstance(table, types.ModuleType) else table
            value = table.get(name, UNBOUND) if isinstance(table, dict) else UNBOUND
            if value is builtins.globals:  # globals(): any of the module's names
                module = sys.modules.get(str(self.namespace.get("__name__")))
                if module is not None and vars(module) is self.namespace:
                    self.reads["globals()"] = Whole(module)
        if isinstance(value, types.ModuleType) and self.session.is_project_module(value.__name__):
            self.through[id(value)] = value
            return value, name
        self.reads[name] = value
        return None

    def _attribute(
        self, module: types.ModuleType, shown: str, name: str
    ) -> tuple[types.ModuleType, str] | None:
        value = self._member(module, name)
        if value is _MISSING:
            self.reads[shown] = Whole(module)
            return None
        if isinstance(value, types.ModuleType) and self.session.is_project_module(value.__name__):
            self.through[id(value)] = value
            return value, f"{shown}.{name}"
        self.reads[f"{shown}.{name}"] = value
        return None

    def _member(self, module: types.ModuleType, name: str) -> Any:
        value = getattr(module, name, _MISSING)
        if value is _MISSING and hasattr(module, "__path__"):
            value = self._load(f"{module.__name__}.{name}", quiet=True) or _MISSING
        return value

    def _import(
        self, name: str, constants: list[Any]
    ) -> tuple[tuple[str, Any, types.ModuleType | None] | None, types.ModuleType | None]:
        level = constants[0] if len(constants) == 2 and isinstance(constants[0], int) else 0
        fromlist = constants[-1] if constants else None
        if level:
            package = self.namespace.get("__package__") or ""
            try:
                name = importlib.util.resolve_name("." * level + name, str(package))
            except (ImportError, ValueError):
                return None, None
        top = name.split(".")[0]
        if not name or not self.session.is_project_module(name):
            if top:
                self.tops.add(top)
            return (name, fromlist, None), None
        module = self._load(name)
        if module is None:
            return None, None
        self.through[id(module)] = module
        bound = module
        if fromlist is None:  # `import a.b` binds `a`
            bound = sys.modules.get(top, module)
        return (name, fromlist, module), bound

    def _import_from(
        self, imported: tuple[str, Any, types.ModuleType | None], name: str
    ) -> types.ModuleType | None:
        full, fromlist, module = imported
        if module is None:
            return None
        if fromlist is None:  # `import a.b as c` binds the module a.b
            return module
        value = self._member(module, name)
        if value is _MISSING:
            self.reads[full] = Whole(module)
            return None
        if isinstance(value, types.ModuleType) and self.session.is_project_module(value.__name__):
            self.through[id(value)] = value
            return value
        self.reads[f"{full}.{name}"] = value
        return None

    def _load(self, name: str, *, quiet: bool = False) -> types.ModuleType | None:
        try:
            return importlib.import_module(name)
        except Exception as exc:
            if not quiet:
                self.problems.append(
                    f"{self.label} imports {name}, which cannot be imported to hash it "
                    f"({type(exc).__name__}: {exc})"
                )
            return None

    # Values -------------------------------------------------------------------------------

    def facts(self, content: list[str]) -> Facts:
        for module in self.through.values():
            stale = self.session.staleness(vars(module))
            if stale:
                self.problems.append(f"{self.label} reads {module.__name__}: {stale}")
        hasher = hashlib.sha256()
        for part in content:
            hasher.update(f"{part}\0".encode())
        for name in sorted(self.reads):
            hasher.update(f"{name}={self.token(self.reads[name], name)}\0".encode())
        return Facts(self.label, hasher.hexdigest(), self.reaches, self.tops, self.problems)

    def token(self, value: Any, name: str, depth: int = 0, inside: tuple[int, ...] = ()) -> str:
        """The text of ``value`` in the digest; what it reaches is followed later."""
        plain = atom(value)
        if plain is not None:
            self.tops.add(type(value).__module__.split(".")[0])  # numpy's arrays: its version
            return plain
        if value is UNBOUND:
            return "unbound"
        if depth > _DEPTH or id(value) in inside:
            return self._cannot(value, name, depth, "it holds itself or is nested too deep")
        inner = (*inside, id(value))

        def sub(item: Any) -> str:
            return self.token(item, name, depth + 1, inner)

        if isinstance(value, Whole):
            self.reaches.append(value.module)
            return f"module:{value.module.__name__}:*"
        if isinstance(value, types.ModuleType):
            if self.session.is_project_module(value.__name__):
                return sub(Whole(value)) if self.whole else f"module:{value.__name__}"
            self.tops.add(value.__name__.split(".")[0])
            return f"module:{value.__name__}"
        step_fn = _step_function(value)
        if step_fn is not None:
            return f"step:{sub(step_fn)}"
        if isinstance(value, types.FunctionType):
            if self.session.is_project_function(value):
                self.reaches.append(value)
                return f"code:{value.__module__}.{value.__qualname__}"
            return self._external(value, getattr(value, "__module__", None))
        if isinstance(value, type):
            if self.session.is_project_class(value):
                self.reaches.append(value)
                return f"class:{value.__module__}.{value.__qualname__}"
            return self._external(value, value.__module__)
        if isinstance(value, enum.Enum):
            return f"enum:{sub(type(value))}.{value.name}"
        if isinstance(value, types.MethodType):
            return f"method:{sub(value.__func__)}:{sub(value.__self__)}"
        if isinstance(value, functools.partial):
            return f"partial:{sub(value.func)}:{sub(value.args)}:{sub(value.keywords)}"
        if isinstance(value, staticmethod | classmethod):
            return f"{type(value).__name__}:{sub(value.__func__)}"
        if isinstance(value, property):
            return f"property:{sub((value.fget, value.fset, value.fdel))}"
        if isinstance(value, functools.cached_property):
            return f"cached_property:{sub(value.func)}"
        if isinstance(value, tuple | list | dict | set | frozenset):
            return self._container(value, sub)
        if dataclasses.is_dataclass(value):
            fields = {f.name: getattr(value, f.name, UNBOUND) for f in dataclasses.fields(value)}
            return f"dataclass:{sub(type(value))}:{sub(fields)}"
        if callable(value) and hasattr(value, "__wrapped__"):  # a third-party decorator
            wrapper = self._external(value, type(value).__module__)
            return f"wrapped:{wrapper}:{sub(value.__wrapped__)}"
        if isinstance(
            value,
            types.BuiltinFunctionType
            | types.WrapperDescriptorType
            | types.MethodDescriptorType
            | types.MethodWrapperType
            | types.ClassMethodDescriptorType
            | types.GetSetDescriptorType
            | types.MemberDescriptorType,
        ):
            owner = getattr(value, "__self__", None)
            if owner is not None and not isinstance(owner, types.ModuleType | type):
                return f"bound:{self._external(value, None)}:{sub(owner)}"
            return self._external(value, getattr(value, "__module__", None))
        if callable(value) and hasattr(value, "__name__") and not self._project_type(value):
            return self._external(value, getattr(value, "__module__", None))  # e.g. np.exp
        return self._cannot(value, name, depth, "")

    def _container(self, value: Any, sub: Any) -> str:
        kind = type(value)
        prefix = (
            kind.__name__
            if kind in (tuple, list, dict, set, frozenset)
            else f"{kind.__name__}:{sub(kind)}"
        )
        if isinstance(value, dict):
            factory = getattr(value, "default_factory", None)
            if factory is not None:
                prefix += f":{sub(factory)}"
            text = "{" + ",".join(f"{sub(k)}:{sub(v)}" for k, v in value.items()) + "}"
        elif isinstance(value, set | frozenset):
            text = "{" + ",".join(sorted(sub(v) for v in value)) + "}"
        else:
            text = "[" + ",".join(sub(v) for v in value) + "]"
        if len(text) > _LONG:  # a big table of constants: its digest is enough
            text = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        return prefix + text

    def _project_type(self, value: Any) -> bool:
        return self.session.is_project_class(type(value))

    def _external(self, value: Any, module: object) -> str:
        """Third-party or standard-library code: its name (the version is in the packages)."""
        if not isinstance(module, str):
            module = type(value).__module__
        self.tops.add(module.split(".")[0])
        name = getattr(value, "__qualname__", None) or getattr(value, "__name__", "?")
        return f"ext:{module}.{name}"

    def _cannot(self, value: Any, name: str, depth: int, why: str) -> str:
        shown = _shown(name)
        kind = type_name(value)
        text = (
            f"{self.label} reads {shown}, of type {kind}, which cannot be hashed"
            if depth == 0
            else f"{self.label} reads {shown}, which holds a {kind} that cannot be hashed"
        )
        if why:
            text += f" ({why})"
        if text not in self.problems:
            self.problems.append(text)
        return f"unhashable:{kind}"


def _shown(name: str) -> str:
    kind, _, rest = name.partition(":")
    if kind == "default" and rest:
        return f"the default of its argument {rest!r}"
    if kind == "closure" and rest:
        return f"the variable {rest!r} it closes over"
    if kind == "attribute" and rest:
        return f"its attribute {rest!r}"
    return f"the global {name}"


def _step_function(value: Any) -> Any:
    """The function of a funade step or pipeline object, else None."""
    kind = type(value)
    if (kind.__module__, kind.__name__) in _STEP_KINDS:
        return value.fn
    return None


_STEP_KINDS = {("funade.pipelines.steps", "Step"), ("funade.pipelines.dsl", "Pipeline")}
"""Where the classes of steps and pipelines are defined, by name: the DSL imports this module
(through codehash), so this module cannot import the DSL."""
