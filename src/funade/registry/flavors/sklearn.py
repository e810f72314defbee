"""The scikit-learn flavor: estimators and pipelines saved with skops (default) or joblib.

skops files are loaded trusting only the types recorded when the model was saved, and only if
those belong to scikit-learn, NumPy or SciPy; anything else must be saved with
``serialization="joblib"``, which the user chooses knowingly (loading a pickle runs its code).
Outputs are one tensor per method (``predict``, plus ``predict_proba`` when the model has it).
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from funade.errors import InvalidInputError, ModelLoadError
from funade.registry.flavors.base import (
    LoadedModel,
    PackageFile,
    check_options,
    missing_file,
    parse_metadata,
)
from funade.registry.flavors.sklearn_files import (
    check_pickle,
    check_skops,
    load_joblib,
    load_skops,
    save_joblib,
    save_skops,
)
from funade.registry.flavors.skops_trust import all_safe
from funade.registry.signature import Signature, frame_from_tensors
from funade.registry.tensors import Tensors, normalize

Method = Literal["predict", "predict_proba", "predict_log_proba", "decision_function", "transform"]
METHODS: tuple[str, ...] = get_args(Method)
FILES = {"skops": "model.skops", "joblib": "model.joblib"}
OPTIONS = {
    "serialization": "'skops' (default; safe to load) or 'joblib' (loading runs pickled code)",
    "methods": f"which of {', '.join(METHODS)} give outputs (default: predict, predict_proba)",
}


class SklearnMetadata(BaseModel):
    """What ``SklearnFlavor.save`` records in ``funade.json``."""

    model_config = ConfigDict(extra="forbid")

    serialization: Literal["skops", "joblib"]
    file: Literal["model.skops", "model.joblib"]
    methods: list[Method] = Field(min_length=1)
    trusted_types: list[str] = []


class SklearnModel:
    """A fitted estimator answering tensors; DataFrame-fed models get their DataFrame back."""

    def __init__(self, estimator: Any, methods: list[str], signature: Signature | None) -> None:
        self._estimator = estimator
        self._methods = methods
        self._signature = signature

    @property
    def native(self) -> object:
        return self._estimator

    def predict(
        self, inputs: Mapping[str, npt.NDArray[Any]], outputs: Collection[str] | None = None
    ) -> Tensors:
        features = self._features(inputs)
        methods = [m for m in self._methods if outputs is None or m in outputs] or self._methods
        return {m: normalize(getattr(self._estimator, m)(features), name=m) for m in methods}

    def _features(self, inputs: Mapping[str, npt.NDArray[Any]]) -> Any:
        if self._signature is None or self._signature.input_format == "tensor":
            return next(iter(inputs.values()))
        frame = frame_from_tensors(inputs)
        fitted = [str(c) for c in getattr(self._estimator, "feature_names_in_", [])]
        return frame[fitted] if sorted(fitted) == sorted(frame.columns) else frame


class SklearnFlavor:
    """Saves and loads scikit-learn estimators."""

    name: ClassVar[str] = "sklearn"
    extra: ClassVar[str] = "sklearn"

    def matches(self, model: object) -> bool:
        if "sklearn" not in sys.modules:  # an estimator cannot exist without sklearn imported
            return False
        from sklearn.base import BaseEstimator

        if isinstance(model, BaseEstimator) and callable(getattr(model, "predict", None)):
            return True
        module = type(model).__module__.split(".", 1)[0]
        return module == "sklearn" and all(
            callable(getattr(model, m, None)) for m in ("fit", "predict")
        )

    def save(self, model: object, path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        check_options(options, OPTIONS, flavor=self.name)
        serialization = options.get("serialization", "skops")
        if serialization not in FILES:
            raise InvalidInputError(
                f"'{serialization}' is not a serialization the sklearn flavor knows.",
                field="options.serialization",
                value=serialization,
                fix="Use 'skops' (default) or 'joblib'.",
            )
        methods = list(options.get("methods") or _default_methods(model))
        for method in methods:
            if method not in METHODS or not callable(getattr(model, method, None)):
                raise InvalidInputError(
                    f"The model has no method '{method}' the sklearn flavor can serve.",
                    field="options.methods",
                    value=methods,
                    fix=f"Choose among the model's methods in {', '.join(METHODS)}.",
                )
        file = path / FILES[serialization]
        trusted = save_skops(model, file) if serialization == "skops" else save_joblib(model, file)
        return {
            "serialization": serialization,
            "file": file.name,
            "methods": methods,
            "trusted_types": trusted,
        }

    def requirements(self, path: Path, metadata: Mapping[str, Any]) -> list[str]:
        serializer = "skops" if metadata.get("serialization") == "skops" else "joblib"
        return ["scikit-learn", "numpy", "scipy", serializer]

    def load(
        self, path: Path, metadata: Mapping[str, Any], signature: Signature | None
    ) -> SklearnModel:
        meta = parse_metadata(SklearnMetadata, metadata, flavor=self.name)
        file = path / meta.file
        if meta.serialization == "skops":
            estimator = load_skops(file, meta.trusted_types)
        else:
            estimator = load_joblib(file)
        return self.wrap(estimator, metadata, signature)

    def declared_signature(self, model: LoadedModel) -> Signature | None:
        return None

    def wrap(
        self, model: object, metadata: Mapping[str, Any], signature: Signature | None
    ) -> SklearnModel:
        meta = parse_metadata(SklearnMetadata, metadata, flavor=self.name)
        lacking = [m for m in meta.methods if not callable(getattr(model, m, None))]
        if lacking:
            raise ModelLoadError(
                f"The loaded {type(model).__name__} has no method {', '.join(lacking)}.",
                field="flavor_metadata.methods",
                value=meta.methods,
                fix="Rebuild the package from the fitted estimator.",
            )
        return SklearnModel(model, list(meta.methods), signature)

    def runs_code(self, metadata: Mapping[str, Any]) -> bool:
        """A joblib file is a pickle. A skops file loads trusting the types it recorded: safe
        when every one is on skops's own default trust list (``skops_trust.all_safe``), code
        otherwise (tree internals, whose content skops cannot check, or functions)."""
        if metadata.get("serialization") != "skops":
            return True
        recorded = metadata.get("trusted_types")
        if not isinstance(recorded, list):
            return True
        return all_safe([str(t) for t in recorded]) is not True

    def check_files(self, files: Mapping[str, PackageFile], metadata: Mapping[str, Any]) -> None:
        meta = parse_metadata(SklearnMetadata, metadata, flavor=self.name, on_server=True)
        if meta.file not in files:
            raise missing_file(meta.file, self.name)
        if meta.serialization == "skops":
            check_skops(meta.file, files[meta.file], meta.trusted_types)
        else:
            check_pickle(meta.file, files[meta.file])


def _default_methods(model: object) -> list[str]:
    return [m for m in ("predict", "predict_proba") if callable(getattr(model, m, None))]
