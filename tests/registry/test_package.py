"""Model packages: build (with the round trip), load (verified), and the server's checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from funade.errors import (
    ArtifactCorruptError,
    DigestMismatchError,
    InvalidArtifactError,
    InvalidInputError,
    ModelLoadError,
    UnknownFlavorError,
)
from funade.registry.package import (
    MANIFEST_NAME,
    Manifest,
    build_package,
    check_package_members,
    load_package,
)
from tests.registry.helpers import members, read_manifest_json, write_manifest_json


@pytest.fixture
def package(logreg: Any, data: Any, tmp_path: Path) -> Path:
    build_package(logreg, tmp_path / "pkg", sample_input=data[0][:5])
    return tmp_path / "pkg"


def test_manifest_on_disk(package: Path, data: Any) -> None:
    raw = read_manifest_json(package)
    assert raw["format_version"] == 1
    assert raw["flavor"] == "sklearn"
    assert raw["python_version"].count(".") == 2
    entry = raw["files"]["model.skops"]
    assert entry["size"] == (package / "model.skops").stat().st_size
    assert entry["sha256"].startswith("sha256:")
    assert len(entry["sha256"]) == 71
    assert Manifest.model_validate(raw).signature.inputs[0].shape == [-1, 20]


def test_golden_examples_are_the_sample_and_the_models_outputs(
    logreg: Any, data: Any, tmp_path: Path
) -> None:
    x = data[0][:5]
    _, golden = build_package(logreg, tmp_path / "pkg", sample_input=x)
    (example,) = json.loads(json.dumps(golden))
    assert example["inputs"] == [
        {"name": "input", "datatype": "FP64", "shape": [5, 20], "data": x.reshape(-1).tolist()}
    ]
    assert example["outputs"][0]["data"] == logreg.predict(x).tolist()
    assert example["outputs"][1]["shape"] == [5, 2]


def test_directory_must_be_empty(logreg: Any, data: Any, package: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        build_package(logreg, package, sample_input=data[0][:2])
    assert info.value.field == "directory"


def test_sample_input_is_required_without_a_declared_signature(logreg: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        build_package(logreg, tmp_path / "pkg")
    assert info.value.field == "sample_input"
    assert "X[:5]" in str(info.value)


def test_sample_input_the_model_rejects(logreg: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        build_package(logreg, tmp_path / "pkg", sample_input=np.ones((2, 3)))
    assert info.value.field == "sample_input"
    assert "failed to predict on the sample input" in str(info.value)


def test_unknown_flavor_name(logreg: Any, tmp_path: Path) -> None:
    with pytest.raises(UnknownFlavorError):
        build_package(logreg, tmp_path / "pkg", sample_input=np.ones((1, 20)), flavor="keras")


def test_load_verifies_every_file(package: Path) -> None:
    (package / "extra.py").write_text("print('injected')\n")
    with pytest.raises(ArtifactCorruptError) as info:
        load_package(package)
    assert "'extra.py' is not in the manifest" in str(info.value)
    (package / "extra.py").unlink()
    (package / "model.skops").write_bytes(b"short")
    with pytest.raises(ArtifactCorruptError) as info:
        load_package(package)
    assert "'model.skops' has 5 bytes" in str(info.value)
    assert info.value.fix
    assert "Download" in info.value.fix
    (package / "model.skops").unlink()
    with pytest.raises(ArtifactCorruptError) as info:
        load_package(package)
    assert "'model.skops' is missing" in str(info.value)


def test_load_without_manifest_or_with_a_bad_one(package: Path) -> None:
    (package / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ModelLoadError) as info:
        load_package(package)
    assert MANIFEST_NAME in str(info.value)
    (package / MANIFEST_NAME).unlink()
    with pytest.raises(ModelLoadError) as info:
        load_package(package)
    assert "not a model package" in str(info.value)


def test_check_accepts_a_good_package_and_returns_its_manifest(package: Path) -> None:
    manifest = check_package_members(members(package))
    assert manifest == Manifest.model_validate(read_manifest_json(package))


def test_check_refuses_a_package_without_manifest(package: Path) -> None:
    files = [(n, d) for n, d in members(package) if n != MANIFEST_NAME]
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(files)
    assert (info.value.field, info.value.value) == ("artifact", MANIFEST_NAME)
    assert "has no funade.json" in str(info.value)


def test_check_refuses_invalid_manifest_json(package: Path) -> None:
    files = [(n, b"{nope" if n == MANIFEST_NAME else d) for n, d in members(package)]
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(files)
    assert (info.value.field, info.value.value) == ("artifact", MANIFEST_NAME)
    assert "funade.json is not valid JSON" in str(info.value)
    manifest = read_manifest_json(package)
    del manifest["signature"]
    write_manifest_json(package, manifest)
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(members(package))
    assert "signature" in str(info.value)


def test_check_refuses_an_unknown_flavor(package: Path) -> None:
    manifest = read_manifest_json(package)
    manifest["flavor"] = "pickle"
    write_manifest_json(package, manifest)
    with pytest.raises(UnknownFlavorError) as info:
        check_package_members(members(package))
    assert info.value.value == "pickle"
    manifest["signature"] = {}  # the flavor is named first: it is the likelier news
    write_manifest_json(package, manifest)
    with pytest.raises(UnknownFlavorError):
        check_package_members(members(package))


def test_check_refuses_a_newer_format(package: Path) -> None:
    manifest = read_manifest_json(package)
    manifest["format_version"] = 2
    write_manifest_json(package, manifest)
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(members(package))
    assert "Upgrade funade" in str(info.value)


def test_check_refuses_a_missing_or_unlisted_file(package: Path) -> None:
    files = list(members(package))
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members([(n, d) for n, d in files if n != "model.skops"])
    assert info.value.value == "model.skops"
    assert "lacks 'model.skops'" in str(info.value)
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members([*files, ("code/evil.py", b"import os")])
    assert info.value.value == "code/evil.py"


@pytest.mark.parametrize("name", ["../model.skops", "/etc/passwd", "a\\b", "a//b", ""])
def test_check_refuses_unsafe_paths(package: Path, name: str) -> None:
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members([*members(package), (name, b"")])
    assert "is not a plain relative path inside the package" in str(info.value)


def test_check_refuses_duplicates_and_wrong_sizes(package: Path) -> None:
    files = list(members(package))
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members([*files, files[-1]])
    assert "twice" in str(info.value)
    short = [(n, d[:10] if n == "model.skops" else d) for n, d in files]
    with pytest.raises(InvalidArtifactError) as info:
        check_package_members(short)
    assert "starts with 10 bytes" in str(info.value)


def test_check_refuses_a_small_file_whose_digest_differs(package: Path) -> None:
    files = list(members(package))
    flipped = [(n, bytes([d[0] ^ 1]) + d[1:] if n == "model.skops" else d) for n, d in files]
    with pytest.raises(DigestMismatchError) as info:
        check_package_members(flipped)
    assert info.value.field == "files.model.skops"


def test_check_leading_dot_slash_is_fine(package: Path) -> None:
    check_package_members((f"./{n}", d) for n, d in members(package))


@pytest.mark.parametrize("fixture", ["logreg", "forest", "frame_pipeline"])
def test_the_same_model_gives_the_same_bytes(
    fixture: str, request: pytest.FixtureRequest, data: Any, frame: Any, tmp_path: Path
) -> None:
    """Packages are stored by digest: saving a model twice must not make two artifacts."""
    model = request.getfixturevalue(fixture)
    sample = frame[:3] if fixture == "frame_pipeline" else data[0][:3]
    build_package(model, tmp_path / "a", sample_input=sample)
    build_package(model, tmp_path / "b", sample_input=sample)
    first = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    second = {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()}
    assert first == second
