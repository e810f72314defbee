"""The python_class flavor: captured source, state in data/, and loading in a fresh module."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from funade.errors import InvalidArtifactError, InvalidInputError, ModelLoadError
from funade.registry.package import build_package, check_package_members, load_package
from tests.registry.helpers import members, read_manifest_json, rewrite_file, write_manifest_json


class Scaler:
    """Multiplies its input by a factor it saves as JSON."""

    def __init__(self) -> None:
        self.factor = 1.0

    def save(self, path: Path) -> None:
        (path / "factor.json").write_text(json.dumps(self.factor))

    def load(self, path: Path) -> None:
        self.factor = json.loads((path / "factor.json").read_text())

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return np.asarray(inputs) * self.factor


class Forgetful(Scaler):
    """Saves nothing, so a loaded copy predicts differently."""

    def save(self, path: Path) -> None:
        pass

    def load(self, path: Path) -> None:
        pass


class Scorer:
    """Takes a DataFrame, answers two outputs, reads its weights from an artifact."""

    def __init__(self) -> None:
        self.weights: dict[str, float] = {}

    def load(self, path: Path) -> None:
        self.weights = json.loads((path / "weights.json").read_text())

    def predict(self, frame: pd.DataFrame) -> dict[str, Any]:
        assert isinstance(frame, pd.DataFrame)
        score = sum(frame[c].to_numpy() * w for c, w in self.weights.items())
        return {"score": score, "label": np.where(score > 0, "up", "down")}


class Broken(Scaler):
    def load(self, path: Path) -> None:
        raise RuntimeError("weights are gone")


def test_class_from_a_test_module_round_trip(tmp_path: Path) -> None:
    scaler = Scaler()
    scaler.factor = 3.0
    x = np.arange(6, dtype=np.float64).reshape(3, 2)
    manifest, golden = build_package(scaler, tmp_path / "pkg", sample_input=x)
    assert manifest.flavor == "python_class"
    meta = manifest.flavor_metadata
    assert meta["class_name"] == "Scaler"
    assert meta["module"] == __name__
    assert meta["source"] in manifest.files
    assert "data/factor.json" in manifest.files
    assert {"numpy", "pandas", "pytest"} <= set(manifest.requirements)
    assert golden[0]["outputs"][0]["data"] == (x * 3).reshape(-1).tolist()
    model = load_package(tmp_path / "pkg")
    np.testing.assert_array_equal(model.predict(x), x * 3)
    loaded = model.native
    assert type(loaded).__name__ == "Scaler"
    assert type(loaded) is not Scaler  # it came from the captured source, not this module
    assert type(loaded).__module__.startswith("funade_model_")
    assert check_package_members(members(tmp_path / "pkg")) == manifest


def test_class_from_a_module_file_that_is_gone_at_load(tmp_path: Path) -> None:
    source = tmp_path / "src" / "churn_model_tmp.py"
    source.parent.mkdir()
    source.write_text(
        textwrap.dedent(
            """
            import numpy as np

            OFFSET = 10


            class Adder:
                def load(self, path):
                    self.bias = float((path / "bias.txt").read_text())

                def predict(self, inputs):
                    return {"sum": inputs["a"] + inputs["b"] + self.bias + OFFSET}
            """
        )
    )
    (tmp_path / "bias.txt").write_text("0.5")
    spec = importlib.util.spec_from_file_location("churn_model_tmp", source)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["churn_model_tmp"] = module
    try:
        spec.loader.exec_module(module)
        adder = module.Adder()
        adder.load(tmp_path)
        sample = {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])}
        manifest, _ = build_package(
            adder,
            tmp_path / "pkg",
            sample_input=sample,
            options={"artifacts": {"bias.txt": tmp_path / "bias.txt"}},
        )
    finally:
        del sys.modules["churn_model_tmp"]
    source.unlink()
    assert manifest.flavor_metadata["source"] == "code/churn_model_tmp.py"
    assert manifest.signature.input_format == "tensors"
    model = load_package(tmp_path / "pkg")
    np.testing.assert_array_equal(model.predict(sample), [14.5, 16.5])


def test_dataframe_in_dict_out_with_artifacts(tmp_path: Path) -> None:
    weights = tmp_path / "weights.json"
    weights.write_text(json.dumps({"a": 1.0, "b": -2.0}))
    scorer = Scorer()
    scorer.load(tmp_path)
    frame = pd.DataFrame({"a": [1.0, 5.0], "b": [1.0, 1.0]})
    manifest, _ = build_package(
        scorer,
        tmp_path / "pkg",
        sample_input=frame,
        options={"artifacts": {"weights.json": weights}},
    )
    assert manifest.signature.input_format == "columns"
    assert [s.name for s in manifest.signature.outputs] == ["score", "label"]
    out = load_package(tmp_path / "pkg").predict_all(frame)
    np.testing.assert_array_equal(out["score"], [-1.0, 3.0])
    assert out["label"].tolist() == ["down", "up"]


def test_script_class_is_captured_without_the_training_run(tmp_path: Path) -> None:
    marker = tmp_path / "trained.txt"
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            from pathlib import Path

            import numpy as np

            from funade.registry import build_package

            MARKER = {str(marker)!r}


            class Model:
                def save(self, path):
                    (path / "w.txt").write_text(str(self.w))

                def load(self, path):
                    self.w = float((path / "w.txt").read_text())

                def predict(self, inputs):
                    return inputs * self.w


            with open(MARKER, "a") as out:
                out.write("trained\\n")
            model = Model()
            model.w = 2.0
            build_package(model, Path(sys.argv[1]), sample_input=np.ones((2, 2)))
            """
        )
    )
    src = Path(__file__).resolve().parents[3] / "src"
    subprocess.run(
        [sys.executable, str(script), str(tmp_path / "pkg")],
        check=True,
        env={"PYTHONPATH": str(src), "PATH": ""},
        capture_output=True,
    )
    assert marker.read_text() == "trained\n"  # the round trip in build_package did not re-train
    model = load_package(tmp_path / "pkg")
    np.testing.assert_array_equal(model.predict(np.ones((1, 2))), [[2.0, 2.0]])
    assert marker.read_text() == "trained\n"
    captured = (tmp_path / "pkg" / "code" / "main.py").read_text()
    assert "class Model:" in captured
    assert "build_package(model" not in captured
    assert captured.count("\n") == script.read_text().count("\n")  # lines kept for tracebacks


