"""skops, imported without paying for trust lists funade does not use.

At import, ``skops.io`` computes two default trust lists: the names of every scikit-learn
estimator (``sklearn.utils.all_estimators``, which imports every module of scikit-learn, and
PyTorch too when it is installed, through scikit-learn's array API shims: seconds of a model
server's start), and the names of every SciPy ufunc (a walk over ``scipy.special``: 0.13-0.2 s).
funade never relies on them: a package records every type its skops file holds (each checked
to be a scikit-learn, NumPy or SciPy type) and loading trusts exactly those.

So ``skops_io()`` imports skops with both lists empty (``all_estimators`` answering nothing and
``scipy.special`` listing nothing for that moment) and puts a ``_DeferredNames`` in their place:
inside ``exact_trust()`` (funade's own saves, checks and loads) they are empty; anyone else who
reads them (MLflow's sklearn flavor, a user's own ``skops.io.load``) finds them computed on
first use, as if skops had computed them at import. If skops is already imported, or its
internals are not laid out as expected, a list is left exactly as skops made it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, SupportsIndex

from funade.registry.flavors.base import require

__all__ = [
    "all_safe",
    "defaults_were_deferred",
    "exact_trust",
    "is_public_estimator",
    "safe_type_names",
    "skops_io",
    "types_beyond_builtins",
]

_EXACT = contextvars.ContextVar("funade_skops_exact_trust", default=False)
_ESTIMATORS = "SKLEARN_ESTIMATOR_TYPE_NAMES"
_SCIPY_UFUNCS = "SCIPY_UFUNC_TYPE_NAMES"


class _DeferredNames(list[str]):
    """One of skops's default lists, computed by ``compute`` when someone other than funade
    reads it; empty to funade (inside ``exact_trust``)."""

    def __init__(self, compute: Callable[[], list[str]]) -> None:
        super().__init__()
        self._compute = compute
        self._filled = False
        self._lock = threading.Lock()

    def _names(self) -> list[str]:
        if _EXACT.get():
            return []
        if not self._filled:
            with self._lock:
                if not self._filled:
                    super().extend(self._compute())
                    self._filled = True
        return list(super().__iter__())

    def __add__(self, other: list[str]) -> list[str]:  # type: ignore[override]
        return self._names() + list(other)

    def __radd__(self, other: list[str]) -> list[str]:
        return list(other) + self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, item: object) -> bool:
        return item in self._names()

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        return self._names()[index]

    def __bool__(self) -> bool:
        return bool(self._names())

    def __repr__(self) -> str:
        return repr(self._names())


def _estimator_names() -> list[str]:
    """skops's SKLEARN_ESTIMATOR_TYPE_NAMES, computed as skops computes it."""
    from sklearn.utils import all_estimators

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classes = [c for _, c in all_estimators()]
    names = [f"{c.__module__}.{c.__name__}" for c in classes]
    return [n for n in names if n.startswith("sklearn.")]


def _scipy_ufunc_names() -> list[str]:
    """skops's SCIPY_UFUNC_TYPE_NAMES, computed as skops computes it."""
    import numpy as np
    from skops.io._utils import get_public_type_names
    from skops.utils._fixes import get_scipy_ufunc_wrapper_type

    special = importlib.import_module("scipy.special")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        names = set(get_public_type_names(module=special, oftype=np.ufunc))
        wrapper = get_scipy_ufunc_wrapper_type()
        if wrapper is not None:
            names |= set(get_public_type_names(module=special, oftype=wrapper))
    return sorted(names)


_DEFERRED: dict[str, Callable[[], list[str]]] = {
    _ESTIMATORS: _estimator_names,
    _SCIPY_UFUNCS: _scipy_ufunc_names,
}


def skops_io() -> ModuleType:
    """``skops.io``, with its default lists deferred (see the module docstring)."""
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    sklearn_utils = require("sklearn.utils", extra="sklearn", needed_by="The sklearn flavor")
    scipy_special = importlib.import_module("scipy.special")  # skops imports it anyway
    with contextlib.ExitStack() as stack:
        stack.enter_context(_swapped(sklearn_utils, "all_estimators", lambda *_a, **_k: []))
        if "__dir__" not in vars(scipy_special):  # else scipy lists itself: leave it be
            stack.enter_context(_swapped(scipy_special, "__dir__", list))  # dir() == []
        sio = require("skops.io", extra="sklearn", needed_by="The sklearn flavor")
    for name, compute in _DEFERRED.items():
        _defer_default_list(name, compute)
    return sio


@contextlib.contextmanager
def _swapped(module: ModuleType, name: str, value: object) -> Iterator[None]:
    """``module.name`` is ``value`` within; afterwards as it was (or absent, if it was)."""
    missing = object()
    before = vars(module).get(name, missing)
    setattr(module, name, value)
    try:
        yield
    finally:
        if before is missing:
            delattr(module, name)
        else:
            setattr(module, name, before)


def _defer_default_list(name: str, compute: Callable[[], list[str]]) -> None:
    """Swap skops's (empty) default list ``name`` for a deferred one in every skops module
    holding it; leave it if it is not the empty list expected (skops computed it)."""
    trusted_types = sys.modules.get("skops.io._trusted_types")
    empty = getattr(trusted_types, name, None)
    if not isinstance(empty, list) or empty:
        return
    deferred = _DeferredNames(compute)
    holders = [
        module
        for module_name, module in list(sys.modules.items())
        if module_name.startswith("skops") and getattr(module, name, None) is empty
    ]
    for module in holders:
        setattr(module, name, deferred)


