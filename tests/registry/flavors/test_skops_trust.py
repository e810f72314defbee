"""skops imported with its default estimator and SciPy ufunc lists deferred: empty to funade,
computed for anyone else (MLflow's sklearn flavor, a user's own skops.io.load), in a fresh
process each."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("skops")


def run(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_other_users_of_skops_get_its_default_trust_list() -> None:
    out = run(
        """
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from funade.registry.flavors.skops_trust import exact_trust, skops_io
        sio = skops_io()
        from skops.io import _trusted_types as t
        with exact_trust():
            print(len(t.SKLEARN_ESTIMATOR_TYPE_NAMES), t.SKLEARN_ESTIMATOR_TYPE_NAMES._filled)
        model = LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])
        loaded = sio.loads(sio.dumps(model))  # trusting skops's defaults only, as MLflow does
        print(type(loaded).__name__, t.SKLEARN_ESTIMATOR_TYPE_NAMES._filled)
        print("sklearn.linear_model._logistic.LogisticRegression" in t.SKLEARN_ESTIMATOR_TYPE_NAMES)
        """
    )
    assert out.splitlines() == ["0 False", "LogisticRegression True", "True"]


def test_inside_exact_trust_an_unrecorded_type_is_refused() -> None:
    out = run(
        """
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from funade.registry.flavors.skops_trust import exact_trust, skops_io
        sio = skops_io()
        from skops.io.exceptions import UntrustedTypesFoundException
        data = sio.dumps(LogisticRegression().fit(np.eye(4), [0, 1, 0, 1]))
        with exact_trust():
            try:
                sio.loads(data, trusted=[])
            except UntrustedTypesFoundException as exc:
                print("refused:", exc)
        """
    )
    assert out.startswith("refused: Untrusted types found in the file: ")
    assert "LogisticRegression" in out


def test_skops_imported_by_someone_else_first_is_left_as_it_is() -> None:
    out = run(
        """
        import skops.io
        from skops.io import _trusted_types as t
        from funade.registry.flavors.skops_trust import defaults_were_deferred, skops_io
        assert skops_io() is skops.io
        print(type(t.SKLEARN_ESTIMATOR_TYPE_NAMES).__name__, defaults_were_deferred())
        """
    )
    assert out == "list False"


def test_the_scipy_ufunc_list_is_deferred_and_computed_as_skops_computes_it() -> None:
    plain = run(
        """
        import json
        import sklearn.linear_model
        import skops.io
        from skops.io import _trusted_types as t
        print(json.dumps(t.SCIPY_UFUNC_TYPE_NAMES))
        """
    )
    ours = run(
        """
        import json
        import scipy.special
        import sklearn.linear_model
        from funade.registry.flavors.skops_trust import exact_trust, skops_io
        skops_io()
        from skops.io import _general, _trusted_types as t
        assert _general.SCIPY_UFUNC_TYPE_NAMES is t.SCIPY_UFUNC_TYPE_NAMES
        assert "__dir__" not in vars(scipy.special) and "expit" in dir(scipy.special)
        with exact_trust():
            print(len(t.SCIPY_UFUNC_TYPE_NAMES), t.SCIPY_UFUNC_TYPE_NAMES._filled)
        print(json.dumps(list(t.SCIPY_UFUNC_TYPE_NAMES)))
        """
    )
    empty, names = ours.splitlines()
    assert empty == "0 False"
    assert json.loads(names) == json.loads(plain)
    assert len(json.loads(plain)) > 100


MODEL_WITH_A_UFUNC = """
import json
import numpy as np
import scipy.special
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.linear_model import LogisticRegression
{first}
from funade.registry.flavors.sklearn_files import save_skops
from pathlib import Path
model = make_pipeline(FunctionTransformer(scipy.special.expit), LogisticRegression())
model.fit(np.eye(4), [0, 1, 0, 1])
print(json.dumps(save_skops(model, Path({file!r}))))
"""

LOAD_IT = """
import json, sys
import numpy as np
from pathlib import Path
from funade.registry.flavors.sklearn_files import load_skops
model = load_skops(Path(sys.argv[1]), json.loads(sys.argv[2]))
from skops.io import _trusted_types as t
print(model.predict(np.eye(4)).tolist(), t.SCIPY_UFUNC_TYPE_NAMES._filled)
"""


def _load_in_a_fresh_process(file: Path, trusted: list[str]) -> str:
    """What LOAD_IT prints: the predictions, and whether skops's ufunc list was computed."""
    return run(LOAD_IT, str(file), json.dumps(trusted))


def test_a_model_holding_a_scipy_ufunc_records_it_and_loads_with_exact_trust(
    tmp_path: Path,
) -> None:
    deferred_file, plain_file = tmp_path / "deferred.skops", tmp_path / "plain.skops"
    recorded = json.loads(run(MODEL_WITH_A_UFUNC.format(first="", file=str(deferred_file))))
    # skops imported by someone else first: its lists filled, the same types recorded
    plain = run(MODEL_WITH_A_UFUNC.format(first="import skops.io", file=str(plain_file)))
    assert json.loads(plain) == recorded
    assert any(name.endswith(".expit") for name in recorded)
    # loaded without computing the list
    assert _load_in_a_fresh_process(deferred_file, recorded) == "[0, 1, 0, 1] False"


def test_a_package_saved_before_ufuncs_were_recorded_still_loads(tmp_path: Path) -> None:
    """Packages saved while skops's ufunc list was computed at import did not record the ufuncs
    it trusted by default; loading them computes the list, once."""
    file = tmp_path / "model.skops"
    recorded = json.loads(run(MODEL_WITH_A_UFUNC.format(first="", file=str(file))))
    older = [name for name in recorded if not name.endswith(".expit")]
    assert older != recorded
    assert _load_in_a_fresh_process(file, older) == "[0, 1, 0, 1] True"


def test_types_checked_one_by_one_agree_with_skops_whole_default_list() -> None:
    """The control plane decides whether a skops package runs code type by type (importing one
    package per estimator) rather than by building skops's list of every estimator (importing
    all of scikit-learn): every estimator on that list passes, and what is off it does not."""
    out = run(
        """
        import json
        from funade.registry.flavors.skops_trust import (
            _estimator_names, all_safe, is_public_estimator, safe_type_names)
        estimators = _estimator_names()
        others = ["sklearn.tree._tree.Tree", "builtins.eval", "sklearn.base.BaseEstimator",
                  "sklearn.linear_model._base.LinearModel", "numpy.ndarray",
                  "sklearn._loss.link.HalfLogitLink", "numpy.add",
                  "scipy.special._special_ufuncs.airy", "sklearn.utils._testing.MinimalClassifier"]
        print(json.dumps({
            "estimators": len(estimators),
            "missed": [n for n in estimators if not is_public_estimator(n)],
            "differ": [n for n in others if all_safe([n]) != (n in safe_type_names())],
            "mixed": all_safe(["sklearn.linear_model._logistic.LogisticRegression", "numpy.add"]),
            "one_bad": all_safe(["sklearn.linear_model._logistic.LogisticRegression",
                                 "sklearn.tree._tree.Tree"]),
        }))
        """
    )
    got = json.loads(out)
    assert got["estimators"] > 100
    assert got["missed"] == []
    assert got["differ"] == []
    assert got["mixed"] is True
    assert got["one_bad"] is False