def test_a_class_that_does_not_save_its_state_is_caught(tmp_path: Path) -> None:
    forgetful = Forgetful()
    forgetful.factor = 2.0
    with pytest.raises(ModelLoadError) as info:
        build_package(forgetful, tmp_path / "pkg", sample_input=np.ones((2, 2)))
    assert "predicts differently from the model in memory" in str(info.value)
    assert "save(path) writes" in str(info.value)


def test_load_failure_names_the_class_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        build_package(Broken(), tmp_path / "pkg", sample_input=np.ones((1, 2)))
    message = str(info.value)
    assert "python_class" in message
    assert "RuntimeError: weights are gone" in message
    assert "Broken.load(path)" in message


def test_local_classes_are_refused(tmp_path: Path) -> None:
    class Local(Scaler):
        pass

    with pytest.raises(InvalidInputError) as info:
        build_package(Local(), tmp_path / "pkg", sample_input=np.ones((1, 2)))
    assert info.value.field == "model"
    assert "top level of a module" in str(info.value)


def test_bad_artifacts(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        build_package(
            Scaler(),
            tmp_path / "a",
            sample_input=np.ones((1, 2)),
            options={"artifacts": {"../x": "y"}},
        )
    assert info.value.field == "options.artifacts.../x"
    with pytest.raises(InvalidInputError) as info:
        build_package(
            Scaler(),
            tmp_path / "b",
            sample_input=np.ones((1, 2)),
            options={"artifacts": {"w": tmp_path / "none"}},
        )
    assert "does not exist" in str(info.value)


def test_server_refuses_source_with_a_syntax_error(tmp_path: Path) -> None:
    manifest, _ = build_package(Scaler(), tmp_path / "pkg", sample_input=np.ones((1, 2)))
    source = manifest.flavor_metadata["source"]
    rewrite_file(tmp_path / "pkg", source, b"class Scaler(:\n    pass\n")
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(members(tmp_path / "pkg"))
    assert info.value.value == source
    assert "SyntaxError" in str(info.value)


def test_server_refuses_source_without_the_class(tmp_path: Path) -> None:
    manifest, _ = build_package(Scaler(), tmp_path / "pkg", sample_input=np.ones((1, 2)))
    rewrite_file(
        tmp_path / "pkg", manifest.flavor_metadata["source"], b"import os\nos.system('echo hi')\n"
    )
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(members(tmp_path / "pkg"))
    assert "no top-level class Scaler" in str(info.value)


def test_source_that_fails_to_import_is_a_model_load_error(tmp_path: Path) -> None:
    manifest, _ = build_package(Scaler(), tmp_path / "pkg", sample_input=np.ones((1, 2)))
    source = manifest.flavor_metadata["source"]
    rewrite_file(tmp_path / "pkg", source, b"import funade_no_such_module\nclass Scaler: pass\n")
    with pytest.raises(ModelLoadError) as info:
        load_package(tmp_path / "pkg")
    assert f"'{source}'" in str(info.value)
    assert "funade_no_such_module" in str(info.value)


def test_manifest_cannot_point_the_source_outside_code(tmp_path: Path) -> None:
    build_package(Scaler(), tmp_path / "pkg", sample_input=np.ones((1, 2)))
    manifest = read_manifest_json(tmp_path / "pkg")
    manifest["flavor_metadata"]["source"] = "/usr/lib/python3/os.py"
    write_manifest_json(tmp_path / "pkg", manifest)
    with pytest.raises(ModelLoadError) as info:
        load_package(tmp_path / "pkg")
    assert "source" in str(info.value)
    with pytest.raises(InvalidArtifactError):
        check_package_members(members(tmp_path / "pkg"))
