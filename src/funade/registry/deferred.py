"""Heavy modules a framework imports but a model seldom uses, deferred while the model loads.

scikit-learn imports pandas when it starts (``sklearn.utils.fixes``: ``import pandas as pd``,
used only for DataFrame inputs), and pandas is 0.3 s of the 1.4 s a LogisticRegression takes
to load (a fifth of a model server's cold start). While a package loads, ``deferring("pandas")``
answers ``import pandas`` with a stand-in module, and the real module is imported the first time
anything needs it:

- an attribute of the stand-in is read (``pd.DataFrame``, ``from pandas import DataFrame``):
  the stand-in forwards every attribute to the real module from then on;
- a submodule is imported (``import pandas.core.frame``, or a pickle that holds a DataFrame):
  the real package is imported first, so each module exists once.

When the load ends, the stand-in leaves ``sys.modules`` (if nothing needed the real module):
code that looks there before ``isinstance(x, pandas.DataFrame)``, as scikit-learn does, sees
that pandas is not loaded, which is true; a later ``import pandas`` imports the real one, to
which the stand-ins held by modules forward too. A module that is not installed, or is already
imported, is not deferred.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

DEFERRED = ("pandas",)
"""What ``load_package`` defers."""

_lock = threading.Lock()


class _StandIn(types.ModuleType):
    """Forwards attribute reads to the real module, importing it on the first."""

    def __getattr__(self, attr: str) -> Any:
        state = self.__dict__
        if not state.get("_funade_armed"):  # being set up by the import system
            raise AttributeError(attr)
        real = state.get("_funade_real")
        if real is None:
            real = state["_funade_real"] = _realize(self.__name__)
        return getattr(real, attr)


class _Deferrer(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers the deferred packages with stand-ins, and imports the real package before any
    of its submodules."""

    def __init__(self, specs: dict[str, importlib.machinery.ModuleSpec]) -> None:
        self.specs = specs  # the real specs of the packages still deferred

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in self.specs:
            real = self.specs[fullname]
            return importlib.machinery.ModuleSpec(
                fullname, self, is_package=real.submodule_search_locations is not None
            )
        root = fullname.partition(".")[0]
        if root != fullname and isinstance(sys.modules.get(root), _StandIn):
            _realize(root)
            module = importlib.import_module(fullname)  # now with its real parent
            # The import system, finding the module imported meanwhile, would load it again
            # from its __spec__ (a second copy): the spec it finds hands back this one.
            spec = importlib.machinery.ModuleSpec(fullname, _Existing(module))
            module.__spec__ = spec
            return spec
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _StandIn(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        real = self.specs[module.__name__]
        if real.submodule_search_locations is not None:  # found as a package without importing
            module.__path__ = list(real.submodule_search_locations)
        module.__dict__["_funade_armed"] = True


class _Existing(importlib.abc.Loader):
    """Hands the import system a module that is already imported."""

    def __init__(self, module: types.ModuleType) -> None:
        self._module = module
        self._spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self._module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = self._spec  # its own again


_deferrers: list[_Deferrer] = []


def _realize(name: str) -> types.ModuleType:
    """The real module ``name``, imported now if need be (no longer deferred)."""
    with _lock:  # not held while importing: the import system has its own module locks
        for deferrer in _deferrers:
            deferrer.specs.pop(name, None)
        stand_in = sys.modules.get(name)
        if isinstance(stand_in, _StandIn):
            del sys.modules[name]
    return importlib.import_module(name)


@contextmanager
def deferring(*names: str) -> Iterator[None]:
    """Within the block, ``import name`` gives a stand-in (see the module's docstring) for each
    of ``names`` that is installed and not imported yet."""
    with _lock:
        specs = {}
        for name in names:
            if name in sys.modules:
                continue
            spec = importlib.util.find_spec(name)
            if spec is not None:
                specs[name] = spec
        if not specs:
            yield
            return
        deferrer = _Deferrer(specs)
        _deferrers.append(deferrer)
        sys.meta_path.insert(0, deferrer)
    try:
        yield
    finally:
        with _lock:
            sys.meta_path.remove(deferrer)
            _deferrers.remove(deferrer)
            for name in list(deferrer.specs):
                if isinstance(sys.modules.get(name), _StandIn):
                    del sys.modules[name]