@contextlib.contextmanager
def exact_trust() -> Iterator[None]:
    """Within: skops trusts only the types a call names, not its deferred defaults."""
    token = _EXACT.set(True)
    try:
        yield
    finally:
        _EXACT.reset(token)


_PLAIN_LOCK = threading.Lock()


def types_beyond_builtins(sio: ModuleType, **source: Any) -> list[str]:
    """Every type a skops file (``file=`` or ``data=``) holds beyond skops's builtins, whether or
    not skops's default lists are filled, so the same model always records the same list."""
    from skops.io import _trusted_types

    with exact_trust():
        plain: list[list[str]] = [
            names
            for name in _DEFERRED
            if isinstance(names := getattr(_trusted_types, name, None), list)
            and not isinstance(names, _DeferredNames)
        ]
        if not plain:
            found: list[str] = sio.get_untrusted_types(**source)
            return found
        with _PLAIN_LOCK:  # lists skops filled (imported by someone else): emptied meanwhile
            kept = [names[:] for names in plain]
            for names in plain:
                names.clear()
            try:
                found = sio.get_untrusted_types(**source)
            finally:
                for names, back in zip(plain, kept, strict=True):
                    names.extend(back)
        return found


def defaults_were_deferred() -> bool:
    """True if one of skops's default lists is a deferred one (so a package that relied on it
    can be retried outside ``exact_trust``)."""
    trusted_types = sys.modules.get("skops.io._trusted_types")
    return any(isinstance(getattr(trusted_types, n, None), _DeferredNames) for n in _DEFERRED)


_SAFE_LISTS = (
    "PRIMITIVE_TYPE_NAMES",
    "CONTAINER_TYPE_NAMES",
    "SKLEARN_INTERNAL_TYPE_NAMES",
    "NUMPY_UFUNC_TYPE_NAMES",
    "NUMPY_DTYPE_TYPE_NAMES",
    "NUMPY_RANDOM_BIT_GENERATOR_TYPE_NAMES",
)


@functools.cache
def _safe_lists() -> frozenset[str] | None:
    """skops's explicit default lists that cost nothing to build (primitives, containers, the
    internal loss and link types, NumPy ufuncs, dtypes and bit generators); None where
    scikit-learn or skops is not installed."""
    try:
        skops_io()
    except Exception:
        return None
    from skops.io import _trusted_types

    names: set[str] = set()
    for name in _SAFE_LISTS:
        found = getattr(_trusted_types, name, None)
        if isinstance(found, list) and not isinstance(found, _DeferredNames):
            names.update(str(n) for n in found)
    return frozenset(names)


@functools.cache
def _scipy_ufuncs() -> frozenset[str]:
    return frozenset(_scipy_ufunc_names())


# Where scikit-learn's ``all_estimators`` does not look (its ``_MODULE_TO_IGNORE``).
_NOT_WALKED = frozenset(("tests", "externals", "setup", "conftest", "experimental"))


def is_public_estimator(name: str) -> bool:
    """Whether ``name`` (``module.Class``) is on skops's list of every public scikit-learn
    estimator, decided for that one type: the class, exported under its own name by the public
    package that holds its module (``sklearn.linear_model`` for
    ``sklearn.linear_model._logistic.LogisticRegression``), is a concrete ``BaseEstimator``.
    ``all_estimators`` finds exactly such classes by importing every module of scikit-learn
    (seconds); this imports one package. A class exported only elsewhere counts as not on the
    list (so its package asks for the deploy-code scope), never the reverse."""
    module_name, _, class_name = name.rpartition(".")
    parts = module_name.split(".")
    if parts[0] != "sklearn" or not class_name or class_name.startswith("_"):
        return False
    public = []
    for part in parts:
        if part.startswith("_"):
            break
        public.append(part)
    if any(part in _NOT_WALKED or part.startswith("estimator_checks") for part in public):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            package = importlib.import_module(".".join(public))
            found = getattr(package, class_name, None)
        from sklearn.base import BaseEstimator
    except Exception:
        return False
    return (
        isinstance(found, type)
        and f"{found.__module__}.{found.__name__}" == name
        and issubclass(found, BaseEstimator)
        and class_name != "BaseEstimator"
        and not getattr(found, "__abstractmethods__", None)
    )


def all_safe(names: list[str]) -> bool | None:
    """Whether every type in ``names`` is on skops's default trust list, types skops leaves off
    it on purpose (tree internals, functions) are not (None where scikit-learn or skops is not
    installed): what makes a skops file load without running code of its choosing. Each type is
    checked by itself, so an estimator costs the import of its package, not the whole list
    (``safe_type_names``, which imports every module of scikit-learn)."""
    rest = [n for n in names if not is_public_estimator(n)]
    if not rest:
        return True
    safe = _safe_lists()
    if safe is None:
        return None
    rest = [n for n in rest if n not in safe]
    if rest and all(n.startswith("scipy.") for n in rest):
        rest = [n for n in rest if n not in _scipy_ufuncs()]
    return not rest


@functools.cache
def safe_type_names() -> frozenset[str] | None:
    """The explicit list of types a skops file may hold and still load without running code of
    the file's choosing: skops's own default trust (every public scikit-learn estimator, the
    internal loss and link types, NumPy and SciPy ufuncs, dtypes and bit generators). Types
    skops leaves out of it on purpose (tree internals, whose content it cannot check, and any
    function) are not on it. None where scikit-learn or skops is not installed.

    Computing it imports every module of scikit-learn (seconds), once per process; the control
    plane decides a package type by type instead (``all_safe``); the tests hold that to this."""
    lists = _safe_lists()
    if lists is None:
        return None
    return lists | set(_estimator_names()) | _scipy_ufuncs()
