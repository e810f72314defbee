"""The mlflow flavor: an MLflow model directory (one that MLflow loads as a pyfunc), copied
whole into the package as ``mlflow_model/`` and loaded with ``mlflow.pyfunc.load_model``.

``log_model("path/to/mlflow/model", "name", flavor="mlflow", sample_input=...)``, or let the
directory's ``MLmodel`` file be detected. The signature is the MLflow model's own when it
declares inputs and outputs funade can map (tensors, or columns of numbers, booleans and
strings), else it is inferred from the sample. ``predict`` hands the pyfunc the input in the
form of the sample (array, DataFrame or dict); one output is named after the MLflow signature's
single output, or ``predict``.

Loading an MLflow model runs what its flavor unpickles (a ``python_model.pkl`` is a cloudpickle),
so load only packages you trust. The server checks the ``MLmodel`` file, that the files its
``python_function`` flavor names are there, and that pickles start like pickles, executing
nothing. MLflow sends usage telemetry unless ``MLFLOW_DISABLE_TELEMETRY=true`` or
``DO_NOT_TRACK=true`` is set where it runs.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from funade.errors import FunadeError, InvalidArtifactError, InvalidInputError
from funade.registry.flavors.base import (
    LoadedModel,
    PackageFile,
    check_options,
    load_failure,
    missing_file,
    parse_metadata,
    require,
)
from funade.registry.flavors.sklearn_files import check_pickle
from funade.registry.manifest import REBUILD
from funade.registry.signature import Signature, TensorSpec, inputs_from_tensors
from funade.registry.tensors import Datatype, Tensors, as_tensors, datatype_of, is_dataframe

DIRECTORY = "mlflow_model"
MLMODEL = f"{DIRECTORY}/MLmodel"
LOAD_FIX = (
    "Install the packages in the manifest's 'requirements' (MLflow's own list is in "
    f"{DIRECTORY}/requirements.txt), then retry."
)
# MLflow column types funade has a datatype for; the others (datetime, arrays, objects...) make
# the signature be inferred from the sample.
COLUMN_TYPES: dict[str, Datatype] = {
    "boolean": "BOOL",
    "integer": "INT32",
    "long": "INT64",
    "float": "FP32",
    "double": "FP64",
    "string": "BYTES",
    "binary": "BYTES",
}
# Keys of the python_function flavor in MLmodel that name a file or directory of the model.
_MODEL_PATH_KEYS = ("python_model", "model_path", "data", "artifacts")
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".cloudpickle")


class MlflowMetadata(BaseModel):
    """What ``MlflowFlavor.save`` records in ``funade.json``."""

    model_config = ConfigDict(extra="forbid")

    directory: Literal["mlflow_model"] = "mlflow_model"
    loader_module: str
    """The module MLflow loads the pyfunc with, e.g. ``mlflow.sklearn`` (for the record)."""
    model_file: str | None = None
    """The model's main file or directory in the package, named in load errors."""


class MlflowModel:
    """An MLflow pyfunc answering tensors."""

    def __init__(self, pyfunc: Any, signature: Signature | None) -> None:
        self._pyfunc = pyfunc
        self._signature = signature
        declared = _declared(pyfunc)
        outputs = declared.outputs if declared else []
        self._single_output = outputs[0].name if len(outputs) == 1 else "predict"

    @property
    def native(self) -> object:
        return self._pyfunc

    def predict(
        self, inputs: Mapping[str, npt.NDArray[Any]], outputs: Collection[str] | None = None
    ) -> Tensors:
        signature = self._signature
        given = inputs_from_tensors(inputs, signature) if signature else next(iter(inputs.values()))
        out = self._pyfunc.predict(given)
        if is_dataframe(out) and not all(isinstance(c, str) for c in out.columns):
            out = out.to_numpy()  # unnamed columns: one tensor
        fmt, outputs = as_tensors(out, field="output")
        if fmt == "tensor":
            return {self._single_output: outputs.popitem()[1]}
        return outputs


