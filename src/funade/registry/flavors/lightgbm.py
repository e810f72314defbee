"""The lightgbm flavor: ``LGBMClassifier``, ``LGBMRegressor`` (any ``LGBMModel``) or a
``Booster``, saved in LightGBM's text model format (``booster_.save_model``) and loaded as
``lightgbm.Booster(model_file=...)``, never as a pickle.

Outputs are those of the scikit-learn API: ``predict``, and for a classifier ``predict_proba``,
rebuilt from the booster's predictions as ``LGBMClassifier`` does (binary: ``[1 - p, p]``;
multiclass: the booster's probabilities) with the labels recorded in ``funade.json``. A model fed
a DataFrame gets its DataFrame back, in the column order it was trained on.

The file's layout (its ``tree_sizes`` against where each tree starts and the file's size) is
checked in Python before LightGBM reads it, on the server and on a replica: LightGBM parses the
trees in parallel at the offsets the file gives, and a cut-short file aborts the process.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, model_validator

from funade.errors import InvalidArtifactError, InvalidInputError
from funade.registry.flavors.base import (
    LoadedModel,
    PackageFile,
    check_options,
    load_failure,
    missing_file,
    parse_metadata,
    require,
)
from funade.registry.manifest import REBUILD
from funade.registry.signature import Signature, frame_from_tensors
from funade.registry.tensors import Tensors, normalize

FILE = "model.txt"
LOAD_FIX = "Install the lightgbm version in the manifest's 'requirements', then retry."
LabelDtype = Literal[
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "str",
]  # fmt: skip


class LightGBMMetadata(BaseModel):
    """What ``LightGBMFlavor.save`` records in ``funade.json``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["classifier", "regressor", "booster"]
    file: Literal["model.txt"] = "model.txt"
    classes: list[StrictBool | StrictInt | StrictFloat | str] | None = None
    """A classifier's labels (``classes_``), in the order of the booster's class scores."""
    classes_dtype: LabelDtype | None = None

    @model_validator(mode="after")
    def _classes(self) -> Self:
        if (self.classes is None) != (self.kind != "classifier"):
            raise ValueError("classes are needed by, and only by, a classifier")
        if self.classes is not None and (len(self.classes) < 2 or self.classes_dtype is None):
            raise ValueError("a classifier needs two or more classes and their dtype")
        return self

    @property
    def methods(self) -> list[str]:
        return ["predict", "predict_proba"] if self.kind == "classifier" else ["predict"]


class LightGBMModel:
    """A LightGBM booster answering tensors like the scikit-learn estimator it came from."""

    def __init__(self, booster: Any, meta: LightGBMMetadata, signature: Signature | None) -> None:
        self._booster = booster
        self._meta = meta
        self._signature = signature
        self._classes = None
        if meta.classes is not None:
            dtype = object if meta.classes_dtype == "str" else meta.classes_dtype
            self._classes = np.asarray(meta.classes, dtype=dtype)

    @property
    def native(self) -> object:
        return self._booster

    def predict(
        self, inputs: Mapping[str, npt.NDArray[Any]], outputs: Collection[str] | None = None
    ) -> Tensors:
        features = _features(inputs, self._signature, self._booster)
        raw = np.asarray(self._booster.predict(features))
        if self._classes is None:
            return {"predict": normalize(raw, name="predict")}
        proba = np.vstack((1.0 - raw, raw)).transpose() if raw.ndim == 1 else raw
        out = {"predict": normalize(self._classes[np.argmax(proba, axis=1)])}
        if outputs is None or "predict_proba" in outputs or "predict" not in outputs:
            out["predict_proba"] = normalize(proba)
        return out


