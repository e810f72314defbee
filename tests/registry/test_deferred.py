"""Heavy modules deferred while a model loads: a stand-in until first use, then the real module,
imported once, whichever way it is first needed."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from funade.registry.deferred import _StandIn, deferring
from funade.registry.package import build_package


@pytest.fixture
def heavy(tmp_path: Path) -> Iterator[str]:
    """A package ``heavy_<id>`` whose every module execution is recorded in ``<id>_runs``, with
    a submodule its ``__init__`` imports (``sub``) and one it does not (``extra``)."""
    name = f"heavy_{uuid.uuid4().hex[:8]}"
    package = tmp_path / name
    package.mkdir()
    log = f"{name}_runs"
    (tmp_path / f"{log}.py").write_text("runs = []\n")
    record = f"import {log}\n{log}.runs.append(__name__)\n"
    (package / "__init__.py").write_text(f"{record}from {name} import sub\nVALUE = 42\n")
    (package / "sub.py").write_text(f"{record}NUMBER = 7\n")
    (package / "extra.py").write_text(f"{record}WORD = 'hi'\n")
    (tmp_path / f"{name}_user.py").write_text(
        f"import {name}\n\ndef value():\n    return {name}.VALUE\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield name
    finally:
        sys.path.remove(str(tmp_path))
        for module in [m for m in sys.modules if m.startswith(name)]:
            del sys.modules[module]


def runs(name: str) -> list[str]:
    return list(sys.modules[f"{name}_runs"].runs)  # type: ignore[attr-defined]


def test_an_import_gets_a_stand_in_and_the_first_use_imports_the_real_module(heavy: str) -> None:
    __import__(f"{heavy}_runs")
    with deferring(heavy):
        user = __import__(f"{heavy}_user")
        assert isinstance(sys.modules[heavy], _StandIn)
    assert runs(heavy) == []
    assert heavy not in sys.modules  # what checks sys.modules sees it is not loaded
    assert user.value() == 42
    assert runs(heavy) == [heavy, f"{heavy}.sub"]
    real = sys.modules[heavy]
    assert not isinstance(real, _StandIn)
    assert getattr(user, heavy).sub is real.sub  # the stand-in forwards to the real module
    assert user.value() == 42
    assert runs(heavy) == [heavy, f"{heavy}.sub"]  # once


def test_from_import_in_the_block_imports_the_real_module(heavy: str) -> None:
    __import__(f"{heavy}_runs")
    with deferring(heavy):
        module = __import__(heavy, fromlist=["VALUE", "sub"])  # from heavy import VALUE, sub
        assert module.VALUE == 42
        assert not isinstance(sys.modules[heavy], _StandIn)
    assert module.sub is sys.modules[f"{heavy}.sub"]
    assert runs(heavy) == [heavy, f"{heavy}.sub"]


@pytest.mark.parametrize("submodule", ["sub", "extra"])
def test_a_submodule_imported_in_the_block_exists_once_under_its_real_package(
    heavy: str, submodule: str
) -> None:
    __import__(f"{heavy}_runs")
    with deferring(heavy):
        __import__(f"{heavy}.{submodule}")
    real = sys.modules[heavy]
    assert not isinstance(real, _StandIn)
    module = sys.modules[f"{heavy}.{submodule}"]
    assert getattr(real, submodule) is module
    assert module.__spec__ is not None
    assert module.__spec__.name == f"{heavy}.{submodule}"
    assert sorted(runs(heavy)) == sorted({heavy, f"{heavy}.sub", f"{heavy}.{submodule}"})


def test_a_module_already_imported_or_not_installed_is_not_deferred(heavy: str) -> None:
    real = __import__(heavy)
    with deferring(heavy, "no_such_module_anywhere"):
        assert sys.modules[heavy] is real
        with pytest.raises(ModuleNotFoundError, match="no_such_module_anywhere"):
            __import__("no_such_module_anywhere")
    assert sys.modules[heavy] is real
    assert runs(heavy) == [heavy, f"{heavy}.sub"]


SKLEARN_WITHOUT_PANDAS = """
import sys
import numpy as np
from funade.registry.package import load_package
model = load_package(sys.argv[1])
print(model.predict_conformed({"input": np.zeros((2, 3))}, ["predict"])["predict"].tolist())
print("pandas" in sys.modules)
import pandas
from sklearn.utils import fixes
print(fixes.pd.DataFrame is pandas.DataFrame)
"""

PICKLED_SERIES = """
import sys
from funade.registry.package import load_package
model = load_package(sys.argv[1])
print(type(model.native.lookup_) is sys.modules["pandas"].Series, model.native.lookup_.sum())
"""


def _run(code: str, package: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", code, str(package)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split("\n")[:-1]


def test_a_scikit_learn_model_loads_and_predicts_without_pandas(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    x = np.array([[0.0, 0, 0], [1, 1, 1], [0, 0, 1], [1, 1, 0]])
    model = LogisticRegression().fit(x, [0, 1, 0, 1])
    build_package(model, tmp_path / "lr", sample_input=x)
    assert _run(SKLEARN_WITHOUT_PANDAS, tmp_path / "lr") == ["[0, 0]", "False", "True"]


def test_a_pickle_that_holds_pandas_objects_loads_them_as_the_real_classes(
    tmp_path: Path,
) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    x = np.array([[0.0, 0, 0], [1, 1, 1], [0, 0, 1], [1, 1, 0]])
    model = LogisticRegression().fit(x, [0, 1, 0, 1])
    model.lookup_ = pd.Series([1, 2, 3])
    build_package(model, tmp_path / "lr", sample_input=x, options={"serialization": "joblib"})
    assert _run(PICKLED_SERIES, tmp_path / "lr") == ["True 6"]
