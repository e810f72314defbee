"""The torch flavor: TorchScript and state dicts (with their class's source), tensors in and
out, and the server's checks of both files."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from funade.errors import InvalidArtifactError, InvalidInputError, ModelLoadError
from funade.registry.flavors import detect_flavor
from funade.registry.package import build_package, check_package_members, load_package
from tests.registry.helpers import members, rewrite_file

torch = pytest.importorskip("torch")

# TorchScript (torch.jit.script/trace/save/load) is deprecated as of torch 2.13 in favour of
# torch.export; the flavor still serves the ScriptModules people have.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"
)


class TwoHeads(torch.nn.Module):  # type: ignore[misc]
    """Logits and probabilities: a tuple of two outputs."""

    def __init__(self, features: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(features, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.linear(x)
        return logits, torch.softmax(logits, dim=-1)


class Scorer(torch.nn.Module):  # type: ignore[misc]
    """Two named inputs, a dict out, and a dropout that only eval mode turns off."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(3, hidden)
        self.dropout = torch.nn.Dropout(0.5)
        self.out = torch.nn.Linear(hidden + 1, 1)

    def forward(self, features: torch.Tensor, bias: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.dropout(torch.relu(self.hidden(features)))
        score = self.out(torch.cat([h, bias.unsqueeze(-1)], dim=-1)).squeeze(-1)
        return {"score": score, "positive": score > 0}


class Wide(torch.nn.Module):  # type: ignore[misc]
    """Over 64 KiB of weights."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Linear(200, 200), torch.nn.Linear(200, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _net(seed: int = 0, dtype: Any = None) -> Any:
    torch.manual_seed(seed)
    net = TwoHeads()
    return net.to(dtype) if dtype is not None else net


def _expected(module: Any, x: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        return [t.numpy() for t in module.eval()(torch.from_numpy(x))]


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)


def test_torchscript_round_trip(x: np.ndarray, tmp_path: Path) -> None:
    scripted = torch.jit.script(_net())
    manifest, golden = build_package(scripted, tmp_path / "pkg", sample_input=x[:3])
    assert manifest.flavor == "torch"
    assert manifest.flavor_metadata == {"serialization": "torchscript", "file": "model.pt"}
    assert set(manifest.files) == {"model.pt"}
    assert {"torch", "numpy"} <= set(manifest.requirements)
    sig = manifest.signature
    assert sig.input_format == "tensor"
    assert [(s.name, s.datatype, s.shape) for s in sig.inputs] == [("input", "FP32", [-1, 4])]
    assert [(s.name, s.datatype, s.shape) for s in sig.outputs] == [
        ("output_0", "FP32", [-1, 3]),
        ("output_1", "FP32", [-1, 3]),
    ]
    assert [t["name"] for t in golden[0]["outputs"]] == ["output_0", "output_1"]
    model = load_package(tmp_path / "pkg")
    assert isinstance(model.native, torch.jit.ScriptModule)
    assert not model.native.training
    logits, probabilities = _expected(scripted, x)
    out = model.predict_all(x)
    np.testing.assert_array_equal(out["output_0"], logits)
    np.testing.assert_array_equal(out["output_1"], probabilities)
    np.testing.assert_array_equal(model.predict(x), logits)  # the first output
    assert check_package_members(members(tmp_path / "pkg")) == manifest


def test_traced_module_is_torchscript_too(x: np.ndarray, tmp_path: Path) -> None:
    traced = torch.jit.trace(
        torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Tanh()), torch.from_numpy(x[:1])
    )
    manifest, _ = build_package(traced, tmp_path / "pkg", sample_input=x[:2])
    assert manifest.flavor_metadata["serialization"] == "torchscript"
    out = load_package(tmp_path / "pkg").predict(x)
    np.testing.assert_array_equal(out, traced(torch.from_numpy(x)).detach().numpy())
    assert [s.name for s in manifest.signature.outputs] == ["output"]


@pytest.mark.parametrize(("dtype", "datatype"), [("float32", "FP32"), ("float64", "FP64")])
def test_state_dict_round_trip_keeps_float_dtypes(
    dtype: str, datatype: str, x: np.ndarray, tmp_path: Path
) -> None:
    net = _net(dtype=getattr(torch, dtype))
    sample = x.astype(dtype)
    manifest, golden = build_package(net, tmp_path / "pkg", sample_input=sample[:2])
    meta = manifest.flavor_metadata
    assert meta["serialization"] == "state_dict"
    assert meta["file"] == "state_dict.pt"
    assert meta["module_class"]["class_name"] == "TwoHeads"
    assert meta["module_class"]["source"] in manifest.files
    assert meta["init_kwargs"] == {}
    assert {"torch", "numpy", "pytest"} <= set(manifest.requirements)
    assert [s.datatype for s in manifest.signature.outputs] == [datatype, datatype]
    assert golden[0]["inputs"][0]["datatype"] == datatype
    model = load_package(tmp_path / "pkg")
    assert type(model.native).__name__ == "TwoHeads"
    assert type(model.native) is not TwoHeads  # rebuilt from the captured source
    out = model.predict_all(sample)
    logits, probabilities = _expected(net, sample)
    assert out["output_0"].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out["output_0"], logits)
    np.testing.assert_array_equal(out["output_1"], probabilities)
    assert check_package_members(members(tmp_path / "pkg")) == manifest


def test_named_inputs_dict_outputs_init_kwargs_and_training_mode(tmp_path: Path) -> None:
    torch.manual_seed(1)
    scorer = Scorer(hidden=5)  # left in training mode: dropout on
    rng = np.random.default_rng(1)
    sample = {
        "features": rng.normal(size=(4, 3)).astype(np.float32),
        "bias": rng.normal(size=4).astype(np.float32),
    }
    manifest, _ = build_package(
        scorer, tmp_path / "pkg", sample_input=sample, options={"init_kwargs": {"hidden": 5}}
    )
    assert scorer.training  # predicting in eval mode did not change the caller's module
    assert manifest.flavor_metadata["init_kwargs"] == {"hidden": 5}
    assert manifest.signature.input_format == "tensors"
    assert [(s.name, s.datatype) for s in manifest.signature.outputs] == [
        ("score", "FP32"),
        ("positive", "BOOL"),
    ]
    out = load_package(tmp_path / "pkg").predict_all(sample)
    with torch.no_grad():
        expected = scorer.eval()(**{k: torch.from_numpy(v) for k, v in sample.items()})
    np.testing.assert_array_equal(out["score"], expected["score"].numpy())
    np.testing.assert_array_equal(out["positive"], expected["positive"].numpy())


def test_missing_init_kwargs_say_how_to_pass_them(tmp_path: Path) -> None:
    torch.manual_seed(1)
    sample = {"features": np.ones((2, 3), np.float32), "bias": np.ones(2, np.float32)}
    with pytest.raises(ModelLoadError) as info:
        build_package(Scorer(hidden=5), tmp_path / "pkg", sample_input=sample)
    message = str(info.value)
    assert "torch" in message
    assert "hidden" in message
    assert "init_kwargs" in message


def test_bad_options(x: np.ndarray, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        build_package(_net(), tmp_path / "a", sample_input=x, options={"serialization": "onnx"})
    assert info.value.field == "options.serialization"
    with pytest.raises(InvalidInputError) as info:
        build_package(
            _net(), tmp_path / "b", sample_input=x, options={"serialization": "torchscript"}
        )
    assert "torch.jit.script" in str(info.value)
    with pytest.raises(InvalidInputError) as info:
        build_package(
            torch.jit.script(_net()),
            tmp_path / "c",
            sample_input=x,
            options={"serialization": "state_dict"},
        )
    assert info.value.field == "options.serialization"
    with pytest.raises(InvalidInputError) as info:
        build_package(_net(), tmp_path / "d", sample_input=x, options={"init_kwargs": {"f": x}})
    assert info.value.field == "options.init_kwargs"
    with pytest.raises(InvalidInputError) as info:
        build_package(_net(), tmp_path / "e", sample_input=x, options={"device": "cuda"})
    assert info.value.field == "options.device"


def test_local_classes_are_refused(x: np.ndarray, tmp_path: Path) -> None:
    class Local(torch.nn.Module):  # type: ignore[misc]
        def forward(self, x: Any) -> Any:
            return x

    with pytest.raises(InvalidInputError) as info:
        build_package(Local(), tmp_path / "pkg", sample_input=x)
    assert "top level of a module" in str(info.value)


def test_torch_classes_are_sent_to_torchscript(x: np.ndarray, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        build_package(torch.nn.Sequential(torch.nn.Linear(4, 2)), tmp_path / "pkg", sample_input=x)
    assert "torch.nn.modules.container.Sequential" in str(info.value)
    assert "torch.jit.script(model)" in str(info.value)


def test_string_inputs_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        build_package(_net(), tmp_path / "pkg", sample_input=np.array([["a"] * 4]))
    assert "torch model takes numbers" in str(info.value)


def test_detect() -> None:
    assert detect_flavor(_net()).name == "torch"
    assert detect_flavor(torch.jit.script(_net())).name == "torch"


@pytest.mark.parametrize("kind", ["torchscript", "state_dict"])
@pytest.mark.parametrize("garbage", [b"garbage", b"PK\x03\x04" + bytes(40), pickle.dumps({})])
def test_server_refuses_a_file_that_is_not_a_torch_archive(
    kind: str, garbage: bytes, x: np.ndarray, tmp_path: Path
) -> None:
    model = torch.jit.script(_net()) if kind == "torchscript" else _net()
    manifest, _ = build_package(model, tmp_path / "pkg", sample_input=x[:2])
    file = manifest.flavor_metadata["file"]
    rewrite_file(tmp_path / "pkg", file, garbage)
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(members(tmp_path / "pkg"))
    assert info.value.value == file
    assert f"'{file}'" in str(info.value)


def test_server_refuses_one_kind_of_file_in_place_of_the_other(
    x: np.ndarray, tmp_path: Path
) -> None:
    build_package(torch.jit.script(_net()), tmp_path / "pkg", sample_input=x[:2])
    state = io.BytesIO()
    torch.save(_net().state_dict(), state)
    rewrite_file(tmp_path / "pkg", "model.pt", state.getvalue())
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(members(tmp_path / "pkg"))
    assert "constants.pkl" in str(info.value)


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, ("echo pwned",))


def test_server_refuses_a_state_dict_that_refers_to_other_code(
    x: np.ndarray, tmp_path: Path
) -> None:
    build_package(_net(), tmp_path / "pkg", sample_input=x[:2])
    evil = io.BytesIO()
    torch.save({"linear.weight": _Evil()}, evil)
    rewrite_file(tmp_path / "pkg", "state_dict.pt", evil.getvalue())
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(members(tmp_path / "pkg"))
    assert "refers to posix.system" in str(info.value) or "refers to os.system" in str(info.value)
    with pytest.raises(ModelLoadError) as replica:  # weights_only refuses it too
        load_package(tmp_path / "pkg")
    assert "'state_dict.pt'" in str(replica.value)


def test_server_accepts_a_large_state_dict_from_its_head(tmp_path: Path) -> None:
    torch.manual_seed(0)
    sample = np.ones((2, 200), np.float32)
    manifest, _ = build_package(Wide(), tmp_path / "pkg", sample_input=sample)
    assert manifest.files["state_dict.pt"].size > 64 * 1024
    assert check_package_members(members(tmp_path / "pkg")) == manifest


def test_server_refuses_source_that_does_not_compile(x: np.ndarray, tmp_path: Path) -> None:
    manifest, _ = build_package(_net(), tmp_path / "pkg", sample_input=x[:2])
    source = manifest.flavor_metadata["module_class"]["source"]
    rewrite_file(tmp_path / "pkg", source, b"class TwoHeads(:\n")
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(members(tmp_path / "pkg"))
    assert info.value.value == source


@pytest.mark.parametrize("kind", ["torchscript", "state_dict"])
def test_truncated_file_is_a_model_load_error(kind: str, x: np.ndarray, tmp_path: Path) -> None:
    model = torch.jit.script(_net()) if kind == "torchscript" else _net()
    manifest, _ = build_package(model, tmp_path / "pkg", sample_input=x[:2])
    file = manifest.flavor_metadata["file"]
    whole = (tmp_path / "pkg" / file).read_bytes()
    rewrite_file(tmp_path / "pkg", file, whole[: len(whole) // 2])
    with pytest.raises(ModelLoadError) as info:
        load_package(tmp_path / "pkg")
    message = str(info.value)
    assert f"Could not load the torch model from '{file}'" in message
    assert info.value.value == "torch"


def test_the_archive_is_what_torch_writes(x: np.ndarray, tmp_path: Path) -> None:
    build_package(_net(), tmp_path / "pkg", sample_input=x[:2])
    with zipfile.ZipFile(tmp_path / "pkg" / "state_dict.pt") as archive:
        names = archive.namelist()
    assert names[0].endswith("/data.pkl")


def test_detection_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from funade.registry.flavors import detect_flavor\n"
        "class Echo:\n"
        "    def load(self, path): pass\n"
        "    def predict(self, inputs): return inputs\n"
        "assert detect_flavor(Echo()).name == 'python_class'\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
