"""skops imported with its default estimator list deferred: empty to funade, computed for anyone
else (MLflow's sklearn flavor, a user's own skops.io.load), in a fresh process each."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("skops")


def run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
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
