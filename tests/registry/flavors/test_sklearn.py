"""The scikit-learn flavor: skops (safe) and joblib round trips, DataFrames, trust, checks."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from funade.errors import (
    ArtifactCorruptError,
    InvalidArtifactError,
    InvalidInputError,
    ModelLoadError,
)
from funade.registry.package import build_package, check_package_members, load_package
from tests.registry.helpers import members, read_manifest_json, rewrite_file, write_manifest_json


def double(x: Any) -> Any:
    return x * 2


@pytest.mark.parametrize("serialization", ["skops", "joblib"])
@pytest.mark.parametrize("fixture", ["logreg", "forest"])
def test_round_trip(
    fixture: str, serialization: str, request: pytest.FixtureRequest, data: Any, tmp_path: Path
) -> None:
    estimator = request.getfixturevalue(fixture)
    x = data[0]
    manifest, golden = build_package(
        estimator, tmp_path / "pkg", sample_input=x[:5], options={"serialization": serialization}
    )
    assert manifest.flavor == "sklearn"
    assert manifest.flavor_metadata["serialization"] == serialization
    assert set(manifest.files) == {f"model.{serialization}"}
    assert {"scikit-learn", "numpy", serialization} <= set(manifest.requirements)
    assert [s.name for s in manifest.signature.outputs] == ["predict", "predict_proba"]
    assert len(golden) == 1
    model = load_package(tmp_path / "pkg")
    out = model.predict_all(x)
    np.testing.assert_array_equal(out["predict"], estimator.predict(x))
    np.testing.assert_allclose(out["predict_proba"], estimator.predict_proba(x))
    assert model.native is not estimator
    assert check_package_members(members(tmp_path / "pkg")) == manifest


def test_skops_records_every_type_the_file_holds(
    forest: Any, logreg: Any, data: Any, tmp_path: Path
) -> None:
    """The complete list, whatever skops trusts by default, so loading trusts exactly these and
    the same model always gives the same package."""
    tree, _ = build_package(forest, tmp_path / "tree", sample_input=data[0][:2])
    assert tree.flavor_metadata["trusted_types"] == [
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._tree.Tree",
    ]
    linear, _ = build_package(logreg, tmp_path / "linear", sample_input=data[0][:2])
    assert linear.flavor_metadata["trusted_types"] == [
        "sklearn.linear_model._logistic.LogisticRegression"
    ]


FRESH_LOAD = """
import sys
import numpy as np
from funade.registry.package import load_package
model = load_package(sys.argv[1])
from skops.io import _trusted_types
names = _trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES
print(type(names).__name__, names._filled, "torch" in sys.modules)
print(model.predict(np.asarray([[float(v) for v in sys.argv[2:]]])).tolist())
"""


def _load_in_a_fresh_process(directory: Path, row: Any) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", FRESH_LOAD, str(directory), *map(str, row)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.split("\n")


def test_a_server_loads_skops_without_importing_all_of_scikit_learn(
    logreg: Any, data: Any, tmp_path: Path
) -> None:
    """skops computes a list of every estimator at import (importing all of scikit-learn, and
    PyTorch through its array API shims); funade's loading does not need it and skips it."""
    build_package(logreg, tmp_path / "pkg", sample_input=data[0][:2])
    state, prediction, _ = _load_in_a_fresh_process(tmp_path / "pkg", data[0][0])
    assert state == "_DeferredNames False False"
    assert prediction == str(logreg.predict(data[0][:1]).tolist())


def test_a_package_that_relied_on_skops_defaults_still_loads(
    logreg: Any, data: Any, tmp_path: Path
) -> None:
    """Packages saved before every type was recorded list only what skops did not trust."""
    build_package(logreg, tmp_path / "pkg", sample_input=data[0][:2])
    manifest = read_manifest_json(tmp_path / "pkg")
    manifest["flavor_metadata"]["trusted_types"] = []
    write_manifest_json(tmp_path / "pkg", manifest)
    state, prediction, _ = _load_in_a_fresh_process(tmp_path / "pkg", data[0][0])
    assert state.startswith("_DeferredNames True")  # the defaults were computed for it
    assert prediction == str(logreg.predict(data[0][:1]).tolist())


