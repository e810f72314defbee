"""skops, imported without paying for a trust list funade does not use.

At import, ``skops.io`` computes the names of every scikit-learn estimator as its default trust
list (``sklearn.utils.all_estimators``), which imports every module of scikit-learn, and PyTorch
too when it is installed, through scikit-learn's array API shims: seconds of a model server's
start. funade never relies on that list: a package records every type its skops file holds
(each checked to be a scikit-learn, NumPy or SciPy type) and loading trusts exactly those.

So ``skops_io()`` imports skops with that list empty and puts a ``_DeferredNames`` in its place:
inside ``exact_trust()`` (funade's own saves, checks and loads) it is empty; anyone else who
reads it (MLflow's sklearn flavor, a user's own ``skops.io.load``) finds it computed on first use,
as if skops had computed it at import. If skops is already imported, or its internals are not
laid out as expected, it is left exactly as skops made it.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any, SupportsIndex

from funade.registry.flavors.base import require

__all__ = ["defaults_were_deferred", "exact_trust", "skops_io", "types_beyond_builtins"]

_EXACT = contextvars.ContextVar("funade_skops_exact_trust", default=False)
_LIST_NAME = "SKLEARN_ESTIMATOR_TYPE_NAMES"


class _DeferredNames(list[str]):
    """skops's default list of estimator names, computed when someone other than funade reads
    it; empty to funade (inside ``exact_trust``)."""

    def __init__(self) -> None:
        super().__init__()
        self._filled = False
        self._lock = threading.Lock()

    def _names(self) -> list[str]:
        if _EXACT.get():
            return []
        if not self._filled:
            with self._lock:
                if not self._filled:
                    self._fill()
        return list(super().__iter__())

    def _fill(self) -> None:
        from sklearn.utils import all_estimators

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            classes = [c for _, c in all_estimators()]
        names = [f"{c.__module__}.{c.__name__}" for c in classes]
        super().extend(n for n in names if n.startswith("sklearn."))
        self._filled = True

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


def skops_io() -> ModuleType:
    """``skops.io``, with its default estimator list deferred (see the module docstring)."""
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    sklearn_utils = require("sklearn.utils", extra="sklearn", needed_by="The sklearn flavor")
    real = sklearn_utils.all_estimators
    setattr(sklearn_utils, "all_estimators", lambda *_args, **_kwargs: [])  # noqa: B010
    try:
        sio = require("skops.io", extra="sklearn", needed_by="The sklearn flavor")
    finally:
        setattr(sklearn_utils, "all_estimators", real)  # noqa: B010
    _defer_default_list()
    return sio


def _defer_default_list() -> None:
    """Swap skops's (empty) default list for a deferred one in every skops module holding it;
    compute it at once if it is not where it is expected."""
    trusted_types = sys.modules.get("skops.io._trusted_types")
    empty = getattr(trusted_types, _LIST_NAME, None)
    deferred = _DeferredNames()
    if not isinstance(empty, list) or empty:
        return
    holders = [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("skops") and getattr(module, _LIST_NAME, None) is empty
    ]
    for module in holders:
        setattr(module, _LIST_NAME, deferred)


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
    not skops's default estimator list is filled, so the same model always records the same
    list."""
    with exact_trust():
        if defaults_were_deferred():
            found: list[str] = sio.get_untrusted_types(**source)
            return found
        from skops.io import _trusted_types  # imported by someone else, with its list filled

        plain: list[str] = getattr(_trusted_types, _LIST_NAME)
        with _PLAIN_LOCK:
            kept = plain[:]
            plain.clear()
            try:
                found = sio.get_untrusted_types(**source)
            finally:
                plain.extend(kept)
        return found


def defaults_were_deferred() -> bool:
    """True if skops's default list is a deferred one (so a package that relied on it can be
    retried outside ``exact_trust``)."""
    trusted_types = sys.modules.get("skops.io._trusted_types")
    return isinstance(getattr(trusted_types, _LIST_NAME, None), _DeferredNames)
