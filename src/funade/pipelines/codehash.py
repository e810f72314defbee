"""What a step's cache key knows about its code: everything of the project's it can reach.

:func:`describe_code` follows the step function to all the project's code it can reach
(``codeorigin`` says what is the project's), transitively, across modules:

- the functions and classes it calls or refers to — by name (``scale``), through a module
  (``helpers.scale``, ``pkg.sub.scale``), imported in its body (``from helpers import scale``,
  ``import helpers``), as a default argument, a closure variable, in a list or dict it reads;
  and the same for each of those, in their own modules;
- the values of the module-level globals they read (``FACTOR``), when they are plain data
  (``codevalues``: numbers, text, containers of those, numpy arrays, enums, dataclass
  instances …). A global that is not (a model object, a database connection) makes the step
  uncacheable, with the reason in :attr:`CodeFacts.uncacheable`;
- a project module used as a whole (passed around, ``getattr(helpers, name)``) counts whole.

Functions are hashed by their bytecode, constants and names (what runs, without line numbers:
comments, blank lines and docstrings change nothing); classes by their source's syntax tree
(decorators, bases, fields and methods; again without comments or docstrings), falling back to
their attributes when their source cannot be found. Third-party code counts by its
distribution's version (:attr:`CodeFacts.packages`), the object it names (``np.mean`` →
``np.median`` is a change), and nothing else; the standard library by the Python version.

Not covered: files read by path, environment variables, dynamic imports (``importlib``,
``__import__``) and code run from strings (``eval``, ``exec``). Code that changed on disk after
this process imported it (``codefresh``) is uncacheable too, since the step processes would run
another version of it.

Digests are memoized per object within a :func:`code_session` (one compile of a pipeline), so a
100-step pipeline reads each function once.
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import hashlib
import os
import sys
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from funade.pipelines import codefresh
from funade.pipelines.codeorigin import is_project_file, is_project_module, versions
from funade.pipelines.codereader import UNBOUND, Facts, Reader
from funade.pipelines.codesource import class_tree, code_digest

__all__ = ["CodeFacts", "code_session", "describe_code"]


@dataclass(frozen=True)
class CodeFacts:
    digest: str
    """``sha256:<hex>`` of all the project's code and data the step can reach."""
    packages: dict[str, str]
    """Distribution → version, for the third-party code it refers to."""
    uncacheable: str = ""
    """Why the step may not be cached (a value it reads cannot be hashed); "" if it may."""


_session: contextvars.ContextVar[_Session | None] = contextvars.ContextVar(
    "funade_code_session", default=None
)


@contextlib.contextmanager
def code_session() -> Iterator[None]:
    """Memoize what is learnt of each function, class and file until the block ends."""
    token = _session.set(_Session())
    try:
        yield
    finally:
        _session.reset(token)


def describe_code(fn: Any) -> CodeFacts:
    """What the cache key of a step whose function is ``fn`` knows of its code. Code this
    cannot read (a construct it does not know) makes the step uncacheable, never the run fail."""
    session = _session.get() or _Session()
    try:
        return session.describe(fn)
    except Exception as exc:  # the reason is the answer
        why = f"its code could not be hashed ({type(exc).__name__}: {exc})"
        return CodeFacts(f"sha256:{hashlib.sha256(why.encode()).hexdigest()}", {}, why)


_CLASS_SKIP = frozenset({"__dict__", "__weakref__", "__doc__", "__module__", "__qualname__"})