def test_dataframe_pipeline_round_trip(
    frame_pipeline: Any, frame: pd.DataFrame, tmp_path: Path
) -> None:
    manifest, golden = build_package(frame_pipeline, tmp_path / "pkg", sample_input=frame[:5])
    sig = manifest.signature
    assert sig.input_format == "columns"
    assert [(s.name, s.datatype) for s in sig.inputs] == [
        ("age", "FP64"),
        ("income", "FP64"),
        ("plan", "BYTES"),
    ]
    assert [t["name"] for t in golden[0]["inputs"]] == ["age", "income", "plan"]
    model = load_package(tmp_path / "pkg")
    shuffled = frame[["plan", "age", "income"]]  # order does not matter, names do
    out = model.predict_all(shuffled)
    np.testing.assert_array_equal(out["predict"], frame_pipeline.predict(frame))


def test_a_dataframe_model_reads_text_columns_as_they_arrive_from_the_wire(
    frame_pipeline: Any, frame: pd.DataFrame, tmp_path: Path
) -> None:
    """The server hands a ``BYTES`` input over as UTF-8 ``bytes``; the encoder was fitted on
    ``str``, and would take ``b"gold"`` for a category it never saw."""
    build_package(frame_pipeline, tmp_path / "pkg", sample_input=frame[:5])
    model = load_package(tmp_path / "pkg")
    wire = {
        "age": frame["age"].to_numpy(),
        "income": frame["income"].to_numpy(),
        "plan": np.array([v.encode() for v in frame["plan"]], dtype=object),
    }
    np.testing.assert_array_equal(model.predict(wire), frame_pipeline.predict(frame))


def test_methods_option(logreg: Any, data: Any, tmp_path: Path) -> None:
    manifest, _ = build_package(
        logreg, tmp_path / "pkg", sample_input=data[0][:3], options={"methods": ["predict"]}
    )
    assert [s.name for s in manifest.signature.outputs] == ["predict"]
    labels = load_package(tmp_path / "pkg").predict(data[0][:4])
    np.testing.assert_array_equal(labels, logreg.predict(data[0][:4]))


