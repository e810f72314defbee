"""funade.components.train_and_evaluate imports the estimator a parameter names: a path outside
the allowed packages is refused before anything is imported, and one that is not an estimator
class is refused, each with the field, the value and the fix; also when a run passes it."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from funade.components import ALLOWED_ESTIMATORS, resolve_estimator
from funade.errors import InvalidInputError
from tests.conftest import Result


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("os.system", "is outside the packages estimators may come from"),
        ("subprocess.Popen", "is outside the packages estimators may come from"),
        ("builtins.eval", "is outside the packages estimators may come from"),
        ("antigravity.fly", "is outside the packages estimators may come from"),
        ("sklearnx.Model", "is outside the packages estimators may come from"),
        ("sklearn.base.clone", "is a function, not a class"),
        ("sklearn.linear_model.Nope", "is nothing in sklearn.linear_model, not a class"),
        ("sklearn.utils.Bunch", "is not a scikit-learn estimator of the allowed packages"),
        ("sklearn.nope_module.X", "names the module 'sklearn.nope_module', which is not"),
        ("__import__('os').system", "is not a dotted import path"),
        ("sklearn", "is not a dotted import path"),
        ("sklearn..X", "is not a dotted import path"),
    ],
)
def test_a_path_that_is_not_an_allowed_estimator_is_refused(path: str, reason: str) -> None:
    before = set(sys.modules)
    with pytest.raises(InvalidInputError) as caught:
        resolve_estimator(path)
    error = caught.value
    assert str(error).startswith(f"train_and_evaluate: estimator {path!r} {reason}")
    assert (error.field, error.value) == ("estimator", path)
    assert "sklearn.linear_model.LogisticRegression" in (error.fix or "")
    if path.split(".")[0] not in ALLOWED_ESTIMATORS:
        assert set(sys.modules) == before  # nothing outside the allowed packages was imported


def test_a_run_given_a_hostile_estimator_fails_that_step_with_the_reason(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    (tmp_path / "flow.py").write_text(
        textwrap.dedent(
            """
        import pandas as pd

        import funade

        from funade.components import split_table, train_and_evaluate


        @funade.step
        def table() -> pd.DataFrame:
            return pd.DataFrame({"x": range(10), "y": [0, 1] * 5})


        @funade.pipeline
        def flow(estimator: str = "sklearn.linear_model.LogisticRegression") -> None:
            parts = split_table(table())
            train_and_evaluate(parts.train, parts.test, "y", estimator)
        """
        )
    )
    target = f"{tmp_path / 'flow.py'}:flow"
    result = cli("pipeline", "run", target, "-p", "estimator=os.system", "--no-logs")
    assert result.code == 1
    run = json.loads(cli("runs", "show", "1", "--json").out)
    step = next(s for s in run["steps"] if s["instance"] == "train_and_evaluate")
    assert step["state"] == "failed"
    assert (
        "estimator 'os.system' is outside the packages estimators may come from" in (step["error"])
    )
