"""The xgboost flavor: ``XGBClassifier``, ``XGBRegressor`` (and their random-forest and ranking
siblings) or a ``Booster``, saved with ``save_model`` as UBJSON (default) or JSON, never as a
pickle, and loaded back into the same class.

Outputs: ``predict``, and ``predict_proba`` for classifiers; a ``Booster`` gives ``predict`` (its
raw ``Booster.predict`` on a ``DMatrix``). A model fed a DataFrame gets its DataFrame back, in
the column order it was trained on. A subclass of an xgboost class is saved, and loaded, as that
xgboost class: only the booster and its parameters are kept.

A UBJSON file is walked in Python before xgboost reads it, on the server (as far as its first
bytes go) and on a replica: xgboost trusts the lengths in the file, and a cut-short one can make
it try to allocate all the memory there is.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

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

ClassName = Literal[
    "XGBClassifier", "XGBRFClassifier", "XGBRegressor", "XGBRFRegressor", "XGBRanker", "Booster"
]
CLASS_NAMES: tuple[str, ...] = get_args(ClassName)
FILES = {"ubj": "model.ubj", "json": "model.json"}
OPTIONS = {"format": "'ubj' (default: binary UBJSON) or 'json' (readable, larger)"}
LOAD_FIX = "Install the xgboost version in the manifest's 'requirements', then retry."


class XGBoostMetadata(BaseModel):
    """What ``XGBoostFlavor.save`` records in ``funade.json``."""

    model_config = ConfigDict(extra="forbid")

    class_name: ClassName
    format: Literal["ubj", "json"]
    file: Literal["model.ubj", "model.json"]
    methods: list[Literal["predict", "predict_proba"]] = Field(min_length=1)


class XGBoostModel:
    """An xgboost model answering tensors."""

    def __init__(self, model: Any, methods: list[str], signature: Signature | None) -> None:
        self._model = model
        self._methods = methods
        self._signature = signature
        self._xgb = require("xgboost", extra="xgboost", needed_by="The xgboost flavor")
        self._is_booster = isinstance(model, self._xgb.Booster)

    @property
    def native(self) -> object:
        return self._model

    def predict(
        self, inputs: Mapping[str, npt.NDArray[Any]], outputs: Collection[str] | None = None
    ) -> Tensors:
        features = self._features(inputs)
        if self._is_booster:
            return {"predict": normalize(self._model.predict(self._xgb.DMatrix(features)))}
        methods = [m for m in self._methods if outputs is None or m in outputs] or self._methods
        return {m: normalize(getattr(self._model, m)(features), name=m) for m in methods}

    def _features(self, inputs: Mapping[str, npt.NDArray[Any]]) -> Any:
        if self._signature is None or self._signature.input_format == "tensor":
            return next(iter(inputs.values()))
        frame = frame_from_tensors(inputs)
        booster = self._model if self._is_booster else self._model.get_booster()
        trained = [str(c) for c in booster.feature_names or []]
        return frame[trained] if sorted(trained) == sorted(frame.columns) else frame


class XGBoostFlavor:
    """Saves xgboost models in xgboost's own format."""

    name: ClassVar[str] = "xgboost"
    extra: ClassVar[str] = "xgboost"

    def matches(self, model: object) -> bool:
        xgb = sys.modules.get("xgboost")  # a model cannot exist without xgboost imported
        return xgb is not None and isinstance(model, xgb.XGBModel | xgb.Booster)

    def save(self, model: object, path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        check_options(options, OPTIONS, flavor=self.name)
        fmt = options.get("format", "ubj")
        if fmt not in FILES:
            raise InvalidInputError(
                f"'{fmt}' is not a format the xgboost flavor knows.",
                field="options.format",
                value=fmt,
                fix="Use 'ubj' (default) or 'json'.",
            )
        class_name = _class_name(model)
        file = FILES[fmt]
        try:
            model.save_model(str(path / file))  # type: ignore[attr-defined]
        except Exception as exc:
            raise InvalidInputError(
                f"xgboost cannot save this {type(model).__name__}: {type(exc).__name__}: {exc}",
                field="model",
                value=type(model).__name__,
                fix="Fit the model before logging it.",
            ) from exc
        methods = ["predict"]
        if class_name.endswith("Classifier"):
            methods.append("predict_proba")
        return {"class_name": class_name, "format": fmt, "file": file, "methods": methods}

    def requirements(self, path: Path, metadata: Mapping[str, Any]) -> list[str]:
        # xgboost-cpu installs the same `xgboost` module; whichever is installed is recorded.
        needed = ["xgboost", "xgboost-cpu", "numpy", "scipy"]
        return needed if metadata.get("class_name") == "Booster" else [*needed, "scikit-learn"]

    def load(
        self, path: Path, metadata: Mapping[str, Any], signature: Signature | None
    ) -> XGBoostModel:
        meta = parse_metadata(XGBoostMetadata, metadata, flavor=self.name)
        xgb = require("xgboost", extra="xgboost", needed_by="The xgboost flavor")
        try:
            raw = bytearray((path / meta.file).read_bytes())
            if meta.format == "ubj":
                ubjson_check(raw)
            if meta.class_name == "Booster":
                model = xgb.Booster(model_file=raw)
            else:
                model = getattr(xgb, meta.class_name)()
                model.load_model(raw)
        except Exception as exc:
            raise load_failure(self.name, meta.file, exc, LOAD_FIX) from exc
        return XGBoostModel(model, list(meta.methods), signature)

    def declared_signature(self, model: LoadedModel) -> Signature | None:
        return None

    def wrap(
        self, model: object, metadata: Mapping[str, Any], signature: Signature | None
    ) -> XGBoostModel:
        meta = parse_metadata(XGBoostMetadata, metadata, flavor=self.name)
        return XGBoostModel(model, list(meta.methods), signature)

    def runs_code(self, metadata: Mapping[str, Any]) -> bool:
        """XGBoost's JSON/UBJSON model is data."""
        return False

    def check_files(self, files: Mapping[str, PackageFile], metadata: Mapping[str, Any]) -> None:
        meta = parse_metadata(XGBoostMetadata, metadata, flavor=self.name, on_server=True)
        file = files.get(meta.file)
        if file is None:
            raise missing_file(meta.file, self.name)
        problem = _problem(meta.format, file)
        if problem:
            raise InvalidArtifactError(
                f"'{meta.file}' {problem}.", field="artifact", value=meta.file, fix=REBUILD
            )


def _class_name(model: object) -> str:
    """The xgboost class ``model`` is (or derives from)."""
    for cls in type(model).__mro__:
        if cls.__module__.startswith("xgboost") and cls.__name__ in CLASS_NAMES:
            return cls.__name__
    raise InvalidInputError(
        f"The xgboost flavor cannot save a {type(model).__qualname__}.",
        field="model",
        value=type(model).__qualname__,
        fix=f"Pass one of xgboost's {', '.join(CLASS_NAMES)}.",
    )


def _problem(fmt: str, file: PackageFile) -> str | None:
    """What is wrong with an xgboost model file, judged from its first bytes (nothing runs)."""
    head = file.head
    # Both formats hold one object whose first key is "learner": UBJSON writes '{', a length
    # marker and the key; JSON writes '{"learner":'.
    if not head.startswith(b"{") or b"learner" not in head[:32]:
        return f"does not start like an xgboost model saved as {fmt.upper()}"
    if fmt == "json" and file.complete:
        try:
            model = json.loads(head)
        except (ValueError, RecursionError) as exc:
            return f"is not valid JSON ({exc})"
        if not isinstance(model, dict) or "learner" not in model:
            return "is JSON but not an xgboost model (no 'learner')"
    if fmt == "ubj":
        try:
            ubjson_check(head)
        except _CutShort as exc:
            if file.complete:
                return f"is not valid UBJSON ({exc})"
        except ValueError as exc:
            return f"is not valid UBJSON ({exc})"
    return None


class _CutShort(ValueError):
    """The data end inside a UBJSON value."""


_FIXED_SIZES = {b"Z": 0, b"N": 0, b"T": 0, b"F": 0, b"i": 1, b"U": 1, b"C": 1, b"I": 2}
_FIXED_SIZES |= {b"l": 4, b"d": 4, b"L": 8, b"D": 8}
_LENGTHS = {b"i": (1, True), b"U": (1, False), b"I": (2, True), b"l": (4, True), b"L": (8, True)}


def ubjson_check(data: bytes | bytearray) -> None:
    """Walk one UBJSON value filling ``data`` (lengths checked, nothing allocated); raise
    ``ValueError`` (``_CutShort`` when the data end too soon)."""
    end = _value(data, 1, bytes(data[:1]), 0)
    if end != len(data):
        raise ValueError(f"{len(data) - end} bytes follow the model")


def _value(data: bytes | bytearray, pos: int, marker: bytes, depth: int) -> int:
    """The offset after the value whose ``marker`` ends at ``pos``."""
    if marker in _FIXED_SIZES:
        end = pos + _FIXED_SIZES[marker]
    elif marker in (b"S", b"H"):
        size, pos = _length(data, pos)
        end = pos + size
    elif marker in (b"[", b"{"):
        return _container(data, pos, depth + 1, keyed=marker == b"{")
    elif not marker:
        raise _CutShort("it ends where a value should start")
    else:
        raise ValueError(f"unknown marker {marker!r} at byte {pos - 1}")
    if end > len(data):
        raise _CutShort(f"it ends inside a value at byte {pos}")
    return end


def _length(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    marker = bytes(data[pos : pos + 1])
    if marker not in _LENGTHS:
        raise (_CutShort if not marker else ValueError)(f"no length at byte {pos}")
    size, signed = _LENGTHS[marker]
    if pos + 1 + size > len(data):
        raise _CutShort(f"it ends inside a length at byte {pos}")
    value = int.from_bytes(data[pos + 1 : pos + 1 + size], "big", signed=signed)
    if value < 0:
        raise ValueError(f"negative length at byte {pos}")
    return value, pos + 1 + size


def _container(data: bytes | bytearray, pos: int, depth: int, *, keyed: bool) -> int:
    if depth > 64:
        raise ValueError("containers nest more than 64 deep")
    typed = None
    if data[pos : pos + 1] == b"$":
        typed, pos = bytes(data[pos + 1 : pos + 2]), pos + 2
        if data[pos : pos + 1] != b"#":
            raise (_CutShort if pos >= len(data) else ValueError)(f"no count at byte {pos}")
    count = None
    if data[pos : pos + 1] == b"#":
        count, pos = _length(data, pos + 1)
        if typed in _FIXED_SIZES and not keyed:  # an array of numbers: skip it whole
            end = pos + count * _FIXED_SIZES[typed]
            if end > len(data):
                raise _CutShort(f"it ends inside an array at byte {pos}")
            return end
    close = b"}" if keyed else b"]"
    seen = 0
    while count is None or seen < count:
        if count is None and data[pos : pos + 1] == close:
            return pos + 1
        if keyed:
            size, pos = _length(data, pos)
            pos += size
        marker = typed or bytes(data[pos : pos + 1])
        pos = _value(data, pos if typed else pos + 1, marker, depth)
        seen += 1
    return pos
