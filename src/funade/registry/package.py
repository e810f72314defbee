"""Model packages: a directory holding a flavor's files and ``funade.json``, the manifest that
names the flavor, the signature and every file's size and sha256.

``build_package`` saves a model, loads it back from disk and predicts on the sample input: the
round trip proves the package loads, gives the output signature and the golden examples.
``load_package`` verifies every file against the manifest before the flavor loads anything.
``check_package_members`` lets the control plane refuse a malformed package without executing
any of it.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from funade.errors import (
    ArtifactCorruptError,
    DigestMismatchError,
    FunadeError,
    InvalidArtifactError,
    InvalidInputError,
    ModelLoadError,
)
from funade.registry.deferred import DEFERRED, deferring
from funade.registry.flavors import Flavor, LoadedModel, PackageFile, detect_flavor, get_flavor
from funade.registry.golden import compare_outputs, make_golden_examples
from funade.registry.images import ImageInput, check_image_input
from funade.registry.lineage import package_versions
from funade.registry.manifest import (
    MANIFEST_NAME,
    REBUILD,
    FileEntry,
    Manifest,
    ManifestProblem,
    bytes_digest,
    file_digest,
    member_path,
    parse_manifest,
)
from funade.registry.model import Model
from funade.registry.signature import Signature, TensorSpec, infer_signature, to_tensors
from funade.registry.tensors import Tensors, normalize, tensors_to_json

__all__ = [
    "HEAD_BYTES",
    "MANIFEST_NAME",
    "FileEntry",
    "Manifest",
    "build_package",
    "check_package_members",
    "file_digest",
    "load_package",
    "read_manifest",
]

HEAD_BYTES = 64 * 1024
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_FILES = 10_000


def build_package(
    model: object,
    directory: Path,
    *,
    sample_input: Any = None,
    flavor: str | None = None,
    options: Mapping[str, Any] | None = None,
    image: ImageInput | None = None,
    labels: Labels | None = None,
) -> tuple[Manifest, list[dict[str, Any]]]:
    """Save ``model`` into the empty (or new) ``directory`` as a package; return its manifest and
    golden examples (none without a sample input, which only an ONNX model may go without).
    ``image`` records that one input takes photos, and how they are decoded; ``labels`` names
    the classes of outputs that score them (``with_labels``)."""
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise InvalidInputError(
            f"The package directory '{directory}' is not empty.",
            field="directory",
            value=str(directory),
            fix="Pass a new or empty directory.",
        )
    directory.mkdir(parents=True, exist_ok=True)
    flv = get_flavor(flavor) if flavor is not None else detect_flavor(model)
    metadata = flv.save(model, directory, dict(options or {}))
    files = _file_entries(directory)
    provisional = None if sample_input is None else infer_signature(sample_input, {})
    loaded = _load(flv, directory, metadata, provisional)
    signature = flv.declared_signature(loaded)
    if signature is None and provisional is None:
        raise InvalidInputError(
            f"A {flv.name} model needs a sample input to record its signature.",
            field="sample_input",
            value=None,
            fix="Pass a few rows of real input, e.g. sample_input=X[:5].",
        )
    golden: list[dict[str, Any]] = []
    if sample_input is not None:
        signature = _with_format(signature, provisional) if signature else provisional
        assert signature is not None
        inputs = to_tensors(sample_input, signature)
        in_memory = flv.wrap(model, metadata, signature)
        expected = _predict(in_memory, inputs, flv, loaded_back=False) if in_memory else None
        outputs = _predict(loaded, inputs, flv, loaded_back=True)
        if expected is not None:
            _check_same(flv, expected, outputs)
        if not signature.outputs:
            signature = infer_signature(sample_input, outputs)
        golden = make_golden_examples(inputs, outputs)
    assert signature is not None
    if image is not None:
        signature = with_image_input(signature, image)
    labels = labels if labels is not None else _classes_of(model, signature)
    if labels is not None:
        signature = with_labels(signature, labels)
    manifest = Manifest(
        flavor=flv.name,
        flavor_metadata=metadata,
        signature=signature,
        files=files,
        python_version=platform.python_version(),
        requirements=package_versions(tuple(flv.requirements(directory, metadata))),
    )
    (directory / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return manifest, golden


def with_image_input(signature: Signature, image: ImageInput) -> Signature:
    """``signature`` with ``image`` recorded on the input it names (or its only input)."""
    names = [spec.name for spec in signature.inputs]
    name = image.input
    if name is None:
        if len(names) != 1:
            raise InvalidInputError(
                f"The model takes {len(names)} inputs ({', '.join(names)}); say which one takes "
                "images.",
                field="image.input",
                value=None,
                fix=f"Pass ImageInput(input=...) with one of {names}.",
            )
        name = names[0]
    if name not in names:
        raise InvalidInputError(
            f"The model has no input {name!r} to take images.",
            field="image.input",
            value=name,
            fix=f"Pass ImageInput(input=...) with one of {names}.",
        )
    specs = []
    for spec in signature.inputs:
        if spec.name == name:
            check_image_input(image, spec.name, spec.datatype, spec.shape)
            spec = spec.model_copy(update={"image": image.model_copy(update={"input": name})})
        specs.append(spec)
    return signature.model_copy(update={"inputs": specs})


Labels = Sequence[str] | Mapping[str, Sequence[str]]
"""Class names: for every output that scores that many classes, or by output name."""


def with_labels(signature: Signature, labels: Labels) -> Signature:
    """``signature`` with class names recorded on its outputs: a list goes to every output
    whose last dimension has that many classes, a mapping to the outputs it names."""
    if isinstance(labels, str):
        raise _bad_labels(labels, "they are one string, not a list of class names")
    by_output: dict[str, list[str]]
    if isinstance(labels, Mapping):
        known = {spec.name for spec in signature.outputs}
        for name in labels:
            if name not in known:
                raise InvalidInputError(
                    f"The model has no output {name!r} to label.",
                    field=f"labels.{name}",
                    value=name,
                    fix=f"Name one of the outputs {sorted(known)}.",
                )
        by_output = {name: list(names) for name, names in labels.items()}
    else:
        names = list(labels)
        by_output = {
            spec.name: names
            for spec in signature.outputs
            if len(spec.shape) >= 2
            and spec.shape[-1] == len(names)
            and spec.datatype not in ("BYTES", "BOOL")
        }
        if not by_output:
            shapes = ", ".join(str(spec) for spec in signature.outputs)
            raise _bad_labels(
                names,
                f"no output scores {len(names)} classes ({shapes})",
            )
    for name, names in by_output.items():
        if not names or not all(isinstance(n, str) and n for n in names):
            raise _bad_labels(names, f"{name!r} needs a non-empty list of non-empty strings")
        if len(set(names)) != len(names):
            raise _bad_labels(names, f"a class of {name!r} is named twice")
    specs = []
    for spec in signature.outputs:
        if spec.name in by_output:
            try:
                spec = TensorSpec.model_validate(
                    {**spec.model_dump(), "labels": by_output[spec.name]}
                )
            except ValidationError as exc:
                message = exc.errors()[0]["msg"].removeprefix("Value error, ")
                raise _bad_labels(by_output[spec.name], message) from None
        specs.append(spec)
    return signature.model_copy(update={"outputs": specs})


def _classes_of(model: object, signature: Signature) -> Labels | None:
    """The class names a scikit-learn-style classifier keeps in ``classes_``, for its
    ``predict_proba`` output (the order of its columns), if it has both."""
    classes = getattr(model, "classes_", None)
    scores = next((s for s in signature.outputs if s.name == "predict_proba"), None)
    if classes is None or scores is None or np.ndim(classes) != 1:
        return None
    names = [str(c) for c in classes]
    if scores.shape[-1] != len(names) or len(set(names)) != len(names):
        return None
    return {"predict_proba": names}


def _bad_labels(value: str | Sequence[str], reason: str) -> InvalidInputError:
    return InvalidInputError(
        f"labels {value!r} do not fit the model: {reason}.",
        field="labels",
        value=value if isinstance(value, str) else list(value),
        fix="Pass labels=[...] with one name per class of the scores output, or "
        "labels={'output': [...]}.",
    )


def _with_format(declared: Signature, provisional: Signature | None) -> Signature:
    """A declared signature taking several inputs is fed by DataFrame if the sample was one."""
    if provisional and provisional.input_format == "columns" and len(declared.inputs) > 1:
        return declared.model_copy(update={"input_format": "columns"})
    return declared


def _load(
    flv: Flavor, directory: Path, metadata: Mapping[str, Any], signature: Signature | None
) -> LoadedModel:
    try:
        return flv.load(directory, metadata, signature)
    except FunadeError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"Could not load the {flv.name} package in '{directory}': {type(exc).__name__}: {exc}",
            field="flavor",
            value=flv.name,
            fix="Install the packages in the manifest's 'requirements', then retry.",
        ) from exc


def _predict(model: LoadedModel, inputs: Tensors, flv: Flavor, *, loaded_back: bool) -> Tensors:
    """Outputs on the sample; the model in memory failing is the sample's fault, the copy loaded
    back failing (after the one in memory worked) the package's."""
    try:
        outputs = model.predict(inputs)
    except FunadeError:
        raise
    except Exception as exc:
        what = "model loaded back from its package" if loaded_back else "model"
        error = ModelLoadError if loaded_back else InvalidInputError
        raise error(
            f"The {flv.name} {what} failed to predict on the sample input: "
            f"{type(exc).__name__}: {exc}",
            field="sample_input",
            value=flv.name,
            fix="Pass a sample input the model accepts (the columns and types it was trained on).",
        ) from exc
    return {name: normalize(value, name=name) for name, value in outputs.items()}