class LightGBMFlavor:
    """Saves LightGBM models in LightGBM's text format."""

    name: ClassVar[str] = "lightgbm"
    extra: ClassVar[str] = "lightgbm"

    def matches(self, model: object) -> bool:
        lgb = sys.modules.get("lightgbm")  # a model cannot exist without lightgbm imported
        return lgb is not None and isinstance(model, lgb.LGBMModel | lgb.Booster)

    def save(self, model: object, path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        check_options(options, {}, flavor=self.name)
        lgb = require("lightgbm", extra="lightgbm", needed_by="The lightgbm flavor")
        if isinstance(model, lgb.Booster):
            booster, metadata = model, {"kind": "booster"}
        elif isinstance(model, lgb.LGBMModel):
            booster, metadata = _fitted_booster(model), _estimator_metadata(lgb, model)
        else:
            raise InvalidInputError(
                f"The lightgbm flavor cannot save a {type(model).__qualname__}.",
                field="model",
                value=type(model).__qualname__,
                fix="Pass a fitted LGBMClassifier, LGBMRegressor or lightgbm.Booster.",
            )
        booster.save_model(str(path / FILE))
        return {**metadata, "file": FILE}

    def requirements(self, path: Path, metadata: Mapping[str, Any]) -> list[str]:
        return ["lightgbm", "numpy", "scipy"]

    def load(
        self, path: Path, metadata: Mapping[str, Any], signature: Signature | None
    ) -> LightGBMModel:
        meta = parse_metadata(LightGBMMetadata, metadata, flavor=self.name)
        lgb = require("lightgbm", extra="lightgbm", needed_by="The lightgbm flavor")
        try:
            text = (path / meta.file).read_bytes()
            problem = layout_problem(text, len(text))
            if problem:
                raise ValueError(f"the file {problem}")
            booster = lgb.Booster(model_str=text.decode("utf-8"))
        except Exception as exc:
            raise load_failure(self.name, meta.file, exc, LOAD_FIX) from exc
        return LightGBMModel(booster, meta, signature)

    def declared_signature(self, model: LoadedModel) -> Signature | None:
        return None

    def wrap(
        self, model: object, metadata: Mapping[str, Any], signature: Signature | None
    ) -> LoadedModel:
        meta = parse_metadata(LightGBMMetadata, metadata, flavor=self.name)
        return _Estimator(model, meta, signature)

    def runs_code(self, metadata: Mapping[str, Any]) -> bool:
        """LightGBM's text model is data."""
        return False

    def check_files(self, files: Mapping[str, PackageFile], metadata: Mapping[str, Any]) -> None:
        meta = parse_metadata(LightGBMMetadata, metadata, flavor=self.name, on_server=True)
        file = files.get(meta.file)
        if file is None:
            raise missing_file(meta.file, self.name)
        problem = layout_problem(file.head, file.size)
        if problem:
            raise InvalidArtifactError(
                f"'{meta.file}' {problem}.", field="artifact", value=meta.file, fix=REBUILD
            )


def layout_problem(head: bytes, size: int) -> str | None:
    """What is wrong with the layout of a LightGBM text model of ``size`` bytes, as far as its
    first bytes ``head`` show (None: nothing). Only reads offsets, like LightGBM will."""
    if not head.startswith(b"tree\nversion="):
        return "does not start like a LightGBM text model ('tree', 'version=')"
    whole = len(head) == size
    start = head.find(b"\nTree=") + 1
    header = head[:start] if start else head
    sizes_line = re.search(rb"^tree_sizes=([0-9 ]*)$", header, re.MULTILINE)
    if sizes_line is None or not start:
        if start or whole:
            return "has no trees" if sizes_line else "has no tree_sizes line"
        return None  # the header runs past the first bytes
    sizes = [int(n) for n in sizes_line.group(1).split()]
    end = start + sum(sizes)
    if end > size:
        return f"is cut short: its trees end at byte {end}, but it has {size} bytes"
    offset = start
    for number, tree_size in enumerate(sizes):
        if offset >= len(head):
            return None
        if not head.startswith(b"Tree=", offset):
            return f"does not have tree {number} where its tree_sizes put it"
        offset += tree_size
    if end < len(head) and not head.startswith(b"end of trees", end):
        return "has no 'end of trees' after its trees"
    return _parameters_problem(head[end:]) if whole else None


def _parameters_problem(tail: bytes) -> str | None:
    """LightGBM reads the parameters after the trees line by line, trusting their brackets."""
    begin = tail.find(b"\nparameters:\n")
    if begin < 0:
        return None
    finish = tail.find(b"\nend of parameters\n", begin)
    if finish < 0:
        return "is cut short in its parameters (no 'end of parameters')"
    lines = tail[begin + len(b"\nparameters:\n") : finish].split(b"\n")
    if not all(line.startswith(b"[") and line.endswith(b"]") for line in lines if line):
        return "has a parameter line that is not '[name: value]'"
    return None


class _Estimator:
    """The model in memory, through its own API, to compare with the booster loaded back."""

    def __init__(self, model: Any, meta: LightGBMMetadata, signature: Signature | None) -> None:
        self._model = model
        self._methods = meta.methods
        self._signature = signature
        self._booster = getattr(model, "booster_", model)

    @property
    def native(self) -> object:
        return self._model

    def predict(
        self, inputs: Mapping[str, npt.NDArray[Any]], outputs: Collection[str] | None = None
    ) -> Tensors:
        features = _features(inputs, self._signature, self._booster)
        methods = [m for m in self._methods if outputs is None or m in outputs] or self._methods
        return {m: normalize(getattr(self._model, m)(features), name=m) for m in methods}


def _features(
    inputs: Mapping[str, npt.NDArray[Any]], signature: Signature | None, booster: Any
) -> Any:
    """One array, or a DataFrame in the column order the booster was trained on."""
    if signature is None or signature.input_format == "tensor":
        return next(iter(inputs.values()))
    frame = frame_from_tensors(inputs)
    trained = [str(c) for c in booster.feature_name()]
    return frame[trained] if sorted(trained) == sorted(frame.columns) else frame


def _fitted_booster(model: Any) -> Any:
    try:
        return model.booster_
    except Exception as exc:  # sklearn's NotFittedError, or lightgbm's own
        raise InvalidInputError(
            f"This {type(model).__name__} is not fitted: {exc}",
            field="model",
            value=type(model).__name__,
            fix="Fit the model before logging it.",
        ) from None


def _estimator_metadata(lgb: Any, model: Any) -> dict[str, Any]:
    if not isinstance(model, lgb.LGBMClassifier):
        return {"kind": "regressor"}
    if callable(model.objective):
        raise InvalidInputError(
            "An LGBMClassifier with a custom objective function predicts raw scores, and the "
            "saved model cannot hold the function.",
            field="model",
            value=getattr(model.objective, "__name__", repr(model.objective)),
            fix="Train with a built-in objective (e.g. 'binary' or 'multiclass'), or log the "
            "booster itself: log_model(model.booster_, ...).",
        )
    classes = np.asarray(model.classes_)
    if classes.dtype.kind in "OUS" and all(isinstance(c, str) for c in classes.tolist()):
        return {"kind": "classifier", "classes": classes.tolist(), "classes_dtype": "str"}
    if classes.dtype.kind not in "biuf":
        raise InvalidInputError(
            f"The classifier's labels have dtype {classes.dtype}; funade can record numbers, "
            "booleans or strings.",
            field="model.classes_",
            value=str(classes.dtype),
            fix="Encode the labels as numbers or strings before fitting.",
        )
    return {"kind": "classifier", "classes": classes.tolist(), "classes_dtype": str(classes.dtype)}