def test_bad_options(logreg: Any, data: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        build_package(
            logreg, tmp_path / "a", sample_input=data[0][:2], options={"methods": ["fit"]}
        )
    assert info.value.field == "options.methods"
    with pytest.raises(InvalidInputError) as info:
        build_package(
            logreg, tmp_path / "b", sample_input=data[0][:2], options={"serialization": "pickle"}
        )
    assert info.value.field == "options.serialization"
    assert "'skops' (default) or 'joblib'" in str(info.value)
    with pytest.raises(InvalidInputError) as info:
        build_package(logreg, tmp_path / "c", sample_input=data[0][:2], options={"compress": 3})
    assert info.value.field == "options.compress"


def _custom_pipeline(data: Any) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    return make_pipeline(FunctionTransformer(double), LogisticRegression()).fit(*data)


def test_skops_refuses_to_save_types_outside_sklearn_numpy_scipy(data: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        build_package(_custom_pipeline(data), tmp_path / "pkg", sample_input=data[0][:2])
    error = info.value
    assert error.field == "options.serialization"
    assert f"{__name__}.double" in str(error)
    assert "'serialization': 'joblib'" in str(error)


def test_joblib_saves_what_skops_refuses(data: Any, tmp_path: Path) -> None:
    pipeline = _custom_pipeline(data)
    build_package(
        pipeline, tmp_path / "pkg", sample_input=data[0][:2], options={"serialization": "joblib"}
    )
    np.testing.assert_array_equal(
        load_package(tmp_path / "pkg").predict_all(data[0])["predict"], pipeline.predict(data[0])
    )


def test_joblib_refuses_references_to_main(
    data: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def triple(x: Any) -> Any:
        return x * 3

    triple.__module__ = "__main__"
    triple.__qualname__ = "triple"
    monkeypatch.setattr(sys.modules["__main__"], "triple", triple, raising=False)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    pipeline = make_pipeline(FunctionTransformer(triple), LogisticRegression()).fit(*data)
    with pytest.raises(InvalidInputError) as info:
        build_package(
            pipeline,
            tmp_path / "pkg",
            sample_input=data[0][:2],
            options={"serialization": "joblib"},
        )
    assert "__main__" in str(info.value)
    assert "module that is installed" in str(info.value)


def test_skops_load_refuses_types_not_recorded_at_save(
    forest: Any, data: Any, tmp_path: Path
) -> None:
    build_package(forest, tmp_path / "pkg", sample_input=data[0][:2])
    manifest = read_manifest_json(tmp_path / "pkg")
    manifest["flavor_metadata"]["trusted_types"] = []
    write_manifest_json(tmp_path / "pkg", manifest)
    with pytest.raises(ModelLoadError) as info:
        load_package(tmp_path / "pkg")
    assert "sklearn.tree._tree.Tree" in str(info.value)
    assert "not recorded as trusted" in str(info.value)


def test_skops_load_refuses_a_manifest_trusting_foreign_types(
    forest: Any, data: Any, tmp_path: Path
) -> None:
    build_package(forest, tmp_path / "pkg", sample_input=data[0][:2])
    manifest = read_manifest_json(tmp_path / "pkg")
    manifest["flavor_metadata"]["trusted_types"].append("os.system")
    write_manifest_json(tmp_path / "pkg", manifest)
    with pytest.raises(ModelLoadError) as info:
        load_package(tmp_path / "pkg")
    assert "os.system" in str(info.value)
    assert info.value.field == "flavor_metadata.trusted_types"
    with pytest.raises(InvalidArtifactError) as server:
        check_package_members(members(tmp_path / "pkg"))
    assert "os.system" in str(server.value)


def test_skops_file_with_unrecorded_types_is_refused(
    logreg: Any, data: Any, tmp_path: Path
) -> None:
    import skops.io as sio

    build_package(logreg, tmp_path / "pkg", sample_input=data[0][:2])
    rewrite_file(tmp_path / "pkg", "model.skops", sio.dumps(_custom_pipeline(data)))
    with pytest.raises(InvalidArtifactError) as server:
        check_package_members(members(tmp_path / "pkg"))
    assert f"{__name__}.double" in str(server.value)
    with pytest.raises(ModelLoadError) as replica:
        load_package(tmp_path / "pkg")
    assert f"{__name__}.double" in str(replica.value)


def test_server_refuses_garbage_instead_of_a_pickle(logreg: Any, data: Any, tmp_path: Path) -> None:
    build_package(
        logreg, tmp_path / "pkg", sample_input=data[0][:2], options={"serialization": "joblib"}
    )
    rewrite_file(tmp_path / "pkg", "model.joblib", b"this is not a pickle at all")
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(members(tmp_path / "pkg"))
    assert info.value.value == "model.joblib"
    assert "not a pickle" in str(info.value)
    rewrite_file(tmp_path / "pkg", "model.joblib", b"\x80\x04\xff\xfe\xfd garbage after a header")
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(members(tmp_path / "pkg"))
    assert "not a valid pickle" in str(info.value)


def test_server_accepts_a_large_joblib_file_from_its_head(
    forest: Any, data: Any, tmp_path: Path
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    big = RandomForestClassifier(n_estimators=60, random_state=0).fit(*data)
    build_package(
        big, tmp_path / "pkg", sample_input=data[0][:2], options={"serialization": "joblib"}
    )
    assert (tmp_path / "pkg" / "model.joblib").stat().st_size > 64 * 1024
    check_package_members(members(tmp_path / "pkg"))


def test_server_refuses_a_skops_file_that_is_not_a_zip(
    logreg: Any, data: Any, tmp_path: Path
) -> None:
    build_package(logreg, tmp_path / "pkg", sample_input=data[0][:2])
    rewrite_file(tmp_path / "pkg", "model.skops", pickle.dumps(logreg))
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(members(tmp_path / "pkg"))
    assert "not a skops file" in str(info.value)


def test_truncated_pickle_is_a_model_load_error(logreg: Any, data: Any, tmp_path: Path) -> None:
    build_package(
        logreg, tmp_path / "pkg", sample_input=data[0][:2], options={"serialization": "joblib"}
    )
    whole = (tmp_path / "pkg" / "model.joblib").read_bytes()
    rewrite_file(tmp_path / "pkg", "model.joblib", whole[: len(whole) // 2])
    with pytest.raises(ModelLoadError) as info:
        load_package(tmp_path / "pkg")
    message = str(info.value)
    assert "'model.joblib'" in message
    assert "sklearn" in message
    assert "requirements" in message  # the fix


def test_tampered_file_is_artifact_corrupt(logreg: Any, data: Any, tmp_path: Path) -> None:
    build_package(logreg, tmp_path / "pkg", sample_input=data[0][:2])
    path = tmp_path / "pkg" / "model.skops"
    data_bytes = bytearray(path.read_bytes())
    data_bytes[100] ^= 0xFF
    path.write_bytes(bytes(data_bytes))
    with pytest.raises(ArtifactCorruptError) as info:
        load_package(tmp_path / "pkg")
    assert "'model.skops' hashes to sha256:" in str(info.value)