def _check_same(flv: Flavor, expected: Tensors, outputs: Tensors) -> None:
    differences = compare_outputs(tensors_to_json(expected), tensors_to_json(outputs))
    if differences:
        raise ModelLoadError(
            f"The {flv.name} model loaded back from its package predicts differently from the "
            f"model in memory: {'; '.join(differences[:3])}.",
            field="model",
            value=flv.name,
            fix="Make sure saving keeps all of the model's state (for a python_class model: "
            "save(path) writes, and load(path) reads, everything predict uses).",
        )


def _file_entries(directory: Path) -> dict[str, FileEntry]:
    entries = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        name = path.relative_to(directory).as_posix()
        entries[name] = FileEntry(size=path.stat().st_size, sha256=file_digest(path))
    return entries


def read_manifest(directory: Path) -> Manifest:
    """The manifest of the package in ``directory``."""
    try:
        return parse_manifest((Path(directory) / MANIFEST_NAME).read_bytes())
    except FileNotFoundError:
        raise ModelLoadError(
            f"'{directory}' has no {MANIFEST_NAME}, so it is not a model package.",
            field="artifact",
            value=str(directory),
            fix=REBUILD,
        ) from None
    except ManifestProblem as problem:
        raise ModelLoadError(
            f"{problem.message} (in '{directory}')",
            field="artifact",
            value=MANIFEST_NAME,
            fix=problem.fix,
        ) from None