class MlflowFlavor:
    """Imports MLflow models (any that MLflow loads as a pyfunc)."""

    name: ClassVar[str] = "mlflow"
    extra: ClassVar[str] = "mlflow"

    def matches(self, model: object) -> bool:
        if not isinstance(model, str | os.PathLike):
            return False
        try:
            return (Path(model) / "MLmodel").is_file()
        except (OSError, ValueError):  # not a path this system can look at
            return False

    def save(self, model: object, path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        check_options(options, {}, flavor=self.name)
        source = _source_directory(model)
        models = require("mlflow.models", extra="mlflow", needed_by="The mlflow flavor")
        try:
            mlmodel = models.Model.load(str(source / "MLmodel"))
        except Exception as exc:
            raise InvalidInputError(
                f"'{source / 'MLmodel'}' is not a valid MLmodel file: {type(exc).__name__}: {exc}",
                field="model",
                value=str(source),
                fix="Pass the directory written by mlflow.<flavor>.save_model.",
            ) from exc
        pyfunc = mlmodel.flavors.get("python_function")
        if not isinstance(pyfunc, dict):
            raise InvalidInputError(
                f"The MLflow model in '{source}' has no python_function flavor, so it cannot be "
                "loaded as a pyfunc.",
                field="model",
                value=str(source),
                fix="Save it with an MLflow flavor that supports pyfunc (e.g. mlflow.sklearn, "
                "mlflow.pyfunc).",
            )
        shutil.copytree(source, path / DIRECTORY, symlinks=False)
        return {
            "directory": DIRECTORY,
            "loader_module": str(pyfunc.get("loader_module", "")),
            "model_file": _model_file(pyfunc),
        }

    def requirements(self, path: Path, metadata: Mapping[str, Any]) -> list[str]:
        names = {"mlflow-skinny", "mlflow", "numpy"}
        listed = path / DIRECTORY / "requirements.txt"
        if listed.is_file():
            for line in listed.read_text(encoding="utf-8", errors="replace").splitlines():
                found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
                if found and not line.lstrip().startswith(("-", "#")):
                    names.add(found.group(1))
        return sorted(names)

    def load(
        self, path: Path, metadata: Mapping[str, Any], signature: Signature | None
    ) -> MlflowModel:
        meta = parse_metadata(MlflowMetadata, metadata, flavor=self.name)
        pyfunc = require("mlflow.pyfunc", extra="mlflow", needed_by="The mlflow flavor")
        file = f"{meta.directory}/{meta.model_file}" if meta.model_file else f"{meta.directory}/"
        try:
            return MlflowModel(pyfunc.load_model(str(path / meta.directory)), signature)
        except FunadeError:
            raise
        except Exception as exc:
            raise load_failure(self.name, file, exc, LOAD_FIX) from exc

    def declared_signature(self, model: LoadedModel) -> Signature | None:
        return _declared(model.native)

    def wrap(self, model: object, metadata: Mapping[str, Any], signature: Signature | None) -> None:
        return None  # the saved directory is the model, byte for byte

    def runs_code(self, metadata: Mapping[str, Any]) -> bool:
        """An MLflow pyfunc unpickles (cloudpickle) what its flavor saved."""
        return True

    def check_files(self, files: Mapping[str, PackageFile], metadata: Mapping[str, Any]) -> None:
        meta = parse_metadata(MlflowMetadata, metadata, flavor=self.name, on_server=True)
        mlmodel = files.get(MLMODEL)
        if mlmodel is None:
            raise missing_file(MLMODEL, self.name)
        pyfunc = _server_mlmodel(mlmodel)
        for key in _MODEL_PATH_KEYS:
            named = pyfunc.get(key) if pyfunc is not None else None
            if isinstance(named, str) and named:
                target = f"{meta.directory}/{named.strip('/')}"
                if target not in files and not any(f.startswith(target + "/") for f in files):
                    raise missing_file(target, self.name)
        for name, file in files.items():
            if name.endswith(_PICKLE_SUFFIXES):
                check_pickle(name, file)
            elif name.endswith(".skops") and not file.head.startswith(b"PK\x03\x04"):
                raise _bad_file(name, "is not a skops file (a zip archive)")


def _source_directory(model: object) -> Path:
    if isinstance(model, str | os.PathLike) and (Path(model) / "MLmodel").is_file():
        return Path(model)
    raise InvalidInputError(
        f"The mlflow flavor takes the path of an MLflow model directory, not {model!r}"[:300] + ".",
        field="model",
        value=str(model)[:200],
        fix="Pass the directory that mlflow.<flavor>.save_model wrote (it holds an MLmodel file).",
    )


def _model_file(pyfunc: Mapping[str, Any]) -> str | None:
    for key in _MODEL_PATH_KEYS:
        value = pyfunc.get(key)
        if isinstance(value, str) and value:
            return value.strip("/")
    return None


def _declared(pyfunc: Any) -> Signature | None:
    """The MLflow model's signature in funade's terms, or None when it has none (or one with
    types funade cannot name)."""
    metadata = getattr(pyfunc, "metadata", None)
    declared = getattr(metadata, "signature", None)
    if declared is None or declared.inputs is None or declared.outputs is None:
        return None
    inputs = _specs(declared.inputs, "input")
    outputs = _specs(declared.outputs, "predict")
    if not inputs or not outputs:
        return None
    tensors = declared.inputs.is_tensor_spec()
    input_format = "tensor" if tensors and len(inputs) == 1 else "tensors" if tensors else "columns"
    return Signature(inputs=inputs, outputs=outputs, input_format=input_format)


def _specs(schema: Any, lone_name: str) -> list[TensorSpec] | None:
    """An MLflow schema as tensor specs; an unnamed lone spec is called ``lone_name``."""
    specs = list(schema.inputs)
    if len(specs) > 1 and not schema.has_input_names():
        return None
    out = []
    for spec in specs:
        name = spec.name or lone_name
        if schema.is_tensor_spec():
            try:
                datatype = datatype_of(np.empty(0, dtype=spec.type), name=name)
            except (FunadeError, TypeError):
                return None
            shape = [-1, *(d if d >= 0 else -1 for d in spec.shape[1:])]
        else:
            datatype_name = getattr(spec.type, "name", None)
            if datatype_name not in COLUMN_TYPES:
                return None
            datatype, shape = COLUMN_TYPES[datatype_name], [-1]
        out.append(TensorSpec(name=name, datatype=datatype, shape=shape))
    return out


def _server_mlmodel(file: PackageFile) -> Mapping[str, Any] | None:
    """The python_function section of MLmodel (None when it cannot be read whole here)."""
    if not file.complete:
        return None
    try:
        text = file.head.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad_file(MLMODEL, "is not UTF-8 text") from None
    try:
        yaml = importlib.import_module("yaml")  # MLflow's own dependency; parsing runs nothing
    except ModuleNotFoundError:
        if not re.search(r"^flavors:\s*$", text, re.M) or "python_function:" not in text:
            raise _bad_file(MLMODEL, "has no python_function flavor") from None
        return None
    try:
        parsed = yaml.safe_load(text)
    except Exception as exc:
        raise _bad_file(MLMODEL, f"is not valid YAML ({type(exc).__name__})") from None
    flavors = parsed.get("flavors") if isinstance(parsed, dict) else None
    pyfunc = flavors.get("python_function") if isinstance(flavors, dict) else None
    if not isinstance(pyfunc, dict):
        raise _bad_file(MLMODEL, "has no python_function flavor")
    return pyfunc


def _bad_file(name: str, why: str) -> InvalidArtifactError:
    return InvalidArtifactError(f"'{name}' {why}.", field="artifact", value=name, fix=REBUILD)