class _Session:
    def __init__(self) -> None:
        self.facts: dict[int, Facts] = {}
        self.described: dict[int, CodeFacts] = {}
        self.keep: list[Any] = []
        """What the ids above belong to, kept alive so that no id is reused meanwhile."""
        self.files: dict[str, str | None] = {}
        self.stale: dict[int, str] = {}
        self.projects: dict[str, bool] = {}
        self.trees: dict[str, ast.Module | None] = {}
        self.codes: dict[int, str] = {}

    # A step: the walk over everything it reaches ------------------------------------------

    def describe(self, fn: Any) -> CodeFacts:
        known = self.described.get(id(fn))
        if known is not None:
            return known
        hasher = hashlib.sha256(f"python {sys.version_info[0]}.{sys.version_info[1]}\0".encode())
        signature = self._signature_facts(fn)
        hasher.update(f"{signature.digest}\0".encode())
        tops: set[str] = set(signature.tops)
        problems: list[str] = list(signature.problems)
        order: dict[int, int] = {}
        stack: list[Any] = [*reversed(signature.reaches), fn]
        while stack:
            obj = stack.pop()
            seen = order.get(id(obj))
            if seen is not None:  # reached again: where it was first is enough
                hasher.update(f"ref {seen}\0".encode())
                continue
            order[id(obj)] = len(order)
            facts = self.facts_of(obj)
            hasher.update(f"{facts.label}\0{facts.digest}\0".encode())
            tops |= facts.tops
            problems += [p for p in facts.problems if p not in problems]
            stack.extend(reversed(facts.reaches))
        described = CodeFacts(
            digest=f"sha256:{hasher.hexdigest()}",
            packages=versions(tops),
            uncacheable=problems[0] if problems else "",
        )
        self.keep.append(fn)
        self.described[id(fn)] = described
        return described

    def _signature_facts(self, fn: Any) -> Facts:
        """The classes of the step's annotations: the packages of the types it takes and
        returns (a DataFrame's pandas), and the source of the project's (an output NamedTuple)."""
        reader = Reader(self, "its signature", getattr(fn, "__globals__", {}))
        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # unresolvable forward references: what is resolved
            hints = dict(getattr(fn, "__annotations__", {}))
        for name, hint in hints.items():
            for i, kind in enumerate(_classes_in(hint)):
                reader.reads[f"annotation:{name}:{i}"] = kind
        return reader.facts([])

    def facts_of(self, obj: Any) -> Facts:
        known = self.facts.get(id(obj))
        if known is None:
            if isinstance(obj, types.ModuleType):
                known = self._module_facts(obj)
            elif isinstance(obj, type):
                known = self._class_facts(obj)
            elif isinstance(obj, types.FunctionType):
                known = self._function_facts(obj)
            else:  # a step made of another callable
                reader = Reader(self, f"the callable {obj!r}", {})
                reader.reads["callable"] = obj
                known = reader.facts([])
            self.keep.append(obj)
            self.facts[id(obj)] = known
        return known

    # Whose code ---------------------------------------------------------------------------

    def is_project_module(self, name: str) -> bool:
        known = self.projects.get(name)
        if known is None:
            known = self.projects[name] = is_project_module(name)
        return known

    def is_project_function(self, fn: types.FunctionType) -> bool:
        module = getattr(fn, "__module__", None)
        if isinstance(module, str) and module.split(".")[0] == "funade":
            return False
        filename = fn.__code__.co_filename
        if os.path.isabs(filename) and os.path.exists(filename):
            return is_project_file(filename)
        return not isinstance(module, str) or self.is_project_module(module)

    def is_project_class(self, cls: type) -> bool:
        module = getattr(cls, "__module__", None)
        return isinstance(module, str) and self.is_project_module(module)

    def staleness(self, namespace: Mapping[str, Any]) -> str:
        key = id(namespace)
        if key not in self.stale:
            self.stale[key] = codefresh.stale(namespace, self.files)
            self.keep.append(namespace)
        return self.stale[key]

    # Functions, classes, modules ----------------------------------------------------------

    def _function_facts(self, fn: types.FunctionType) -> Facts:
        label = f"{fn.__module__}.{fn.__qualname__}"
        reader = Reader(self, label, fn.__globals__)
        reader.walk(fn.__code__)
        code = fn.__code__
        positional = code.co_varnames[: code.co_argcount]
        defaults = fn.__defaults__ or ()
        for name, value in zip(
            positional[len(positional) - len(defaults) :], defaults, strict=True
        ):
            reader.reads[f"default:{name}"] = value
        for name, value in (fn.__kwdefaults__ or {}).items():
            reader.reads[f"default:{name}"] = value
        for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=False):
            try:
                reader.reads[f"closure:{name}"] = cell.cell_contents
            except ValueError:
                reader.reads[f"closure:{name}"] = UNBOUND
        stale = self.staleness(fn.__globals__)
        if stale:
            reader.problems.append(f"{label}: {stale}")
        return reader.facts([code_digest(code, self.codes)])

    def _class_facts(self, cls: type) -> Facts:
        label = f"{cls.__module__}.{cls.__qualname__}"
        module = sys.modules.get(cls.__module__)
        namespace: Mapping[str, Any] = vars(module) if module is not None else {}
        reader = Reader(self, label, namespace)
        tree = class_tree(cls, module, self.trees)
        if tree is not None:
            content = ast.dump(tree)
            flags = 0
            if getattr(namespace.get("annotations"), "compiler_flag", None):
                flags = namespace["annotations"].compiler_flag
            code = compile(
                ast.Module(body=[tree], type_ignores=[]),
                getattr(module, "__file__", None) or "<class>",
                "exec",
                flags=flags,
                dont_inherit=True,
            )
            reader.walk(code)
        else:  # no source (made by a function such as namedtuple): what it holds
            content = "attributes"
            for name, value in vars(cls).items():
                if name not in _CLASS_SKIP:
                    reader.reads[f"attribute:{name}"] = value
            reader.reads["bases"] = cls.__bases__
        reader.reads["metaclass"] = type(cls)
        stale = self.staleness(namespace) if module is not None else ""
        if stale:
            reader.problems.append(f"{label}: {stale}")
        return reader.facts([content])

    def _module_facts(self, module: types.ModuleType) -> Facts:
        label = f"module {module.__name__}"
        reader = Reader(self, label, vars(module), whole=False)
        for name, value in vars(module).items():
            if not (name.startswith("__") and name.endswith("__")):
                reader.reads[name] = value
        stale = self.staleness(vars(module))
        if stale:
            reader.problems.append(f"{label}: {stale}")
        return reader.facts([])


def _classes_in(hint: Any) -> list[type]:
    """The classes an annotation names (``dict[str, pd.DataFrame]`` → dict, str, DataFrame)."""
    found: list[type] = []
    todo = [hint]
    while todo and len(found) < 100:
        current = todo.pop(0)
        if isinstance(current, type):
            found.append(current)
        origin = typing.get_origin(current)
        if isinstance(origin, type) and origin is not current:
            found.append(origin)
        todo += [a for a in typing.get_args(current) if not isinstance(a, str)]
    return found
