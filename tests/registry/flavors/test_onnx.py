"""The ONNX flavor: a scikit-learn model converted by skl2onnx, served with onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from funade.errors import InvalidArtifactError, InvalidInputError, ModelLoadError
from funade.registry.package import build_package, check_package_members, load_package
from funade.registry.signature import TensorSpec
from tests.registry.helpers import members, rewrite_file


@pytest.fixture(scope="module")
def proto(logreg: Any) -> Any:
    from skl2onnx import to_onnx

    # ZipMap off: probabilities as a tensor rather than a list of dicts.
    return to_onnx(logreg, np.zeros((1, 20), np.float32), options={id(logreg): {"zipmap": False}})


def _ort(proto: Any, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    result: list[np.ndarray] = session.run(None, {"X": x.astype(np.float32)})
    return result


@pytest.mark.parametrize("form", ["proto", "bytes", "path"])
def test_round_trip(form: str, proto: Any, logreg: Any, data: Any, tmp_path: Path) -> None:
    x = data[0]
    model: Any = {"proto": proto, "bytes": proto.SerializeToString(), "path": tmp_path / "m.onnx"}[
        form
    ]
    (tmp_path / "m.onnx").write_bytes(proto.SerializeToString())
    manifest, golden = build_package(model, tmp_path / "pkg", sample_input=x[:5])
    assert manifest.flavor == "onnx"
    assert set(manifest.files) == {"model.onnx"}
    assert "onnxruntime" in manifest.requirements
    sig = manifest.signature
    assert sig.input_format == "tensor"
    assert sig.inputs == [TensorSpec(name="X", datatype="FP32", shape=[-1, 20])]
    assert sig.outputs == [
        TensorSpec(name="label", datatype="INT64", shape=[-1]),
        TensorSpec(name="probabilities", datatype="FP32", shape=[-1, 2]),
    ]
    assert golden[0]["inputs"][0]["datatype"] == "FP32"  # the float64 sample was cast
    loaded = load_package(tmp_path / "pkg")
    out = loaded.predict_all(x)  # float64 in, cast to the graph's float32
    label, probabilities = _ort(proto, x)
    np.testing.assert_array_equal(out["label"], label)
    np.testing.assert_array_equal(out["probabilities"], probabilities)
    assert (out["label"] == logreg.predict(x)).mean() > 0.95
    assert check_package_members(members(tmp_path / "pkg")) == manifest


def test_without_sample_input_the_graph_gives_the_signature(proto: Any, tmp_path: Path) -> None:
    manifest, golden = build_package(proto, tmp_path / "pkg")
    assert golden == []
    assert [s.name for s in manifest.signature.inputs] == ["X"]
    assert type(load_package(tmp_path / "pkg").native).__name__ == "InferenceSession"


def test_dataframe_fed_graph_with_one_input_per_column(
    frame_pipeline: Any, frame: pd.DataFrame, tmp_path: Path
) -> None:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    inputs = [
        ("age", FloatTensorType([None, 1])),
        ("income", FloatTensorType([None, 1])),
        ("plan", StringTensorType([None, 1])),
    ]
    options = {id(frame_pipeline): {"zipmap": False}}
    graph = to_onnx(frame_pipeline, initial_types=inputs, options=options)
    manifest, _ = build_package(graph, tmp_path / "pkg", sample_input=frame[:5])
    assert manifest.signature.input_format == "columns"
    assert manifest.signature.inputs[2] == TensorSpec(name="plan", datatype="BYTES", shape=[-1, 1])
    out = load_package(tmp_path / "pkg").predict_all(frame)
    np.testing.assert_array_equal(out["label"], frame_pipeline.predict(frame))


def test_zipmap_outputs_are_refused_with_the_fix(logreg: Any, data: Any, tmp_path: Path) -> None:
    from skl2onnx import to_onnx

    graph = to_onnx(logreg, np.zeros((1, 20), np.float32))  # ZipMap on by default
    with pytest.raises(InvalidInputError) as info:
        build_package(graph, tmp_path / "pkg", sample_input=data[0][:2])
    assert info.value.field == "outputs.output_probability"
    assert "'zipmap': False" in str(info.value)


def test_bytes_that_are_not_onnx(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        build_package(b"not a model", tmp_path / "pkg")
    assert "'model.onnx'" in str(info.value)
    assert "onnx" in str(info.value)


def test_missing_onnx_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        build_package(tmp_path / "nope.onnx", tmp_path / "pkg")
    assert info.value.field == "model"


def test_options_are_refused(proto: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        build_package(proto, tmp_path / "pkg", options={"providers": ["CUDA"]})
    assert info.value.field == "options.providers"


@pytest.mark.parametrize("garbage", [b"garbage", b"\x08\x07\x12garbage"])
def test_server_refuses_a_file_that_is_not_onnx(garbage: bytes, proto: Any, tmp_path: Path) -> None:
    build_package(proto, tmp_path / "pkg")
    rewrite_file(tmp_path / "pkg", "model.onnx", garbage)
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(members(tmp_path / "pkg"))
    assert info.value.value == "model.onnx"