def load_package(directory: Path, *, verify: bool = True) -> Model:
    """Load the package in ``directory``, first checking every file against the manifest
    (``verify=False`` skips the hashing, for a caller that has just verified the same bytes)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if verify:
        _verify_files(directory, manifest)
    flv = get_flavor(manifest.flavor)
    with deferring(*DEFERRED):  # pandas, until something uses it: a fifth of a cold start
        loaded = _load(flv, directory, manifest.flavor_metadata, manifest.signature)
    return Model(loaded, manifest)


def _verify_files(directory: Path, manifest: Manifest) -> None:
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}
    unexpected = sorted(present - set(manifest.files) - {MANIFEST_NAME})
    problems = [f"'{name}' is not in the manifest" for name in unexpected[:3]]
    for name, entry in manifest.files.items():
        if name not in present:
            problems.append(f"'{name}' is missing")
        elif (size := (directory / name).stat().st_size) != entry.size:
            problems.append(f"'{name}' has {size} bytes, the manifest says {entry.size}")
        elif (digest := file_digest(directory / name)) != entry.sha256:
            problems.append(f"'{name}' hashes to {digest}, the manifest says {entry.sha256}")
    if problems:
        raise ArtifactCorruptError(
            f"The package in '{directory}' does not match its manifest: {'; '.join(problems)}.",
            field="artifact",
            value=str(directory),
            fix="Download the model version again (the stored copy may be damaged).",
        )


def check_package_members(members: Iterable[tuple[str, bytes]]) -> Manifest:
    """Validate a package from its files' first bytes, executing nothing; return its manifest.

    ``members`` yields ``(path in package, first bytes)`` for every file: up to 64 KiB each, and
    ``funade.json`` whole (up to 1 MiB).
    """
    heads: dict[str, bytes] = {}
    for raw_name, head in members:
        name = member_path(raw_name)
        if name is None:
            raise _invalid(
                f"'{raw_name}' is not a plain relative path inside the package.", raw_name
            )
        if name in heads:
            raise _invalid(f"The package holds '{name}' twice.", name)
        if len(heads) >= MAX_FILES:
            raise _invalid(f"The package holds more than {MAX_FILES:,} files.", name)
        heads[name] = head if name == MANIFEST_NAME else head[:HEAD_BYTES]
    manifest = _server_manifest(heads.pop(MANIFEST_NAME, None))
    flv = get_flavor(manifest.flavor)
    missing = sorted(set(manifest.files) - set(heads))
    if missing:
        raise _invalid(f"The package lacks '{missing[0]}', which its manifest lists.", missing[0])
    unexpected = sorted(set(heads) - set(manifest.files))
    if unexpected:
        name = unexpected[0]
        raise _invalid(f"The package holds '{name}', which its manifest does not list.", name)
    for name, entry in manifest.files.items():
        head = heads[name]
        if len(head) != min(entry.size, HEAD_BYTES):
            message = f"'{name}' starts with {len(head)} bytes but the manifest says it has "
            raise _invalid(message + f"{entry.size}.", name)
        if len(head) == entry.size and bytes_digest(head) != entry.sha256:
            raise DigestMismatchError(
                f"'{name}' does not hash to {entry.sha256}, the digest in the manifest.",
                field=f"files.{name}",
                value=name,
                fix=REBUILD,
            )
    files = {name: PackageFile(head=heads[name], size=e.size) for name, e in manifest.files.items()}
    flv.check_files(files, manifest.flavor_metadata)
    return manifest


def _server_manifest(data: bytes | None) -> Manifest:
    if data is None:
        raise _invalid(f"The package has no {MANIFEST_NAME}.", MANIFEST_NAME)
    if len(data) > MAX_MANIFEST_BYTES:
        raise _invalid(f"{MANIFEST_NAME} is over {MAX_MANIFEST_BYTES:,} bytes.", MANIFEST_NAME)
    try:
        return parse_manifest(data)
    except ManifestProblem as problem:
        cut = " It may have been cut short: read it whole." if len(data) == HEAD_BYTES else ""
        raise InvalidArtifactError(
            problem.message + cut, field="artifact", value=MANIFEST_NAME, fix=problem.fix
        ) from None


def _invalid(message: str, value: str) -> InvalidArtifactError:
    return InvalidArtifactError(message, field="artifact", value=value, fix=REBUILD)
